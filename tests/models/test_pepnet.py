"""PEPNet and its halves EPNet and PPNet: the battery, and which gates
each name builds."""

import pytest

import kmtl
from kmtl.testing import synthetic_spec

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


GROUPS = {
    "user_id": "user",
    "item_id": "item",
    "device": "context",
    "price": "domain",
}


def _gate_widths(name, spec, **hparams):
    """The widths of EPNet's gate context and of the first task's persona."""
    model = kmtl.build(name, spec, **{**TINY[name], **hparams})
    layers = {layer.name: layer for layer in model.layers}
    epnet = layers.get("epnet")
    ppnet = layers.get("ctr_ppnet")
    return (
        epnet.input[1].shape[-1] if epnet else None,
        ppnet.input[1].shape[-1] if ppnet else None,
    )


@pytest.fixture(scope="module")
def tagged_spec(synthetic_small):
    df, _, _ = synthetic_small
    return synthetic_spec(df, embedding_dim=4, groups=GROUPS)


def test_gates_read_the_tagged_features(tagged_spec):
    # Scenario embedding 4, + device (4) and price (1) in EPNet's gate,
    # + user_id and item_id (4 each) in the persona.
    assert _gate_widths("pepnet", tagged_spec, persona_features=None) == (
        9,
        12,
    )
    assert _gate_widths("epnet", tagged_spec) == (9, None)
    assert _gate_widths("ppnet", tagged_spec, persona_features=None) == (
        None,
        12,
    )


def test_named_features_override_the_tags(tagged_spec):
    widths = _gate_widths(
        "pepnet",
        tagged_spec,
        domain_features=("category", "age", "rating"),
        persona_features=(),
    )
    assert widths == (4 + 4 + 1 + 1, 4)


def test_untagged_spec_gates_on_the_scenario_alone(synthetic_small):
    _, _, spec = synthetic_small
    assert _gate_widths("pepnet", spec, persona_features=None) == (4, 4)


def test_unknown_domain_feature(synthetic_small):
    _, _, spec = synthetic_small
    with pytest.raises(ValueError, match="Model 'epnet'.*`domain_features`"):
        kmtl.build("epnet", spec, domain_features=["country"])
