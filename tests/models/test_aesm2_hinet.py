"""Model-specific tests of aesm2 and hinet (the battery is test_models)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kmtl
from kmtl.data import features_from_dataframe
from kmtl.data import to_dataset
from kmtl.features.spec import CategoricalFeature
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import ScenarioSpec
from kmtl.features.spec import TaskSpec
from tests.models.test_models import TINY


def _tensors(features):
    return {k: tf.constant(v) for k, v in features.items()}


@pytest.mark.parametrize("name", ["aesm2", "hinet"])
def test_needs_a_scenario(name, synthetic_small):
    _, _, spec = synthetic_small
    with pytest.raises(
        ValueError, match=f"'{name}' is a multi-scenario.*ScenarioSpec"
    ):
        kmtl.build(name, spec.replace(scenario=None), **TINY[name])


@pytest.mark.parametrize(
    "name, hparams, message",
    [
        ("aesm2", dict(top_k_specific=4), "`top_k_specific`.*\\(3\\)"),
        ("aesm2", dict(top_k_shared=-1), "`top_k_shared`.*top_k_shared=-1"),
        (
            "aesm2",
            dict(top_k_specific=0, top_k_shared=0),
            "`top_k_specific` \\+ `top_k_shared`",
        ),
        ("aesm2", dict(scenario_experts=(3, 3)), "`scenario_experts`"),
        ("aesm2", dict(task_experts=0), "`task_experts`.*task_experts=0"),
        ("aesm2", dict(noise_stddev=-0.1), "`noise_stddev`"),
        ("aesm2", dict(aux_loss_weight=None), "`aux_loss_weight`"),
        ("aesm2", dict(gate_kind="moe"), "`gate_kind`.*gate_kind='moe'"),
        ("hinet", dict(task_switcher="ple"), "`task_switcher`.*'ple'"),
        ("hinet", dict(num_specific_experts=0), "`num_specific_experts`"),
        ("hinet", dict(task_expert_units=()), "`task_expert_units`"),
    ],
)
def test_invalid_hparams(name, hparams, message, synthetic_small):
    _, _, spec = synthetic_small
    with pytest.raises(ValueError, match=f"'{name}'.*{message}"):
        kmtl.build(name, spec, **{**TINY[name], **hparams})


def test_hinet_with_mmoe_task_switcher(synthetic_small):
    df, _, spec = synthetic_small
    model = kmtl.build(
        "hinet", spec, **{**TINY["hinet"], "task_switcher": "mmoe"}
    )
    out = model.predict_on_batch(
        _tensors(features_from_dataframe(df[:4], spec))
    )
    assert sorted(out) == ["ctr", "cvr"]
    assert model.get_layer("task_extraction").num_experts == 3


def test_aesm2_auxiliary_losses(synthetic_small):
    df, _, spec = synthetic_small
    model = kmtl.build("aesm2", spec, **TINY["aesm2"])
    model(_tensors(features_from_dataframe(df[:4], spec)))
    assert len(model.losses) == 2  # the scenario layer and the task layer


def test_aesm2_with_a_hierarchy_level(synthetic_small):
    df, _, spec = synthetic_small
    df = df[:1024].copy()
    df["country"] = (df["scenario"] % 2).astype("int64")
    scenario = ScenarioSpec(
        "scenario",
        values=spec.scenario.values,
        levels={"country": ["a", "b"]},
    )
    spec = spec.replace(scenario=scenario)
    keras.utils.set_random_seed(0)
    model = kmtl.build("aesm2", spec, **TINY["aesm2"])
    assert [
        layer.name for layer in model.layers if "scenario_layer" in layer.name
    ] == ["scenario_layer_country", "scenario_layer_scenario"]
    assert model.get_layer("scenario_layer_country").num_gates == 2
    history = model.fit(
        to_dataset(df, spec, batch_size=256), epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"]).all()
    x = _tensors(features_from_dataframe(df[:8], spec))
    out = model.predict_on_batch(x)
    assert {k: v.shape for k, v in out.items()} == {
        "ctr": (8, 1),
        "cvr": (8, 1),
    }
    assert len(model.losses) == 3


@pytest.mark.parametrize(
    ("num_values", "expected"),
    [(4, "per_gate"), (64, "per_gate"), (65, "shared")],
)
def test_aesm2_auto_gates_follow_the_scenario_count(num_values, expected):
    spec = FeatureSpec(
        features=[CategoricalFeature("item", vocabulary_size=10)],
        tasks=[TaskSpec("ctr", label="click")],
        scenario=ScenarioSpec(
            "scenario", values=[f"s{i}" for i in range(num_values)]
        ),
    )
    model = kmtl.build("aesm2", spec, **TINY["aesm2"])
    layer = model.get_layer("scenario_layer_scenario")
    assert layer.gate_kind == expected
    assert model.get_layer("task_layer").gate_kind == "per_gate"


def test_aesm2_shared_gates(synthetic_small):
    df, _, spec = synthetic_small
    df = df[:512]
    keras.utils.set_random_seed(0)
    model = kmtl.build(
        "aesm2", spec, **{**TINY["aesm2"], "gate_kind": "shared"}
    )
    scenario_layer = model.get_layer("scenario_layer_scenario")
    assert scenario_layer.gate_kind == "shared"
    assert model.get_layer("task_layer").gate_kind == "per_gate"
    assert tuple(scenario_layer.gate_kernel.shape)[1] == (
        scenario_layer.num_experts
    )
    history = model.fit(
        to_dataset(df, spec, batch_size=128), epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"]).all()
    out = model.predict_on_batch(
        _tensors(features_from_dataframe(df[:8], spec))
    )
    assert {k: v.shape for k, v in out.items()} == {
        "ctr": (8, 1),
        "cvr": (8, 1),
    }
    assert len(model.losses) == 2
