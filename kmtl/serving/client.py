"""A TF Serving client: DataFrame in, DataFrame of predictions out.

`Client` speaks TF Serving's REST API (`POST /v1/models/<name>:predict`,
columnar `inputs` or row `instances`; `GET /v1/models/<name>` for status)
with the standard library, and its gRPC API (`PredictionService.Predict`,
`ModelService.GetModelStatus`) with tensorflow-serving-api's stubs.

With the model's `FeatureSpec` (`load_spec(version_dir)`), the
columns are checked and converted like training data
(`kmtl.data.check_features`: a missing column or a wrong dtype raises a
`ValueError` naming the feature before anything is sent); the `examples`
signature gets one serialized `tf.Example` per row, and a `scenario_<value>`
signature gets no scenario column. Without a spec, integer columns are sent
as int64, floats as float32, strings as strings, list columns stacked.

Errors of the server (HTTP status with `{"error": ...}`, or a gRPC status)
raise `ServingError` carrying the server's message and code; a request that
outlives `timeout` raises `ServingTimeout`.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import numpy as np

from kmtl.export.examples import EXAMPLES_KEY
from kmtl.export.examples import serialize_examples
from kmtl.export.signatures import SCENARIO_PREFIX
from kmtl.export.signatures import SIGNATURE_KEY
from kmtl.features.spec import FeatureSpec

PROTOCOLS = ("rest", "grpc")
REST_FORMATS = ("inputs", "instances")


class ServingError(RuntimeError):
    """TF Serving refused or failed a request.

    Attributes:
        message: str. The server's own message.
        code: str. The HTTP status (`"400"`) or gRPC status name
            (`"INVALID_ARGUMENT"`); `"UNAVAILABLE"` when the server cannot
            be reached.
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(f"TF Serving error {code}: {message}")
        self.message = message
        self.code = code


class ServingTimeout(ServingError):
    """A request to TF Serving took longer than the client's timeout."""


class Client:
    """Calls a model served by TF Serving over REST or gRPC.

    Args:
        address: str. `host:port` of the server's REST port (8501; an
            `http://` prefix is allowed) or gRPC port (8500).
        model_name: str. The model name in the server's config.
        protocol: str. `"rest"` or `"grpc"`. Defaults to `"rest"`.
        spec: FeatureSpec or None. The model's spec, used to check and
            convert columns. Defaults to `None`.
        version: int or None. A fixed version to call. Defaults to `None`
            (the server's latest).
        timeout: float. Seconds per request. Defaults to 10.

    Example:

    ```python
    spec = load_spec("saved_models/mmoe/3")
    client = kmtl.serving.Client("localhost:8501", "mmoe", spec=spec)
    client.wait_until_available()
    client.predict(df)  # DataFrame with columns ctr, cvr
    client.predict(df, signature_name="scenario_home", format="instances")
    grpc = kmtl.serving.Client("localhost:8500", "mmoe", protocol="grpc")
    ```
    """

    def __init__(
        self,
        address: str,
        model_name: str,
        *,
        protocol: str = "rest",
        spec: FeatureSpec | None = None,
        version: int | None = None,
        timeout: float = 10.0,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(
                f"`protocol` must be one of {PROTOCOLS}. "
                f"Received: protocol={protocol!r}"
            )
        if spec is not None and not isinstance(spec, FeatureSpec):
            raise ValueError(
                f"`spec` must be a FeatureSpec or None. Received: {spec!r}"
            )
        if not timeout or timeout <= 0:
            raise ValueError(
                f"`timeout` must be positive. Received: timeout={timeout!r}"
            )
        self.protocol = protocol
        self.model_name = model_name
        self.spec = spec
        self.version = version
        self.timeout = timeout
        if protocol == "rest":
            prefix = "" if address.startswith("http") else "http://"
            self.address = prefix + address.rstrip("/")
        else:
            import grpc

            self.address = address
            self._channel = grpc.insecure_channel(address)

    # --- public API -------------------------------------------------------

    def predict(
        self,
        data: Any,
        signature_name: str = SIGNATURE_KEY,
        *,
        format: str = "inputs",
    ) -> Any:
        """Predicts every row of a DataFrame (or dict of columns).

        Args:
            data: pandas.DataFrame or dict name -> array. The raw features
                the signature takes (the `examples` signature takes the
                same columns; they are serialized here).
            signature_name: str. Defaults to `"serving_default"`.
            format: str. REST body: `"inputs"` (columnar) or `"instances"`
                (one object per row). Ignored by gRPC. Defaults to
                `"inputs"`.

        Returns:
            pandas.DataFrame with one column per output (task), on the
            index of `data`: floats for `[batch, 1]` outputs, arrays for
            wider ones.

        Raises:
            ValueError: a column is missing or of the wrong dtype (with a
                spec), or `format` is unknown.
            ServingError: the server answered with an error.
            ServingTimeout: no answer within `timeout`.
        """
        import pandas as pd

        if format not in REST_FORMATS:
            raise ValueError(
                f"`format` must be one of {REST_FORMATS}. "
                f"Received: format={format!r}"
            )
        inputs = self._inputs(data, signature_name)
        if self.protocol == "rest":
            outputs = self._rest_predict(inputs, signature_name, format)
        else:
            outputs = self._grpc_predict(inputs, signature_name)
        index = data.index if hasattr(data, "index") else None
        columns = {}
        for name, value in outputs.items():
            value = np.asarray(value)
            if value.ndim == 2 and value.shape[1] == 1:
                columns[name] = value[:, 0]
            elif value.ndim == 1:
                columns[name] = value
            else:
                columns[name] = list(value)
        return pd.DataFrame(columns, index=index)

    def status(self) -> dict[int, str]:
        """Returns the state of each loaded version, e.g. `{3: "AVAILABLE"}`.

        Raises:
            ServingError: the server does not know the model, or cannot
                be reached.
        """
        if self.protocol == "rest":
            path = f"/v1/models/{self.model_name}"
            if self.version is not None:
                path += f"/versions/{self.version}"
            body = self._rest("GET", path)
            return {
                int(v["version"]): v["state"]
                for v in body.get("model_version_status", [])
            }
        from tensorflow_serving.apis import get_model_status_pb2
        from tensorflow_serving.apis import model_service_pb2_grpc

        request = get_model_status_pb2.GetModelStatusRequest()
        self._model_spec(request.model_spec)
        stub = model_service_pb2_grpc.ModelServiceStub(self._channel)
        response = self._grpc_call(stub.GetModelStatus, request)
        return {
            int(v.version): get_model_status_pb2.ModelVersionStatus.State.Name(
                v.state
            )
            for v in response.model_version_status
        }

    def wait_until_available(self, timeout: float = 60.0) -> int:
        """Polls `status()` until a version is AVAILABLE.

        Args:
            timeout: float. Seconds to wait. Defaults to 60.

        Returns:
            The newest available version.

        Raises:
            ServingTimeout: none became available in time (the message
                holds the last error or states).
        """
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                states = self.status()
                available = [v for v, s in states.items() if s == "AVAILABLE"]
                if available:
                    return max(available)
                last = f"versions {states}"
            except ServingError as err:
                last = str(err)
            time.sleep(0.2)
        raise ServingTimeout(
            f"model {self.model_name!r} not AVAILABLE after {timeout} s "
            f"({last})",
            "DEADLINE_EXCEEDED",
        )

    # --- conversion -------------------------------------------------------

    def _inputs(self, data: Any, signature_name: str) -> dict[str, Any]:
        """The signature's input arrays for the rows of `data`."""
        names = _column_names(data)
        if self.spec is not None:  # labels and other extra columns stay out
            names = [n for n in names if n in self.spec.input_names]
        columns = {name: data[name] for name in names}
        scenario = self.spec.scenario if self.spec is not None else None
        fixed = None
        if scenario is not None and signature_name.startswith(SCENARIO_PREFIX):
            fixed = scenario.name
            rows = len(next(iter(columns.values())))
            columns[fixed] = np.zeros(rows, "int64")  # dropped below
        if self.spec is not None:
            from kmtl.data.pandas import check_features

            arrays = check_features(columns, self.spec)
        else:
            arrays = {n: _plain_array(n, v) for n, v in columns.items()}
        if signature_name == EXAMPLES_KEY:
            protos = serialize_examples(arrays, self.spec)
            return {EXAMPLES_KEY: np.asarray(protos, dtype=object)}
        if fixed is not None:
            del arrays[fixed]
        return arrays

    def _model_spec(self, model_spec: Any, signature_name: str = "") -> None:
        model_spec.name = self.model_name
        if signature_name:
            model_spec.signature_name = signature_name
        if self.version is not None:
            model_spec.version.value = self.version

    # --- REST -------------------------------------------------------------

    def _rest_predict(
        self, inputs: dict[str, Any], signature_name: str, format: str
    ) -> dict[str, Any]:
        path = f"/v1/models/{self.model_name}"
        if self.version is not None:
            path += f"/versions/{self.version}"
        lists = {name: _to_json(value) for name, value in inputs.items()}
        body: dict[str, Any] = {"signature_name": signature_name}
        if format == "inputs":
            body["inputs"] = lists
        else:
            rows = len(next(iter(lists.values())))
            body["instances"] = [
                {name: value[i] for name, value in lists.items()}
                for i in range(rows)
            ]
        answer = self._rest("POST", path + ":predict", body)
        if format == "inputs":
            outputs = answer["outputs"]
            return outputs if isinstance(outputs, dict) else {"output": outputs}
        predictions = answer["predictions"]
        if predictions and not isinstance(predictions[0], dict):
            return {"output": predictions}
        names = predictions[0].keys() if predictions else ()
        return {n: [row[n] for row in predictions] for n in names}

    def _rest(
        self, method: str, path: str, body: Mapping | None = None
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.address + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as err:
            text = err.read().decode(errors="replace")
            try:
                message = json.loads(text)["error"]
            except (ValueError, KeyError, TypeError):
                message = text or err.reason
            raise ServingError(message, str(err.code)) from None
        except TimeoutError as err:
            raise ServingTimeout(
                f"no answer from {self.address} within {self.timeout} s",
                "DEADLINE_EXCEEDED",
            ) from err
        except urllib.error.URLError as err:
            if isinstance(err.reason, TimeoutError):
                raise ServingTimeout(
                    f"no answer from {self.address} within {self.timeout} s",
                    "DEADLINE_EXCEEDED",
                ) from err
            raise ServingError(
                f"cannot reach {self.address}: {err.reason}", "UNAVAILABLE"
            ) from err

    # --- gRPC -------------------------------------------------------------

    def _grpc_predict(
        self, inputs: dict[str, Any], signature_name: str
    ) -> dict[str, Any]:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        request = predict_pb2.PredictRequest()
        self._model_spec(request.model_spec, signature_name)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        response = self._grpc_call(stub.Predict, request)
        return {
            name: tf.make_ndarray(proto)
            for name, proto in response.outputs.items()
        }

    def _grpc_call(self, method: Any, request: Any) -> Any:
        import grpc

        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as err:
            code = err.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise ServingTimeout(
                    f"no answer from {self.address} within {self.timeout} s",
                    code.name,
                ) from None
            raise ServingError(err.details() or "", code.name) from None


def _column_names(data: Any) -> list[str]:
    if hasattr(data, "columns"):
        return list(data.columns)
    if isinstance(data, Mapping):
        return list(data)
    raise ValueError(
        "`data` must be a pandas DataFrame or a dict of columns. "
        f"Received: {type(data).__name__}"
    )


def _plain_array(name: str, values: Any) -> np.ndarray:
    """A column as int64, float32, strings (object) or a stacked array."""
    array = np.asarray(values)
    if array.dtype == object and len(array):
        if isinstance(array.flat[0], (list, tuple, np.ndarray)):
            array = np.stack([np.asarray(v) for v in array])
    kind = array.dtype.kind
    if kind in "iub":
        return array.astype("int64")
    if kind == "f":
        return array.astype("float32")
    if kind in "OSU":
        return array.astype(object)
    raise ValueError(
        f"Column {name!r} has dtype {array.dtype}; TF Serving takes ints, "
        "floats and strings."
    )


def _to_json(array: np.ndarray) -> list:
    """Nested lists for JSON; bytes become `{"b64": ...}` as TF Serving
    expects for binary strings."""
    if array.dtype.kind not in "OSU":
        return array.tolist()

    def encode(value: Any) -> Any:
        if isinstance(value, bytes):
            return {"b64": base64.b64encode(value).decode()}
        return str(value)

    return np.vectorize(encode, otypes=[object])(array).tolist()
