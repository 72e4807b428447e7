"""ESMM: the battery (trained on the spec's labels: the model derives
`ctcvr`'s), its three outputs and their losses."""

import numpy as np

import kmtl
from kmtl.features.spec import TaskSpec
from kmtl.testing import raw_tensors

TINY = dict(tower_units=(8, 4))
BAD = [
    (dict(ctr_task="ctr"), "give both"),
    (dict(ctcvr_name="cvr"), "already has a task 'cvr'"),
    (dict(tower_units=()), "`tower_units`"),
]
ONE_TASK = [(dict(tasks=[TaskSpec("ctr", "click")]), "exactly two tasks")]


def test_model_battery(model_battery):
    model_battery("esmm", TINY, bad_hparams=BAD, bad_specs=ONE_TASK)


def test_outputs_and_losses(synthetic_small):
    df, _, spec = synthetic_small
    model = kmtl.build("esmm", spec, **TINY)
    tasks = model.tasks
    assert tasks == kmtl.model_tasks("esmm", spec)
    assert [t.name for t in tasks] == ["ctr", "cvr", "ctcvr"]
    args = kmtl.compile_args(tasks)
    assert sorted(args["loss"]) == ["ctcvr", "ctr"]  # none on cvr
    assert tasks[2].label_columns == ("click", "purchase")
    out = model.predict_on_batch(raw_tensors(df[:8], spec))
    np.testing.assert_allclose(out["ctcvr"], out["ctr"] * out["cvr"], 1e-6)
