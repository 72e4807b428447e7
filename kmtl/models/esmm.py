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
    spec: FeatureSpec, ctr_task: str | None, cvr_task: str | None, model: str
) -> tuple[TaskSpec, TaskSpec]:
    """The CTR and CVR tasks of the spec (the two binary tasks, in order,
    unless named)."""
    if ctr_task is None and cvr_task is None:
        if len(spec.tasks) != 2:
            raise ValueError(
                f"Model {model!r} needs exactly two tasks, CTR then CVR, or "
                "the hparams `ctr_task` and `cvr_task`. Received tasks "
                f"{spec.task_names}."
            )
        ctr, cvr = spec.tasks
    else:
        ctr = spec.task(ctr_task) if ctr_task else None
        cvr = spec.task(cvr_task) if cvr_task else None
        if ctr is None or cvr is None:
            raise ValueError(
                f"Model {model!r}: give both `ctr_task` and `cvr_task`. "
                f"Received: ctr_task={ctr_task!r}, cvr_task={cvr_task!r}"
            )
    for task in (ctr, cvr):
        if task.kind != "binary":
            raise ValueError(
                f"Model {model!r}: task {task.name!r} must be binary. "
                f"Received kind={task.kind!r}"
            )
    if ctr.name == cvr.name:
        raise ValueError(
            f"Model {model!r}: `ctr_task` and `cvr_task` must differ. "
            f"Received: {ctr.name!r} twice"
        )
    return ctr, cvr


def funnel_tasks(
    spec: FeatureSpec,
    model: str,
    *,
    ctr_task: str | None,
    cvr_task: str | None,
    joint_name: str,
    joint_hparam: str,
) -> tuple[TaskSpec, ...]:
    """The outputs of a click -> conversion funnel model (ESMM and its
    kin): CTR (its loss, all impressions), CVR (no loss, its metrics on
    clicked rows) and the joint CTCVR (label = CTR label x CVR label, loss
    over all impressions with the CVR task's weight).

    Args:
        spec: FeatureSpec with the two binary tasks.
        model: the model's name, for the errors.
        ctr_task, cvr_task: names of the tasks (both, or neither: the
            spec's two tasks in order).
        joint_name: name of the joint output.
        joint_hparam: the hparam that names it, for the errors.

    Returns:
        (ctr, cvr, joint) TaskSpecs.
    """
    ctr, cvr = _roles(spec, ctr_task, cvr_task, model)
    if joint_name in spec.task_names:
        raise ValueError(
            f"Model {model!r}: the spec already has a task {joint_name!r}; "
            f"pick another `{joint_hparam}`."
        )
    return (
        dataclasses.replace(ctr, sample_space=None),
        dataclasses.replace(cvr, weight=0.0, sample_space=ctr.name),
        TaskSpec(
            joint_name,
            label=ctr.label_columns + cvr.label_columns,
            weight=cvr.weight,
            metrics=cvr.metrics,
        ),
    )


def esmm_tasks(
    spec: FeatureSpec,
    *,
    ctr_task: str | None = None,
    cvr_task: str | None = None,
    ctcvr_name: str = "ctcvr",
) -> tuple[TaskSpec, ...]:
    """ESMM's outputs (see `funnel_tasks`)."""
    return funnel_tasks(
        spec,
        "esmm",
        ctr_task=ctr_task,
        cvr_task=cvr_task,
        joint_name=ctcvr_name,
        joint_hparam="ctcvr_name",
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
