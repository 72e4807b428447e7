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

Missing values (NaN, `None`, `pd.NA`; a pandas 3 string column holds NaN
floats) are sent the same way over REST and gRPC, as the training data
maps them (`kmtl.data.features_from_dataframe`): a missing string becomes
`""` and a missing integer id `-1`, which the served graph sends to the
out-of-vocabulary bucket; a missing float stays NaN, which the graph fills.
gRPC carries NaN in the tensor proto. JSON has no NaN, but TF Serving's
REST API parses its body with RapidJSON's `kParseNanAndInfFlag`
(`tensorflow_serving/util/json_tensor.cc`), so the client writes the
literals `NaN` / `Infinity` / `-Infinity` (Python's `json` does, and reads
them back in answers); `null` is refused by TF Serving for a float tensor
and is never sent. Without a spec, an object column is sent as strings,
integers or floats after what its present values are (an object column
with no value at all as strings); nullable pandas dtypes (`Int64`,
`Float64`, `boolean`, `string`) by their dtype. With a spec, each column
is converted to its input's dtype.

REST requests reuse persistent HTTP/1.1 connections (`ConnectionPool`: at
most one per thread using the client at once); a connection the server
closed while idle is replaced transparently, once. gRPC calls share one
channel. `close()` (or `with Client(...) as client:`) releases them.

Every failure of the server or of the way to it raises `ServingError`,
whose message names the model, the signature and what happened: a request
the server refuses (HTTP status with `{"error": ...}`, or a gRPC status)
carries the server's own message and code (TF Serving's names the input
for a missing or unknown one; for a wrongly typed JSON value it names the
value only, and a client with `spec=` refuses that before sending, naming
the feature); a connection refused, reset or
dropped is `UNAVAILABLE`; an answer that is not what TF Serving sends
(malformed JSON, no `outputs`, not HTTP) is `INTERNAL`; a request that
outlives `timeout` raises `ServingTimeout` (`DEADLINE_EXCEEDED`).
"""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from kmtl.data.pandas import MISSING_ID
from kmtl.data.pandas import MISSING_STRING
from kmtl.data.pandas import check_features
from kmtl.export.examples import EXAMPLES_KEY
from kmtl.export.examples import serialize_examples
from kmtl.export.signatures import SCENARIO_PREFIX
from kmtl.export.signatures import SIGNATURE_KEY
from kmtl.features.inputs import input_dtype
from kmtl.features.spec import FeatureSpec
from kmtl.serving.connections import ConnectionPool

PROTOCOLS = ("rest", "grpc")
REST_FORMATS = ("inputs", "instances")


class ServingError(RuntimeError):
    """TF Serving refused or failed a request, or could not be reached.

    `str(error)` reads `TF Serving error <code> (model 'm', signature 's',
    at <address>): <message>`.

    Args:
        message: str. What happened.
        code: str. See `code` below.
        model_name: str or None. The model called. Defaults to `None`.
        signature_name: str or None. The signature called (`None` for a
            status request). Defaults to `None`.
        address: str or None. The server's address. Defaults to `None`.

    Attributes:
        message: str. The server's own message for a request it refused;
            otherwise what the client saw (connection refused, reset or
            dropped, malformed answer).
        code: str. The HTTP status (`"400"`) or gRPC status name
            (`"INVALID_ARGUMENT"`) the server answered; `"UNAVAILABLE"`
            when it cannot be reached or drops the connection,
            `"DEADLINE_EXCEEDED"` for a timeout, `"INTERNAL"` for an
            answer that is not what TF Serving sends.
        model_name, signature_name, address: as given.
    """

    def __init__(
        self,
        message: str,
        code: str,
        *,
        model_name: str | None = None,
        signature_name: str | None = None,
        address: str | None = None,
    ) -> None:
        where = []
        if model_name is not None:
            where.append(f"model {model_name!r}")
        if signature_name:
            where.append(f"signature {signature_name!r}")
        if address:
            where.append(f"at {address}")
        context = f" ({', '.join(where)})" if where else ""
        super().__init__(f"TF Serving error {code}{context}: {message}")
        self.message = message
        self.code = code
        self.model_name = model_name
        self.signature_name = signature_name
        self.address = address


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
        timeout: float. Seconds per request (REST: for the connect and
            for each read of the answer). Defaults to 10.

    A client is safe to share between threads; it holds at most one REST
    connection per thread calling it at once (one gRPC channel in all).
    Proxy variables (`http_proxy`) are not used: TF Serving is reached
    directly.

    Example:

    ```python
    spec = load_spec("saved_models/mmoe/3")
    client = kmtl.serving.Client("localhost:8501", "mmoe", spec=spec)
    client.wait_until_available()
    client.predict(df)  # DataFrame with columns ctr, cvr
    client.predict(df, signature_name="scenario_home", format="instances")
    grpc = kmtl.serving.Client("localhost:8500", "mmoe", protocol="grpc")
    with kmtl.serving.Client("localhost:8501", "mmoe") as client:
        client.predict(df)  # connections closed at the end of the block
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
            self._pool = ConnectionPool(self.address, timeout)
        else:
            import grpc
            from tensorflow_serving.apis import model_service_pb2_grpc as ms
            from tensorflow_serving.apis import (
                prediction_service_pb2_grpc as ps,
            )

            self.address = address
            self._channel = grpc.insecure_channel(address)
            self._predict_stub = ps.PredictionServiceStub(self._channel)
            self._status_stub = ms.ModelServiceStub(self._channel)

    def close(self) -> None:
        """Closes the client's connections (REST) or channel (gRPC); a
        call afterwards raises `ServingError`."""
        if self.protocol == "rest":
            self._pool.close()
        else:
            self._channel.close()

    @property
    def connections_opened(self) -> int | None:
        """TCP connections this REST client has opened so far (one per
        thread that used it at once, plus one per reconnect; one per
        request would mean no reuse); `None` for gRPC, whose channel
        manages its own."""
        return self._pool.opened if self.protocol == "rest" else None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
                spec), a column cannot be sent (mixed types), or `format`
                is unknown; nothing is sent.
            ServingError: the server refused the request (its message),
                could not be reached, dropped the connection, or answered
                something that is not a TF Serving answer.
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
            try:
                return {
                    int(v["version"]): v["state"]
                    for v in body["model_version_status"]
                }
            except (KeyError, TypeError, ValueError):
                raise self._error(
                    "HTTP 200 without a valid `model_version_status`: "
                    f"{json.dumps(body)[:200]}",
                    "INTERNAL",
                ) from None
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._model_spec(request.model_spec)
        response = self._grpc_call(self._status_stub.GetModelStatus, request)
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
            f"not AVAILABLE after {timeout} s ({last})",
            "DEADLINE_EXCEEDED",
            model_name=self.model_name,
            address=self.address,
        )

    # --- conversion -------------------------------------------------------

    def _inputs(self, data: Any, signature_name: str) -> dict[str, Any]:
        """The signature's input arrays for the rows of `data`."""
        names = _column_names(data)
        if self.spec is not None:  # labels and other extra columns stay out
            names = [n for n in names if n in self.spec.serving_input_names]
            columns = {
                n: _spec_column(data[n], input_dtype(self.spec, n))
                for n in names
            }
        else:
            columns = {name: data[name] for name in names}
        scenario = self.spec.scenario if self.spec is not None else None
        fixed = None
        if scenario is not None and signature_name.startswith(SCENARIO_PREFIX):
            fixed = scenario.name
            rows = len(next(iter(columns.values())))
            columns[fixed] = np.zeros(rows, "int64")  # dropped below
        if self.spec is not None:
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

    def _error(
        self, message: str, code: str, signature_name: str | None = None
    ) -> ServingError:
        kind = ServingTimeout if code == "DEADLINE_EXCEEDED" else ServingError
        return kind(
            message,
            code,
            model_name=self.model_name,
            signature_name=signature_name,
            address=self.address,
        )

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
        answer = self._rest("POST", path + ":predict", body, signature_name)
        key = "outputs" if format == "inputs" else "predictions"
        if key not in answer:
            raise self._error(
                f"HTTP 200 without {key!r}: {json.dumps(answer)[:200]}",
                "INTERNAL",
                signature_name,
            )
        try:
            return _rest_outputs(answer[key], format)
        except (KeyError, TypeError, AttributeError, IndexError) as err:
            raise self._error(
                f"HTTP 200 with malformed {key!r} ({err!r}): "
                f"{json.dumps(answer[key])[:200]}",
                "INTERNAL",
                signature_name,
            ) from None

    def _rest(
        self,
        method: str,
        path: str,
        body: Mapping | None = None,
        signature_name: str | None = None,
    ) -> dict[str, Any]:
        """One REST call; its JSON answer, or a `ServingError`."""
        # allow_nan: NaN / Infinity literals, which TF Serving parses.
        data = None if body is None else json.dumps(body).encode()

        def fail(message: str, code: str = "UNAVAILABLE") -> ServingError:
            return self._error(message, code, signature_name)

        try:
            status, payload = self._pool.request(
                method, path, data, {"Content-Type": "application/json"}
            )
        except TimeoutError:
            raise fail(
                f"no answer within {self.timeout} s", "DEADLINE_EXCEEDED"
            ) from None
        except ConnectionRefusedError:
            raise fail(
                f"cannot reach {self.address}: connection refused"
            ) from None
        except http.client.RemoteDisconnected:
            raise fail(
                "the server closed the connection without answering"
            ) from None
        except ConnectionAbortedError as err:
            raise fail(f"connection aborted: {err}") from None
        except ConnectionError as err:
            raise fail(f"connection reset by the server: {err}") from None
        except http.client.IncompleteRead as err:
            raise fail(
                f"the answer was cut off after {len(err.partial)} bytes "
                "(connection dropped)"
            ) from None
        except http.client.HTTPException as err:
            raise fail(f"the answer is not HTTP: {err!r}", "INTERNAL") from None
        except OSError as err:
            raise fail(f"cannot reach {self.address}: {err}") from None
        text = payload.decode("utf-8", errors="replace")
        if status != 200:
            try:
                message = json.loads(text)["error"]
                if not isinstance(message, str):
                    raise TypeError(message)
            except (ValueError, KeyError, TypeError):
                reason = http.client.responses.get(status, "")
                message = f"HTTP {status} {reason}: {text.strip()[:300]}"
            raise fail(message, str(status))
        try:
            answer = json.loads(text)
        except ValueError as err:
            raise fail(
                f"HTTP 200 with malformed JSON ({err}): {text[:200]!r}",
                "INTERNAL",
            ) from None
        if not isinstance(answer, dict):
            raise fail(
                f"HTTP 200 with JSON that is not an object: {text[:200]!r}",
                "INTERNAL",
            )
        return answer

    # --- gRPC -------------------------------------------------------------

    def _grpc_predict(
        self, inputs: dict[str, Any], signature_name: str
    ) -> dict[str, Any]:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._model_spec(request.model_spec, signature_name)
        for name, value in inputs.items():
            try:
                proto = tf.make_tensor_proto(value)
            except (TypeError, ValueError) as err:
                raise ValueError(
                    f"Feature {name!r} cannot be sent as a tensor: {err}"
                ) from None
            request.inputs[name].CopyFrom(proto)
        response = self._grpc_call(
            self._predict_stub.Predict, request, signature_name
        )
        if not response.outputs:
            raise self._error(
                "PredictResponse without outputs", "INTERNAL", signature_name
            )
        try:
            return {
                name: tf.make_ndarray(proto)
                for name, proto in response.outputs.items()
            }
        except (TypeError, ValueError) as err:
            raise self._error(
                f"PredictResponse with a malformed tensor: {err}",
                "INTERNAL",
                signature_name,
            ) from None

    def _grpc_call(
        self, method: Any, request: Any, signature_name: str | None = None
    ) -> Any:
        import grpc

        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else None
            name = code.name if code is not None else "UNKNOWN"
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise self._error(
                    f"no answer within {self.timeout} s",
                    name,
                    signature_name,
                ) from None
            details = err.details() if hasattr(err, "details") else None
            raise self._error(
                details or str(err) or name, name, signature_name
            ) from None
        except ValueError as err:  # "Cannot invoke RPC on closed channel!"
            raise self._error(
                f"the client is closed: {err}", "CANCELLED", signature_name
            ) from None


def _rest_outputs(value: Any, format: str) -> dict[str, Any]:
    """The answer's `outputs` (columnar) or `predictions` (rows) as a dict
    output name -> nested lists."""
    if format == "inputs":
        return value if isinstance(value, dict) else {"output": value}
    if not isinstance(value, list):
        raise TypeError(f"predictions must be a list, not {type(value)}")
    if value and not isinstance(value[0], dict):
        return {"output": value}
    names = value[0].keys() if value else ()
    return {n: [row[n] for row in value] for n in names}


def _column_names(data: Any) -> list[str]:
    if hasattr(data, "columns"):
        return list(data.columns)
    if isinstance(data, Mapping):
        return list(data)
    raise ValueError(
        "`data` must be a pandas DataFrame or a dict of columns. "
        f"Received: {type(data).__name__}"
    )


def _spec_column(values: Any, dtype: str) -> Any:
    """A column of a nullable pandas dtype as NumPy for `check_features`:
    its missing values as `-1` (ids) or NaN (floats); other columns as
    they are (`check_features` maps their NaN / `None`)."""
    pd_dtype = getattr(values, "dtype", None)
    if pd_dtype is None or isinstance(pd_dtype, np.dtype):
        return values
    import pandas as pd

    if pd.api.types.is_bool_dtype(pd_dtype) or pd.api.types.is_integer_dtype(
        pd_dtype
    ):
        if dtype == "float32":
            return values.to_numpy("float64", na_value=np.nan)
        return values.to_numpy("int64", na_value=MISSING_ID)
    if pd.api.types.is_float_dtype(pd_dtype):
        return values.to_numpy("float64", na_value=np.nan)
    return values.to_numpy(object)


def _plain_array(name: str, values: Any) -> np.ndarray:
    """A column without a spec: int64, float32, strings (object) or a
    stacked array, missing values as `""` (strings), `-1` (integers) or
    NaN (floats)."""
    import pandas as pd

    pd_dtype = getattr(values, "dtype", None)
    if pd_dtype is not None and not isinstance(pd_dtype, np.dtype):
        # pandas' own dtypes: `Int64`, `boolean`, `Float64`, `string`, `str`.
        if pd.api.types.is_bool_dtype(
            pd_dtype
        ) or pd.api.types.is_integer_dtype(pd_dtype):
            return values.to_numpy("int64", na_value=MISSING_ID)
        if pd.api.types.is_float_dtype(pd_dtype):
            return values.to_numpy("float32", na_value=np.nan)
        if pd.api.types.is_string_dtype(pd_dtype):
            return _fill_strings(values.to_numpy(object))
    array = np.asarray(values)
    if array.dtype == object and len(array):
        rows = [v for v in array if isinstance(v, (list, tuple, np.ndarray))]
        if rows:
            if len(rows) < len(array):
                raise ValueError(
                    f"Column {name!r} mixes lists and missing values; "
                    "without a spec the client cannot pad a missing list. "
                    "Pass `spec=` (sequences are padded) or fill the rows."
                )
            array = np.stack([np.asarray(v) for v in array])
    kind = array.dtype.kind
    if kind in "iub":
        return array.astype("int64")
    if kind == "f":
        return array.astype("float32")
    if kind in "SU":
        return array.astype(object)
    if kind == "O":
        return _object_column(name, array)
    raise ValueError(
        f"Column {name!r} has dtype {array.dtype}; TF Serving takes ints, "
        "floats and strings."
    )


def _object_column(name: str, array: np.ndarray) -> np.ndarray:
    """An object column by what its present values are."""
    import pandas as pd

    missing = pd.isna(array)
    present = array[~missing]
    if all(isinstance(v, (str, bytes)) for v in present):  # or none present
        return _fill_strings(array, missing)
    if all(isinstance(v, (bool, int, np.integer, np.bool_)) for v in present):
        out = np.full(array.shape, MISSING_ID, "int64")
        out[~missing] = present.astype("int64")
        return out
    if all(isinstance(v, (int, float, np.number)) for v in present):
        out = np.full(array.shape, np.nan, "float32")
        out[~missing] = present.astype("float32")
        return out
    kinds = sorted({type(v).__name__ for v in present})
    raise ValueError(
        f"Column {name!r} mixes value types {kinds}; TF Serving takes one "
        "dtype per input. Convert the column, or pass `spec=`."
    )


def _fill_strings(
    array: np.ndarray, missing: np.ndarray | None = None
) -> np.ndarray:
    """An object array of strings, missing values as `""` (OOV)."""
    import pandas as pd

    array = array.astype(object)  # a copy
    missing = pd.isna(array) if missing is None else missing
    array[missing] = MISSING_STRING
    return array


def _to_json(array: np.ndarray) -> list:
    """Nested lists for JSON; bytes become `{"b64": ...}` as TF Serving
    expects for binary strings."""
    if array.dtype.kind not in "OSU":
        return array.tolist()

    def encode(value: Any) -> Any:
        if isinstance(value, bytes):
            return {"b64": base64.b64encode(value).decode()}
        if isinstance(value, str):
            return value
        raise ValueError(f"not a string: {value!r}")

    return np.vectorize(encode, otypes=[object])(array).tolist()
