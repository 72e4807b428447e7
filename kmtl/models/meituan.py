"""Meituan's "Guess You Like" ranking model: shared layers, CTR, CVR and
order towers, learned missing-value fills and a KL consistency bound."""

from __future__ import annotations

import dataclasses

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import TaskSpec
from kmtl.layers.consistency_bound import ConsistencyBound
from kmtl.layers.shared_bottom import SharedBottomLayer
from kmtl.models.esmm import funnel_tasks
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_towers
from kmtl.models.registry import register_model
from kmtl.validation import Activation
from kmtl.validation import Bool
from kmtl.validation import Name
from kmtl.validation import NonNegativeFloat
from kmtl.validation import OptionalName
from kmtl.validation import OptionalUnits
from kmtl.validation import Units


def meituan_tasks(
    spec: FeatureSpec,
    *,
    ctr_task: str | None = None,
    cvr_task: str | None = None,
    order_name: str = "order",
) -> tuple[TaskSpec, ...]:
    """The outputs: CTR (all impressions), CVR (trained on clicks, its own
    sample space) and order (label = click x conversion, all impressions).
    """
    ctr, cvr, order = funnel_tasks(
        spec,
        "meituan",
        ctr_task=ctr_task,
        cvr_task=cvr_task,
        joint_name=order_name,
        joint_hparam="order_name",
    )
    original = spec.task(cvr.name)
    return (ctr, dataclasses.replace(cvr, weight=original.weight), order)


@register_model("meituan", tasks=meituan_tasks)
def build_meituan(
    spec: FeatureSpec,
    *,
    ctr_task: OptionalName = None,
    cvr_task: OptionalName = None,
    order_name: Name = "order",
    bottom_units: Units = (256, 128),
    tower_units: OptionalUnits = (64,),
    learned_missing_values: Bool = True,
    kl_weight: NonNegativeFloat = 0.1,
    activation: Activation = "relu",
) -> keras.Model:
    """Meituan's deep ranking model of "Guess You Like".

    Shared early layers split into three towers with a loss each: CTR over
    all impressions, CVR over the clicked ones and the order (click and
    conversion) over all impressions. Two tricks of the paper: the
    missing-value layer (`MissingValueLayer`: each missing numerical gets a
    learned fill, not the mean) and the KL-divergence bound
    (`ConsistencyBound`: `kl_weight * KL` between `p(click) p(conversion)`
    and the predicted `p(order)`).

    Args:
        spec: FeatureSpec with a CTR and a CVR task (binary).
        ctr_task: name of the CTR task. Defaults to the first task.
        cvr_task: name of the CVR task. Defaults to the second task.
        order_name: name of the order output. Defaults to `"order"`.
        bottom_units: hidden units of the shared layers.
        tower_units: hidden units of each tower (may be empty).
        learned_missing_values: learned fills (`True`) or the encoder's
            mean fill (`False`, the baseline). Defaults to `True`.
        kl_weight: weight of the KL bound; 0 turns it off. Defaults to 0.1.
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model` with outputs CTR, CVR and order.

    Reference:
        - `industrial-mtl-survey.txt`, Meituan "Guess You Like" (the
          missing value layer and the KL-divergence bound).
    """
    tasks = meituan_tasks(
        spec, ctr_task=ctr_task, cvr_task=cvr_task, order_name=order_name
    )
    # === Inputs ===
    inputs, _, flat = encoded_inputs(
        spec, missing_values="learned" if learned_missing_values else "mean"
    )
    # === Layers ===
    branches = SharedBottomLayer(
        len(tasks),
        expert_units=bottom_units,
        activation=activation,
        name="shared_layers",
    )(flat)
    heads = task_towers(branches, tasks, tower_units, activation=activation)
    # === Outputs ===
    ctr, cvr, order = tasks
    heads[order.name] = ConsistencyBound(kl_weight, name=f"{order.name}_kl")(
        [heads[ctr.name], heads[cvr.name], heads[order.name]]
    )
    return keras.Model(inputs, heads)
