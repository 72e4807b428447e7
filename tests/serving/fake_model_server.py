"""A TEST DOUBLE of `tensorflow_model_server`, for CI machines that cannot
install the real binary.

`FakeModelServer` serves the integer versions under one base path on
loopback ports: TF Serving's REST API (`GET /v1/models/<name>[/versions/
<v>]`, `POST .../<name>[/versions/<v>]:predict` with `inputs` or
`instances`, `{"error": ...}` with HTTP 400/404) and its gRPC API
(`PredictionService.Predict`, `ModelService.GetModelStatus`). Each version
runs through TF's session loader with its SignatureDefs, as TF Serving
runs it, after replaying its warmup requests. Like the real server, it
checks each request against the SignatureDef (missing or extra inputs,
dtypes, shapes) and answers `INVALID_ARGUMENT` naming the input; errors
raised by the graph (the scenario range check) come back as they are. It
is not a server to deploy: no batching, no version policy, no model
reloading.

As the real server, REST speaks HTTP/1.1 with keep-alive, reads only the
signature's keys of a columnar `inputs` object (TF Serving's
`json_tensor.cc` ignores the others) and refuses unknown keys in
`instances`; JSON floats may be `NaN` / `Infinity` (TF Serving parses with
RapidJSON's `kParseNanAndInfFlag`), `null` is refused.

For the client's tests it counts the TCP connections it accepts
(`connections()`: REST connections accepted, distinct gRPC peers) and can
misbehave on purpose (`fault(...)`): drop the connection, answer 200
without `outputs`, answer malformed JSON, a 5xx page, answer slowly, or
close a kept-alive connection after answering (an idle-timeout drop).
"""

from __future__ import annotations

import base64
import contextlib
import json
import pathlib
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from kmtl.export import SIGNATURE_KEY
from kmtl.export import list_versions
from kmtl.export import read_warmup
from kmtl.export.warmup import ASSETS_EXTRA
from kmtl.export.warmup import WARMUP_FILE
from tests.export.session_loader import SessionModel

_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[0-9]+))?"
    r"(?P<verb>:predict)?$"
)


class RequestError(Exception):
    """A request the server refuses: HTTP status and gRPC code."""

    def __init__(self, message: str, http: int, code: grpc.StatusCode):
        super().__init__(message)
        self.http = http
        self.code = code


def _invalid(message: str) -> RequestError:
    return RequestError(message, 400, grpc.StatusCode.INVALID_ARGUMENT)


FAULTS = (
    "drop",  # close the connection without answering (gRPC: UNAVAILABLE)
    "no_outputs",  # HTTP 200 with `{}` (gRPC: an empty PredictResponse)
    "malformed",  # HTTP 200 with a body that is not JSON
    "status_502",  # HTTP 502 with an HTML page, as a proxy answers
    "slow",  # answer after `delay` seconds
    "close_after",  # answer, then close the kept-alive connection
)


class _Faults:
    """The fault to apply to the next `times` predict requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mode: str | None = None
        self._left = 0
        self.delay = 0.0

    def set(self, mode: str | None, times: int, delay: float) -> None:
        with self._lock:
            self._mode, self._left, self.delay = mode, times, delay

    def take(self) -> str | None:
        with self._lock:
            if self._mode is None or self._left == 0:
                return None
            self._left -= 1
            return self._mode


class _HTTPServer(ThreadingHTTPServer):
    """Counts accepted TCP connections; a deep accept queue, as a real
    server has (socketserver's default of 5 makes a burst of connects
    wait for SYN retransmits, about 1 s)."""

    request_queue_size = 128
    daemon_threads = True

    def __init__(self, *args, **kwargs) -> None:
        self.accepted = 0
        self._count_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address) -> None:
        with self._count_lock:
            self.accepted += 1
        super().process_request(request, client_address)

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # prints it
        # A client that went away (timed out) is not the server's error.


class FakeModelServer:
    """Serves `base_path`'s versions as model `model_name` (a test double).

    Args:
        model_name: str. The served model name.
        base_path: path. The directory of integer versions.
        idle_timeout: float or None. Seconds a kept-alive REST connection
            may stay idle before the server closes it. Defaults to `None`
            (never).
        grpc_workers: int. Threads answering gRPC calls. Defaults to 8.

    Example:

    ```python
    with FakeModelServer("tiny", base) as server:
        Client(f"localhost:{server.rest_port}", "tiny").predict(df)
        with server.fault("drop"):
            ...  # the next predict request is dropped
    ```
    """

    def __init__(
        self,
        model_name: str,
        base_path: str | pathlib.Path,
        *,
        idle_timeout: float | None = None,
        grpc_workers: int = 8,
    ):
        self.model_name = model_name
        self.models = {
            v: SessionModel(pathlib.Path(base_path) / str(v))
            for v in list_versions(base_path)
        }
        for version, model in self.models.items():
            _warm_up(model, pathlib.Path(base_path) / str(version))
        self.faults = _Faults()
        self._grpc_peers: set[str] = set()
        self._peers_lock = threading.Lock()
        self._http = _HTTPServer(("127.0.0.1", 0), _handler(self, idle_timeout))
        self.rest_port = self._http.server_address[1]
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=grpc_workers)
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(self), self._grpc
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            _ModelService(self), self._grpc
        )
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._thread = threading.Thread(
            target=self._http.serve_forever, daemon=True
        )

    def __enter__(self) -> FakeModelServer:
        self._thread.start()
        self._grpc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._grpc.stop(grace=None)
        for model in self.models.values():
            model.close()

    # --- test hooks -------------------------------------------------------

    @contextlib.contextmanager
    def fault(
        self, mode: str, times: int = 1, delay: float = 1.0
    ) -> Iterator[None]:
        """Misbehaves on the next `times` predict requests (`-1`: all)
        until the block ends; see `FAULTS`."""
        if mode not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}: {mode!r}")
        self.faults.set(mode, times, delay)
        try:
            yield
        finally:
            self.faults.set(None, 0, 0.0)

    def connections(self) -> dict[str, int]:
        """TCP connections so far: REST ones accepted, distinct gRPC
        peers (one per client connection: its address and port)."""
        with self._peers_lock:
            grpc_peers = len(self._grpc_peers)
        return {"rest": self._http.accepted, "grpc": grpc_peers}

    def _grpc_peer(self, context: grpc.ServicerContext) -> None:
        with self._peers_lock:
            self._grpc_peers.add(context.peer())

    # --- shared by REST and gRPC ------------------------------------------

    def model(self, name: str, version: int | None) -> SessionModel:
        if name != self.model_name or not self.models:
            raise RequestError(
                f"Servable not found for request: Latest({name})",
                404,
                grpc.StatusCode.NOT_FOUND,
            )
        version = max(self.models) if version is None else version
        if version not in self.models:
            raise RequestError(
                f"Servable not found for request: Specific({name}, {version})",
                404,
                grpc.StatusCode.NOT_FOUND,
            )
        return self.models[version]

    def status(self, name: str, version: int | None) -> list[int]:
        self.model(name, version)
        return [version] if version is not None else sorted(self.models)

    def predict(
        self,
        model: SessionModel,
        signature_name: str,
        inputs: dict[str, np.ndarray],
    ) -> dict[str, np.ndarray]:
        signature_name = signature_name or "serving_default"
        if signature_name not in model.signature_defs:
            raise _invalid(
                f'Serving signature name: "{signature_name}" not found in '
                "signature def"
            )
        signature = model.signature_defs[signature_name]
        missing = sorted(set(signature.inputs) - set(inputs))
        extra = sorted(set(inputs) - set(signature.inputs))
        if missing or extra:
            raise _invalid(
                "input size does not match signature: "
                f"{len(inputs)}!={len(signature.inputs)} len({{"
                f"{','.join(sorted(inputs))}}}) != len({{"
                f"{','.join(sorted(signature.inputs))}}}). Sent extra: "
                f"{{{','.join(extra)}}}. Missing but required: "
                f"{{{','.join(missing)}}}."
            )
        for name, value in inputs.items():
            info = signature.inputs[name]
            want = [d.size for d in info.tensor_shape.dim]
            got = list(value.shape)
            if len(got) != len(want) or any(
                w not in (-1, g) for w, g in zip(want, got, strict=True)
            ):
                raise _invalid(
                    f"input '{name}' has shape {got}; signature "
                    f"'{signature_name}' takes {want} (-1 = any)"
                )
        try:
            return model.run(signature_name, inputs)
        except tf.errors.OpError as err:
            raise _invalid(err.message) from None


def _warm_up(model: SessionModel, version_dir: pathlib.Path) -> None:
    """Replays the version's `tf_serving_warmup_requests`, as TF Serving
    does before it marks a version AVAILABLE: the first run of each
    signature builds its executor (about 0.3 s here)."""
    if not (version_dir / ASSETS_EXTRA / WARMUP_FILE).is_file():
        return
    for log in read_warmup(version_dir):
        request = log.predict_log.request
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        model.run(request.model_spec.signature_name or SIGNATURE_KEY, inputs)


def _from_json(value: object, dtype: int, name: str) -> np.ndarray:
    """A JSON tensor as an array of the SignatureDef's dtype."""
    if dtype == types_pb2.DT_STRING:

        def decode(v):
            if isinstance(v, dict) and set(v) == {"b64"}:
                return base64.b64decode(v["b64"])
            if isinstance(v, str):
                return v.encode()
            raise _invalid(
                f"JSON Value: {json.dumps(v)} is not of expected type: "
                f"string, for input '{name}'"
            )

        return np.vectorize(decode, otypes=[object])(
            np.asarray(value, dtype=object)
        )
    array = np.asarray(value)
    is_int = dtype in (types_pb2.DT_INT64, types_pb2.DT_INT32)
    allowed = "iu" if is_int else "iuf"
    if array.dtype.kind not in allowed:
        kind = "integer" if is_int else "number"
        raise _invalid(
            f"JSON Value: {json.dumps(value)[:80]} is not of expected type: "
            f"{kind}, for input '{name}'"
        )
    return array.astype(tf.dtypes.as_dtype(dtype).as_numpy_dtype)


def _handler(server: FakeModelServer, idle_timeout: float | None) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as TF Serving
        disable_nagle_algorithm = True
        timeout = idle_timeout

        def log_message(self, *args: object) -> None:
            pass

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except TimeoutError:  # idle past `idle_timeout`: close
                self.close_connection = True

        def do_GET(self) -> None:  # noqa: N802
            self._answer(self._get, None)

        def do_POST(self) -> None:  # noqa: N802
            # Read the whole body first: on a kept-alive connection, an
            # unread body would be parsed as the next request.
            length = int(self.headers.get("Content-Length", 0))
            self._body = self.rfile.read(length)
            fault = server.faults.take()
            if fault == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault == "slow":
                time.sleep(server.faults.delay)
            self._answer(self._post, fault)

        def _answer(self, handle, fault: str | None) -> None:
            try:
                status, body = 200, handle()
            except RequestError as err:
                status, body = err.http, {"error": str(err)}
            data = json.dumps(body).encode()
            kind = "application/json"
            if fault == "no_outputs":
                status, data = 200, b"{}"
            elif fault == "malformed":
                status, data = 200, b'{"outputs": {"ctr": [[0.5'
            elif fault == "status_502":
                status, kind = 502, "text/html"
                data = b"<html><body>502 Bad Gateway</body></html>"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)  # TCP_NODELAY: no Nagle stall
            if fault == "close_after":  # as an idle timeout would
                self.close_connection = True

        def _route(self, verb: str) -> tuple[str, int | None]:
            match = _PATH.match(self.path)
            if not match or (match["verb"] or "") != verb:
                raise RequestError(
                    f"Malformed request: {self.command} {self.path}",
                    404,
                    grpc.StatusCode.NOT_FOUND,
                )
            version = match["version"]
            return match["name"], None if version is None else int(version)

        def _get(self) -> dict:
            name, version = self._route("")
            return {
                "model_version_status": [
                    {
                        "version": str(v),
                        "state": "AVAILABLE",
                        "status": {"error_code": "OK", "error_message": ""},
                    }
                    for v in server.status(name, version)
                ]
            }

        def _post(self) -> dict:
            name, version = self._route(":predict")
            model = server.model(name, version)
            try:
                body = json.loads(self._body)
            except ValueError as err:
                raise _invalid(f"JSON Parse error: {err}") from None
            signature_name = body.get("signature_name", "serving_default")
            signature = model.signature_defs.get(signature_name)
            if ("inputs" in body) == ("instances" in body):
                raise _invalid(
                    "JSON Value: must have exactly one of 'inputs' or "
                    "'instances'"
                )
            if signature is None:
                server.predict(model, signature_name, {})  # raises
            columnar = "inputs" in body
            if columnar:
                # As TF Serving: only the signature's keys are read.
                columns = {
                    key: value
                    for key, value in body["inputs"].items()
                    if key in signature.inputs
                }
                for key in sorted(signature.inputs):
                    if key not in columns:
                        raise _invalid(
                            f"Missing named input: {key} in 'inputs' object."
                        )
            else:
                rows = body["instances"]
                if not all(isinstance(row, dict) for row in rows):
                    raise _invalid("instances must be a list of objects")
                for i, row in enumerate(rows):
                    for key in row:
                        if key not in signature.inputs:
                            raise _invalid(
                                f"Failed to process element: {i} key: {key} "
                                "of 'instances' list. Error: "
                                "INVALID_ARGUMENT: JSON object: does not "
                                f"have named input: {key}"
                            )
                columns = {
                    key: [row.get(key) for row in rows]
                    for key in {k for row in rows for k in row}
                }
                for key, values in columns.items():
                    if any(v is None for v in values):
                        raise _invalid(
                            f"Failed to process element: key: {key} of "
                            "'instances' list: missing in some instances"
                        )
            dtypes = {k: v.dtype for k, v in signature.inputs.items()}
            inputs = {
                key: _from_json(value, dtypes.get(key, 0), key)
                if key in dtypes
                else np.asarray(value)
                for key, value in columns.items()
            }
            outputs = server.predict(model, signature_name, inputs)
            lists = {k: v.tolist() for k, v in outputs.items()}
            if columnar:
                return {"outputs": lists}
            batch = len(next(iter(lists.values())))
            return {
                "predictions": [
                    {k: v[i] for k, v in lists.items()} for i in range(batch)
                ]
            }

    return Handler


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, server: FakeModelServer) -> None:
        self.server = server

    def Predict(self, request, context):  # noqa: N802
        self.server._grpc_peer(context)
        fault = self.server.faults.take()
        if fault == "drop":
            context.abort(grpc.StatusCode.UNAVAILABLE, "Connection reset")
        if fault == "slow":
            time.sleep(self.server.faults.delay)
        if fault == "no_outputs":
            return predict_pb2.PredictResponse()
        spec = request.model_spec
        version = spec.version.value if spec.HasField("version") else None
        try:
            model = self.server.model(spec.name, version)
            signature = model.signature_defs.get(
                spec.signature_name or "serving_default"
            )
            inputs = {}
            for name, proto in request.inputs.items():
                if signature is not None and name in signature.inputs:
                    want = signature.inputs[name].dtype
                    if proto.dtype != want:
                        raise _invalid(
                            f"input '{name}' has dtype "
                            f"{types_pb2.DataType.Name(proto.dtype)}; the "
                            "signature takes "
                            f"{types_pb2.DataType.Name(want)}"
                        )
                inputs[name] = tf.make_ndarray(proto)
            outputs = self.server.predict(model, spec.signature_name, inputs)
        except RequestError as err:
            context.abort(err.code, str(err))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = spec.name
        response.model_spec.signature_name = (
            spec.signature_name or "serving_default"
        )
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, server: FakeModelServer) -> None:
        self.server = server

    def GetModelStatus(self, request, context):  # noqa: N802
        self.server._grpc_peer(context)
        spec = request.model_spec
        version = spec.version.value if spec.HasField("version") else None
        try:
            versions = self.server.status(spec.name, version)
        except RequestError as err:
            context.abort(err.code, str(err))
        response = get_model_status_pb2.GetModelStatusResponse()
        for v in versions:
            status = response.model_version_status.add()
            status.version = v
            status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.serving.fake_model_server NAME BASE_PATH`: serves
    in this process, prints `{"rest_port": ..., "grpc_port": ...}` on one
    line, answers each `connections` line of stdin with `connections()`
    as JSON, and stops at the end of stdin (for benchmarks, so that the
    clients do not share the server's interpreter)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("model_name")
    parser.add_argument("base_path")
    args = parser.parse_args(argv)
    with FakeModelServer(args.model_name, args.base_path) as server:
        print(
            json.dumps(
                {"rest_port": server.rest_port, "grpc_port": server.grpc_port}
            ),
            flush=True,
        )
        for line in sys.stdin:
            if line.strip() == "connections":
                print(json.dumps(server.connections()), flush=True)


if __name__ == "__main__":
    main()
