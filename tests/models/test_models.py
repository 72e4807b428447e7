"""Every registered model: build, predict, learn, save and export."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kmtl
from kmtl.data import features_from_dataframe
from kmtl.data import to_dataset

# Tiny hyperparameters per model, so the whole battery runs in seconds.
TINY = {
    "shared_bottom": dict(bottom_units=(16,), tower_units=(8,)),
    "omoe": dict(num_experts=3, expert_units=(8,), tower_units=(4,)),
    "mmoe": dict(num_experts=3, expert_units=(8,), tower_units=(4,)),
    "ple": dict(
        num_levels=2,
        num_shared_experts=1,
        num_task_experts=1,
        expert_units=(8,),
        tower_units=(4,),
    ),
    "esmm": dict(tower_units=(8, 4)),
    "aitm": dict(tower_units=(8, 4)),
    "dcn": dict(cross_layers=2, deep_units=(8,), tower_units=(4,)),
    "hinet": dict(
        num_shared_experts=2,
        num_specific_experts=2,
        expert_units=(8,),
        num_task_experts=1,
        num_shared_task_experts=1,
        task_expert_units=(8,),
        tower_units=(4,),
    ),
    "aesm2": dict(
        scenario_experts=3,
        task_experts=3,
        top_k_specific=1,
        top_k_shared=1,
        expert_units=(8,),
        tower_units=(4,),
    ),
    "star": dict(star_units=(8,), tower_units=(4,), auxiliary_units=(4,)),
    "lhuc": dict(hidden_units=(8,), tower_units=(4,)),
    "epnet": dict(hidden_units=(8,), tower_units=(4,)),
    "ppnet": dict(tower_units=(8, 4), persona_features=("user_id",)),
    "pepnet": dict(tower_units=(8, 4), persona_features=("user_id",)),
}


def test_every_registered_model_is_covered():
    assert sorted(kmtl.list_models()) == sorted(TINY)
    for description in kmtl.list_models().values():
        assert description


def _tensors(features):
    return {k: tf.constant(v) for k, v in features.items()}


@pytest.fixture(scope="module", params=sorted(TINY))
def trained(request, synthetic_small):
    name = request.param
    df, _, spec = synthetic_small
    keras.utils.set_random_seed(0)
    model = kmtl.build(name, spec, **TINY[name])
    tasks = kmtl.model_tasks(name, spec)
    ds = to_dataset(df, spec, tasks=tasks, batch_size=256)
    before = model.evaluate(ds, verbose=0, return_dict=True)["loss"]
    model.fit(ds, epochs=3, verbose=0)
    after = model.evaluate(ds, verbose=0, return_dict=True)["loss"]
    return name, model, tasks, before, after


def test_outputs_are_named_after_tasks(trained, synthetic_small):
    name, model, tasks, _, _ = trained
    df, _, spec = synthetic_small
    out = model.predict_on_batch(
        _tensors(features_from_dataframe(df[:5], spec))
    )
    assert sorted(out) == sorted(t.name for t in tasks)
    for value in out.values():
        assert value.shape == (5, 1)
        assert np.all((value >= 0) & (value <= 1))
    assert list(model.input) == spec.input_names


def test_fit_lowers_the_loss(trained):
    _, _, _, before, after = trained
    assert after < before - 0.01


def test_keras_file_round_trip(trained, synthetic_small, tmp_path):
    _, model, _, _, _ = trained
    df, _, spec = synthetic_small
    x = _tensors(features_from_dataframe(df[:64], spec))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    a, b = model.predict_on_batch(x), loaded.predict_on_batch(x)
    for key in a:
        # Equal up to float32 rounding: a reloaded graph may fuse ops
        # differently (1 ulp at 0.5 is 6e-8).
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-6)


def test_export_parity_at_two_batch_sizes(trained, synthetic_small, tmp_path):
    _, model, tasks, _, _ = trained
    df, _, spec = synthetic_small
    path = kmtl.export(model, tmp_path / "m")
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    _, inputs = serve.structured_input_signature
    assert sorted(inputs) == sorted(spec.input_names)
    assert sorted(serve.structured_outputs) == sorted(t.name for t in tasks)
    for rows in (df[:1], df[100:357]):
        x = _tensors(features_from_dataframe(rows, spec))
        expected = model.predict_on_batch(x)
        served = serve(**x)
        for key in expected:
            np.testing.assert_allclose(
                served[key].numpy(), expected[key], atol=1e-5
            )


@pytest.mark.parametrize("name", sorted(TINY))
def test_unknown_hparam_is_named(name, synthetic_small):
    _, _, spec = synthetic_small
    with pytest.raises(ValueError, match=f"'{name}' does not take.*'depth'"):
        kmtl.build(name, spec, depth=3)


def test_unknown_model_lists_known_ones(synthetic_small):
    _, _, spec = synthetic_small
    with pytest.raises(ValueError, match="Unknown model 'mmoee'.*'mmoe'"):
        kmtl.build("mmoee", spec)


@pytest.mark.parametrize(
    "name, hparams, message",
    [
        ("mmoe", dict(num_experts=0), "num_experts=0"),
        ("ple", dict(num_levels=0), "num_levels=0"),
        ("shared_bottom", dict(bottom_units=()), "bottom_units=()"),
        ("esmm", dict(ctr_task="ctr"), "give both"),
        ("esmm", dict(ctcvr_name="cvr"), "already has a task 'cvr'"),
    ],
)
def test_invalid_hparams(name, hparams, message, synthetic_small):
    _, _, spec = synthetic_small
    with pytest.raises(ValueError, match=message):
        kmtl.build(name, spec, **hparams)


def test_esmm_outputs_and_losses(synthetic_small):
    _, _, spec = synthetic_small
    tasks = kmtl.model_tasks("esmm", spec)
    assert [t.name for t in tasks] == ["ctr", "cvr", "ctcvr"]
    args = kmtl.compile_args(tasks)
    assert sorted(args["loss"]) == ["ctcvr", "ctr"]  # none on cvr
    assert tasks[2].label_columns == ("click", "purchase")
    model = kmtl.build("esmm", spec, **TINY["esmm"])
    x = _tensors(features_from_dataframe(synthetic_small[0][:8], spec))
    out = model.predict_on_batch(x)
    np.testing.assert_allclose(out["ctcvr"], out["ctr"] * out["cvr"], 1e-6)


def test_esmm_needs_two_tasks(synthetic_small):
    _, _, spec = synthetic_small
    one_task = spec.replace(tasks=spec.tasks[:1])
    with pytest.raises(ValueError, match="exactly two tasks"):
        kmtl.build("esmm", one_task)


def test_compile_args_from_spec(synthetic_small):
    _, _, spec = synthetic_small
    args = kmtl.compile_args(spec)
    assert args["loss"] == {
        "ctr": "binary_crossentropy",
        "cvr": "binary_crossentropy",
    }
    assert args["loss_weights"] == {"ctr": 1.0, "cvr": 1.0}
    assert [m.name for m in args["weighted_metrics"]["cvr"]] == ["auc"]
