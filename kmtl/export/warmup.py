"""TF Serving warmup requests: `assets.extra/tf_serving_warmup_requests`.

When TF Serving loads a version it first replays the `PredictionLog`
records of this TFRecord file through it, so that the first real requests
do not pay for graph initialisation and memory allocation. `kmtl.export`
writes a few `PredictRequest`s per signature, built from real rows.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

import numpy as np

WARMUP_FILE = "tf_serving_warmup_requests"
"""The file name TF Serving looks for under `assets.extra/`."""

ASSETS_EXTRA = "assets.extra"
"""The SavedModel directory for files TF Serving reads beside the graph."""

WARMUP_BATCH_SIZES = (1, 8)
"""Batch sizes of the warmup requests of each signature."""


def predict_request(
    model_name: str,
    signature_name: str,
    inputs: Mapping[str, Any],
    *,
    input_signature: Mapping[str, Any] | None = None,
) -> Any:
    """Builds a `tensorflow.serving.PredictRequest`.

    Args:
        model_name: str. The model name TF Serving serves it under.
        signature_name: str. The signature to run.
        inputs: dict input name -> array (strings as object or bytes
            arrays).
        input_signature: dict name -> `tf.TensorSpec`, or None. The
            signature's inputs (`signature_inputs(export_dir, name)`): the
            arrays are checked and converted with `check_inputs` first, so
            that a wrong dtype or shape raises a `ValueError` naming the
            feature rather than a refusal from TF Serving naming an input
            by position. Defaults to `None`: sent as given.

    Returns:
        A `predict_pb2.PredictRequest`.

    Raises:
        ValueError: with `input_signature`, as `check_inputs` raises.

    Example:

    ```python
    request = predict_request(
        "mmoe", "serving_default", {"price": np.array([1.0], "float32")}
    )
    ```
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    if input_signature is not None:
        from kmtl.export.checks import check_inputs

        inputs = check_inputs(inputs, input_signature, what="inputs")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for name, value in inputs.items():
        array = np.asarray(value)
        if array.dtype.kind in "OU":
            array = np.vectorize(_as_bytes, otypes=[object])(array)
        request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
    return request


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def warmup_requests(
    model_name: str,
    requests: Mapping[str, Mapping[str, Any]],
    batch_sizes: Iterable[int] = WARMUP_BATCH_SIZES,
) -> list[Any]:
    """Builds the warmup `PredictionLog`s of several signatures.

    Args:
        model_name: str. The model name.
        requests: dict signature name -> its inputs for a batch of rows
            (dict name -> array `[rows, ...]`).
        batch_sizes: ints. One request per size per signature, on the first
            rows (sizes above the number of rows are capped to it, repeats
            dropped). Defaults to `(1, 8)`.

    Returns:
        A list of `prediction_log_pb2.PredictionLog`.

    Example:

    ```python
    logs = warmup_requests(
        "mmoe", {"serving_default": batch}, batch_sizes=(1, 4)
    )
    ```
    """
    from tensorflow_serving.apis import prediction_log_pb2

    logs = []
    for signature_name, inputs in requests.items():
        rows = min(len(np.asarray(v)) for v in inputs.values())
        sizes = sorted({min(size, rows) for size in batch_sizes})
        for size in sizes:
            request = predict_request(
                model_name,
                signature_name,
                {k: np.asarray(v)[:size] for k, v in inputs.items()},
            )
            logs.append(
                prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)
                )
            )
    return logs


def write_warmup(export_dir: str | os.PathLike, logs: Iterable[Any]) -> None:
    """Writes `PredictionLog`s as the warmup file of a SavedModel.

    Args:
        export_dir: str or path. The SavedModel directory.
        logs: `PredictionLog` protos.
    """
    import tensorflow as tf

    directory = pathlib.Path(export_dir) / ASSETS_EXTRA
    directory.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(directory / WARMUP_FILE)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())


def read_warmup(export_dir: str | os.PathLike) -> list[Any]:
    """Reads the warmup `PredictionLog`s of a SavedModel.

    Args:
        export_dir: str or path. The SavedModel (version) directory.

    Returns:
        The list of `prediction_log_pb2.PredictionLog`, in file order.

    Example:

    ```python
    for log in read_warmup("saved_models/mmoe/1"):
        request = log.predict_log.request
        print(request.model_spec.signature_name, list(request.inputs))
    ```
    """
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = pathlib.Path(export_dir) / ASSETS_EXTRA / WARMUP_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No warmup requests at {path}.")
    logs = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        logs.append(prediction_log_pb2.PredictionLog.FromString(record))
    return logs
