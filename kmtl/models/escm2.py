"""ESCM2 (ESMM plus a counterfactual CVR regulariser, IPS or doubly robust)
and Multi-IPW / Multi-DR (the same estimators without the CTCVR loss)."""

from __future__ import annotations

import dataclasses

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import TaskSpec
from kmtl.layers.mlp import MLP
from kmtl.models.esm2 import check_free_names
from kmtl.models.esm2 import funnel_roles
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_output
from kmtl.models.registry import register_model
from kmtl.training.counterfactual import CounterfactualRegularizer
from kmtl.validation import Activation
from kmtl.validation import Bool
from kmtl.validation import Name
from kmtl.validation import OneOf
from kmtl.validation import OptionalName
from kmtl.validation import PositiveFloat
from kmtl.validation import Units

_LOG_LOSS = "binary_crossentropy"


def escm2_tasks(
    spec: FeatureSpec,
    *,
    ctr_task: str | None = None,
    cvr_task: str | None = None,
    ctcvr_name: str = "ctcvr",
    counterfactual_weight: float = 0.5,
    ctcvr_loss: bool = True,
) -> tuple[TaskSpec, ...]:
    """ESCM2's outputs: CTR (log loss, all impressions), CVR (label click x
    purchase on clicked rows, weight `counterfactual_weight`: the log loss
    the counterfactual gradient rides on) and CTCVR (label click x
    purchase, all impressions, the purchase task's weight, or 0 without
    `ctcvr_loss`)."""
    ctr, cvr = funnel_roles(
        "escm2",
        spec,
        {"ctr_task": ctr_task, "cvr_task": cvr_task},
        "click, purchase",
    )
    check_free_names("escm2", spec, {"ctcvr_name": ctcvr_name})
    if ctr.loss != _LOG_LOSS or ctr.weight <= 0:
        raise ValueError(
            "Model 'escm2': the counterfactual regulariser trains through "
            f"the CTR task's log loss, so task {ctr.name!r} needs "
            f"loss={_LOG_LOSS!r} and a weight > 0. Received: "
            f"loss={ctr.loss!r}, weight={ctr.weight!r}"
        )
    product = ctr.label_columns + cvr.label_columns
    return (
        dataclasses.replace(ctr, sample_space=None),
        dataclasses.replace(
            cvr,
            label=product,
            loss=_LOG_LOSS,
            weight=counterfactual_weight,
            sample_space=ctr.name,
        ),
        TaskSpec(
            ctcvr_name,
            label=product,
            weight=cvr.weight if ctcvr_loss else 0.0,
            metrics=cvr.metrics,
        ),
    )


@register_model(
    "multi_ipw",
    tasks=escm2_tasks,
    fixed={"estimator": "ips", "ctcvr_loss": False},
    description="Multi-IPW: CTR and an inverse-propensity-weighted CVR loss "
    "over the entire space, propensity from the CTR tower (Zhang et al., "
    "WWW 2020).",
)
@register_model(
    "multi_dr",
    tasks=escm2_tasks,
    fixed={"estimator": "dr", "ctcvr_loss": False},
    description="Multi-DR: CTR and a doubly robust CVR loss with an "
    "imputation tower (Zhang et al., WWW 2020).",
)
@register_model("escm2", tasks=escm2_tasks)
def build_escm2(
    spec: FeatureSpec,
    *,
    ctr_task: OptionalName = None,
    cvr_task: OptionalName = None,
    ctcvr_name: Name = "ctcvr",
    estimator: OneOf("ips", "dr") = "ips",
    counterfactual_weight: PositiveFloat = 0.5,
    min_propensity: PositiveFloat = 0.05,
    ctcvr_loss: Bool = True,
    tower_units: Units = (128, 64),
    activation: Activation = "relu",
) -> keras.Model:
    """ESCM2: ESMM plus a counterfactual CVR regulariser (Wang et al. 2022).

    CTR and CVR towers share the embeddings; `pCTCVR = pCTR pCVR`. The
    loss is

    `L = w_ctr L_CTR + w_ctcvr L_CTCVR + lambda_c mean_B(J)`

    with `J` a counterfactual estimate of the CVR log loss `e` over the
    entire impression space (click `o`, propensity
    `p = clip(stop_gradient(pCTR), min_propensity, 1)`):

    - `estimator="ips"`: `J = o e / p`;
    - `estimator="dr"`: `J = ê + o (e - ê) / p + o (e - ê)^2 / p`, with
      `ê >= 0` the CVR error predicted by an imputation tower
      (`L_DR + L_IMP`).

    `J` reaches the CVR and imputation towers through the CTR and CVR
    log losses (`kmtl.training.counterfactual`), so the model serves only
    CTR, CVR and CTCVR; Keras logs the clicked-row CVR log loss as the
    `cvr` loss while the gradient is `J`'s. Without `ctcvr_loss` (the
    `multi_ipw` and `multi_dr` registrations) the CVR learns from `J`
    alone.

    Args:
        spec: FeatureSpec with a CTR and a CVR task.
        ctr_task: name of the CTR task. Defaults to the first task.
        cvr_task: name of the CVR task. Defaults to the second task.
        ctcvr_name: name of the CTCVR output. Defaults to `"ctcvr"`.
        estimator: `"ips"` or `"dr"`. Defaults to `"ips"`.
        counterfactual_weight: lambda_c. Defaults to 0.5.
        min_propensity: the propensity's lower clip, in (0, 1]; 1 weighs
            every click alike (the naive CVR loss). Defaults to 0.05.
        ctcvr_loss: bool. Train CTCVR too (ESCM2). Defaults to `True`.
        tower_units: hidden units of each tower.
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model` with outputs CTR, CVR and CTCVR.

    Example:

    ```python
    model = kmtl.build("escm2", spec, estimator="dr")
    model.fit(kmtl.data.to_dataset(train_df, spec), epochs=2)
    ```

    Reference:
        - [Wang et al., 2022](https://arxiv.org/abs/2204.05125) (SIGIR
          2022), section 4.
        - [Zhang et al., 2020](https://arxiv.org/abs/1910.09337) (WWW
          2020).
    """
    ctr, cvr, ctcvr = escm2_tasks(
        spec,
        ctr_task=ctr_task,
        cvr_task=cvr_task,
        ctcvr_name=ctcvr_name,
        counterfactual_weight=counterfactual_weight,
        ctcvr_loss=ctcvr_loss,
    )
    if min_propensity > 1:
        raise ValueError(
            "Model 'escm2': hparam `min_propensity` must be in (0, 1]. "
            f"Received: min_propensity={min_propensity!r}"
        )
    # === Inputs ===
    inputs, _, flat = encoded_inputs(spec)
    # === Layers ===
    towers = [(f"{ctr.name}_head", ctr), (f"{cvr.name}_head", cvr)]
    if estimator == "dr":
        towers.append((f"{cvr.name}_imputed_error", None))
    heads = []
    for name, task in towers:
        hidden = MLP(tower_units, activation=activation, name=f"{name}_mlp")(
            flat
        )
        heads.append(
            task_output(hidden, task, name=name)
            if task is not None
            else keras.layers.Dense(1, activation="softplus", name=name)(hidden)
        )
    ctr_out, cvr_out = CounterfactualRegularizer(
        estimator,
        weight=counterfactual_weight,
        ctr_loss_weight=ctr.weight,
        cvr_loss_weight=cvr.weight,
        min_propensity=min_propensity,
        name="counterfactual",
    )(heads)
    # === Outputs ===
    outputs = {
        ctr.name: ctr_out,
        cvr.name: cvr_out,
        ctcvr.name: keras.layers.Multiply(name=ctcvr.name)(heads[:2]),
    }
    return keras.Model(inputs, outputs)
