"""SavedModel export for TF Serving: signatures, warmup, atomic versions.

`export` writes one SavedModel version that TF Serving can load as is:

```
base_path/<version>/
  saved_model.pb, variables/       the graph: signatures on raw features
  assets.extra/feature_spec.json   the FeatureSpec (when known), for clients
  assets.extra/tf_serving_warmup_requests
                                   PredictionLogs replayed at load time
```

The signatures are described in `kmtl.export.signatures`. The version is
written into a hidden staging directory beside the versions, reloaded, and
checked signature by signature against the Keras model; only then is it
renamed to the next integer version (see `kmtl.export.versions` for the
rules that let several exporters share a base path). TF Serving sees either
no new version or a complete, checked one.

TensorFlow is imported inside the functions, so `import kmtl` keeps working
on a machine that has Keras and JAX but no TensorFlow; calling `export`
needs TensorFlow.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

import keras
import numpy as np

from kmtl.export.checks import check_inputs
from kmtl.export.sample import synthetic_rows
from kmtl.export.signatures import SIGNATURE_KEY
from kmtl.export.signatures import Endpoint
from kmtl.export.signatures import endpoints
from kmtl.export.versions import prune_versions
from kmtl.export.versions import publish
from kmtl.export.versions import remove_stale_staging
from kmtl.export.versions import staging_directory
from kmtl.export.versions import staging_lease
from kmtl.export.warmup import ASSETS_EXTRA
from kmtl.export.warmup import warmup_requests
from kmtl.export.warmup import write_warmup
from kmtl.features.encoder import FeatureEncoder
from kmtl.features.inputs import input_dtype
from kmtl.features.inputs import input_shape
from kmtl.features.spec import FeatureSpec
from kmtl.warnings import KMTLWarning

if TYPE_CHECKING:
    import tensorflow as tf

SPEC_FILE = "feature_spec.json"
"""The FeatureSpec of an exported model, under `assets.extra/`."""


class ExportVerificationError(RuntimeError):
    """The reloaded SavedModel does not serve what the model predicts.

    Raised by `export` when the written SavedModel fails its own check: an
    output of some signature differs from the model's prediction by more
    than `atol`, an output is missing or extra, or a node of the graph is
    pinned to an accelerator. The written files are removed before the
    error propagates.
    """


def find_spec(model: keras.Model) -> FeatureSpec | None:
    """Returns the FeatureSpec a model was built on, if it carries one.

    Models built by `kmtl.build` encode their inputs with a
    `FeatureEncoder`, which holds the spec; `export` reads it from there.

    Args:
        model: keras.Model.

    Returns:
        The spec of the model's `FeatureEncoder` (searched in nested models
        too), or `None` when it has none.

    Raises:
        ValueError: if the model holds encoders of different specs.

    Example:

    ```python
    model = kmtl.build("mmoe", spec)
    assert find_spec(model) == spec
    ```
    """
    specs = []
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        if isinstance(layer, FeatureEncoder) and layer.spec not in specs:
            specs.append(layer.spec)
        if isinstance(layer, keras.Model):
            stack.extend(layer.layers)
    if len(specs) > 1:
        raise ValueError(
            f"The model {model.name!r} holds FeatureEncoders of "
            f"{len(specs)} different specs; pass the serving one as "
            "`export(..., spec=spec)`."
        )
    return specs[0] if specs else None


def load_spec(export_dir: str | os.PathLike) -> FeatureSpec | None:
    """Reads the FeatureSpec written beside an exported model.

    Args:
        export_dir: str or path. A version directory written by `export`.

    Returns:
        The `FeatureSpec` of `assets.extra/feature_spec.json`, or `None`
        when the model was exported without one.

    Example:

    ```python
    spec = load_spec("saved_models/mmoe/1")
    client = kmtl.serving.Client("localhost:8501", "mmoe", spec=spec)
    ```
    """
    path = pathlib.Path(export_dir) / ASSETS_EXTRA / SPEC_FILE
    if not path.is_file():
        return None
    return FeatureSpec.from_json(path.read_text())


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
    serving_input_signature(model)
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
    batch = synthetic_inputs(model, batch_size=3)
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
    pins = device_pins("saved_models/mmoe/1")
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


def signature_inputs(
    export_dir: str | os.PathLike, signature_name: str = SIGNATURE_KEY
) -> dict[str, tf.TensorSpec]:
    """Reads the inputs of one signature of a SavedModel.

    Reads `saved_model.pb` only (nothing is loaded), so a client can check
    a request with `check_inputs` before sending it.

    Args:
        export_dir: str or path. A SavedModel (version) directory.
        signature_name: str. Defaults to `"serving_default"`.

    Returns:
        dict input name -> `tf.TensorSpec` (a `None` dimension for each
        unknown size), in the SignatureDef's order.

    Raises:
        ValueError: if the SavedModel has no such signature (the message
            lists those it has).

    Example:

    ```python
    batch = check_inputs(batch, signature_inputs("saved_models/mmoe/1"))
    ```
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    path = pathlib.Path(export_dir) / "saved_model.pb"
    proto.ParseFromString(path.read_bytes())
    signatures = {}
    for meta_graph in proto.meta_graphs:
        signatures.update(meta_graph.signature_def)
    if signature_name not in signatures:
        known = sorted(k for k in signatures if not k.startswith("__"))
        raise ValueError(
            f"The SavedModel {export_dir} has no signature "
            f"{signature_name!r}; it has {known}."
        )
    inputs = {}
    for name, info in signatures[signature_name].inputs.items():
        shape = tf.TensorShape(info.tensor_shape)
        inputs[name] = tf.TensorSpec(shape, tf.as_dtype(info.dtype), name=name)
    return inputs


def export(
    model: keras.Model,
    base_path: str | os.PathLike,
    *,
    spec: FeatureSpec | None = None,
    sample: Any = None,
    atol: float = 1e-5,
    keep_last: int | None = None,
) -> pathlib.Path:
    """Exports a model as the next checked version of a SavedModel.

    The SavedModel is written with `keras.export.ExportArchive`, which
    tracks the model (its variables and the lookup tables of
    `StringLookup`/`Hashing` layers). Its signatures (see
    `kmtl.export.signatures`):

    - `serving_default`: the raw features, one input per model input named
      after it, returning `{task: prediction}`;
    - `scenario_<value>`: one per value of `spec.scenario.values`, without
      the scenario input (fixed inside the graph);
    - `examples`: serialized `tf.Example` protos, parsed inside.

    The FeatureSpec is the `spec` argument, or else the one the model was
    built on (`find_spec`: models of `kmtl.build` carry it); without one, a
    plain Keras model gets `serving_default` and `examples` only. The spec
    is written to `assets.extra/feature_spec.json` for clients
    (`load_spec`), and warmup requests of each signature, built from
    `sample`, to `assets.extra/tf_serving_warmup_requests`. No device is
    pinned, so the same SavedModel serves on CPU and GPU.

    The version is written into a hidden staging directory beside the
    versions, reloaded with `tf.saved_model.load`, and every signature is
    run on `sample`: its outputs must equal the model's own
    (`model(inputs, training=False)`) within `atol`. Only then is the
    directory renamed, in one atomic rename, to the next version: one more
    than the largest integer subdirectory of `base_path` (1 when there is
    none). On any exception the staging directory is removed; a process
    killed mid-export leaves it hidden, and an export after its lease went
    stale removes it. Existing versions are never modified.

    Several exporters (processes, hosts) may share one base path: each
    number goes to one of them, and an exporter that finds its number
    taken publishes under the next one (`kmtl.export.versions` has the
    rules, and the lease that marks a staging directory as in use).

    Once the new version is published, `export` returns it: with
    `keep_last`, the oldest complete versions are then deleted, and a
    failure to delete one is a `KMTLWarning` naming its directory, not an
    error. Only complete versions (`kmtl.export.versions.is_complete`) are
    counted and deleted: an empty or partial directory named like a version
    never makes `keep_last` delete a good one.

    Args:
        model: keras.Model. A functional model whose inputs are a dict of
            `keras.Input`s, each named exactly like its key (raw dtypes:
            int ids, floats, strings), and whose outputs are a dict keyed
            by task name.
        base_path: str or path. The model's base path on the local
            filesystem, as given to TF Serving's `--model_base_path`;
            created if missing. Its last component names the model in the
            warmup requests.
        spec: FeatureSpec or None. The model's spec; must match its inputs.
            Defaults to `None`: `find_spec(model)`.
        sample: pandas.DataFrame, dict of arrays, or None. Real rows to
            check the signatures on and to build the warmup requests from
            (the first 8 rows). A DataFrame is converted with
            `kmtl.data.features_from_dataframe` (it needs a spec); in a
            dict, numbers are cast to the input's dtype when NumPy's
            `same_kind` rule allows it and strings may be object, `str` or
            `bytes` arrays. Defaults to `None`: `synthetic_rows(spec)` with
            a spec, else a batch of 2 zeros and empty strings.
        atol: float. The largest absolute difference allowed between the
            served and the model's predictions. Defaults to `1e-5`.
        keep_last: int or None. After a successful export, delete all but
            the newest `keep_last` complete versions (never the new one).
            Defaults to `None`: keep every version.

    Returns:
        The path of the new version directory, `base_path/<version>`.

    Raises:
        ValueError: if the model's inputs or outputs are not dicts as
            described, an input is named unlike its key, the spec does not
            match the inputs, `keep_last` is not a positive int, or
            `sample` lacks a feature, has one the model does not take, or
            has a value of the wrong dtype or shape.
        ExportVerificationError: if a reloaded signature serves outputs
            that differ from the model's, or a node is pinned to an
            accelerator.
        FileExistsError: if other exporters took `PUBLISH_ATTEMPTS`
            version numbers in a row first (nothing is published).
        FileNotFoundError: if the staging directory was removed as
            abandoned while this export was stopped for longer than
            `STALE_AFTER_S` (nothing is published).

    Warns:
        KMTLWarning: with `keep_last`, for an old version that could not be
            deleted (the new version is published all the same).

    Example:

    ```python
    model = kmtl.build("mmoe", spec)
    model.fit(kmtl.data.to_dataset(train_df, spec), epochs=3)
    path = kmtl.export(model, "saved_models/mmoe", sample=train_df[:64],
                       keep_last=3)
    # saved_models/mmoe/1; serve it with
    # tensorflow_model_server --model_name=mmoe \\
    #     --model_base_path=$PWD/saved_models/mmoe
    served = tf.saved_model.load(str(path)).signatures["scenario_home"]
    ```
    """
    signature = serving_input_signature(model)
    _, output_names = _model_structure(model)
    if keep_last is not None and (
        isinstance(keep_last, bool)
        or not isinstance(keep_last, int)
        or keep_last < 1
    ):
        raise ValueError(
            "`keep_last` must be a positive int or None. "
            f"Received: keep_last={keep_last!r}"
        )
    spec = find_spec(model) if spec is None else spec
    if spec is not None:
        _check_spec(spec, signature)
    features = _sample_arrays(sample, spec, model, signature)
    served_by = endpoints(model, signature, spec)
    expected = {
        name: _predict(model, endpoint.model_inputs(features), signature)
        for name, endpoint in served_by.items()
    }

    base = pathlib.Path(base_path)
    base.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(base)
    staging = staging_directory(base)
    with staging_lease(staging):
        try:
            _write(model, served_by, staging)
            _check_device_pins(staging)
            _check_served(
                staging, served_by, features, expected, output_names, atol
            )
            if spec is not None:
                (staging / ASSETS_EXTRA).mkdir(exist_ok=True)
                (staging / ASSETS_EXTRA / SPEC_FILE).write_text(
                    spec.to_json(indent=2)
                )
            requests = {
                name: endpoint.request(features)
                for name, endpoint in served_by.items()
            }
            logs = warmup_requests(base.resolve().name, requests)
            write_warmup(staging, logs)
            version = publish(staging, base)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    target = base / str(version)
    # The new version is live: from here on, nothing may raise.
    if keep_last is not None:
        try:
            prune_versions(base, keep_last, protect=version)
        except OSError as err:
            warnings.warn(
                f"Exported {target}, but deleting the versions older than "
                f"the newest {keep_last} under {base} failed: {err}",
                KMTLWarning,
                stacklevel=2,
            )
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


def _check_spec(spec: FeatureSpec, signature: dict[str, tf.TensorSpec]) -> None:
    """Raises a `ValueError` naming the first input the spec disagrees on."""
    if not isinstance(spec, FeatureSpec):
        raise ValueError(
            f"`spec` must be a FeatureSpec or None. Received: {spec!r}"
        )
    names = spec.input_names
    missing = [n for n in names if n not in signature]
    extra = [n for n in signature if n not in names]
    if missing or extra:
        raise ValueError(
            "The FeatureSpec does not match the model's inputs: the spec "
            f"has {missing} that the model does not take, and the model "
            f"takes {extra} that the spec lacks."
        )
    for name in names:
        want = (input_dtype(spec, name), input_shape(spec, name))
        got = (signature[name].dtype.name, tuple(signature[name].shape[1:]))
        if want != got:
            raise ValueError(
                f"Feature {name!r}: the spec declares dtype {want[0]} and "
                f"per-example shape {want[1]}; the model input has dtype "
                f"{got[0]} and shape {got[1]}."
            )


def _sample_arrays(
    sample: Any,
    spec: FeatureSpec | None,
    model: keras.Model,
    signature: dict[str, tf.TensorSpec],
) -> dict[str, np.ndarray]:
    """The export sample as checked arrays of the signature's dtypes."""
    if sample is None:
        if spec is not None:
            sample = synthetic_rows(spec)
        else:
            sample = synthetic_inputs(model)
    elif hasattr(sample, "columns"):
        from kmtl.data.pandas import features_from_dataframe

        if spec is None:
            raise ValueError(
                "A DataFrame `sample` needs the model's FeatureSpec to "
                "convert its columns; pass `spec=`, or a dict of arrays."
            )
        sample = features_from_dataframe(sample, spec)
    import tensorflow as tf

    arrays = check_inputs(sample, signature, what="sample")
    return {  # as TF holds them: strings become bytes
        name: tf.constant(value, dtype=signature[name].dtype).numpy()
        for name, value in arrays.items()
    }


def _predict(
    model: keras.Model,
    features: dict[str, np.ndarray],
    signature: dict[str, tf.TensorSpec],
) -> dict[str, np.ndarray]:
    """The model's own outputs on a batch, as NumPy arrays."""
    import tensorflow as tf

    inputs = {
        name: tf.constant(value, dtype=signature[name].dtype)
        for name, value in features.items()
    }
    return {
        name: np.asarray(value)
        for name, value in model(inputs, training=False).items()
    }


def _write(
    model: keras.Model,
    served_by: dict[str, Endpoint],
    directory: pathlib.Path,
) -> None:
    """Writes the SavedModel with one signature per endpoint."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, endpoint in served_by.items():
        archive.add_endpoint(
            name, endpoint.function, input_signature=[endpoint.input_signature]
        )
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
    served_by: dict[str, Endpoint],
    features: dict[str, np.ndarray],
    expected: dict[str, dict[str, np.ndarray]],
    output_names: list[str],
    atol: float,
) -> None:
    """Reloads the SavedModel and runs every signature on `features`."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(directory))
    for signature_name, endpoint in served_by.items():
        if signature_name not in loaded.signatures:
            raise ExportVerificationError(
                f"The reloaded SavedModel has no signature {signature_name!r}"
                f"; it has {sorted(loaded.signatures)}."
            )
        request = endpoint.request(features)
        served = loaded.signatures[signature_name](
            **{name: tf.constant(value) for name, value in request.items()}
        )
        _compare(
            signature_name,
            served,
            expected[signature_name],
            output_names,
            atol,
        )


def _compare(
    signature_name: str,
    served: Mapping[str, Any],
    expected: dict[str, np.ndarray],
    output_names: list[str],
    atol: float,
) -> None:
    """Raises `ExportVerificationError` where `served` is not `expected`."""
    where = f"signature {signature_name!r} of the reloaded SavedModel"
    if set(served) != set(output_names):
        raise ExportVerificationError(
            f"The {where} returns outputs {sorted(served)}; the model's "
            f"outputs are {sorted(output_names)}."
        )
    for name in output_names:
        got = np.asarray(served[name], dtype=np.float64)
        want = expected[name].astype(np.float64)
        if got.shape != want.shape:
            raise ExportVerificationError(
                f"Output {name!r} of the {where} has shape {got.shape}; the "
                f"model predicts shape {want.shape}."
            )
        close = np.isclose(got, want, rtol=0.0, atol=atol, equal_nan=True)
        if not close.all():
            worst = np.max(np.abs(got - want)[~close])
            raise ExportVerificationError(
                f"Output {name!r} of the {where} differs from the model's "
                f"prediction by up to {worst:.3g} in {int((~close).sum())} "
                f"of {close.size} values (atol={atol:g}). The exported graph "
                "does not compute what the model computes; look for layers "
                "that behave differently when traced into a graph."
            )
