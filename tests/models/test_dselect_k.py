"""DSelect-k: the battery, DSelect-k as HiNet's task switcher, and the
oracle AUC (slow)."""

import keras
import numpy as np
import pytest

import kmtl
from kmtl.data import make_synthetic
from kmtl.data import to_dataset
from kmtl.data.synthetic import true_probabilities
from kmtl.testing import raw_tensors
from kmtl.testing import synthetic_spec
from kmtl.training.metrics import evaluate_predictions

TINY = dict(num_experts=3, num_selectors=2, expert_units=(8,), tower_units=(4,))
BAD = [
    (dict(num_selectors=4), "`num_selectors` must be at most"),
    (dict(num_selectors=0), "`num_selectors`.*num_selectors=0"),
    (dict(gamma=0.0), "`gamma`"),
    (dict(per_example="yes"), "`per_example`"),
]


def test_model_battery(model_battery):
    model_battery("dselect_k", TINY, bad_hparams=BAD)


@pytest.mark.slow
def test_model_battery_static(model_battery):
    model_battery("dselect_k", {**TINY, "per_example": False})


def test_hinet_takes_dselect_k_as_its_task_switcher(synthetic_small):
    df, _, spec = synthetic_small
    model = kmtl.build(
        "hinet",
        spec,
        expert_units=(8,),
        task_expert_units=(8,),
        tower_units=(4,),
        task_switcher="dselect_k",
    )
    layer = model.get_layer("task_extraction")
    assert isinstance(layer, kmtl.layers.DSelectKLayer)
    # HiNet's budget (2 shared + 2 per task) pooled into 6 experts: not a
    # power of 2, so both regularisers are added in training.
    assert layer.num_experts == 6
    features = raw_tensors(df[:64], spec)
    served = model.predict_on_batch(features)
    assert sorted(served) == ["ctr", "cvr"]
    trained = model(features, training=True)
    assert len(model.losses) == 2
    # The gate is deterministic: training only adds the losses.
    np.testing.assert_allclose(
        served["ctr"], keras.ops.convert_to_numpy(trained["ctr"]), atol=1e-6
    )


# === Learning (slow) ===

# As tests/models/test_learning.py: CTR within 0.02 of the oracle AUC,
# CVR (trained on ~21k clicked rows) within 0.025, after 3 epochs on 100k
# rows.
MARGIN = {"ctr": 0.02, "cvr": 0.025}
SMALL = dict(
    num_experts=4, num_selectors=2, expert_units=(64, 32), tower_units=(32,)
)


@pytest.fixture(scope="module")
def learning_data():
    train, _ = make_synthetic(100_000, seed=0)
    test, truth = make_synthetic(40_000, seed=1)
    return train, test, truth, synthetic_spec(train)


@pytest.mark.slow
@pytest.mark.parametrize("per_example", [True])  # static: same, measured
def test_dselect_k_reaches_the_oracle_auc(per_example, learning_data):
    train, test, truth, spec = learning_data
    keras.utils.set_random_seed(0)
    model = kmtl.build("dselect_k", spec, per_example=per_example, **SMALL)
    model.fit(
        to_dataset(train, spec, batch_size=512, shuffle=True, seed=0),
        epochs=3,
        verbose=0,
    )
    predictions = model.predict(
        to_dataset(test, spec, with_labels=False), verbose=0
    )
    got = evaluate_predictions(test, predictions, spec.tasks)
    oracle = evaluate_predictions(
        test, true_probabilities(truth, spec.tasks), spec.tasks
    )
    for task, auc, best in zip(got.task, got.auc, oracle.auc, strict=True):
        assert best - auc <= MARGIN[task], (
            f"dselect_k/per_example={per_example}/{task}: AUC {auc:.4f}, "
            f"oracle {best:.4f}"
        )
