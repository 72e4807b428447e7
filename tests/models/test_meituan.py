"""Meituan's model: the battery, its three outputs, and what the KL bound
does to their consistency."""

import keras
import numpy as np
import pytest

import kmtl
from kmtl.data import features_from_dataframe
from kmtl.data import to_dataset
from kmtl.data.missing_values import make_missing_not_at_random
from kmtl.features.spec import TaskSpec
from kmtl.testing import run_model_test

TINY = dict(bottom_units=(8,), tower_units=(4,))


@pytest.fixture(scope="module")
def data():
    df, _ = make_missing_not_at_random(3000, seed=4)
    spec = kmtl.FeatureSpec.from_dataframe(
        df,
        {"ctr": "click", "cvr": "conversion"},
        sample_spaces={"cvr": "ctr"},
        embedding_dim=4,
    )
    return df, spec


def test_model_battery(data):
    df, spec = data
    run_model_test(
        "meituan",
        df,
        spec,
        TINY,
        bad_hparams=[
            (dict(kl_weight=-1.0), "`kl_weight`"),
            (dict(order_name="cvr"), "already has a task 'cvr'"),
        ],
        bad_specs=[
            (dict(tasks=[TaskSpec("ctr", "click")]), "exactly two tasks")
        ],
    )


def test_outputs_and_losses(data):
    _, spec = data
    tasks = kmtl.model_tasks("meituan", spec)
    assert [t.name for t in tasks] == ["ctr", "cvr", "order"]
    assert tasks[1].sample_space == "ctr" and tasks[1].weight == 1.0
    assert tasks[2].label_columns == ("click", "conversion")
    assert sorted(kmtl.compile_args(tasks)["loss"]) == ["ctr", "cvr", "order"]


def _consistency_gap(df, spec, kl_weight):
    keras.utils.set_random_seed(0)
    model = kmtl.build("meituan", spec, kl_weight=kl_weight, **TINY)
    model.fit(to_dataset(df, spec, batch_size=128), epochs=3, verbose=0)
    p = model.predict(features_from_dataframe(df, spec), verbose=0)
    return np.mean(np.abs(p["order"] - p["ctr"] * p["cvr"]))


@pytest.mark.slow
def test_the_kl_bound_makes_the_outputs_consistent(data):
    df, spec = data
    free, bound = (
        _consistency_gap(df, spec, 0.0),
        _consistency_gap(df, spec, 5.0),
    )
    assert bound < 0.6 * free, (free, bound)
