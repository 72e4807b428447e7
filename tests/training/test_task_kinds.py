"""Every task kind trains and evaluates with its default loss and metrics,
and messy inputs (missing numericals) train to finite weights."""

import numpy as np
import pandas as pd
import pytest

import kmtl

TASKS = {
    "binary": kmtl.TaskSpec("t", label="y"),
    "regression": kmtl.TaskSpec("t", label="y", kind="regression"),
    "multiclass": kmtl.TaskSpec(
        "t", label="y", kind="multiclass", num_classes=3
    ),
}


def _frame(kind, rows=64, seed=0):
    rng = np.random.default_rng(seed)
    y = {
        "binary": rng.integers(0, 2, rows),
        "regression": rng.normal(size=rows),
        "multiclass": rng.integers(0, 3, rows),
    }[kind]
    return pd.DataFrame(
        {
            "item": rng.integers(0, 10, rows),
            "price": rng.normal(5.0, 2.0, rows),
            "y": y,
        }
    )


def _spec(task):
    return kmtl.FeatureSpec(
        features=[
            kmtl.CategoricalFeature("item", vocabulary_size=10),
            kmtl.NumericalFeature("price", mean=5.0, variance=4.0),
        ],
        tasks=[task],
        embedding_dim=4,
    )


@pytest.mark.parametrize("kind", sorted(TASKS))
def test_default_metrics_train_and_evaluate(kind):
    spec = _spec(TASKS[kind])
    df = _frame(kind)
    model = kmtl.build(
        "shared_bottom", spec, bottom_units=(8,), tower_units=(4,)
    )
    ds = kmtl.data.to_dataset(df, spec, batch_size=16)
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    results = model.evaluate(ds, verbose=0, return_dict=True)
    assert all(np.isfinite(v) for v in results.values()), results
    assert len(results) > 1  # the loss and the task's default metric(s)
    # The metrics measure the right thing (no [B] vs [B, 1] broadcasting).
    p = model.predict(ds, verbose=0)["t"]
    y = df["y"].to_numpy()
    if kind == "regression":
        mae = np.abs(p[:, 0] - y).mean()
        assert results["mean_absolute_error"] == pytest.approx(mae, rel=1e-5)
    if kind == "multiclass":
        accuracy = (p.argmax(axis=1) == y).mean()
        assert results["accuracy"] == pytest.approx(accuracy)
    kmtl.evaluate(model, df)  # per-task figures (binary tasks only)


def test_missing_numericals_train_to_finite_weights():
    df = _frame("binary", rows=512)
    df.loc[::97, "price"] = np.nan
    spec = kmtl.FeatureSpec.from_dataframe(df, labels={"t": "y"})
    model = kmtl.build(
        "shared_bottom", spec, bottom_units=(8,), tower_units=(4,)
    )
    model.fit(
        kmtl.data.to_dataset(df, spec, batch_size=64), epochs=1, verbose=0
    )
    assert all(np.isfinite(w).all() for w in model.get_weights())
    ds = kmtl.data.to_dataset(df, spec, with_labels=False)
    predictions = model.predict(ds, verbose=0)["t"]
    assert np.isfinite(predictions).all()
    assert predictions.std() > 0


def test_metric_names_follow_the_task_kind():
    import keras

    from kmtl.training.compile import metric

    multiclass, binary = TASKS["multiclass"], TASKS["binary"]
    assert isinstance(
        metric("accuracy", multiclass), keras.metrics.SparseCategoricalAccuracy
    )
    assert isinstance(metric("accuracy", binary), keras.metrics.BinaryAccuracy)
    assert isinstance(
        metric("logloss", multiclass),
        keras.metrics.SparseCategoricalCrossentropy,
    )
    with pytest.raises(ValueError, match="'auc' is for binary tasks"):
        metric("auc", multiclass)
