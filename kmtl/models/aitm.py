"""AITM: one tower per funnel step, information passed on by attention."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import TaskSpec
from kmtl.layers.aitm import AdaptiveInformationTransfer
from kmtl.layers.aitm import BehavioralExpectationCalibrator
from kmtl.layers.mlp import MLP
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_output
from kmtl.models.registry import register_model
from kmtl.validation import Activation
from kmtl.validation import OptionalNames
from kmtl.validation import OptionalNonNegativeFloat
from kmtl.validation import OptionalUnits
from kmtl.validation import Rate
from kmtl.validation import Units

#: The calibrator weight of the paper, used by default on a declared funnel.
PAPER_CALIBRATION_WEIGHT = 0.6


def _order(spec: FeatureSpec, task_order: Sequence[str] | None) -> list[str]:
    """The task names in funnel order (a permutation of the spec's)."""
    order = list(spec.task_names if task_order is None else task_order)
    if sorted(order) != sorted(spec.task_names):
        raise ValueError(
            "Model 'aitm': hparam `task_order` must name every task of the "
            f"spec once, in funnel order; expected an order of "
            f"{list(spec.task_names)}. Received: task_order={task_order!r}"
        )
    if len(order) < 2:
        raise ValueError(
            "Model 'aitm' chains tasks and needs at least two. Received "
            f"tasks {list(spec.task_names)}."
        )
    return order


def _nested(chain: Sequence[TaskSpec]) -> list[bool]:
    """For each step after the first: whether the spec declares it inside
    the previous step (its `sample_space` is that task), i.e. a funnel."""
    return [
        after.sample_space == before.name
        for before, after in zip(chain[:-1], chain[1:], strict=True)
    ]


def aitm_tasks(
    spec: FeatureSpec, *, task_order: Sequence[str] | None = None
) -> tuple[TaskSpec, ...]:
    """AITM's outputs, in funnel order. A step the spec declares inside the
    previous one (`sample_space` = that task, e.g. CVR on clicks) is
    trained, as in the paper, on every impression with the end-to-end label
    (the product of the chain's labels, e.g. click x purchase): its output
    is P(reach this step), not the conditional rate. Other tasks keep
    their TaskSpec unchanged."""
    chain = [spec.task(name) for name in _order(spec, task_order)]
    out = [chain[0]]
    for task, nested in zip(chain[1:], _nested(chain), strict=True):
        if nested:
            previous = out[-1]
            task = dataclasses.replace(
                task,
                label=previous.label_columns + task.label_columns,
                sample_space=None,
            )
        out.append(task)
    return tuple(out)


def _calibration(
    chain: Sequence[TaskSpec], weight: float | None, nested: list[bool]
) -> float:
    if weight is None:
        return PAPER_CALIBRATION_WEIGHT if all(nested) else 0.0
    if weight > 0:
        for task in chain:
            if task.kind != "binary":
                raise ValueError(
                    "Model 'aitm': the calibrator compares probabilities, "
                    f"so every task must be binary; task {task.name!r} is "
                    f"{task.kind!r}. Set calibration_weight=0. Received: "
                    f"calibration_weight={weight!r}"
                )
    return float(weight)


@register_model("aitm", tasks=aitm_tasks)
def build_aitm(
    spec: FeatureSpec,
    *,
    task_order: OptionalNames = None,
    tower_units: Units = (128, 64, 32),
    info_units: OptionalUnits = (),
    calibration_weight: OptionalNonNegativeFloat = None,
    dropout: Rate = 0.0,
    activation: Activation = "relu",
) -> keras.Model:
    """AITM: funnel-step towers linked by information transfer (Xi et al. 2021).

    Every task (step `t` of `task_order`) has a tower on the shared
    embeddings giving `q_t`. The first step predicts from `z_1 = q_1`;
    step `t > 1` predicts from `z_t = AIT(p_{t-1}, q_t)`, where
    `p_{t-1} = g_{t-1}(z_{t-1})` is what an MLP `g` passes on from the
    previous step and AIT is `kmtl.layers.AdaptiveInformationTransfer`
    (attention over the two vectors). With two tasks `p_1 = g(q_1)`.

    Steps the spec declares inside the previous one (`sample_space`, e.g.
    CVR on clicks) are trained on all impressions with the end-to-end label
    (`kmtl.model_tasks("aitm", spec)`): their output is P(click and
    purchase), not P(purchase | click). A behavioural expectation
    calibrator (`kmtl.layers.BehavioralExpectationCalibrator`) adds
    `calibration_weight * sum_t mean(max(p_t - p_{t-1}, 0))` through
    `add_loss`, since a later funnel step cannot be likelier than an
    earlier one.

    The default `calibration_weight=None` follows the spec: the paper's
    0.6 when every later task is declared inside its predecessor (a
    conversion funnel), else 0. For tasks that are not a funnel (Census
    income vs never-married) `p_t <= p_{t-1}` is false and the penalty
    would bias the later task's probabilities, so the weight must be 0
    there; a fixed 0.6 default would silently do that to every spec
    without sample spaces. Pass a number to override (e.g. a funnel whose
    labels are already end-to-end and declare no sample space).

    Args:
        spec: FeatureSpec with at least two tasks.
        task_order: task names in funnel order. Defaults to the spec's task
            order.
        tower_units: hidden units of each task tower (at least one layer);
            the last one is the width `d` of `q_t`, `p_t` and `z_t`.
            Defaults to `(128, 64, 32)` (the paper's).
        info_units: hidden units of the transfer MLP `g` before its last
            layer of width `d`. Defaults to `()` (one ReLU layer).
        calibration_weight: float or None. The calibrator's `alpha`; see
            above. Defaults to `None` (0.6 on a declared funnel, else 0).
        dropout: float. Dropout after each tower and `g` layer. Defaults
            to 0.
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    tasks = aitm_tasks(spec, task_order=task_order)
    weight = _calibration(
        tasks,
        calibration_weight,
        _nested([spec.task(t.name) for t in tasks]),
    )
    width = tower_units[-1]
    # === Inputs ===
    inputs, _, flat = encoded_inputs(spec)
    # === Layers ===
    probabilities, previous = [], None
    for step, task in enumerate(tasks):
        z = MLP(
            tuple(tower_units),
            activation=activation,
            dropout=dropout,
            name=f"{task.name}_tower",
        )(flat)
        if previous is not None:
            transferred = MLP(
                tuple(info_units) + (width,),
                activation=activation,
                dropout=dropout,
                name=f"{tasks[step - 1].name}_info",
            )(previous)
            z = AdaptiveInformationTransfer(name=f"{task.name}_ait")(
                [transferred, z]
            )
        previous = z
        probabilities.append(task_output(z, task))
    # === Outputs ===
    if weight > 0:
        probabilities = BehavioralExpectationCalibrator(
            weight, name="calibrator"
        )(probabilities)
    outputs = {
        task.name: p for task, p in zip(tasks, probabilities, strict=True)
    }
    return keras.Model(inputs, outputs)
