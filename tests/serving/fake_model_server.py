"""A TEST DOUBLE of `tensorflow_model_server`, for CI machines that cannot
install the real binary.

`FakeModelServer` serves the integer versions under one base path on
loopback ports: TF Serving's REST API (`GET /v1/models/<name>[/versions/
<v>]`, `POST .../<name>[/versions/<v>]:predict` with `inputs` or
`instances`, `{"error": ...}` with HTTP 400/404) and its gRPC API
(`PredictionService.Predict`, `ModelService.GetModelStatus`). Each version
runs through TF's session loader with its SignatureDefs, as TF Serving
runs it. Like the real server, it checks each request against the
SignatureDef (missing or extra inputs, dtypes, shapes) and answers
`INVALID_ARGUMENT` naming the input; errors raised by the graph (the
scenario range check) come back as they are. It is not a server to deploy:
no batching, no version policy, no model reloading.
"""

from __future__ import annotations

import base64
import json
import pathlib
import re
import threading
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

from kmtl.export import list_versions
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


class FakeModelServer:
    """Serves `base_path`'s versions as model `model_name` (a test double).

    Args:
        model_name: str. The served model name.
        base_path: path. The directory of integer versions.

    Example:

    ```python
    with FakeModelServer("tiny", base) as server:
        Client(f"localhost:{server.rest_port}", "tiny").predict(df)
    ```
    """

    def __init__(self, model_name: str, base_path: str | pathlib.Path):
        self.model_name = model_name
        self.models = {
            v: SessionModel(pathlib.Path(base_path) / str(v))
            for v in list_versions(base_path)
        }
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.rest_port = self._http.server_address[1]
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
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


def _handler(server: FakeModelServer) -> type:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            self._answer(self._get)

        def do_POST(self) -> None:  # noqa: N802
            self._answer(self._post)

        def _answer(self, handle) -> None:
            try:
                status, body = 200, handle()
            except RequestError as err:
                status, body = err.http, {"error": str(err)}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

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
            length = int(self.headers.get("Content-Length", 0))
            try:
                body = json.loads(self.rfile.read(length))
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
                columns = body["inputs"]
            else:
                rows = body["instances"]
                if not all(isinstance(row, dict) for row in rows):
                    raise _invalid("instances must be a list of objects")
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
