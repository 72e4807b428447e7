"""DSelect-k: the battery, DSelect-k as HiNet's task switcher, and the
oracle AUC (slow)."""

import keras
import numpy as np
import pytest

import kmtl
from kmtl.testing import raw_tensors

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
