"""Ascend offline models (``.om``) on an Ascend 310 through AscendCL's Python API (``acl``).

``acl`` comes with Huawei's CANN toolkit, so only an image built on CANN has it;
:func:`kubearts_predictor.backends.load` refuses an om folder without it
(``ModelLoadFailed: AscendCL not available``). An om model has the fixed input shape ATC
compiled it for (``config.json``'s ``inputShape``, e.g. ``images:1,224,224,3``), so a batch
is run in slices of that batch size; the last slice is padded with zeros.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Final

import numpy as np

from kubearts_predictor.errors import PredictorError

_MALLOC_HUGE_FIRST: Final = 0
_HOST_TO_DEVICE: Final = 1
_DEVICE_TO_HOST: Final = 2


def _check(ret: int, what: str) -> None:
    if ret != 0:
        raise PredictorError("ModelLoadFailed", f"AscendCL {what} failed with error {ret}")


class Session:
    """One loaded om model with its device buffers; runs one slice at a time."""

    def __init__(self, acl: Any, path: Path, device_id: int) -> None:
        self.acl = acl
        self.device_id = device_id
        self.lock = threading.Lock()
        _check(acl.init(), "init")
        _check(acl.rt.set_device(device_id), f"set_device({device_id})")
        self.context, ret = acl.rt.create_context(device_id)
        _check(ret, "create_context")
        self.model_id, ret = acl.mdl.load_from_file(str(path))
        _check(ret, f"load_from_file({path})")
        self.desc = acl.mdl.create_desc()
        _check(acl.mdl.get_desc(self.desc, self.model_id), "get_desc")
        if acl.mdl.get_num_inputs(self.desc) != 1:
            raise PredictorError("ModelLoadFailed", f"{path}: an image classifier has one input")
        dims, ret = acl.mdl.get_input_dims(self.desc, 0)
        _check(ret, "get_input_dims")
        self.input_shape = [int(d) for d in dims["dims"]]
        self.input_name = str(dims.get("name", "images"))
        out_dims, ret = acl.mdl.get_output_dims(self.desc, 0)
        _check(ret, "get_output_dims")
        self.output_shape = [int(d) for d in out_dims["dims"]]
        self.output_name = str(out_dims.get("name", "logits")).split(":")[0]
        self.input_size = acl.mdl.get_input_size_by_index(self.desc, 0)
        self.output_size = acl.mdl.get_output_size_by_index(self.desc, 0)
        self.input_buffer, self.input_dataset = self._dataset(self.input_size)
        self.output_buffer, self.output_dataset = self._dataset(self.output_size)

    def _dataset(self, size: int) -> tuple[Any, Any]:
        buffer, ret = self.acl.rt.malloc(size, _MALLOC_HUGE_FIRST)
        _check(ret, "rt.malloc")
        dataset = self.acl.mdl.create_dataset()
        _, ret = self.acl.mdl.add_dataset_buffer(dataset, self.acl.create_data_buffer(buffer, size))
        _check(ret, "add_dataset_buffer")
        return buffer, dataset

    def run_slice(self, rows: np.ndarray) -> np.ndarray:
        acl = self.acl
        data = np.ascontiguousarray(rows, dtype=np.float32)
        if data.nbytes != self.input_size:
            raise ValueError(f"the om model takes {self.input_size} bytes, got {data.nbytes}")
        output = np.empty(self.output_size // 4, dtype=np.float32)
        with self.lock:
            _check(acl.rt.set_context(self.context), "set_context")
            _check(
                acl.rt.memcpy(
                    self.input_buffer,
                    self.input_size,
                    acl.util.numpy_to_ptr(data),
                    data.nbytes,
                    _HOST_TO_DEVICE,
                ),
                "memcpy to the device",
            )
            _check(
                acl.mdl.execute(self.model_id, self.input_dataset, self.output_dataset), "execute"
            )
            _check(
                acl.rt.memcpy(
                    acl.util.numpy_to_ptr(output),
                    output.nbytes,
                    self.output_buffer,
                    self.output_size,
                    _DEVICE_TO_HOST,
                ),
                "memcpy from the device",
            )
        return output.reshape(self.output_shape)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Any number of rows, in slices of the om model's fixed batch size (zero-padded)."""
        size = max(1, self.input_shape[0])
        results = []
        for start in range(0, len(batch), size):
            rows = batch[start : start + size]
            padded = rows
            if len(rows) < size:
                padding = np.zeros((size - len(rows), *rows.shape[1:]), rows.dtype)
                padded = np.concatenate([rows, padding])
            results.append(self.run_slice(padded)[: len(rows)])
        return np.concatenate(results)


def open_session(path: Path) -> Session:
    """Load ``path`` on the Ascend device ``$ASCEND_DEVICE_ID`` (default 0)."""
    import acl  # type: ignore[import-not-found]

    device_id = int(os.environ.get("ASCEND_DEVICE_ID", "0"))
    return Session(acl, path, device_id)
