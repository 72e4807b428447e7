"""ESMM: CTR and CVR towers trained through pCTCVR = pCTR x pCVR."""

from __future__ import annotations

import dataclasses

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import TaskSpec
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_towers
from kmtl.models.registry import register_model
from kmtl.validation import Activation
from kmtl.validation import Name
from kmtl.validation import OptionalName
from kmtl.validation import Units


def _roles(
    spec: FeatureSpec, ctr_task: str | None, cvr_task: str | None
) -> tuple[TaskSpec, TaskSpec]:
    """The CTR and CVR tasks of the spec (the two binary tasks, in order,
    unless named)."""
    if ctr_task is None and cvr_task is None:
        if len(spec.tasks) != 2:
            raise ValueError(
                "Model 'esmm' needs exactly two tasks, CTR then CVR, or the "
                "hparams `ctr_task` and `cvr_task`. Received tasks "
                f"{spec.task_names}."
            )
        ctr, cvr = spec.tasks
    else:
        ctr = spec.task(ctr_task) if ctr_task else None
        cvr = spec.task(cvr_task) if cvr_task else None
        if ctr is None or cvr is None:
            raise ValueError(
                "Model 'esmm': give both `ctr_task` and `cvr_task`. "
                f"Received: ctr_task={ctr_task!r}, cvr_task={cvr_task!r}"
            )
    for task in (ctr, cvr):
        if task.kind != "binary":
            raise ValueError(
                f"Model 'esmm': task {task.name!r} must be binary. "
                f"Received kind={task.kind!r}"
            )
    if ctr.name == cvr.name:
        raise ValueError(
            "Model 'esmm': `ctr_task` and `cvr_task` must differ. "
            f"Received: {ctr.name!r} twice"
        )
    return ctr, cvr


def esmm_tasks(
    spec: FeatureSpec,
    *,
    ctr_task: str | None = None,
    cvr_task: str | None = None,
    ctcvr_name: str = "ctcvr",
) -> tuple[TaskSpec, ...]:
    """ESMM's outputs: CTR (its loss, all impressions), CVR (no loss, its
    metrics on clicked rows) and CTCVR (label = CTR label x CVR label, loss
    over all impressions with the CVR task's weight)."""
    ctr, cvr = _roles(spec, ctr_task, cvr_task)
    if ctcvr_name in spec.task_names:
        raise ValueError(
            f"Model 'esmm': the spec already has a task {ctcvr_name!r}; "
            "pick another `ctcvr_name`."
        )
    return (
        dataclasses.replace(ctr, sample_space=None),
        dataclasses.replace(cvr, weight=0.0, sample_space=ctr.name),
        TaskSpec(
            ctcvr_name,
            label=ctr.label_columns + cvr.label_columns,
            weight=cvr.weight,
            metrics=cvr.metrics,
        ),
    )


@register_model("esmm", tasks=esmm_tasks)
def build_esmm(
    spec: FeatureSpec,
    *,
    ctr_task: OptionalName = None,
    cvr_task: OptionalName = None,
    ctcvr_name: Name = "ctcvr",
    tower_units: Units = (256, 128, 64),
    activation: Activation = "relu",
) -> keras.Model:
    """ESMM: entire-space CVR via pCTCVR = pCTR x pCVR (Ma et al. 2018).

    The CTR and CVR towers share the embeddings. Losses are on CTR and
    CTCVR over all impressions; the CVR output has none (it learns through
    CTCVR, so it is free of the sample-selection bias of training on
    clicks). The built model's `tasks` hold the three outputs' tasks, and
    it derives the `ctcvr` label from the spec's labels itself.

    Args:
        spec: FeatureSpec with a CTR and a CVR task.
        ctr_task: name of the CTR task. Defaults to the first task.
        cvr_task: name of the CVR task. Defaults to the second task.
        ctcvr_name: name of the CTCVR output. Defaults to `"ctcvr"`.
        tower_units: hidden units of each of the two towers.
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model` with outputs CTR, CVR and CTCVR.
    """
    tasks = esmm_tasks(
        spec, ctr_task=ctr_task, cvr_task=cvr_task, ctcvr_name=ctcvr_name
    )
    # === Inputs ===
    inputs, _, flat = encoded_inputs(spec)
    # === Layers ===
    heads = task_towers(
        [flat, flat], tasks[:2], tower_units, activation=activation
    )
    # === Outputs ===
    ctr, cvr, ctcvr = tasks
    outputs = {
        ctr.name: heads[ctr.name],
        cvr.name: heads[cvr.name],
        ctcvr.name: keras.layers.Multiply(name=ctcvr.name)(
            [heads[ctr.name], heads[cvr.name]]
        ),
    }
    return keras.Model(inputs, outputs)
