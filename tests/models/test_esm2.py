"""ESM2: the battery on a small funnel (it needs a DAction label, which
`make_synthetic` does not draw), its five outputs and their losses."""

import keras
import numpy as np
import pytest

import kmtl
from kmtl.data.funnel import make_funnel
from kmtl.features.spec import TaskSpec
from kmtl.testing import raw_tensors
from kmtl.testing import run_model_test

TINY = dict(tower_units=(8, 4))
BAD = [
    (dict(ctr_task="ctr"), "give every one of"),
    (dict(ctavr_name="avr"), "already has a task 'avr'"),
    (dict(ctavr_name="x", ctcvr_name="x"), "must differ"),
    (dict(tower_units=()), "`tower_units`"),
]
NO_DACTION = [
    (
        dict(tasks=[TaskSpec("ctr", "click"), TaskSpec("cvr", "purchase")]),
        r"Model 'esm2' needs a spec with exactly 3 binary tasks, in funnel "
        r"order: click, deterministic action \(DAction",
    ),
    (
        dict(
            tasks=[
                TaskSpec("ctr", "click"),
                TaskSpec("avr", "daction", kind="regression"),
                TaskSpec("cvr", "purchase"),
            ]
        ),
        "task 'avr' must be binary",
    ),
]


@pytest.fixture(scope="module")
def small_funnel():
    df, _ = make_funnel(3000, seed=11)
    spec = kmtl.FeatureSpec.from_dataframe(
        df,
        labels={"ctr": "click", "avr": "daction", "cvr": "purchase"},
        sample_spaces={"avr": "ctr", "cvr": "ctr"},
        embedding_dim=4,
    )
    return df, spec


def test_model_battery(small_funnel):
    df, spec = small_funnel
    keras.backend.clear_session()
    run_model_test(
        "esm2", df, spec, TINY, bad_hparams=BAD, bad_specs=NO_DACTION
    )


def test_outputs_and_losses(small_funnel):
    df, spec = small_funnel
    model = kmtl.build("esm2", spec, **TINY)
    tasks = model.tasks
    assert tasks == kmtl.model_tasks("esm2", spec)
    assert [t.name for t in tasks] == ["ctr", "avr", "ctavr", "cvr", "ctcvr"]
    assert sorted(kmtl.compile_args(tasks)["loss"]) == ["ctavr", "ctcvr", "ctr"]
    labels = {t.name: t.label_columns for t in tasks}
    assert labels["ctavr"] == ("click", "daction")
    assert labels["ctcvr"] == ("click", "purchase")
    assert tasks[3].sample_space == "ctr"  # post-click CVR, on clicked rows
    out = model.predict_on_batch(raw_tensors(df[:16], spec))
    np.testing.assert_allclose(out["ctavr"], out["ctr"] * out["avr"], 1e-6)
    np.testing.assert_allclose(out["ctcvr"], out["ctr"] * out["cvr"], 1e-6)
    # pCVR = pAVR pCVR_D + (1 - pAVR) pCVR_O, from the two purchase towers.
    heads = keras.Model(
        model.input,
        [model.get_layer(n).output for n in ("cvr_daction", "cvr_oaction")],
    ).predict_on_batch(raw_tensors(df[:16], spec))
    a = out["avr"]
    np.testing.assert_allclose(
        out["cvr"], a * heads[0] + (1 - a) * heads[1], atol=1e-6
    )


def test_named_roles(small_funnel):
    df, spec = small_funnel
    reordered = spec.replace(tasks=list(reversed(spec.tasks)))
    tasks = kmtl.model_tasks(
        "esm2", reordered, ctr_task="ctr", daction_task="avr", cvr_task="cvr"
    )
    assert [t.name for t in tasks] == ["ctr", "avr", "ctavr", "cvr", "ctcvr"]
