"""The serving signatures of an exported model: the serving contract.

Every signature returns the same outputs, `{task: prediction}` with shape
`[batch, ...]` (float32 `[batch, 1]` for binary and regression tasks):

- `serving_default`: one input per raw feature (and scenario column), named
  after it, with the dtype and shape of its `keras.Input`;
- `scenario_<value>`: one per named scenario value (`ScenarioSpec.values`),
  only when the spec has a scenario: the same inputs less the scenario
  column, which the graph fills with that scenario's index;
- `examples`: one input `examples`, a string tensor `[batch]` of serialized
  `tf.Example` protos, parsed inside the graph (see `kmtl.export.examples`).

An `Endpoint` pairs each signature's function with how a batch of raw
features becomes its request and which inputs the Keras model sees for it,
so export checks, warmup requests and tests treat every signature alike.

What a bad request gets (see `kmtl.export.checks` and `kmtl.export.wire`):

- a raw-feature input of another rank or trailing shape, or inputs of
  different batch sizes: an `InvalidArgument` from checks in the graph,
  before the model runs, naming the signature, the input(s), the expected
  shape and the received one;
- an input of another dtype: refused by TensorFlow at the signature's
  boundary, before any graph runs, with a message that names the input by
  position only (a signature has one dtype per input; nothing in the graph
  can change this). Convert requests with `check_inputs` (or send them
  with `kmtl.serving.Client` and the model's spec): a `ValueError` names
  the feature;
- to `examples`, a row that is not a serialized `tf.Example`: an
  `InvalidArgument` naming the signature and the rows; a missing or
  mistyped feature: TF's `InvalidArgument` naming the feature and the row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

import keras
import numpy as np

from kmtl.export.checks import assert_inputs
from kmtl.export.examples import EXAMPLES_KEY
from kmtl.export.examples import parse_examples
from kmtl.export.examples import serialize_examples
from kmtl.features.inputs import missing_inputs
from kmtl.features.spec import FeatureSpec

if TYPE_CHECKING:
    import tensorflow as tf

SIGNATURE_KEY = "serving_default"
"""The signature TF Serving runs when a request names none."""

SCENARIO_PREFIX = "scenario_"
"""Prefix of the per-scenario signatures: `scenario_<value>`."""


def scenario_signature_key(value: str) -> str:
    """The signature name of a scenario value: `"scenario_" + value`.

    Args:
        value: str. A name from `ScenarioSpec.values`.

    Returns:
        The signature key, e.g. `"scenario_home"`.
    """
    return f"{SCENARIO_PREFIX}{value}"


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One signature: its function, inputs, and request of a raw batch.

    Attributes:
        name: str. The signature key.
        function: callable. Takes the signature's inputs (a dict, or the
            string tensor of `examples`) and returns `{task: tensor}`.
        input_signature: dict name -> `tf.TensorSpec`, or one
            `tf.TensorSpec` for `examples`.
        request: callable. Raw feature batch (dict of arrays) -> the
            signature's inputs for the same rows (dict of arrays).
        model_inputs: callable. Raw feature batch -> what the Keras model
            sees when the signature serves that batch.
    """

    name: str
    function: Callable[[Any], dict[str, Any]]
    input_signature: Any
    request: Callable[[Mapping[str, Any]], dict[str, np.ndarray]]
    model_inputs: Callable[[Mapping[str, Any]], dict[str, Any]]


def endpoints(
    model: keras.Model,
    signature: Mapping[str, tf.TensorSpec],
    spec: FeatureSpec | None = None,
) -> dict[str, Endpoint]:
    """Returns the serving endpoints of a model, keyed by signature name.

    Args:
        model: keras.Model. A functional model with dict inputs and outputs.
        signature: dict name -> `tf.TensorSpec`. The model inputs
            (`serving_input_signature(model)`).
        spec: FeatureSpec or None. With a scenario, adds one signature per
            scenario value; marks sequences for `examples`. Defaults to
            `None`: `serving_default` and `examples` only.

    Returns:
        dict name -> `Endpoint`: `serving_default`, then `scenario_<value>`
        in scenario-index order, then `examples`.

    Example:

    ```python
    eps = endpoints(model, serving_input_signature(model), spec)
    list(eps)  # ['serving_default', 'scenario_home', ..., 'examples']
    ```
    """
    import tensorflow as tf

    signature = dict(signature)
    bias = {
        name: signature.pop(name)
        for name in (spec.bias_names if spec is not None else ())
        if name in signature
    }

    def predict(features):
        filled = _missing_inputs(bias, tf.shape(next(iter(features.values()))))
        return dict(model({**features, **filled}, training=False))

    def serve(features):
        return predict(assert_inputs(features, signature, SIGNATURE_KEY))

    def request(features):  # what a client sends: no bias feature
        return {k: v for k, v in _as_arrays(features).items() if k not in bias}

    def model_inputs(features):  # what the model sees: bias ones missing
        arrays = request(features)
        rows = len(next(iter(arrays.values())))
        return {**arrays, **missing_inputs(spec, list(bias), rows)}

    result = {
        SIGNATURE_KEY: Endpoint(
            SIGNATURE_KEY, serve, signature, request, model_inputs
        )
    }
    scenario = spec.scenario if spec is not None else None
    if scenario is not None:
        for index, value in enumerate(scenario.values):
            name = scenario_signature_key(value)
            result[name] = _scenario_endpoint(
                predict, signature, scenario.name, index, name, model_inputs
            )

    def serve_examples(examples):  # parsed inputs have the right shapes
        return predict(parse_examples(examples, signature, spec))

    def examples_request(features):
        protos = serialize_examples(request(features), spec)
        return {EXAMPLES_KEY: np.asarray(protos, dtype=object)}

    result[EXAMPLES_KEY] = Endpoint(
        EXAMPLES_KEY,
        serve_examples,
        tf.TensorSpec([None], tf.string, name=EXAMPLES_KEY),
        examples_request,
        model_inputs,
    )
    return result


def _missing_value(dtype: tf.DType) -> Any:
    """What a missing raw value of `dtype` is: `""`, NaN or id -1 (as
    `kmtl.data.features_from_dataframe` writes them)."""
    if dtype.name == "string":
        return ""
    return np.nan if dtype.is_floating else -1


def _missing_inputs(inputs: Mapping[str, Any], batch: Any) -> dict[str, Any]:
    """In-graph inputs of `batch` rows holding missing values: how the
    signatures send the bias features they do not take."""
    import tensorflow as tf

    return {
        name: tf.fill(
            tf.concat(
                [batch[:1], tf.constant(list(s.shape[1:]), tf.int32)], axis=0
            ),
            tf.constant(_missing_value(s.dtype), s.dtype),
        )
        for name, s in inputs.items()
    }


def _scenario_endpoint(
    predict: Callable[[dict[str, Any]], dict[str, Any]],
    signature: dict[str, tf.TensorSpec],
    column: str,
    index: int,
    name: str,
    model_inputs: Callable[[Mapping[str, Any]], dict[str, Any]],
) -> Endpoint:
    """An endpoint that serves scenario `index` with `column` removed.

    Args:
        predict: the model on a full input dict (bias features filled).
        signature: the inputs of `serving_default`.
        column: the scenario column.
        index: the scenario index the endpoint serves.
        name: its signature key.
        model_inputs: `serving_default`'s raw batch -> model inputs.
    """
    import tensorflow as tf

    column_spec = signature[column]
    others = {k: v for k, v in signature.items() if k != column}
    if not others:
        raise ValueError(
            f"The scenario column {column!r} is the model's only input; a "
            "scenario signature would take no input to size the batch."
        )
    trailing = list(column_spec.shape[1:])

    def serve(features):
        features = assert_inputs(features, others, name)
        batch = tf.shape(next(iter(features.values())))[:1]
        filled = tf.fill(
            tf.concat([batch, tf.constant(trailing, tf.int32)], axis=0),
            tf.constant(index, column_spec.dtype),
        )
        return predict({**features, column: filled})

    def request(features):
        inputs = model_inputs(features)
        return {k: inputs[k] for k in others}

    def scenario_inputs(features):
        arrays = model_inputs(features)
        rows = len(next(iter(arrays.values())))
        shape = (rows, *trailing)
        dtype = column_spec.dtype.as_numpy_dtype
        return {**arrays, column: np.full(shape, index, dtype=dtype)}

    return Endpoint(name, serve, others, request, scenario_inputs)


def _as_arrays(features: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {name: np.asarray(value) for name, value in features.items()}
