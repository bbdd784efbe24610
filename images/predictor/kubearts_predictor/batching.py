"""Dynamic batching: concurrent requests share one model execution.

Every request's rows go to one queue. A single worker takes the first waiting request, then
gathers more for at most ``max_wait`` seconds or until ``max_batch_size`` rows, concatenates
them, runs the model in its own thread (the event loop keeps serving meanwhile) and hands each
request its slice of the result. A request larger than ``max_batch_size`` runs alone.

The wait is paid only under concurrency: when the previous execution served one request and
nothing arrived while it ran, a lone client is not made to wait for company that is not
coming, and its request runs at once. As soon as requests overlap (one arrives while another
runs, or a batch gathered several), the worker waits again for up to ``max_wait``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kubearts_predictor import metrics


@dataclass
class _Pending:
    rows: np.ndarray
    future: asyncio.Future[np.ndarray]


class Batcher:
    """Runs ``run(batch)`` on batches gathered from concurrent :meth:`submit` calls."""

    def __init__(
        self,
        run: Callable[[np.ndarray], np.ndarray],
        max_batch_size: int = 8,
        max_wait: float = 0.005,
    ) -> None:
        self._run = run
        self.max_batch_size = max(1, max_batch_size)
        self.max_wait = max(0.0, max_wait)
        # One thread: the session runs one batch at a time, with all its intra-op threads.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="inference"
        )
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, rows: np.ndarray) -> np.ndarray:
        """The model's output for ``rows`` (a batch of one or more inputs)."""
        if self._queue is None or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._work(self._queue))
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(rows, future))
        return await future

    def run_now(self, rows: np.ndarray) -> np.ndarray:
        """Run without batching (batch mode and direct callers)."""
        metrics.BATCH_SIZE.observe(len(rows))
        return self._run(rows)

    async def _work(self, queue: asyncio.Queue[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        carried: _Pending | None = None
        concurrent = False
        while True:
            first = carried or await queue.get()
            carried = None
            concurrent = concurrent or not queue.empty()
            batch = [first]
            count = len(first.rows)
            deadline = time.monotonic() + (self.max_wait if concurrent else 0.0)
            while count < self.max_batch_size:
                try:
                    if queue.empty():
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        item = await asyncio.wait_for(queue.get(), remaining)
                    else:
                        item = queue.get_nowait()
                except TimeoutError:
                    break
                if count + len(item.rows) > self.max_batch_size:
                    carried = item
                    break
                batch.append(item)
                count += len(item.rows)
            rows = batch[0].rows if len(batch) == 1 else np.concatenate([p.rows for p in batch])
            try:
                outputs = await loop.run_in_executor(self._executor, self.run_now, rows)
            except Exception as exc:
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            finally:
                # Overlap seen: this execution served several, or others queued meanwhile.
                concurrent = len(batch) > 1 or carried is not None or not queue.empty()
            start = 0
            for pending in batch:
                end = start + len(pending.rows)
                if not pending.future.done():
                    pending.future.set_result(outputs[start:end])
                start = end

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
