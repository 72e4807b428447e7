"""Reusable test batteries for kmtl layers and models (usable from pytest
or unittest).

`run_layer_test` is the one check every layer test calls once, and
`run_model_test` the one check every model test calls once per registered
name; the hand-computed numbers, the learning tests and what is particular
to a layer or a model stay in its own test file. `LayerTestCase` (a pytest
mixin) declares a layer's batteries (`LayerBattery`) and invalid arguments
as data; `synthetic_spec`, `raw_tensors`, `to_numpy`, `softmax` and
`randomize` are the helpers the test files share.

TensorFlow is imported only where it is needed (the SavedModel check of
`run_model_test`, `raw_tensors`), so the module imports without it.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import tempfile
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

import keras
import numpy as np

if TYPE_CHECKING:
    from kmtl.features.spec import FeatureSpec
    from kmtl.models.task_model import TaskModel


def _is_shape(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and all(
        v is None or isinstance(v, (int, np.integer)) for v in value
    )


def _as_list(structure: Any) -> tuple[list[Any], bool]:
    """Returns `(items, was_list)` for a tensor or a list/tuple of them."""
    if isinstance(structure, (list, tuple)):
        return list(structure), True
    return [structure], False


def _shape_list(expected: Any) -> tuple[list[tuple[Any, ...]], bool]:
    if _is_shape(expected):
        return [tuple(expected)], False
    return [tuple(s) for s in expected], True


def _is_plain(value: Any) -> bool:
    """Whether a constructor argument should appear unchanged in a config."""
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float))


def _constructor_args(layer_cls: type) -> list[str]:
    """The named arguments of `layer_cls.__init__` (not `*args`/`**kwargs`)."""
    parameters = inspect.signature(layer_cls.__init__).parameters.values()
    return [
        p.name
        for p in parameters
        if p.name != "self"
        and p.kind
        in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        )
    ]


def _json_normalized(config: Mapping[str, Any]) -> Any:
    return json.loads(json.dumps(config))


def _check_shapes(
    what: str, outputs: list[Any], expected: list[tuple[Any, ...]]
) -> None:
    actual = [tuple(o.shape) for o in outputs]
    if actual != expected:
        raise AssertionError(
            f"{what}: output shapes {actual} != expected {expected}"
        )


def _fresh(layer_cls: type, init_kwargs: Mapping[str, Any]) -> Any:
    return layer_cls(**dict(init_kwargs))


def run_layer_test(
    layer_cls: type[keras.layers.Layer],
    init_kwargs: Mapping[str, Any],
    input_data: Any,
    expected_output_shape: Sequence[int | None] | Sequence[Sequence[Any]],
    expected_num_trainable_weights: int | None = None,
    expected_num_non_trainable_weights: int | None = None,
    run_training_check: bool = True,
    run_saving_check: bool = True,
) -> None:
    """Runs the standard battery of checks on a layer; raises on failure.

    Checks, in order:

    1. every named constructor argument is in `get_config` (those of
       `init_kwargs` that are numbers, bools, None or sequences of them
       unchanged);
       `get_config` -> `from_config` gives an equal config, and
       `serialize_keras_object` -> JSON -> `deserialize_keras_object` gives
       an equal config (compared after both go through JSON);
    2. the numbers of trainable and non-trainable weights after `build`
       (when expected numbers are given);
    3. a symbolic call on `keras.KerasTensor`s gives the expected shapes
       (with the batch size, then with a `None` batch size), the layer's
       compute dtype and, if the layer defines `compute_output_shape`, the
       same shapes from it;
    4. an eager call gives the expected shapes;
    5. one `fit` step of a functional model holding the layer (MSE against
       random targets on every output): the loss is finite and at least one
       trainable weight changed;
    6. the model saved as `.keras` and reloaded with
       `keras.saving.load_model(..., safe_mode=True)` predicts the same.

    Args:
        layer_cls: type. The layer class.
        init_kwargs: dict. The constructor arguments.
        input_data: array/tensor or list of them. One batch of inputs.
        expected_output_shape: tuple, or list of tuples for a layer that
            returns a list. The shapes for `input_data`.
        expected_num_trainable_weights: int or None. Checked when given.
        expected_num_non_trainable_weights: int or None. Checked when given.
        run_training_check: bool. Whether to run check 5.
        run_saving_check: bool. Whether to run check 6.
    """
    inputs, list_input = _as_list(input_data)
    inputs = [np.asarray(keras.ops.convert_to_numpy(x)) for x in inputs]
    # float64 is not a Keras compute dtype (and is truncated on JAX).
    inputs = [
        x.astype("float32") if x.dtype == "float64" else x for x in inputs
    ]
    expected, list_output = _shape_list(expected_output_shape)

    def structured(items: list[Any]) -> Any:
        return items if list_input else items[0]

    # === 1. Serialization round trips ===
    layer = _fresh(layer_cls, init_kwargs)
    config = layer.get_config()
    for key in _constructor_args(layer_cls):
        if key not in config:
            raise AssertionError(
                f"get_config lacks the constructor argument `{key}`, so "
                "from_config would rebuild a different layer."
            )
    for key, value in init_kwargs.items():
        if key not in config:
            raise AssertionError(
                f"get_config lacks the constructor argument `{key}`, so "
                "from_config would rebuild a different layer."
            )
        if _is_plain(value) and _json_normalized(
            {key: value}
        ) != _json_normalized({key: config[key]}):
            raise AssertionError(
                f"get_config changed the constructor argument `{key}`: "
                f"{value!r} became {config[key]!r}"
            )
    revived = layer_cls.from_config(config)
    if revived.get_config() != config:
        raise AssertionError(
            "get_config -> from_config changed the config:\n"
            f"{config}\n!=\n{revived.get_config()}"
        )
    serialized = json.dumps(keras.saving.serialize_keras_object(layer))
    revived = keras.saving.deserialize_keras_object(json.loads(serialized))
    if not isinstance(revived, layer_cls):
        raise AssertionError(
            f"deserialize_keras_object returned {type(revived).__name__}, "
            f"not {layer_cls.__name__}"
        )
    if _json_normalized(revived.get_config()) != _json_normalized(config):
        raise AssertionError(
            "serialize -> JSON -> deserialize changed the config:\n"
            f"{config}\n!=\n{revived.get_config()}"
        )

    # === 2. Weight counts after build ===
    layer = _fresh(layer_cls, init_kwargs)
    layer.build(structured([x.shape for x in inputs]))
    if not layer.built:
        raise AssertionError("The layer is not built after `build`.")
    for expected_count, weights, kind in (
        (expected_num_trainable_weights, layer.trainable_weights, "trainable"),
        (
            expected_num_non_trainable_weights,
            layer.non_trainable_weights,
            "non-trainable",
        ),
    ):
        if expected_count is not None and len(weights) != expected_count:
            raise AssertionError(
                f"{len(weights)} {kind} weights after build, expected "
                f"{expected_count}: {[w.path for w in weights]}"
            )

    # === 3. Symbolic calls ===
    for batch in ("full", "none"):
        layer = _fresh(layer_cls, init_kwargs)
        symbolic = [
            keras.KerasTensor(
                x.shape if batch == "full" else (None,) + x.shape[1:],
                dtype=str(x.dtype),
            )
            for x in inputs
        ]
        outputs, out_is_list = _as_list(layer(structured(symbolic)))
        if out_is_list != list_output:
            raise AssertionError(
                f"The layer returned a list: {out_is_list}; expected "
                f"{list_output}."
            )
        want = (
            expected
            if batch == "full"
            else [(None,) + tuple(s[1:]) for s in expected]
        )
        _check_shapes(f"symbolic call ({batch} batch)", outputs, want)
        for output in outputs:
            if output.dtype != layer.compute_dtype:
                raise AssertionError(
                    f"Output dtype {output.dtype} != the layer's compute "
                    f"dtype {layer.compute_dtype}"
                )
        if (
            type(layer).compute_output_shape
            is not keras.layers.Layer.compute_output_shape
        ):
            shapes = layer.compute_output_shape(
                structured([tuple(t.shape) for t in symbolic])
            )
            shapes = [tuple(s) for s in (shapes if list_output else [shapes])]
            if shapes != want:
                raise AssertionError(
                    f"compute_output_shape gave {shapes}, expected {want}"
                )

    # === 4. Eager call ===
    layer = _fresh(layer_cls, init_kwargs)
    outputs, _ = _as_list(layer(structured(inputs)))
    _check_shapes("eager call", outputs, expected)

    if not (run_training_check or run_saving_check):
        return

    # === 5. One fit step in a functional model ===
    model_inputs = [
        keras.Input(shape=x.shape[1:], batch_size=None, dtype=str(x.dtype))
        for x in inputs
    ]
    layer = _fresh(layer_cls, init_kwargs)
    model_outputs = layer(structured(model_inputs))
    model = keras.Model(structured(model_inputs), model_outputs)
    rng = np.random.default_rng(0)
    targets = [rng.normal(size=shape).astype("float32") for shape in expected]
    y = targets if list_output else targets[0]
    if run_training_check:
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
        before = [
            np.array(keras.ops.convert_to_numpy(w))
            for w in model.trainable_weights
        ]
        history = model.fit(
            structured(inputs),
            y,
            batch_size=len(inputs[0]),
            epochs=1,
            verbose=0,
        )
        loss = history.history["loss"][-1]
        if not np.isfinite(loss):
            raise AssertionError(f"The training loss is not finite: {loss}")
        after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
        if before and all(
            np.array_equal(b, a) for b, a in zip(before, after, strict=True)
        ):
            raise AssertionError("No trainable weight changed in fit.")

    # === 6. .keras save and reload ===
    if run_saving_check:
        predictions, _ = _as_list(model.predict(structured(inputs), verbose=0))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.keras")
            model.save(path)
            reloaded = keras.saving.load_model(path, safe_mode=True)
        reloaded_predictions, _ = _as_list(
            reloaded.predict(structured(inputs), verbose=0)
        )
        if len(predictions) != len(reloaded_predictions):
            raise AssertionError(
                f"The reloaded model has {len(reloaded_predictions)} outputs"
                f", not {len(predictions)}."
            )
        for before_save, after_load in zip(
            predictions, reloaded_predictions, strict=True
        ):
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(before_save),
                keras.ops.convert_to_numpy(after_load),
                rtol=1e-6,
                atol=1e-6,
                err_msg="The reloaded .keras model predicts differently.",
            )


def to_numpy(x: Any) -> np.ndarray:
    """`x` (a backend tensor, a variable or an array) as a NumPy array."""
    return np.asarray(keras.ops.convert_to_numpy(x))


def softmax(z: Any, axis: int = -1) -> np.ndarray:
    """A NumPy softmax of `z` over `axis` (a -inf entry gets 0), for the
    references that tests compute by hand."""
    z = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def randomize(weights: Sequence[Any], rng: np.random.Generator) -> None:
    """Assigns float32 `rng.normal` draws to each of `weights` (variables),
    in order, so that a hand-computed reference sees weights of its own."""
    for weight in weights:
        weight.assign(rng.normal(size=tuple(weight.shape)).astype("float32"))


@dataclasses.dataclass(frozen=True)
class LayerBattery:
    """One `run_layer_test` call as data, for `LayerTestCase.batteries`.

    Args:
        init_kwargs: dict. The constructor arguments.
        input_data: array/tensor or list of them. One batch of inputs.
        expected_output_shape: tuple, or list of tuples for a layer that
            returns a list.
        expected_num_weights: `(trainable, non_trainable)` counts after
            `build`; a None count is not checked.
        run_training_check: bool. Whether to run the `fit` check.
        run_saving_check: bool. Whether to run the `.keras` check.
    """

    init_kwargs: Mapping[str, Any]
    input_data: Any
    expected_output_shape: Any
    expected_num_weights: tuple[int | None, int | None] = (None, None)
    run_training_check: bool = True
    run_saving_check: bool = True

    def run(self, layer_cls: type[keras.layers.Layer]) -> None:
        """Runs `run_layer_test` on `layer_cls` with these arguments."""
        trainable, non_trainable = self.expected_num_weights
        run_layer_test(
            layer_cls,
            self.init_kwargs,
            self.input_data,
            self.expected_output_shape,
            expected_num_trainable_weights=trainable,
            expected_num_non_trainable_weights=non_trainable,
            run_training_check=self.run_training_check,
            run_saving_check=self.run_saving_check,
        )


class LayerTestCase:
    """A pytest mixin: a layer's standard tests, declared as data.

    A subclass sets class attributes; the mixin turns them into tests:

    - `layer_cls`: the layer class;
    - `batteries`: dict name -> `LayerBattery`; `test_layer_battery[name]`
      runs `run_layer_test` on each, after `keras.utils.set_random_seed(0)`;
    - `invalid_args`: `(kwargs, pattern)` pairs; `test_invalid_args` checks
      that `layer_cls(**kwargs)` raises a `ValueError` whose message
      matches `pattern` (`re.search`). A class that declares none has no
      `test_invalid_args`.

    The hand-computed numbers stay ordinary test methods of the subclass.

    Example:

    ```python
    class TestMLP(kmtl.testing.LayerTestCase):
        layer_cls = kmtl.layers.MLP
        batteries = {
            "dropout": kmtl.testing.LayerBattery(
                {"units": (4, 2), "dropout": 0.1},
                np.ones((4, 3)),
                (4, 2),
                expected_num_weights=(4, 0),
            )
        }
        invalid_args = [({"units": ()}, "`units` must be a non-empty")]
    ```
    """

    layer_cls: ClassVar[type[keras.layers.Layer]]
    batteries: ClassVar[Mapping[str, LayerBattery]] = {}
    invalid_args: ClassVar[Sequence[tuple[Mapping[str, Any], str]]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.invalid_args:
            # Nothing to parametrize: pytest collects no such test.
            cls.test_invalid_args = None  # type: ignore[assignment]

    def pytest_generate_tests(self, metafunc: Any) -> None:
        """The pytest hook that parametrizes the tests from the tables."""
        if metafunc.function.__name__ == "test_layer_battery":
            metafunc.parametrize(
                "battery",
                list(self.batteries.values()),
                ids=list(self.batteries),
            )
        elif metafunc.function.__name__ == "test_invalid_args":
            metafunc.parametrize("kwargs, match", self.invalid_args)

    def test_layer_battery(self, battery: LayerBattery) -> None:
        # Seeded: unseeded initial weights could leave, now and then, every
        # ReLU of a tiny batch dead, and the fit check without a gradient.
        keras.utils.set_random_seed(0)
        battery.run(self.layer_cls)

    def test_invalid_args(self, kwargs: Mapping[str, Any], match: str) -> None:
        try:
            self.layer_cls(**kwargs)
        except ValueError as error:
            if not re.search(match, str(error)):
                raise AssertionError(
                    f"The ValueError does not match {match!r}: {error}"
                ) from error
        else:
            raise AssertionError(
                f"{self.layer_cls.__name__}(**{kwargs!r}) raised no ValueError."
            )


# === The model battery ===

UNKNOWN_HPARAM = "not_an_hparam"
"""The hparam `run_model_test` passes to check that unknown ones are
refused: no model may take it."""


def synthetic_spec(df: Any, **options: Any) -> FeatureSpec:
    """The FeatureSpec of a table drawn by `kmtl.data.make_synthetic` or
    `kmtl.data.make_scenario_shifted`.

    Tasks `ctr` (label `click`) and `cvr` (label `purchase`, in the sample
    space of `ctr`: trained on clicked rows), `scenario` as the scenario
    column; `FeatureSpec.from_dataframe` infers the features.

    Args:
        df: pandas.DataFrame. Rows of one of the generators.
        **options: more `FeatureSpec.from_dataframe` arguments
            (`embedding_dim`, `scenario_values`, ...); they override the
            ones above.

    Returns:
        A `FeatureSpec`.

    Example:

    ```python
    df, truth = kmtl.data.make_synthetic(3000, seed=11)
    spec = kmtl.testing.synthetic_spec(df, embedding_dim=4)
    kmtl.testing.run_model_test("mmoe", df, spec, {"num_experts": 2})
    ```
    """
    from kmtl.features.spec import FeatureSpec

    arguments = {
        "labels": {"ctr": "click", "cvr": "purchase"},
        "scenario": "scenario",
        "sample_spaces": {"cvr": "ctr"},
        **options,
    }
    return FeatureSpec.from_dataframe(df, **arguments)


def raw_tensors(df: Any, spec: FeatureSpec) -> dict[str, Any]:
    """The raw features of `df` as TensorFlow tensors, keyed by input name.

    What a model built on `spec` (`model(x)`, `predict_on_batch`) and its
    serving signatures (`signature(**x)`) take; strings stay strings.

    Args:
        df: pandas.DataFrame. The rows.
        spec: FeatureSpec. The model's spec.

    Returns:
        dict input name -> `tf.Tensor` with one row per row of `df`.
    """
    import tensorflow as tf

    from kmtl.data import features_from_dataframe

    return {
        name: tf.constant(value)
        for name, value in features_from_dataframe(df, spec).items()
    }


def _expect_value_error(
    what: str, build: Any, pattern: str, model_name: str
) -> None:
    """Runs `build()`; it must raise a `ValueError` that names the model
    and matches `pattern` (`re.search`)."""
    try:
        build()
    except ValueError as error:
        message = str(error)
        if not re.search(pattern, message):
            raise AssertionError(
                f"Model {model_name!r}, {what}: the ValueError does not "
                f"match {pattern!r}: {message}"
            ) from error
        if repr(model_name) not in message:
            raise AssertionError(
                f"Model {model_name!r}, {what}: the ValueError does not "
                f"name the model: {message}"
            ) from error
    else:
        raise AssertionError(
            f"Model {model_name!r}, {what}: no ValueError was raised."
        )


def _predict(model: Any, features: Mapping[str, Any]) -> dict[str, Any]:
    rows = len(next(iter(features.values())))
    features = dict(features)
    if any(
        np.asarray(v).dtype == object and np.ndim(v) > 1
        for v in features.values()
    ):
        # Keras's NumPy adapter refuses 2-D object (string sequence) arrays.
        import tensorflow as tf

        features = {
            k: tf.constant(v) if np.asarray(v).dtype == object else v
            for k, v in features.items()
        }
    out = model.predict(features, batch_size=rows, verbose=0)
    if not isinstance(out, Mapping):
        raise AssertionError(
            f"Model {model.name!r}: predict returned a "
            f"{type(out).__name__}, not a dict keyed by task."
        )
    return {key: np.asarray(value) for key, value in out.items()}


def _check_outputs(model: Any, outputs: Mapping[str, Any], rows: int) -> None:
    """One output per task of `model.tasks`, named after it, of width 1
    (or the classes of a multiclass task), finite, and in range."""
    names = [task.name for task in model.tasks]
    if sorted(outputs) != sorted(names):
        raise AssertionError(
            f"Model {model.name!r}: the outputs {sorted(outputs)} are not "
            f"named after its tasks {names}."
        )
    for task in model.tasks:
        value = outputs[task.name]
        width = task.num_classes if task.kind == "multiclass" else 1
        if value.shape != (rows, width):
            raise AssertionError(
                f"Model {model.name!r}: output {task.name!r} has shape "
                f"{value.shape}, expected {(rows, width)} ({task.kind})."
            )
        if not np.all(np.isfinite(value)):
            raise AssertionError(
                f"Model {model.name!r}: output {task.name!r} is not finite."
            )
        if task.kind == "binary" and not np.all((value >= 0) & (value <= 1)):
            raise AssertionError(
                f"Model {model.name!r}: the binary output {task.name!r} "
                f"leaves [0, 1]: [{value.min()}, {value.max()}]."
            )
        if task.kind == "multiclass" and not np.allclose(
            value.sum(axis=-1), 1.0, atol=1e-5
        ):
            raise AssertionError(
                f"Model {model.name!r}: the multiclass output "
                f"{task.name!r} does not sum to 1 over its classes."
            )


def _assert_close(
    what: str,
    actual: Mapping[str, Any],
    expected: Mapping[str, Any],
    atol: float,
) -> None:
    if sorted(actual) != sorted(expected):
        raise AssertionError(
            f"{what}: outputs {sorted(actual)} != {sorted(expected)}"
        )
    for key, value in expected.items():
        np.testing.assert_allclose(
            np.asarray(actual[key]),
            value,
            rtol=0,
            atol=atol,
            err_msg=f"{what}: output {key!r}",
        )


def _rows(batch: Mapping[str, Any], rows: int) -> dict[str, Any]:
    return {key: value[:rows] for key, value in batch.items()}


def _check_export(
    model: Any,
    spec: FeatureSpec,
    features: Mapping[str, Any],
    predictions: Mapping[str, Any],
    batch_sizes: Sequence[int],
    directory: str,
) -> None:
    """`kmtl.export`, then `tf.saved_model.load`: every signature serves
    what `model.predict` gives on `features` (the first rows of each batch
    size)."""
    import tensorflow as tf

    from kmtl.export import SCENARIO_PREFIX
    from kmtl.export import SIGNATURE_KEY
    from kmtl.export import export
    from kmtl.export import scenario_signature_key
    from kmtl.features.inputs import missing_inputs

    name = model.name
    if spec.bias_names:  # served without them: the model sees them missing
        features = {k: features[k] for k in spec.serving_input_names}
        rows = len(next(iter(features.values())))
        features = {
            **features,
            **missing_inputs(spec, spec.bias_names, rows),
        }
        predictions = _predict(model, features)
    try:
        path = export(
            model, os.path.join(directory, name), sample=_rows(features, 8)
        )
    except Exception as error:
        raise AssertionError(
            f"Model {name!r}: kmtl.export failed: {error}"
        ) from error
    signatures = tf.saved_model.load(str(path)).signatures
    tasks = sorted(task.name for task in model.tasks)

    def check_signature(key: str, input_names: list[str]) -> Any:
        if key not in signatures:
            raise AssertionError(
                f"Model {name!r}: the SavedModel has no signature {key!r} "
                f"(it has {sorted(signatures)})."
            )
        function = signatures[key]
        _, inputs = function.structured_input_signature
        if sorted(inputs) != sorted(input_names):
            raise AssertionError(
                f"Model {name!r}: signature {key!r} takes {sorted(inputs)}, "
                f"expected {sorted(input_names)}."
            )
        if sorted(function.structured_outputs) != tasks:
            raise AssertionError(
                f"Model {name!r}: signature {key!r} returns "
                f"{sorted(function.structured_outputs)}, expected the "
                f"tasks {tasks}."
            )
        return function

    def serve(function: Any, batch: Mapping[str, Any]) -> dict:
        _, inputs = function.structured_input_signature
        outputs = function(**{k: tf.constant(batch[k]) for k in inputs})
        return {k: v.numpy() for k, v in outputs.items()}

    serve_default = check_signature(SIGNATURE_KEY, spec.serving_input_names)
    for rows in batch_sizes:
        _assert_close(
            f"Model {name!r}: {SIGNATURE_KEY!r} at batch size {rows} vs "
            "model.predict",
            serve(serve_default, _rows(features, rows)),
            _rows(predictions, rows),
            atol=1e-5,
        )
    scenario = spec.scenario
    values = scenario.values if scenario is not None else ()
    expected_keys = sorted(scenario_signature_key(v) for v in values)
    keys = sorted(k for k in signatures if k.startswith(SCENARIO_PREFIX))
    if keys != expected_keys:
        raise AssertionError(
            f"Model {name!r}: scenario signatures {keys}, expected "
            f"{expected_keys}."
        )
    if scenario is None:
        return
    # Row r of the batch in scenario r % S: one `predict` call, at the
    # batch size already traced, checks every scenario on its rows.
    column = scenario.name
    rows = len(features[column])
    index = np.arange(rows) % len(values)
    shape, dtype = features[column].shape, features[column].dtype
    routed = _predict(
        model, {**features, column: index.reshape(shape).astype(dtype)}
    )
    others = [n for n in spec.serving_input_names if n != column]
    for i, value in enumerate(values):
        key = scenario_signature_key(value)
        function = check_signature(key, others)
        served = serve(function, {k: features[k] for k in others})
        _assert_close(
            f"Model {name!r}: {key!r} vs model.predict in scenario {i}",
            {task: out[index == i] for task, out in served.items()},
            {task: out[index == i] for task, out in routed.items()},
            atol=1e-5,
        )


def run_model_test(
    name: str,
    df: Any,
    spec: FeatureSpec,
    hparams: Mapping[str, Any] | None = None,
    *,
    bad_hparams: Sequence[tuple[Mapping[str, Any], str]] = (),
    bad_specs: Sequence[tuple[Mapping[str, Any], str]] = (),
    epochs: int = 2,
    batch_size: int = 256,
    min_loss_drop: float = 0.01,
    batch_sizes: Sequence[int] = (1, 257),
    seed: int = 0,
    run_export_check: bool | None = None,
) -> TaskModel:
    """Runs the standard battery of checks on a registered model; raises
    `AssertionError` on failure.

    Checks, in order:

    1. `kmtl.build(name, spec, not_an_hparam=1)` raises a `ValueError`
       naming the model and the hparam; each `bad_hparams` entry (laid over
       `hparams`) and each `bad_specs` entry (changes to `spec`) raises a
       `ValueError` that names the model and matches its pattern;
    2. `kmtl.build(name, spec, **hparams)` returns a `TaskModel` whose
       `tasks` are `kmtl.model_tasks(name, spec, **hparams)`, with one
       input per `spec.input_names` and one output per task, named after it;
    3. `epochs` of `fit` on `kmtl.data.to_dataset(df, spec)` (the spec's
       labels: derived outputs such as ESMM's `ctcvr` get theirs from the
       model) lower the `evaluate` loss on `df` by `min_loss_drop`;
    4. `predict` on the first `max(batch_sizes)` rows returns one output
       per task, named after it, of shape `(batch, 1)` (`(batch,
       num_classes)` for a multiclass task), finite, probabilities in
       [0, 1] for binary tasks;
    5. the model saved as `.keras` and reloaded with
       `keras.saving.load_model(path, safe_mode=True)` is a `TaskModel`
       with the same `tasks` and predicts the same (atol 1e-6);
    6. on the TensorFlow backend, `kmtl.export(model, path)` then
       `tf.saved_model.load(path)`: `serving_default` takes
       `spec.input_names` and returns the tasks, and matches
       `model.predict` within 1e-5 at both `batch_sizes`; when the spec has
       a scenario, there is exactly one `scenario_<value>` signature per
       scenario value, taking the other inputs, and each matches
       `model.predict` with the scenario column set to its index (on the
       rows `r` with `r % num_scenarios == index`).

    Keep it fast: tiny hparams (a few units per layer) and a few thousand
    rows of a learnable synthetic table (`kmtl.data.make_synthetic`) check
    every model in seconds.

    Args:
        name: str. A name from `kmtl.list_models()`.
        df: pandas.DataFrame. Rows with the spec's features and labels, at
            least `max(batch_sizes)` of them, whose labels the model can
            learn (`make_synthetic` rows and `synthetic_spec`).
        spec: FeatureSpec. The spec to build on.
        hparams: dict or None. Tiny hyperparameters. Defaults to none (the
            model's defaults).
        bad_hparams: sequence of `(hparams, pattern)`. Hparams (laid over
            `hparams`) that `kmtl.build` must refuse with a `ValueError`
            matching the regex `pattern`. Defaults to none.
        bad_specs: sequence of `(changes, pattern)`. Changes to `spec`
            (`spec.replace(**changes)`, e.g. `{"scenario": None}`) that
            the model must refuse, built with `hparams`, with a
            `ValueError` matching `pattern`. Defaults to none.
        epochs: int. Epochs of check 3. Defaults to 2.
        batch_size: int. Batch size of check 3. Defaults to 256.
        min_loss_drop: float. The least drop of the loss in check 3.
            Defaults to 0.01.
        batch_sizes: ints. The batch sizes served in check 6; checks 4 to 6
            predict on the first `max(batch_sizes)` rows of `df` (a row's
            prediction does not depend on its batch). Defaults to
            `(1, 257)`.
        seed: int. `keras.utils.set_random_seed` before building. Defaults
            to 0.
        run_export_check: bool or None. Whether to run check 6 (it needs
            TensorFlow). Defaults to `None`: on the TensorFlow backend.

    Returns:
        The trained model of checks 3 to 6.

    Example:

    ```python
    class MMoETest(unittest.TestCase):
        def test_battery(self):
            df, _ = kmtl.data.make_synthetic(3000, seed=11)
            spec = kmtl.testing.synthetic_spec(df, embedding_dim=4)
            kmtl.testing.run_model_test(
                "mmoe", df, spec,
                {"num_experts": 2, "expert_units": (8,)},
                bad_hparams=[({"num_experts": 0}, "num_experts=0")],
            )
    ```
    """
    from kmtl.data import features_from_dataframe
    from kmtl.data import to_dataset
    from kmtl.models.registry import build
    from kmtl.models.registry import model_tasks
    from kmtl.models.task_model import TaskModel

    hparams = dict(hparams or {})
    if len(df) < max(batch_sizes):
        raise ValueError(
            f"run_model_test: `df` needs at least {max(batch_sizes)} rows "
            f"(`batch_sizes`). Received: {len(df)} rows"
        )

    # === 1. Hparams and specs the model refuses ===
    _expect_value_error(
        f"unknown hparam `{UNKNOWN_HPARAM}`",
        lambda: build(name, spec, **hparams, **{UNKNOWN_HPARAM: 1}),
        re.escape(UNKNOWN_HPARAM),
        name,
    )
    for bad, pattern in bad_hparams:
        _expect_value_error(
            f"hparams {dict(bad)}",
            lambda bad=bad: build(name, spec, **{**hparams, **bad}),
            pattern,
            name,
        )
    for changes, pattern in bad_specs:
        _expect_value_error(
            f"spec.replace(**{dict(changes)})",
            lambda changes=changes: build(
                name, spec.replace(**changes), **hparams
            ),
            pattern,
            name,
        )

    # === 2. Build ===
    keras.utils.set_random_seed(seed)
    model = build(name, spec, **hparams)
    if not isinstance(model, TaskModel):
        raise AssertionError(
            f"Model {name!r}: kmtl.build returned a {type(model).__name__}"
            ", not a TaskModel."
        )
    expected_tasks = model_tasks(name, spec, **hparams)
    if tuple(model.tasks) != tuple(expected_tasks):
        raise AssertionError(
            f"Model {name!r}: model.tasks {[t.name for t in model.tasks]} "
            f"!= kmtl.model_tasks {[t.name for t in expected_tasks]}."
        )
    if list(model.input) != list(spec.input_names):
        raise AssertionError(
            f"Model {name!r}: inputs {list(model.input)} != "
            f"spec.input_names {spec.input_names}."
        )

    # === 3. A few fit steps lower the loss ===
    dataset = to_dataset(df, spec, batch_size=batch_size)
    before = model.evaluate(dataset, verbose=0, return_dict=True)["loss"]
    model.fit(dataset, epochs=epochs, shuffle=False, verbose=0)
    after = model.evaluate(dataset, verbose=0, return_dict=True)["loss"]
    if not np.isfinite(after) or after > before - min_loss_drop:
        raise AssertionError(
            f"Model {name!r}: {epochs} epochs of fit took the loss from "
            f"{before:.4f} to {after:.4f}, not down by {min_loss_drop}."
        )

    # === 4. Predict ===
    rows = max(batch_sizes)
    features = features_from_dataframe(df[:rows], spec)
    predictions = _predict(model, features)
    _check_outputs(model, predictions, rows)

    with tempfile.TemporaryDirectory() as directory:
        # === 5. .keras round trip ===
        path = os.path.join(directory, f"{name}.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path, safe_mode=True)
        if not isinstance(reloaded, TaskModel) or tuple(
            reloaded.tasks
        ) != tuple(model.tasks):
            raise AssertionError(
                f"Model {name!r}: the reloaded .keras model is a "
                f"{type(reloaded).__name__} with tasks "
                f"{getattr(reloaded, 'tasks', None)}, not a TaskModel with "
                f"{model.tasks}."
            )
        _assert_close(
            f"Model {name!r}: the reloaded .keras model vs the model",
            _predict(reloaded, features),
            predictions,
            atol=1e-6,
        )

        # === 6. SavedModel export round trip ===
        if run_export_check is None:
            run_export_check = keras.backend.backend() == "tensorflow"
        if run_export_check:
            _check_export(
                model, spec, features, predictions, batch_sizes, directory
            )
    return model


__all__ = [
    "UNKNOWN_HPARAM",
    "LayerBattery",
    "LayerTestCase",
    "randomize",
    "raw_tensors",
    "run_layer_test",
    "run_model_test",
    "softmax",
    "synthetic_spec",
    "to_numpy",
]
