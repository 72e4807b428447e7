"""SavedModel export for TF Serving, with atomic integer versions.

TF Serving watches a base path and loads its integer-named subdirectories
(`base_path/1`, `base_path/2`, ...), the largest one by default. A version
that appears half written would be loaded half written, so `export` writes
into a hidden temporary directory beside the target (a name that is not an
integer, which TF Serving never loads), reloads it, checks that the reloaded
`serving_default` signature gives the model's own predictions, and only then
renames it to the next integer version. `os.rename` within one directory is
atomic on a local filesystem: TF Serving sees either no new version or a
complete, checked one.

TensorFlow is imported inside the functions, so `import kmtl` keeps working
on a machine that has Keras and JAX but no TensorFlow; calling `export`
needs TensorFlow.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

import keras
import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

SIGNATURE_KEY = "serving_default"
"""The signature TF Serving runs when a request names none."""

_VERSION_NAME = re.compile(r"[0-9]+")
_TMP_PREFIX = ".kmtl-export-"


class ExportVerificationError(RuntimeError):
    """The reloaded SavedModel does not serve what the model predicts.

    Raised by `export` when the written SavedModel fails its own check: an
    output differs from the model's prediction by more than `atol`, an output
    is missing or extra, or a node of the graph is pinned to an accelerator.
    The written files are removed before the error propagates.
    """


def latest_version(base_path: str | os.PathLike) -> int | None:
    """Returns the largest integer version under a model's base path.

    Only directories whose whole name is decimal digits count, as in
    TF Serving; temporary export directories, files and other names are
    ignored.

    Args:
        base_path: str or path. The model's base path, e.g.
            `saved_models/mmoe`.

    Returns:
        The largest version number, or `None` when `base_path` does not
        exist or holds no version.

    Example:

    ```python
    kmtl.export.export(model, "saved_models/mmoe")  # saved_models/mmoe/1
    kmtl.export.latest_version("saved_models/mmoe")  # 1
    kmtl.export.latest_version("saved_models/none")  # None
    ```
    """
    base = pathlib.Path(base_path)
    if not base.is_dir():
        return None
    versions = [
        int(child.name)
        for child in base.iterdir()
        if _VERSION_NAME.fullmatch(child.name) and child.is_dir()
    ]
    return max(versions, default=None)


def serving_input_signature(
    model: keras.Model,
) -> dict[str, tf.TensorSpec]:
    """Returns the `serving_default` input specs of a functional model.

    One `tf.TensorSpec` per model input, named after the feature, with a
    `None` batch dimension and the dtype and trailing shape of the
    `keras.Input`. This is the signature `export` writes; other endpoints
    (scenario signatures, `tf.Example` parsing) can reuse it.

    Args:
        model: keras.Model. A functional model whose inputs are a dict of
            `keras.Input`s, each named like its key, and whose outputs are
            a dict keyed by task name.

    Returns:
        A dict from feature name to `tf.TensorSpec`, in the model's order.

    Raises:
        ValueError: if the inputs are not such a dict, or the outputs are
            not a dict.

    Example:

    ```python
    inputs = {"user_id": keras.Input((1,), dtype="int64", name="user_id")}
    ...
    kmtl.export.serving_input_signature(model)
    # {'user_id': TensorSpec(shape=(None, 1), dtype=tf.int64,
    #                        name='user_id')}
    ```
    """
    import tensorflow as tf

    inputs, _ = _model_structure(model)
    return {
        name: tf.TensorSpec(
            shape=(None, *tensor.shape[1:]),
            dtype=tf.as_dtype(tensor.dtype),
            name=name,
        )
        for name, tensor in inputs.items()
    }


def synthetic_inputs(
    model: keras.Model, batch_size: int = 2
) -> dict[str, np.ndarray]:
    """Returns a constant batch that fits the model's input signature.

    Integers are 0, floats 0.0, booleans `False`, strings `""` (as an
    object array); a trailing dimension of unknown size becomes 1. `export`
    checks the reloaded SavedModel on this batch when it is given no
    sample.

    Args:
        model: keras.Model. A functional model with dict inputs, as for
            `export`.
        batch_size: int. The number of examples. Defaults to 2.

    Returns:
        A dict from feature name to a NumPy array of shape
        `[batch_size, ...]`.

    Example:

    ```python
    batch = kmtl.export.synthetic_inputs(model, batch_size=3)
    batch["country"]  # array([[''], [''], ['']], dtype=object)
    ```
    """
    if batch_size < 0:
        raise ValueError(
            "`batch_size` must be a non-negative integer. "
            f"Received: batch_size={batch_size}"
        )
    batch = {}
    for name, spec in serving_input_signature(model).items():
        shape = (batch_size, *(d or 1 for d in spec.shape[1:]))
        if spec.dtype.name == "string":
            batch[name] = np.full(shape, "", dtype=object)
        else:
            batch[name] = np.zeros(shape, dtype=spec.dtype.as_numpy_dtype)
    return batch


def device_pins(export_dir: str | os.PathLike) -> dict[str, str]:
    """Lists the nodes of a SavedModel that are pinned to a device.

    Reads `saved_model.pb` and returns every node, in the top-level graphs
    and in the function library, whose `device` field is set. TensorFlow
    itself pins the checkpoint save/restore functions to the CPU, and Keras
    pins string preprocessing (`StringLookup`, `Hashing`) to the CPU because
    those ops have no GPU kernel; both load on any machine. A pin to a GPU
    or TPU would stop the SavedModel from serving on a CPU-only server, and
    `export` rejects it.

    Args:
        export_dir: str or path. A SavedModel directory.

    Returns:
        A dict from `"<function>/<node>"` (or `"<graph>/<node>"` for the
        top-level graph) to the node's device string.

    Example:

    ```python
    pins = kmtl.export.device_pins("saved_models/mmoe/1")
    {tf.DeviceSpec.from_string(d).device_type for d in pins.values()}
    # {'CPU'}
    ```
    """
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    path = pathlib.Path(export_dir) / "saved_model.pb"
    proto.ParseFromString(path.read_bytes())
    pins = {}
    for meta_graph in proto.meta_graphs:
        for node in meta_graph.graph_def.node:
            if node.device:
                pins[f"<graph>/{node.name}"] = node.device
        for function in meta_graph.graph_def.library.function:
            for node in function.node_def:
                if node.device:
                    key = f"{function.signature.name}/{node.name}"
                    pins[key] = node.device
    return pins


def export(
    model: keras.Model,
    base_path: str | os.PathLike,
    *,
    sample: dict[str, np.ndarray] | None = None,
    atol: float = 1e-5,
) -> pathlib.Path:
    """Exports a model as the next checked version of a SavedModel.

    The SavedModel is written with `keras.export.ExportArchive`, which
    tracks the model (its variables and the lookup tables of
    `StringLookup`/`Hashing` layers). Its `serving_default` signature takes
    the raw features, one input per model input named after the feature,
    and returns `{task: prediction}`; no device is pinned, so the same
    SavedModel serves on CPU and GPU.

    The version is one more than the largest integer subdirectory of
    `base_path` (1 when there is none). It is written into a temporary
    directory beside it, reloaded with `tf.saved_model.load` and run on
    `sample` (or on `synthetic_inputs(model)`); the outputs must equal the
    model's own (`model(sample, training=False)`) within `atol`. Only then
    is the directory renamed to `base_path/<version>`. On any exception the
    temporary directory is removed, so no partial version is ever visible;
    existing versions are never modified. Two processes exporting to the
    same base path at once can both pick the same number; the second rename
    then fails with `FileExistsError` and leaves nothing behind.

    Args:
        model: keras.Model. A functional model whose inputs are a dict of
            `keras.Input`s, each named exactly like its key (raw dtypes:
            int ids, floats, strings), and whose outputs are a dict keyed
            by task name.
        base_path: str or path. The model's base path on the local
            filesystem, as given to TF Serving's `--model_base_path`;
            created if missing.
        sample: dict of NumPy arrays, or None. A batch of raw features,
            one array per model input with the model's trailing shape;
            numbers are cast to the input's dtype when NumPy's `same_kind`
            rule allows it, strings may be object, `str` or `bytes`
            arrays. Defaults to `None`: a batch of 2 zeros and empty
            strings.
        atol: float. The largest absolute difference allowed between the
            served and the model's predictions. Defaults to `1e-5`.

    Returns:
        The path of the new version directory, `base_path/<version>`.

    Raises:
        ValueError: if the model's inputs or outputs are not dicts as
            described, an input is named unlike its key, or `sample` lacks
            a feature, has one the model does not take, or has a value of
            the wrong dtype or shape.
        ExportVerificationError: if the reloaded SavedModel serves
            outputs that differ from the model's, or pins a node to an
            accelerator.

    Example:

    ```python
    inputs = {
        "user_id": keras.Input((1,), dtype="int64", name="user_id"),
        "price": keras.Input((3,), dtype="float32", name="price"),
    }
    x = keras.layers.Flatten()(
        keras.layers.Embedding(100, 8)(inputs["user_id"])
    )
    x = keras.layers.Concatenate()([x, inputs["price"]])
    outputs = {
        "ctr": keras.layers.Dense(1, "sigmoid", name="ctr")(x),
        "cvr": keras.layers.Dense(1, "sigmoid", name="cvr")(x),
    }
    model = keras.Model(inputs, outputs)
    path = kmtl.export.export(model, "saved_models/demo")
    # saved_models/demo/1; serve it with
    # tensorflow_model_server --model_name=demo \\
    #     --model_base_path=$PWD/saved_models/demo
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    served(user_id=tf.constant([[3]], tf.int64),
           price=tf.constant([[1.0, 2.0, 3.0]]))
    # {'ctr': <tf.Tensor shape=(1, 1)>, 'cvr': <tf.Tensor shape=(1, 1)>}
    ```
    """
    signature = serving_input_signature(model)
    _, output_names = _model_structure(model)
    if sample is None:
        sample = synthetic_inputs(model)
    features = _sample_tensors(sample, signature)
    expected = {
        name: np.asarray(value)
        for name, value in model(features, training=False).items()
    }

    base = pathlib.Path(base_path)
    base.mkdir(parents=True, exist_ok=True)
    version = (latest_version(base) or 0) + 1
    target = base / str(version)
    staging = base / f"{_TMP_PREFIX}{version}-{uuid.uuid4().hex}"
    try:
        _write(model, signature, staging)
        _check_device_pins(staging)
        _check_served(staging, features, expected, output_names, atol)
        if target.exists():
            raise FileExistsError(
                f"Version directory {target} appeared while exporting "
                "(another export to the same base path?). Nothing was "
                "written; export again to get the next version."
            )
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _model_structure(
    model: keras.Model,
) -> tuple[dict[str, Any], list[str]]:
    """Returns the model's input dict and its output names, validated."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            "`model` must be a functional `keras.Model`. "
            f"Received: model of type {type(model).__name__}"
        )
    try:
        inputs, outputs = model.input, model.output
    except (AttributeError, ValueError) as err:
        raise ValueError(
            "`model` must be a functional `keras.Model` built on "
            f"`keras.Input`s; {model.name!r} has no symbolic inputs "
            "and outputs."
        ) from err
    if not isinstance(inputs, Mapping):
        raise ValueError(
            "The model's inputs must be a dict of `keras.Input`s keyed by "
            "feature name, so that the serving signature names each input. "
            f"Received: inputs of type {type(inputs).__name__}"
        )
    for key, tensor in inputs.items():
        if not isinstance(tensor, keras.KerasTensor):
            raise ValueError(
                f"The model input {key!r} must be a single `keras.Input`. "
                f"Received: {type(tensor).__name__}"
            )
        if tensor.name != key:
            raise ValueError(
                f"The model input under key {key!r} is named "
                f"{tensor.name!r}; serving names inputs after the "
                f"`keras.Input`, so create it with `name={key!r}`."
            )
        if getattr(tensor, "sparse", False) or getattr(tensor, "ragged", False):
            raise ValueError(
                f"The model input {key!r} is sparse or ragged; the serving "
                "signature takes dense tensors only."
            )
    if not isinstance(outputs, Mapping):
        raise ValueError(
            "The model's outputs must be a dict keyed by task name, so "
            "that the serving signature names each prediction (list "
            "outputs are served as output_0, output_1, ...). "
            f"Received: outputs of type {type(outputs).__name__}"
        )
    return dict(inputs), list(outputs)


def _sample_tensors(
    sample: Mapping[str, Any], signature: dict[str, tf.TensorSpec]
) -> dict[str, tf.Tensor]:
    """Validates a sample against the signature and converts it."""
    import tensorflow as tf

    if not isinstance(sample, Mapping):
        raise ValueError(
            "`sample` must be a dict from feature name to array. "
            f"Received: sample of type {type(sample).__name__}"
        )
    missing = [name for name in signature if name not in sample]
    if missing:
        raise ValueError(
            f"`sample` is missing the feature(s) {missing} that the model "
            f"takes. Expected features: {sorted(signature)}"
        )
    unknown = [name for name in sample if name not in signature]
    if unknown:
        raise ValueError(
            f"`sample` has the feature(s) {unknown} that the model does "
            f"not take. Expected features: {sorted(signature)}"
        )
    tensors = {}
    batch_sizes = {}
    for name, spec in signature.items():
        value = np.asarray(sample[name])
        if value.ndim != spec.shape.rank or any(
            want is not None and got != want
            for got, want in zip(value.shape[1:], spec.shape[1:], strict=True)
        ):
            raise ValueError(
                f"`sample[{name!r}]` has shape {value.shape}; the model "
                f"takes {tuple(spec.shape)} (None = any size)."
            )
        is_text = value.dtype.kind in "OSU"
        if spec.dtype == tf.string:
            convertible = is_text
        else:
            target = spec.dtype.as_numpy_dtype
            convertible = not is_text and np.can_cast(
                value.dtype, target, casting="same_kind"
            )
        message = (
            f"`sample[{name!r}]` has dtype {value.dtype}, which does not "
            f"convert to the model's {spec.dtype.name}."
        )
        if not convertible:
            raise ValueError(message)
        if spec.dtype != tf.string:
            value = value.astype(target)
        try:
            tensors[name] = tf.convert_to_tensor(value, dtype=spec.dtype)
        except (TypeError, ValueError) as err:
            raise ValueError(message) from err
        batch_sizes[name] = value.shape[0]
    if len(set(batch_sizes.values())) > 1:
        raise ValueError(
            "All features of `sample` must have the same batch size. "
            f"Received: {batch_sizes}"
        )
    return tensors


def _write(
    model: keras.Model,
    signature: dict[str, tf.TensorSpec],
    directory: pathlib.Path,
) -> None:
    """Writes the SavedModel with its `serving_default` endpoint."""

    def serve(features):
        return dict(model(features, training=False))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE_KEY, serve, input_signature=[signature])
    archive.write_out(str(directory), verbose=False)


def _check_device_pins(directory: pathlib.Path) -> None:
    """Rejects nodes pinned to any device other than the CPU."""
    import tensorflow as tf

    pinned = {
        node: device
        for node, device in device_pins(directory).items()
        if tf.DeviceSpec.from_string(device).device_type not in (None, "CPU")
    }
    if pinned:
        listed = ", ".join(f"{n} on {d}" for n, d in sorted(pinned.items()))
        raise ExportVerificationError(
            "The exported graph pins nodes to an accelerator, so it would "
            f"not serve on a CPU-only server: {listed}. Remove the "
            "`tf.device` scopes from the model's layers."
        )


def _check_served(
    directory: pathlib.Path,
    features: dict[str, tf.Tensor],
    expected: dict[str, np.ndarray],
    output_names: list[str],
    atol: float,
) -> None:
    """Reloads the SavedModel and compares its outputs with `expected`."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(directory))
    served = loaded.signatures[SIGNATURE_KEY](**features)
    if set(served) != set(output_names):
        raise ExportVerificationError(
            f"The reloaded {SIGNATURE_KEY!r} signature returns outputs "
            f"{sorted(served)}; the model's outputs are "
            f"{sorted(output_names)}."
        )
    for name in output_names:
        got = np.asarray(served[name], dtype=np.float64)
        want = expected[name].astype(np.float64)
        if got.shape != want.shape:
            raise ExportVerificationError(
                f"Output {name!r} of the reloaded SavedModel has shape "
                f"{got.shape}; the model predicts shape {want.shape}."
            )
        close = np.isclose(got, want, rtol=0.0, atol=atol, equal_nan=True)
        if not close.all():
            worst = np.max(np.abs(got - want)[~close])
            raise ExportVerificationError(
                f"Output {name!r} of the reloaded SavedModel differs from "
                f"the model's prediction by up to {worst:.3g} in "
                f"{int((~close).sum())} of {close.size} values "
                f"(atol={atol:g}). The exported graph does not compute what "
                "the model computes; look for layers that behave "
                "differently when traced into a graph."
            )
