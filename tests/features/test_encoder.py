import keras
import numpy as np
import pytest

import kmtl
from kmtl.features.encoder import FeatureEncoder
from kmtl.features.spec import CategoricalFeature
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import NumericalFeature
from kmtl.features.spec import ScenarioSpec
from kmtl.features.spec import SequenceFeature
from kmtl.features.spec import TaskSpec

SPEC = FeatureSpec(
    features=[
        CategoricalFeature("item", vocabulary_size=4),
        CategoricalFeature("city", vocabulary=["paris", "lyon"]),
        CategoricalFeature("query", hash_bins=8, dtype="string"),
        NumericalFeature("price", mean=2.0, variance=4.0),
        NumericalFeature("dense", dim=2),
        SequenceFeature("clicked", max_length=3, shared_with="item"),
    ],
    tasks=[TaskSpec("ctr", label="click")],
    scenario=ScenarioSpec("domain", values=["a", "b"]),
    embedding_dim=4,
)


def _batch():
    return {
        "item": np.array([0, 3, 4, -7]),
        "city": np.array(["paris", "lyon", "berlin", ""], object),
        "query": np.array(["x", "y", "x", "z"], object),
        "price": np.array([2.0, 4.0, 0.0, 6.0], "float32"),
        "dense": np.ones((4, 2), "float32"),
        "clicked": np.array([[0, 1, -1], [-1, -1, -1], [3, 3, 9], [2, -1, -1]]),
        "domain": np.array([0, 1, 1, 0]),
    }


def _model():
    x = kmtl.inputs(SPEC)
    return keras.Model(x, FeatureEncoder(SPEC, name="enc")(x))


def test_shapes_and_normalisation():
    out = _model().predict(_batch(), verbose=0)
    assert out["fields"].shape == (4, 4, 4)
    np.testing.assert_allclose(
        out["dense"][:, 0], [0.0, 1.0, -1.0, 2.0], atol=1e-6
    )
    np.testing.assert_array_equal(out["scenario"], [0, 1, 1, 0])


def test_out_of_vocabulary_values_share_the_oov_row():
    model = _model()
    table = model.get_layer("enc").embeddings.numpy()
    fields = model.predict(_batch(), verbose=0)["fields"]
    # item 4 and -7 are out of [0, 4): both read the OOV row 4.
    np.testing.assert_allclose(fields[2, 0], table[4])
    np.testing.assert_allclose(fields[3, 0], table[4])
    # "berlin" and "" are unknown cities: the city slice's OOV row.
    np.testing.assert_allclose(fields[2, 1], fields[3, 1])
    assert not np.allclose(fields[0, 1], fields[2, 1])


def test_sequences_are_mean_pooled_over_non_padding_with_shared_rows():
    model = _model()
    table = model.get_layer("enc").embeddings.numpy()
    fields = model.predict(_batch(), verbose=0)["fields"]
    np.testing.assert_allclose(
        fields[0, 3], (table[0] + table[1]) / 2, rtol=1e-6
    )
    np.testing.assert_allclose(fields[1, 3], np.zeros(4))  # empty list
    # 9 is out of range for "item": the OOV row, averaged with two 3s.
    np.testing.assert_allclose(
        fields[2, 3], (2 * table[3] + table[4]) / 3, rtol=1e-5
    )


def test_out_of_range_scenario_fails_naming_the_column():
    batch = _batch()
    batch["domain"] = np.array([0, 1, 2, 0])
    with pytest.raises(
        Exception, match=r"Scenario column domain must hold ids in \[0, 2\)"
    ):
        _model().predict(batch, verbose=0)


def test_config_round_trip_and_keras_file(tmp_path):
    layer = FeatureEncoder(SPEC)
    config = layer.get_config()
    again = FeatureEncoder.from_config(config)
    assert again.get_config() == config
    assert again.spec == SPEC
    model = _model()
    path = tmp_path / "enc.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    a = model.predict(_batch(), verbose=0)
    b = loaded.predict(_batch(), verbose=0)
    for x, y in zip(keras.tree.flatten(a), keras.tree.flatten(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_missing_input_is_named():
    layer = FeatureEncoder(SPEC)
    batch = _batch()
    del batch["price"]
    with pytest.raises(
        ValueError, match=r"missing input feature\(s\) \['price'\]"
    ):
        layer(batch)


def test_scenario_levels_are_checked_ids():
    spec = SPEC.replace(
        scenario=ScenarioSpec("domain", ["a", "b"], {"country": ["us", "fr"]})
    )
    x = kmtl.inputs(spec)
    model = keras.Model(x, FeatureEncoder(spec)(x))
    batch = dict(_batch(), country=np.array([1, 0, 1, 1]))
    out = model.predict(batch, verbose=0)
    np.testing.assert_array_equal(out["levels"], [[1], [0], [1], [1]])
    batch["country"] = np.array([1, 0, 2, 1])
    with pytest.raises(
        Exception, match=r"Scenario column country must hold ids in \[0, 2\)"
    ):
        model.predict(batch, verbose=0)


# --- issue 16: missing numericals, 64-bit ids, task kinds in .keras ------


def test_missing_numericals_are_filled_with_the_mean_and_masked():
    batch = _batch()
    batch["price"] = np.array([np.nan, 4.0, np.inf, -np.inf], "float32")
    batch["dense"] = np.array(
        [[1.0, np.nan], [2.0, 3.0], [np.nan, np.nan], [5.0, 6.0]], "float32"
    )
    out = _model().predict(batch, verbose=0)
    # price is normalised (mean 2, variance 4): missing -> mean -> 0.
    np.testing.assert_array_equal(
        out["dense"],
        [[0.0, 1.0, 0.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [0.0, 5.0, 6.0]],
    )
    np.testing.assert_array_equal(
        out["dense_mask"],
        [[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 1.0]],
    )
    assert out["dense_mask"].dtype == np.float32


def test_dense_mask_is_in_the_symbolic_output():
    encoded = FeatureEncoder(SPEC)(kmtl.inputs(SPEC))
    assert set(encoded) == {
        "fields",
        "dense",
        "dense_mask",
        "scenario",
        "sequences",
        "sequence_masks",
    }
    assert encoded["dense_mask"].shape == (None, 3)
    spec = SPEC.replace(features=SPEC.features[:3])
    assert "dense_mask" not in FeatureEncoder(spec)(kmtl.inputs(spec))


def _serve(layer, **columns):
    """Calls the encoder eagerly on int64 tensors, as a served model is."""
    import tensorflow as tf

    batch = {k: tf.constant(v) for k, v in _batch().items()}
    batch.update({k: tf.constant(v, tf.int64) for k, v in columns.items()})
    return layer(batch)


def test_64_bit_ids_are_out_of_vocabulary():
    layer = FeatureEncoder(SPEC)
    ids = [3, 2**32 + 3, 2**40, -(2**32) + 1]
    out = _serve(
        layer,
        item=ids,
        clicked=[[3, 2**32 + 3, -1]] * 4,
    )
    table = layer.embeddings.numpy()
    fields = out["fields"].numpy()
    np.testing.assert_allclose(fields[0, 0], table[3])
    for row in (1, 2, 3):  # item has 4 ids; row 4 is its OOV row
        np.testing.assert_allclose(fields[row, 0], table[4])
    np.testing.assert_allclose(
        fields[0, 3], (table[3] + table[4]) / 2, rtol=1e-6
    )


def test_64_bit_scenario_id_is_an_error_not_scenario_1():
    with pytest.raises(Exception, match="Scenario column domain must hold"):
        _serve(FeatureEncoder(SPEC), domain=[0, 1, 2**32 + 1, 0])


def test_integer_hashing_uses_the_whole_id():
    spec = FeatureSpec(
        [CategoricalFeature("user", hash_bins=2**20)],
        [TaskSpec("ctr")],
        embedding_dim=2,
    )
    layer = FeatureEncoder(spec)
    import tensorflow as tf

    ids = [3, 2**32 + 3, 2**40, 3]
    fields = layer({"user": tf.constant(ids, tf.int64)})["fields"].numpy()
    np.testing.assert_array_equal(fields[0], fields[3])
    assert not np.allclose(fields[0], fields[1])
    assert not np.allclose(fields[1], fields[2])


def test_every_task_kind_survives_the_keras_file(tmp_path):
    spec = SPEC.replace(
        tasks=[
            TaskSpec("ctr", label="click"),
            TaskSpec("time", kind="regression"),
            TaskSpec("stars", kind="multiclass", num_classes=3),
        ]
    )
    x = kmtl.inputs(spec)
    model = keras.Model(x, FeatureEncoder(spec, name="enc")(x))
    path = tmp_path / "enc.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.get_layer("enc").spec == spec


def test_sequences_come_unpooled_with_their_mask():
    model = _model()
    table = model.get_layer("enc").embeddings.numpy()
    out = model.predict(_batch(), verbose=0)
    steps, mask = out["sequences"]["clicked"], out["sequence_masks"]["clicked"]
    assert steps.shape == (4, 3, 4)
    np.testing.assert_array_equal(
        mask, [[1, 1, 0], [0, 0, 0], [1, 1, 1], [1, 0, 0]]
    )
    # Row 2 holds ids 3, 3 and 9 (out of range: the OOV row 4) of `item`.
    np.testing.assert_allclose(steps[2], table[[3, 3, 4]], atol=1e-6)
    # The pooled field is the masked mean of the steps.
    pooled = (steps * mask[..., None]).sum(1) / np.maximum(mask.sum(1), 1)[
        :, None
    ]
    np.testing.assert_allclose(out["fields"][:, 3], pooled, atol=1e-6)


BIAS_SPEC = FeatureSpec(
    features=[
        CategoricalFeature("item", vocabulary_size=4),
        CategoricalFeature("position", vocabulary_size=5, bias=True),
        CategoricalFeature("device", vocabulary=["ios", "web"], bias=True),
        NumericalFeature("price"),
        NumericalFeature("dwell", bias=True),
    ],
    tasks=[TaskSpec("ctr", label="click")],
    embedding_dim=3,
)


def test_bias_features_are_kept_apart_with_their_presence():
    x = kmtl.inputs(BIAS_SPEC)
    model = keras.Model(x, FeatureEncoder(BIAS_SPEC, name="enc")(x))
    out = model.predict(
        {
            "item": np.array([1, 2, 3]),
            "position": np.array([0, -1, 4]),
            "device": np.array(["ios", "web", ""], object),
            "price": np.array([1.0, 2.0, 3.0], "float32"),
            "dwell": np.array([0.5, 1.0, 2.0], "float32"),
        },
        verbose=0,
    )
    # Only `item` and `price` reach the fields and the dense vector.
    assert out["fields"].shape == (3, 1, 3)
    assert out["dense"].shape == (3, 1)
    assert out["bias_fields"].shape == (3, 2, 3)
    np.testing.assert_allclose(out["bias_dense"][:, 0], [0.5, 1.0, 2.0])
    # Row 1 lacks its position, row 2 its device.
    np.testing.assert_array_equal(out["bias_present"][:, 0], [1, 0, 0])
    assert "position" not in BIAS_SPEC.serving_input_names
    assert BIAS_SPEC.bias_names == ["position", "device", "dwell"]
