"""The serving contract: exact SignatureDefs, and parity of every signature
run through TF's session loader (as TF Serving runs it) with Keras."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

import kmtl
from kmtl.export import endpoints
from kmtl.export import export
from kmtl.export import feature_description
from kmtl.export import find_spec
from kmtl.export import load_spec
from kmtl.export import serialize_examples
from kmtl.export import serving_input_signature
from kmtl.export import synthetic_rows
from tests.export.session_loader import SessionModel
from tests.export.tiny_model import SCENARIOS
from tests.export.tiny_model import assert_same
from tests.export.tiny_model import predict

RAW_INPUTS = {
    "user_id": ("DT_INT64", [-1]),
    "country": ("DT_STRING", [-1]),
    "query": ("DT_STRING", [-1]),
    "scenario": ("DT_INT64", [-1]),
    "price": ("DT_FLOAT", [-1]),
    "dense": ("DT_FLOAT", [-1, 3]),
    "clicked": ("DT_INT64", [-1, 4]),
    "tags": ("DT_STRING", [-1, 3]),
}
OUTPUTS = {"ctr": ("DT_FLOAT", [-1, 1]), "cvr": ("DT_FLOAT", [-1, 1])}


def _signature_defs(path):
    """{name: (method, {input: (dtype, shape)}, {output: (dtype, shape)})}
    of every signature of a SavedModel, from its `saved_model.pb`."""
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    (meta_graph,) = proto.meta_graphs
    assert list(meta_graph.meta_info_def.tags) == ["serve"]

    def tensors(infos):
        return {
            key: (
                types_pb2.DataType.Name(info.dtype),
                [d.size for d in info.tensor_shape.dim],
            )
            for key, info in infos.items()
        }

    return {
        name: (
            signature.method_name,
            tensors(signature.inputs),
            tensors(signature.outputs),
        )
        for name, signature in meta_graph.signature_def.items()
        if not name.startswith("__")
    }


def _expected_defs():
    predict_method = "tensorflow/serving/predict"
    without_scenario = {k: v for k, v in RAW_INPUTS.items() if k != "scenario"}
    defs = {"serving_default": (predict_method, RAW_INPUTS, OUTPUTS)}
    for value in SCENARIOS:
        defs[f"scenario_{value}"] = (predict_method, without_scenario, OUTPUTS)
    examples = {"examples": ("DT_STRING", [-1])}
    defs["examples"] = (predict_method, examples, OUTPUTS)
    return defs


def test_signature_defs_are_exactly_the_contract(kmtl_exported):
    assert _signature_defs(kmtl_exported) == _expected_defs()


@pytest.fixture(scope="module")
def session(kmtl_exported):
    loaded = SessionModel(kmtl_exported)
    yield loaded
    loaded.close()


@pytest.mark.parametrize("rows, seed", [(1, 3), (33, 4)])
def test_every_signature_matches_keras_in_a_session(
    kmtl_model, kmtl_spec, session, rows, seed
):
    features = synthetic_rows(kmtl_spec, rows, seed=seed)
    served_by = endpoints(
        kmtl_model, serving_input_signature(kmtl_model), kmtl_spec
    )
    assert sorted(served_by) == sorted(session.signature_defs)
    for name, endpoint in served_by.items():
        served = session.run(name, endpoint.request(features))
        expected = predict(kmtl_model, endpoint.model_inputs(features))
        assert_same(served, expected)


def test_scenario_signatures_route_to_their_scenario(
    kmtl_model, kmtl_spec, session
):
    features = synthetic_rows(kmtl_spec, 6, seed=5)
    without = {k: v for k, v in features.items() if k != "scenario"}
    by_scenario = []
    for index, value in enumerate(SCENARIOS):
        served = session.run(f"scenario_{value}", without)
        fixed = {**features, "scenario": np.full(6, index, "int64")}
        assert_same(served, predict(kmtl_model, fixed))
        assert_same(served, session.run("serving_default", fixed))
        by_scenario.append(served["ctr"])
    # The scenario changes the predictions: routing is not a no-op.
    assert not np.allclose(by_scenario[0], by_scenario[1], atol=1e-4)


def _protos(*examples):
    """Serialized protos as an object array: NumPy's fixed-width bytes
    dtype would drop a proto's trailing NUL bytes (and map fields make the
    serialized bytes differ between processes)."""
    return np.array([e.SerializeToString() for e in examples], dtype=object)


def test_examples_parse_padding_truncation_and_missing_sequences(
    kmtl_model, kmtl_spec, session
):
    features = synthetic_rows(kmtl_spec, 3, seed=6)
    features["clicked"][0] = [7, -1, -1, -1]
    features["clicked"][1] = [-1, -1, -1, -1]
    features["tags"][2] = ["a", "b", "zz"]
    protos = serialize_examples(features, kmtl_spec)
    served = session.run("examples", {"examples": np.array(protos, object)})
    assert_same(served, predict(kmtl_model, features))

    # A list longer than max_length is truncated, as kmtl.data pads.
    example = tf.train.Example.FromString(protos[0])
    assert list(example.features.feature["clicked"].int64_list.value) == [7]
    example.features.feature["clicked"].int64_list.value[:] = [7, 1, 2, 3, 9]
    truncated = {k: v[:1].copy() for k, v in features.items()}
    truncated["clicked"][0] = [7, 1, 2, 3]
    served = session.run("examples", {"examples": _protos(example)})
    assert_same(served, predict(kmtl_model, truncated))


def test_example_missing_a_required_feature_names_it(kmtl_spec, session):
    features = synthetic_rows(kmtl_spec, 1, seed=7)
    example = tf.train.Example.FromString(
        serialize_examples(features, kmtl_spec)[0]
    )
    del example.features.feature["country"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="country"):
        session.run("examples", {"examples": _protos(example)})


def test_example_without_a_numerical_serves_it_as_missing(kmtl_spec, session):
    features = synthetic_rows(kmtl_spec, 1, seed=7)
    example = tf.train.Example.FromString(
        serialize_examples(features, kmtl_spec)[0]
    )
    del example.features.feature["price"]
    served = session.run("examples", {"examples": _protos(example)})
    missing = {**features, "price": np.full_like(features["price"], np.nan)}
    assert_same(served, session.run("serving_default", missing))
    assert not np.allclose(
        served["ctr"], session.run("serving_default", features)["ctr"]
    )


def test_feature_description_follows_the_spec(kmtl_model, kmtl_spec):
    description = feature_description(
        serving_input_signature(kmtl_model), kmtl_spec
    )
    # A numerical may be absent from an example: it is parsed as missing.
    nan = np.float32(np.nan)
    assert description["price"] == tf.io.FixedLenFeature(
        [], tf.float32, default_value=description["price"].default_value
    )
    assert np.isnan(description["price"].default_value)
    assert np.array_equal(
        description["dense"].default_value, [nan] * 3, equal_nan=True
    )
    assert description["country"] == tf.io.FixedLenFeature([], tf.string)
    assert description["clicked"] == tf.io.RaggedFeature(tf.int64)
    assert description["tags"] == tf.io.RaggedFeature(tf.string)
    # Without a spec every input is a required fixed-length feature.
    plain = feature_description(serving_input_signature(kmtl_model))
    assert plain["clicked"] == tf.io.FixedLenFeature([4], tf.int64)


def test_unknown_categorical_values_are_served_as_oov(
    kmtl_model, kmtl_spec, session
):
    features = synthetic_rows(kmtl_spec, 4, seed=8)
    features["country"][:] = ["us", "never-seen", "also-unseen", "us"]
    features["user_id"][:] = [3, 999, -5, 3]
    features["tags"][1] = ["nope", "", ""]
    served = session.run("serving_default", features)
    assert_same(served, predict(kmtl_model, features))
    assert np.all(np.isfinite(served["ctr"]))
    # Every unseen value lands in the same OOV row: rows 1 and 2 differ only
    # in which unseen country / out-of-range id they hold.
    same = {k: v.copy() for k, v in features.items()}
    for name in same:
        if name not in ("country", "user_id"):
            same[name][2] = same[name][1]
    served = session.run("serving_default", same)
    np.testing.assert_array_equal(served["ctr"][1], served["ctr"][2])


def test_out_of_range_scenario_is_invalid_argument(kmtl_spec, session):
    features = synthetic_rows(kmtl_spec, 3, seed=9)
    features["scenario"][:] = [0, 3, 1]
    with pytest.raises(tf.errors.InvalidArgumentError, match="scenario"):
        session.run("serving_default", features)


def test_spec_is_found_and_written_beside_the_model(
    kmtl_model, kmtl_spec, kmtl_exported
):
    assert find_spec(kmtl_model) == kmtl_spec
    assert load_spec(kmtl_exported) == kmtl_spec


def test_spec_that_disagrees_with_the_inputs_is_named(kmtl_model, tmp_path):
    other = kmtl.FeatureSpec(
        features=[kmtl.CategoricalFeature("user_id", vocabulary_size=5)],
        tasks=[kmtl.TaskSpec("ctr", label="click")],
    )
    with pytest.raises(ValueError, match="the model takes .*'country'"):
        export(kmtl_model, tmp_path / "m", spec=other)
    changed = find_spec(kmtl_model).replace(
        features=[
            kmtl.NumericalFeature("dense", dim=4) if f.name == "dense" else f
            for f in find_spec(kmtl_model).features
        ]
    )
    with pytest.raises(ValueError, match=r"'dense'.*\(4,\).*\(3,\)"):
        export(kmtl_model, tmp_path / "m", spec=changed)
    assert not (tmp_path / "m").exists()


def test_dataframe_sample_is_converted_with_the_spec(
    kmtl_model, kmtl_spec, tmp_path
):
    rows = synthetic_rows(kmtl_spec, 5, seed=10)
    frame = pd.DataFrame(
        {
            name: list(value) if value.ndim > 1 else value
            for name, value in rows.items()
        }
    )
    frame["clicked"] = [[int(i) for i in r if i >= 0] for r in rows["clicked"]]
    path = export(kmtl_model, tmp_path / "m", sample=frame)
    assert path.name == "1"
