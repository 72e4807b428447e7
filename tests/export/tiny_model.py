"""A tiny kmtl model that covers every kind of raw input: int ids, a
string vocabulary, hashed strings, scalar and vector numericals, int and
string sequences, and a scenario column that is also embedded."""

import keras
import numpy as np
import tensorflow as tf

import kmtl
from kmtl.export import synthetic_rows

SCENARIOS = ("home", "search", "cart")
TASKS = ("ctr", "cvr")


def tiny_spec() -> kmtl.FeatureSpec:
    return kmtl.FeatureSpec(
        features=[
            kmtl.CategoricalFeature("user_id", vocabulary_size=50),
            kmtl.CategoricalFeature("country", vocabulary=["us", "fr", "de"]),
            kmtl.CategoricalFeature("query", hash_bins=16, dtype="string"),
            kmtl.CategoricalFeature("scenario", vocabulary_size=3),
            kmtl.NumericalFeature("price", mean=10.0, variance=4.0),
            kmtl.NumericalFeature("dense", dim=3),
            kmtl.SequenceFeature(
                "clicked", max_length=4, shared_with="user_id"
            ),
            kmtl.SequenceFeature("tags", max_length=3, vocabulary=["a", "b"]),
        ],
        tasks=[
            kmtl.TaskSpec("ctr", label="click"),
            kmtl.TaskSpec("cvr", label="buy", sample_space="ctr"),
        ],
        scenario=kmtl.ScenarioSpec("scenario", values=SCENARIOS),
        embedding_dim=4,
    )


def tiny_model(spec: kmtl.FeatureSpec) -> keras.Model:
    """MMoE on `spec`, trained a few steps so that the weights (scenario
    embeddings included) are not their initial values."""
    keras.utils.set_random_seed(0)
    model = kmtl.build(
        "mmoe", spec, num_experts=2, expert_units=(8,), tower_units=(4,)
    )
    rows = synthetic_rows(spec, 64, seed=1)
    labels = {
        "ctr": (rows["price"] > 10).astype("float32"),
        "cvr": (rows["scenario"] == 1).astype("float32"),
    }
    dataset = tf.data.Dataset.from_tensor_slices((rows, labels)).batch(16)
    model.fit(dataset, epochs=2, shuffle=False, verbose=0)
    return model


def predict(model: keras.Model, features: dict) -> dict[str, np.ndarray]:
    """The Keras model's predictions on raw features (strings as bytes or
    str object arrays)."""
    tensors = {name: tf.constant(value) for name, value in features.items()}
    return {
        name: np.asarray(value)
        for name, value in model(tensors, training=False).items()
    }


def assert_same(served: dict, expected: dict, atol: float = 1e-5) -> None:
    assert sorted(served) == sorted(expected)
    for task, value in expected.items():
        assert np.shape(served[task]) == value.shape, task
        np.testing.assert_allclose(served[task], value, rtol=0, atol=atol)
