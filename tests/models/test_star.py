"""STAR: the battery, its star topology up to the logits, its auxiliary
network on the features, and (slow) its learning on id effects."""

import keras
import pytest

import kmtl
from kmtl.data import make_scenario_shifted
from kmtl.data import to_dataset
from kmtl.testing import synthetic_spec
from kmtl.training.metrics import roc_auc

TINY = dict(star_units=(8,), tower_units=(4,), auxiliary_units=(4,))
NO_SCENARIO = [(dict(scenario=None), "needs a ScenarioSpec")]


def test_model_battery(model_battery):
    bad = [(dict(scenario_rank=1.5), "`scenario_rank`")]
    model_battery("star", TINY, bad_hparams=bad, bad_specs=NO_SCENARIO)


def test_star_topology_up_to_the_logits(synthetic_small):
    _, _, spec = synthetic_small
    model = kmtl.build("star", spec, **TINY, scenario_rank=2)
    for task in ("ctr", "cvr"):
        for name in (f"{task}_tower_0", f"{task}_logit"):
            layer = model.get_layer(name)
            assert isinstance(layer, kmtl.layers.STARDense), name
            assert layer.scenario_rank == 2
    assert model.get_layer("star_dense_0").scenario_rank == 2


def test_auxiliary_network_reads_the_features(synthetic_small):
    _, _, spec = synthetic_small
    model = kmtl.build("star", spec, **TINY)
    flat = model.get_layer("partitioned_norm").input[0].shape[-1]
    width = model.get_layer("auxiliary_inputs").output.shape[-1]
    assert width == spec.embedding_dim + flat  # scenario embedding + x


# Id effects larger than the signals' (oracle CTR AUC about 0.84), 10 %
# missing signals, string ids; scenarios of 60 / 30 / 10 %.
ID_EFFECTS = dict(
    scenario_shares=(0.6, 0.3, 0.1),
    id_scale=2.0,
    signal_scale=0.4,
    missing_share=0.1,
    string_ids=True,
)
SCENARIOS = ("home", "search", "live")
# Measured (70k rows, 4 epochs, batch 512, defaults; home / search / live,
# keras seeds 0 and 1): oracle 0.837 / 0.851 / 0.844; shared_bottom
# 0.826 / 0.836 / 0.814-0.816; star 0.824-0.825 / 0.835-0.836 /
# 0.813-0.815; star with the plain moving statistics of the earlier
# PartitionedNormalization 0.811-0.816 / 0.825-0.829 / 0.805-0.806
# (0.007-0.015 under shared_bottom, 0.020-0.026 under the oracle in the
# two large scenarios).
MARGIN_TO_ORACLE = {"home": 0.02, "search": 0.02, "live": 0.04}
MARGIN_TO_POOLED = 0.006


def _per_scenario_auc(name, train, test, spec):
    keras.utils.set_random_seed(0)
    model = kmtl.build(name, spec)
    model.fit(
        to_dataset(train, spec, batch_size=512, shuffle=True, seed=0),
        epochs=4,
        verbose=0,
    )
    table = kmtl.evaluate(model, test)
    return table[table.task == "ctr"].set_index("scenario").auc.to_dict()


@pytest.mark.slow
def test_star_learns_id_effects_as_well_as_shared_bottom():
    train, _ = make_scenario_shifted(70_000, seed=0, **ID_EFFECTS)
    test, truth = make_scenario_shifted(40_000, seed=1, **ID_EFFECTS)
    spec = synthetic_spec(train, scenario_values=SCENARIOS, embedding_dim=8)
    star = _per_scenario_auc("star", train, test, spec)
    pooled = _per_scenario_auc("shared_bottom", train, test, spec)
    for k, name in enumerate(SCENARIOS):
        rows = (test.scenario == k).to_numpy()
        oracle = roc_auc(
            test.click[rows].to_numpy(), truth.ctr[rows].to_numpy()
        )
        assert star[name] > oracle - MARGIN_TO_ORACLE[name], (
            name,
            star,
            oracle,
        )
        assert star[name] > pooled[name] - MARGIN_TO_POOLED, (
            name,
            star,
            pooled,
        )
