"""AESM2: the battery, its auxiliary losses, hierarchy levels and gates."""

import keras
import numpy as np
import pytest

import kmtl
from kmtl.data import to_dataset
from kmtl.features.spec import CategoricalFeature
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import ScenarioSpec
from kmtl.features.spec import TaskSpec
from kmtl.testing import raw_tensors

TINY = dict(scenario_experts=3, task_experts=3, expert_units=(8,))
BAD = [
    (dict(top_k_specific=4), "`top_k_specific`.*\\(3\\)"),
    (dict(top_k_shared=-1), "`top_k_shared`.*top_k_shared=-1"),
    (dict(top_k_specific=0, top_k_shared=0), "top_k_specific \\+ top_k_shared"),
    (dict(scenario_experts=(3, 3)), "`scenario_experts`"),
    (dict(task_experts=0), "`task_experts`.*task_experts=0"),
    (dict(noise_stddev=-0.1), "`noise_stddev`"),
    (dict(aux_loss_weight=None), "`aux_loss_weight`"),
    (dict(gate_kind="moe"), "`gate_kind`.*gate_kind='moe'"),
]
NO_SCENARIO = [(dict(scenario=None), "needs a ScenarioSpec")]


def test_model_battery(model_battery):
    model_battery("aesm2", TINY, bad_hparams=BAD, bad_specs=NO_SCENARIO)


def test_auxiliary_losses(synthetic_small):
    df, _, spec = synthetic_small
    model = kmtl.build("aesm2", spec, **TINY)
    model(raw_tensors(df[:4], spec))
    assert len(model.losses) == 2  # the scenario layer and the task layer


def _with_levels(df, spec, **levels):
    """`df` with one level column per `levels` entry (`scenario % size`)
    and its spec with those hierarchy levels, coarse to fine."""
    df = df.copy()
    for column, size in levels.items():
        df[column] = (df["scenario"] % size).astype("int64")
    scenario = ScenarioSpec(
        "scenario",
        values=spec.scenario.values,
        levels={
            column: [f"{column}{i}" for i in range(size)]
            for column, size in levels.items()
        },
    )
    return df, spec.replace(scenario=scenario)


def test_with_a_hierarchy_level(synthetic_small):
    df, _, spec = synthetic_small
    df, spec = _with_levels(df[:1024], spec, country=2)
    keras.utils.set_random_seed(0)
    model = kmtl.build("aesm2", spec, **TINY)
    assert [
        layer.name for layer in model.layers if "scenario_layer" in layer.name
    ] == ["scenario_layer_country", "scenario_layer_scenario"]
    assert model.get_layer("scenario_layer_country").num_gates == 2
    history = model.fit(
        to_dataset(df, spec, batch_size=256), epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"]).all()
    x = raw_tensors(df[:8], spec)
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
def test_auto_gates_follow_the_scenario_count(num_values, expected):
    spec = FeatureSpec(
        features=[CategoricalFeature("item", vocabulary_size=10)],
        tasks=[TaskSpec("ctr", label="click")],
        scenario=ScenarioSpec(
            "scenario", values=[f"s{i}" for i in range(num_values)]
        ),
    )
    model = kmtl.build("aesm2", spec, **TINY)
    layer = model.get_layer("scenario_layer_scenario")
    assert layer.gate_kind == expected
    assert model.get_layer("task_layer").gate_kind == "per_gate"


def test_shared_gates(synthetic_small):
    df, _, spec = synthetic_small
    df = df[:512]
    keras.utils.set_random_seed(0)
    model = kmtl.build("aesm2", spec, **{**TINY, "gate_kind": "shared"})
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
    out = model.predict_on_batch(raw_tensors(df[:8], spec))
    assert {k: v.shape for k, v in out.items()} == {
        "ctr": (8, 1),
        "cvr": (8, 1),
    }
    assert len(model.losses) == 2


def test_level_gates_read_their_parent_levels(synthetic_small):
    df, _, spec = synthetic_small
    df, spec = _with_levels(df[:64], spec, country=2, channel=4)
    model = kmtl.build("aesm2", spec, **TINY, gate_embedding_dim=5)
    widths = {
        name: [tuple(t.shape)[-1] for t in model.get_layer(name).input[2:]]
        for name in (
            "scenario_layer_country",
            "scenario_layer_channel",
            "scenario_layer_scenario",
        )
    }
    # No parent, the country, then the country and the channel.
    assert widths == {
        "scenario_layer_country": [],
        "scenario_layer_channel": [5],
        "scenario_layer_scenario": [10],
    }
    # The channel's layer depends on the country's embedding: the same
    # rows under another country give another output.
    layer = model.get_layer("scenario_layer_channel")
    probe = keras.Model(model.input, layer.input)
    x = raw_tensors(df[:8], spec)
    hidden, ids, parents = probe.predict_on_batch(x)
    other = np.roll(parents, 1, axis=0)
    assert not np.allclose(
        keras.ops.convert_to_numpy(layer([hidden, ids, parents])),
        keras.ops.convert_to_numpy(layer([hidden, ids, other])),
    )


def test_layers_per_level(synthetic_small):
    df, _, spec = synthetic_small
    df, spec = _with_levels(df[:256], spec, country=2)
    keras.utils.set_random_seed(0)
    model = kmtl.build("aesm2", spec, **TINY, layers_per_level=2)
    assert [
        layer.name for layer in model.layers if "scenario_layer" in layer.name
    ] == [
        "scenario_layer_country",
        "scenario_layer_country_1",
        "scenario_layer_scenario",
        "scenario_layer_scenario_1",
    ]
    history = model.fit(
        to_dataset(df, spec, batch_size=128), epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"]).all()
    assert len(model.losses) == 5  # 2 levels x 2 layers, and the task layer
