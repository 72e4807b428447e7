"""SNR (SNR-Trans and SNR-Aver): the battery, the levels of sub-networks,
SNR as HiNet's task switcher, and the oracle AUC (slow)."""

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

TINY = dict(num_experts=3, expert_units=(8, 6), tower_units=(4,))
BAD = [
    (dict(kind="dense"), "`kind`.*'dense'"),
    (dict(num_experts=0), "`num_experts`.*num_experts=0"),
    (dict(l0_weight=-1.0), "`l0_weight`"),
    (dict(expert_units=()), "`expert_units`"),
]


def test_model_battery(model_battery):
    model_battery("snr", TINY, bad_hparams=BAD)


@pytest.mark.slow
def test_model_battery_aver(model_battery):
    model_battery("snr", {**TINY, "kind": "aver"})


def test_one_level_of_sub_networks_per_expert_width(synthetic_small):
    df, _, spec = synthetic_small
    model = kmtl.build("snr", spec, **TINY, l0_weight=0.5)
    first, last = model.get_layer("snr_0"), model.get_layer("snr_1")
    # Level 0's branches are level 1's 3 sub-networks; level 1 routes to
    # the 2 tasks.
    assert (first.num_tasks, first.expert_units) == (3, (8,))
    assert (last.num_tasks, last.expert_units) == (2, (6,))
    assert last._list_input and not first._list_input
    features = raw_tensors(df[:16], spec)
    model(features, training=True)
    penalties = [keras.ops.convert_to_numpy(loss) for loss in model.losses]
    expected = [
        0.5 * keras.ops.convert_to_numpy(level.l0_penalty())
        for level in (first, last)
    ]
    np.testing.assert_allclose(sorted(penalties), sorted(expected), rtol=1e-6)


def test_hinet_takes_snr_as_its_task_switcher(synthetic_small):
    df, _, spec = synthetic_small
    model = kmtl.build(
        "hinet",
        spec,
        expert_units=(8,),
        task_expert_units=(8,),
        tower_units=(4,),
        task_switcher="snr_trans",
    )
    layer = model.get_layer("task_extraction")
    assert isinstance(layer, kmtl.layers.SNRLayer) and layer.kind == "trans"
    # HiNet's budget (2 shared + 2 per task) pooled into 6 sub-networks.
    assert layer.num_experts == 6
    features = raw_tensors(df[:64], spec)
    served = model.predict_on_batch(features)
    assert sorted(served) == ["ctr", "cvr"]
    # Serving is deterministic (the inference coding variables); training
    # draws them and adds the L0 penalty.
    again = model.predict_on_batch(features)
    np.testing.assert_array_equal(served["ctr"], again["ctr"])
    trained = model(features, training=True)
    assert not np.allclose(served["ctr"], trained["ctr"])
    (penalty,) = model.losses
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(penalty),
        layer.l0_weight * keras.ops.convert_to_numpy(layer.l0_penalty()),
        rtol=1e-6,
    )


# === Learning (slow) ===

# As tests/models/test_learning.py: CTR within 0.02 of the oracle AUC,
# CVR (trained on ~21k clicked rows) within 0.025, after 3 epochs on 100k
# rows.
MARGIN = {"ctr": 0.02, "cvr": 0.025}
SMALL = dict(num_experts=4, expert_units=(64, 32), tower_units=(32,))


@pytest.fixture(scope="module")
def learning_data():
    train, _ = make_synthetic(100_000, seed=0)
    test, truth = make_synthetic(40_000, seed=1)
    return train, test, truth, synthetic_spec(train)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["trans"])  # aver: same margins, measured
def test_snr_reaches_the_oracle_auc(kind, learning_data):
    train, test, truth, spec = learning_data
    keras.utils.set_random_seed(0)
    model = kmtl.build("snr", spec, kind=kind, **SMALL)
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
            f"snr/{kind}/{task}: AUC {auc:.4f}, oracle {best:.4f}"
        )
