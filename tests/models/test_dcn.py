"""DCN (v2, matrix cross) and DCN v1 (vector cross): the battery and the
cross kind each name builds."""

import pytest

import kmtl

TINY = dict(cross_layers=2, deep_units=(8,), tower_units=(4,))


@pytest.mark.parametrize("name", ["dcn", "dcn_v1"])
def test_model_battery(name, model_battery):
    bad = [(dict(cross_layers=0), "`cross_layers`.*cross_layers=0")]
    if name == "dcn":
        bad.append((dict(cross_kind="diagonal"), "`cross_kind`.*'diagonal'"))
    model_battery(name, TINY, bad_hparams=bad)


@pytest.mark.parametrize(
    "name, hparams, kind",
    [
        ("dcn", {}, "matrix"),
        ("dcn", dict(cross_kind="low_rank", projection_dim=2), "low_rank"),
        ("dcn_v1", {}, "vector"),
    ],
)
def test_cross_kind(name, hparams, kind, synthetic_small):
    _, _, spec = synthetic_small
    cross = kmtl.build(name, spec, **TINY, **hparams).get_layer("cross")
    assert (cross.kind, cross.num_layers) == (kind, 2)
