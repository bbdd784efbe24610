"""Predictor overhead next to ONNX Runtime in process, and next to KServe's stock server.

ResNet v1 50 at 224 px with random weights (the trainer's model builder and export, converted
with tf2onnx) is served by the predictor and by KServe 0.21's stock ``ModelServer`` with a
plain ONNX ``kserve.Model``, both as subprocesses with the same ONNX Runtime thread count as
the in-process baseline. Requests are interleaved round by round in one run so that load from
elsewhere on the machine hits every variant alike.

1. **Latency at batch 1**: p50 of V2 REST binary, V2 gRPC, V1 JSON and image upload (a
   500x375 JPEG) as a ratio to in-process ONNX Runtime (for upload: in-process decode +
   preprocess + inference). The client encodes V1 JSON with orjson (numpy arrays written
   natively), the same for both servers.
2. **Protocol cost alone**: the same protocols on a no-op model (the channel means of the
   image), served by the predictor and by the stock server, p50 in milliseconds.
3. **Dynamic batching**: V2 REST binary from 8 concurrent clients against 1: throughput and p99.

``python benchmarks/predictor.py [--rounds 30] [--requests 12]``
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "unit" / "predictor"))

import numpy as np  # noqa: E402
import orjson  # noqa: E402
from PIL import Image  # noqa: E402

from kubearts_predictor.client import v2_binary_outputs, v2_binary_request  # noqa: E402

SIZE = 224
LABELS = ["daisy", "dandelion", "rose", "sunflower", "tulip"]


def build_resnet(folder: Path) -> None:
    """model.onnx, labels.txt and model.json of ResNet v1 50 (random weights) at 224 px."""
    import tensorflow as tf
    import tf2onnx

    from kubearts_trainer import export, models

    folder.mkdir(parents=True)
    model, _ = models.build("resnet_v1_50", len(LABELS))
    graph_def = export.frozen_graph(model)
    with tf.device("/CPU:0"):
        tf2onnx.convert.from_graph_def(
            graph_def,
            input_names=["images:0"],
            output_names=["logits:0"],
            opset=13,
            output_path=str(folder / "model.onnx"),
        )
    _card(folder, LABELS)


def build_noop(folder: Path) -> None:
    """A model that does next to nothing: logits = the image's channel means."""
    import onnx
    from onnx import TensorProto, helper

    folder.mkdir(parents=True)
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["images"], ["logits"], axes=[1, 2], keepdims=0)],
        "noop",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", SIZE, SIZE, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(folder / "model.onnx"))
    _card(folder, ["red", "green", "blue"])


def _card(folder: Path, labels: list[str]) -> None:
    (folder / "labels.txt").write_text("".join(f"{label}\n" for label in labels))
    card = {"inputs": [{"imageSize": [SIZE, SIZE], "layout": "NHWC"}], "labels": labels}
    (folder / "model.json").write_text(json.dumps(card))


def stock_server(model_dir: str, http_port: int, grpc_port: int, threads: int, name: str) -> None:
    """KServe's stock ModelServer with a plain ONNX Runtime kserve.Model (the baseline)."""
    import kserve
    import onnxruntime as ort
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

    class OnnxModel(kserve.Model):  # type: ignore[misc]
        def load(self) -> bool:
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            self.session = ort.InferenceSession(
                f"{model_dir}/model.onnx", options, providers=["CPUExecutionProvider"]
            )
            self.input_name = self.session.get_inputs()[0].name
            self.ready = True
            return True

        def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
            if isinstance(payload, InferRequest):
                array = payload.inputs[0].as_numpy()
                logits = self.session.run(None, {self.input_name: array})[0]
                output = InferOutput("logits", list(logits.shape), "FP32")
                output.set_data_from_numpy(logits, binary_data=payload.use_binary_outputs)
                return InferResponse(
                    payload.id or "1",
                    self.name,
                    [output],
                    from_grpc=payload.from_grpc,
                    use_binary_outputs=payload.use_binary_outputs,
                )
            array = np.asarray(payload["instances"], dtype=np.float32)
            return {"predictions": self.session.run(None, {self.input_name: array})[0].tolist()}

    model = OnnxModel(name)
    model.load()
    kserve.ModelServer(http_port=http_port, grpc_port=grpc_port, workers=1).start([model])


def bare_server(http_port: int) -> None:
    """The floor under any Python server: uvicorn (uvloop, httptools, no access log) with an
    ASGI app that reads the body and answers a fixed V2 binary answer, no model, no checks."""
    import uvicorn

    head = b'{"outputs":[{"name":"logits","shape":[1,3],"datatype":"FP32",'
    head += b'"parameters":{"binary_data_size":12}}]}'
    answer = head + np.zeros(3, np.float32).tobytes()
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(len(answer)).encode()),
        (b"inference-header-content-length", str(len(head)).encode()),
    ]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    uvicorn.run(
        app, port=http_port, loop="uvloop", http="httptools", log_level="warning", access_log=False
    )


class _NoDelayConnection(http.client.HTTPConnection):
    """http.client with Nagle's algorithm off, as urllib3 (requests) has it: a body sent after
    its headers must not wait for the server's delayed acknowledgement (40 ms)."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Client:
    """One server's endpoints, called the way users call them."""

    def __init__(self, http_port: int, grpc_port: int, name: str) -> None:
        import grpc
        from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
        from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

        self.url = f"http://127.0.0.1:{http_port}"
        self.port = http_port
        self.name = name
        # REST calls go over one kept-alive http.client connection: requests would add about
        # a millisecond of its own per call, the same for every server, and hide what they cost.
        self.http = self.connect()
        self.pb = pb
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{grpc_port}",
            options=[("grpc.max_receive_message_length", 64 << 20)],
        )
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)

    def connect(self) -> http.client.HTTPConnection:
        return _NoDelayConnection("127.0.0.1", self.port)

    def post(
        self, path: str, body: bytes, headers: dict[str, str], connection: Any = None
    ) -> tuple[bytes, dict[str, str]]:
        """(body, headers) of a 200 answer."""
        connection = connection or self.http
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        content = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST {path}: {response.status} {content[:200]!r}")
        return content, dict(response.getheaders())

    def v2_binary(self, batch: np.ndarray, connection: Any = None) -> np.ndarray:
        body, headers = v2_binary_request(batch)
        content, answer_headers = self.post(
            f"/v2/models/{self.name}/infer", body, headers, connection
        )
        (logits,) = v2_binary_outputs(content, answer_headers).values()
        return logits.ravel()

    def grpc(self, batch: np.ndarray) -> np.ndarray:
        pb = self.pb
        reply = self.stub.ModelInfer(
            pb.ModelInferRequest(
                model_name=self.name,
                inputs=[
                    pb.ModelInferRequest.InferInputTensor(
                        name="images", datatype="FP32", shape=list(batch.shape)
                    )
                ],
                raw_input_contents=[batch.tobytes()],
            )
        )
        return np.frombuffer(reply.raw_output_contents[0], dtype=np.float32)

    def v1_json(self, batch: np.ndarray) -> Any:
        # orjson writes the array's floats natively, as a latency-minded client would;
        # Python's json would spend ~50 ms more per 224 px image on either server.
        content, _ = self.post(
            f"/v1/models/{self.name}:predict",
            orjson.dumps({"instances": batch}, option=orjson.OPT_SERIALIZE_NUMPY),
            {"content-type": "application/json"},
        )
        return orjson.loads(content)

    def upload(self, image: bytes) -> Any:
        # The multipart body as requests would encode it (urllib3), sent on the same connection.
        from urllib3 import encode_multipart_formdata

        body, content_type = encode_multipart_formdata(
            [("images", ("image.jpg", image, "image/jpeg"))]
        )
        content, _ = self.post("/", body, {"content-type": content_type})
        return orjson.loads(content)


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def interleave(
    variants: dict[str, Callable[[], Any]], rounds: int, settle: float = 0.1
) -> dict[str, list[float]]:
    """Each variant once per round, in a rotating order; milliseconds per call. Each call
    starts ``settle`` seconds after the one before: ONNX Runtime's threads spin-wait for a
    while after a run (KServe's stock server leaves them so), and that CPU is not the next
    variant's to pay for."""
    for call in variants.values():  # warm up: first calls trace, allocate, connect
        call()
        call()
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            time.sleep(settle)
            times[name].append(timed(variants[name]))
    return times


def concurrent(
    client: Client, batch: np.ndarray, clients: int, requests_each: int
) -> tuple[float, float]:
    """(requests per second, p99 ms) of V2 REST binary calls from ``clients`` threads, each
    with its own connection."""

    def one(_: int) -> list[float]:
        connection = client.connect()
        return [timed(lambda: client.v2_binary(batch, connection)) for _ in range(requests_each)]

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [t for ts in pool.map(one, range(clients)) for t in ts]
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, float(np.percentile(latencies, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=12, help="per client, batching test")
    parser.add_argument(
        "--stock-server", nargs=5, metavar=("DIR", "HTTP", "GRPC", "THREADS", "NAME")
    )
    parser.add_argument("--bare-server", type=int, metavar="HTTP")
    args = parser.parse_args()
    if args.bare_server:
        bare_server(args.bare_server)
        return
    if args.stock_server:
        folder, http, grpc_port, threads, name = args.stock_server
        stock_server(folder, int(http), int(grpc_port), int(threads), name)
        return

    import subprocess

    import onnxruntime as ort
    from predictor_helpers import launch_server, wait_ready

    from kubearts_predictor import backends, preprocess, resources

    threads = resources.usable_cpus()
    work = Path(tempfile.mkdtemp(prefix="predictor-bench-"))
    print(f"building ResNet v1 50 at {SIZE} px in {work} ...", file=sys.stderr)
    build_resnet(work / "resnet")
    build_noop(work / "noop")

    ours = launch_server(work / "resnet", "--max_batch_wait_ms", "5", name="resnet")
    noop = launch_server(work / "noop", "--max_batch_wait_ms", "0", name="noop")
    stocks = {model: _stock(work / model, threads, model) for model in ("resnet", "noop")}
    bare_port, bare = _bare()
    processes = [ours.process, noop.process, bare, *(p for _, _, p in stocks.values())]
    try:
        servers = {"ours": wait_ready(ours, 300), "noop": wait_ready(noop, 300)}
        ours_client = Client(servers["ours"].http_port, servers["ours"].grpc_port, "resnet")
        noop_client = Client(servers["noop"].http_port, servers["noop"].grpc_port, "noop")
        stock_client = Client(stocks["resnet"][0], stocks["resnet"][1], "resnet")
        stock_noop = Client(stocks["noop"][0], stocks["noop"][1], "noop")
        _wait_up(stock_client, stocks["resnet"][2])
        _wait_up(stock_noop, stocks["noop"][2])
        bare_client = Client(bare_port, 0, "bare")
        _wait_up(bare_client, bare)

        # The in-process baseline runs ONNX Runtime as the predictor does.
        options = backends.session_options(threads)
        session = ort.InferenceSession(
            str(work / "resnet" / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        noop_session = ort.InferenceSession(
            str(work / "noop" / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        name = session.get_inputs()[0].name
        batch = (np.random.default_rng(0).random((1, SIZE, SIZE, 3)) * 255).astype(np.float32)
        jpeg = _jpeg()

        def in_process() -> Any:
            return session.run(None, {name: batch})

        def in_process_upload() -> Any:
            pixels = preprocess.to_batch([preprocess.decode(jpeg, (SIZE, SIZE), 10**8)])
            return session.run(None, {name: pixels})

        expected = in_process()[0].ravel()
        np.testing.assert_allclose(ours_client.v2_binary(batch), expected, atol=1e-3)
        np.testing.assert_allclose(stock_client.v2_binary(batch), expected, atol=1e-3)

        print(f"timing {args.rounds} interleaved rounds of ResNet ...", file=sys.stderr)
        times = interleave(
            {
                "in-process ORT": in_process,
                "in-process decode+ORT": in_process_upload,
                "ours V2 REST binary": lambda: ours_client.v2_binary(batch),
                "ours V2 gRPC": lambda: ours_client.grpc(batch),
                "ours V1 JSON": lambda: ours_client.v1_json(batch),
                "ours upload (JPEG)": lambda: ours_client.upload(jpeg),
                "stock V2 REST binary": lambda: stock_client.v2_binary(batch),
                "stock V2 gRPC": lambda: stock_client.grpc(batch),
                "stock V1 JSON": lambda: stock_client.v1_json(batch),
            },
            args.rounds,
        )
        # Apart from ResNet, whose runs would share the CPU's caches and memory bandwidth.
        print(f"timing {args.rounds} interleaved rounds of the no-op model ...", file=sys.stderr)
        times |= interleave(
            {
                "no-op in-process ORT": lambda: noop_session.run(None, {"images": batch}),
                "no-op ours V2 REST binary": lambda: noop_client.v2_binary(batch),
                "no-op ours V2 gRPC": lambda: noop_client.grpc(batch),
                "no-op ours V1 JSON": lambda: noop_client.v1_json(batch),
                "no-op ours upload (JPEG)": lambda: noop_client.upload(jpeg),
                "no-op stock V2 REST binary": lambda: stock_noop.v2_binary(batch),
                "no-op stock V2 gRPC": lambda: stock_noop.grpc(batch),
                "no-op stock V1 JSON": lambda: stock_noop.v1_json(batch),
                "no-op floor: bare uvicorn app, V2 REST": lambda: bare_client.v2_binary(batch),
            },
            args.rounds * 3,
        )
        p50 = {k: statistics.median(v) for k, v in times.items()}
        print(f"timing dynamic batching, {args.requests} requests per client ...", file=sys.stderr)
        batching = {
            (who, clients): concurrent(client, batch, clients, args.requests)
            for who, client in (("ours", ours_client), ("stock", stock_client))
            for clients in (1, 8)
        }
        # What batching can give at most: ONNX Runtime's own throughput at batch 8 over batch 1.
        eight = np.repeat(batch, 8, axis=0)
        single = statistics.median(timed(in_process) for _ in range(args.requests))
        whole = statistics.median(
            timed(lambda: session.run(None, {name: eight})) for _ in range(args.requests)
        )
        batching[("in-process ORT", 1)] = (1000 / single, single)
        batching[("in-process ORT", 8)] = (8000 / whole, whole)
        _table(p50, batching, threads, args)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _spawn(*args: str) -> Any:
    """This script as a server subprocess (``--stock-server`` or ``--bare-server``)."""
    import subprocess

    from predictor_helpers import clean_env

    return subprocess.Popen(
        [sys.executable, __file__, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=clean_env(),
    )


def _stock(folder: Path, threads: int, name: str) -> tuple[int, int, Any]:
    """Start KServe's stock server on ``folder``; returns (http port, grpc port, process)."""
    from predictor_helpers import free_port

    http, grpc_port = free_port(), free_port()
    process = _spawn("--stock-server", str(folder), str(http), str(grpc_port), str(threads), name)
    return http, grpc_port, process


def _bare() -> tuple[int, Any]:
    """Start the bare ASGI server; returns (http port, process)."""
    from predictor_helpers import free_port

    port = free_port()
    return port, _spawn("--bare-server", str(port))


def _wait_up(client: Client, process: Any) -> None:
    """Wait until the server behind ``client`` answers its readiness probe."""
    import requests

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server on port {client.port} exited")
        try:
            if requests.get(f"{client.url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server on port {client.port} never became ready")


def _jpeg() -> bytes:
    rng = np.random.default_rng(1)
    pixels = (rng.random((375, 500, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _table(
    p50: dict[str, float],
    batching: dict[tuple[str, int], tuple[float, float]],
    threads: int,
    args: argparse.Namespace,
) -> None:
    base = p50["in-process ORT"]
    base_upload = p50["in-process decode+ORT"]
    print(
        f"\nResNet v1 50, 224 px, batch 1, ONNX Runtime {threads} intra-op threads everywhere, "
        f"{args.rounds} interleaved rounds"
    )
    print(f"{'variant':34} {'p50 ms':>9} {'ratio':>8}")
    for name, value in p50.items():
        if name.startswith("no-op"):
            continue
        reference = base_upload if "upload" in name or "decode" in name else base
        print(f"{name:34} {value:9.2f} {value / reference:8.3f}")
    print("\nno-op model (protocol cost alone)")
    for name, value in p50.items():
        if name.startswith("no-op"):
            print(f"{name:34} {value:9.2f}")
    print(f"\ndynamic batching, V2 REST binary, {args.requests} requests per client")
    print("(in-process ORT: one batch of 8 images against one image, p50 instead of p99)")
    print(f"{'server':15} {'clients':>8} {'req/s':>9} {'p99 ms':>9} {'vs 1 client':>12}")
    for (who, clients), (rate, p99) in batching.items():
        single = batching[(who, 1)][0]
        print(f"{who:15} {clients:8d} {rate:9.2f} {p99:9.1f} {rate / single:12.2f}")
    _targets(p50, batching)


def _targets(p50: dict[str, float], batching: dict[tuple[str, int], tuple[float, float]]) -> None:
    """Each target of the predictor against this run's figures."""
    base, base_upload = p50["in-process ORT"], p50["in-process decode+ORT"]
    rate, p99 = batching[("ours", 8)]
    single_rate, single_p99 = batching[("ours", 1)]
    checks = [
        ("V2 REST binary / in-process", p50["ours V2 REST binary"] / base, "<=", 1.15),
        ("V2 gRPC / in-process", p50["ours V2 gRPC"] / base, "<=", 1.10),
        ("V1 JSON / in-process", p50["ours V1 JSON"] / base, "<=", 2.5),
        ("upload / in-process decode+ORT", p50["ours upload (JPEG)"] / base_upload, "<=", 1.15),
        ("no-op V2 REST binary p50 ms", p50["no-op ours V2 REST binary"], "<=", 1.5),
        ("no-op V2 gRPC p50 ms", p50["no-op ours V2 gRPC"], "<=", 1.5),
        ("batching: 8 clients / 1, throughput", rate / single_rate, ">=", 1.3),
        ("batching: 8 clients p99 / 1 client p99", p99 / single_p99, "<=", 2.0),
    ]
    print("\ntargets")
    for name, value, sense, target in checks:
        met = value <= target if sense == "<=" else value >= target
        print(f"{name:40} {value:8.2f} {sense} {target:<5} {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
