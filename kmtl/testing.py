"""Reusable test batteries for kmtl layers (usable from pytest or unittest).

`run_layer_test` is the one check every layer test calls once; the
hand-computed numbers and the invalid arguments stay in the layer's own
test file.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np


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


__all__ = ["run_layer_test"]
