"""SNR (SNR-Trans and SNR-Aver): the battery, the levels of sub-networks,
SNR as HiNet's task switcher, and the oracle AUC (slow)."""

import keras
import numpy as np
import pytest

import kmtl
from kmtl.testing import raw_tensors

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
