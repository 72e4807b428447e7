"""PEPNet and its halves EPNet and PPNet: the battery, and which gates
each name builds."""

import pytest

import kmtl

TINY = {
    "epnet": dict(hidden_units=(8,), tower_units=(4,)),
    "ppnet": dict(tower_units=(8, 4), persona_features=("user_id",)),
    "pepnet": dict(tower_units=(8, 4), persona_features=("user_id",)),
}
NO_SCENARIO = [(dict(scenario=None), "needs a ScenarioSpec")]
UNKNOWN_PERSONA = (dict(persona_features=["user"]), "persona_features.*'user'")
NO_TOWER = (dict(tower_units=()), "`tower_units` must hold at least one")
BAD = {
    "epnet": [(dict(gamma=0.0), "`gamma`.*gamma=0.0")],
    "ppnet": [UNKNOWN_PERSONA, NO_TOWER],
    "pepnet": [UNKNOWN_PERSONA, NO_TOWER],
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_model_battery(name, model_battery):
    model_battery(
        name, TINY[name], bad_hparams=BAD[name], bad_specs=NO_SCENARIO
    )


@pytest.mark.parametrize(
    "name, epnet, ppnet",
    [("epnet", True, False), ("ppnet", False, True), ("pepnet", True, True)],
)
def test_gates_of_each_half(name, epnet, ppnet, synthetic_small):
    _, _, spec = synthetic_small
    names = [x.name for x in kmtl.build(name, spec, **TINY[name]).layers]
    assert ("epnet" in names) == epnet
    assert ("ctr_ppnet" in names) == ppnet
    assert ("persona" in names) == ppnet  # the persona joins user_id
