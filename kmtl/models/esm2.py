"""ESM2: the post-click funnel decomposed through a deterministic action
(cart, wishlist) and trained over the entire impression space."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import TaskSpec
from kmtl.layers.mlp import MLP
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_output
from kmtl.models.registry import register_model
from kmtl.validation import Activation
from kmtl.validation import Name
from kmtl.validation import OptionalName
from kmtl.validation import Units


def funnel_roles(
    model: str,
    spec: FeatureSpec,
    named: Mapping[str, str | None],
    roles: str,
) -> tuple[TaskSpec, ...]:
    """The spec's binary tasks playing a funnel's roles, in funnel order.

    Args:
        model: str. The model name, for the messages.
        spec: FeatureSpec.
        named: dict hparam -> task name or None, in funnel order (e.g.
            `{"ctr_task": None, "cvr_task": None}`). All `None`: the spec's
            tasks in order, exactly one per role.
        roles: str. What the roles are, for the messages (e.g. `"click,
            purchase"`).

    Returns:
        One TaskSpec per role, in the order of `named`.

    Raises:
        ValueError: the spec has another number of tasks, only some roles
            are named, a name is unknown, twice, or not a binary task.
    """
    hparams = list(named)
    if all(name is None for name in named.values()):
        if len(spec.tasks) != len(named):
            raise ValueError(
                f"Model {model!r} needs a spec with exactly {len(named)} "
                f"binary tasks, in funnel order: {roles}; or the hparams "
                f"{', '.join(f'`{h}`' for h in hparams)}. Received tasks "
                f"{spec.task_names}."
            )
        tasks = tuple(spec.tasks)
    else:
        tasks = tuple(
            spec.task(name) if name else None for name in named.values()
        )
        if any(task is None for task in tasks):
            given = ", ".join(f"{h}={v!r}" for h, v in named.items())
            raise ValueError(
                f"Model {model!r}: give every one of "
                f"{', '.join(f'`{h}`' for h in hparams)}, each a task of "
                f"the spec ({spec.task_names}). Received: {given}"
            )
    for task in tasks:
        if task.kind != "binary":
            raise ValueError(
                f"Model {model!r}: task {task.name!r} must be binary. "
                f"Received kind={task.kind!r}"
            )
    if len({t.name for t in tasks}) != len(tasks):
        raise ValueError(
            f"Model {model!r}: the funnel's tasks ({roles}) must differ. "
            f"Received: {[t.name for t in tasks]}"
        )
    return tasks


def check_free_names(
    model: str, spec: FeatureSpec, names: Mapping[str, str]
) -> None:
    """Raises unless the derived output names (hparam -> name) are new."""
    for hparam, name in names.items():
        if name in spec.task_names:
            raise ValueError(
                f"Model {model!r}: the spec already has a task {name!r}; "
                f"pick another `{hparam}`."
            )
    if len(set(names.values())) != len(names):
        raise ValueError(
            f"Model {model!r}: {', '.join(f'`{h}`' for h in names)} must "
            f"differ. Received: {dict(names)}"
        )


def _post_click(task: TaskSpec, ctr: TaskSpec) -> TaskSpec:
    """A post-click rate: no loss, metrics on clicked rows (its label is
    times the click, so the model derives it and its sample space)."""
    return dataclasses.replace(
        task,
        label=ctr.label_columns + task.label_columns,
        weight=0.0,
        sample_space=ctr.name,
    )


def esm2_tasks(
    spec: FeatureSpec,
    *,
    ctr_task: str | None = None,
    daction_task: str | None = None,
    cvr_task: str | None = None,
    ctavr_name: str = "ctavr",
    ctcvr_name: str = "ctcvr",
) -> tuple[TaskSpec, ...]:
    """ESM2's outputs: CTR (loss over all impressions), the post-click
    DAction rate and CVR (no loss, metrics on clicked rows), and CTAVR and
    CTCVR (labels click x DAction and click x purchase, losses over all
    impressions with the DAction and purchase tasks' weights)."""
    ctr, daction, cvr = funnel_roles(
        "esm2",
        spec,
        {
            "ctr_task": ctr_task,
            "daction_task": daction_task,
            "cvr_task": cvr_task,
        },
        "click, deterministic action (DAction: add to cart or wishlist, "
        "with its own label), purchase",
    )
    check_free_names(
        "esm2", spec, {"ctavr_name": ctavr_name, "ctcvr_name": ctcvr_name}
    )
    return (
        dataclasses.replace(ctr, sample_space=None),
        _post_click(daction, ctr),
        TaskSpec(
            ctavr_name,
            label=ctr.label_columns + daction.label_columns,
            weight=daction.weight,
            metrics=daction.metrics,
        ),
        _post_click(cvr, ctr),
        TaskSpec(
            ctcvr_name,
            label=ctr.label_columns + cvr.label_columns,
            weight=cvr.weight,
            metrics=cvr.metrics,
        ),
    )


@register_model("esm2", tasks=esm2_tasks)
def build_esm2(
    spec: FeatureSpec,
    *,
    ctr_task: OptionalName = None,
    daction_task: OptionalName = None,
    cvr_task: OptionalName = None,
    ctavr_name: Name = "ctavr",
    ctcvr_name: Name = "ctcvr",
    tower_units: Units = (128, 64),
    activation: Activation = "relu",
) -> keras.Model:
    """ESM2: CVR through a deterministic action (Wen et al., SIGIR 2020).

    Impression -> click -> deterministic action (DAction: cart, wishlist)
    or other action (OAction) -> purchase. Four towers on the shared
    embeddings predict `pCTR`, `pAVR` = P(DAction | click),
    `pCVR_D` = P(purchase | DAction) and `pCVR_O` = P(purchase | OAction);

    `pCVR = pAVR pCVR_D + (1 - pAVR) pCVR_O`,
    `pCTAVR = pCTR pAVR`, `pCTCVR = pCTR pCVR`,

    and the losses are the log losses of CTR, CTAVR and CTCVR over every
    impression (labels click, click x DAction, click x purchase), so the
    post-click outputs are free of the selection bias of clicked rows and
    learn from the denser DAction labels. The built model's `tasks` hold
    the five outputs' tasks; it derives the product labels itself.

    Args:
        spec: FeatureSpec with a click, a DAction and a purchase task.
        ctr_task: name of the click task. Defaults to the first task.
        daction_task: name of the DAction task. Defaults to the second.
        cvr_task: name of the purchase task. Defaults to the third.
        ctavr_name: name of the CTAVR output. Defaults to `"ctavr"`.
        ctcvr_name: name of the CTCVR output. Defaults to `"ctcvr"`.
        tower_units: hidden units of each of the four towers.
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model` with outputs CTR, the DAction task
        (post-click `pAVR`), CTAVR, the purchase task (post-click `pCVR`,
        the entire-space CVR) and CTCVR.

    Example:

    ```python
    df, _ = kmtl.data.make_funnel(20_000)
    spec = kmtl.FeatureSpec.from_dataframe(
        df, labels={"ctr": "click", "avr": "daction", "cvr": "purchase"})
    model = kmtl.build("esm2", spec)
    model.fit(kmtl.data.to_dataset(df, spec), epochs=1)
    ```

    Reference:
        - [Wen et al., 2020](https://arxiv.org/abs/1910.07099) (SIGIR
          2020), section 3.
    """
    ctr, avr, ctavr, cvr, ctcvr = esm2_tasks(
        spec,
        ctr_task=ctr_task,
        daction_task=daction_task,
        cvr_task=cvr_task,
        ctavr_name=ctavr_name,
        ctcvr_name=ctcvr_name,
    )
    # === Inputs ===
    inputs, _, flat = encoded_inputs(spec)
    # === Layers ===
    heads = {}
    for name, task in (
        (ctr.name, ctr),
        (avr.name, avr),
        (f"{cvr.name}_daction", cvr),
        (f"{cvr.name}_oaction", cvr),
    ):
        tower = MLP(tower_units, activation=activation, name=f"{name}_tower")
        heads[name] = task_output(tower(flat), task, name=name)
    # === Outputs ===
    cvr_d, cvr_o = heads[f"{cvr.name}_daction"], heads[f"{cvr.name}_oaction"]
    gap = keras.layers.Subtract(name=f"{cvr.name}_gap")([cvr_d, cvr_o])
    via_daction = keras.layers.Multiply(name=f"{cvr.name}_via_daction")(
        [heads[avr.name], gap]
    )
    post_click = keras.layers.Add(name=cvr.name)([cvr_o, via_daction])
    outputs = {
        ctr.name: heads[ctr.name],
        avr.name: heads[avr.name],
        ctavr.name: keras.layers.Multiply(name=ctavr.name)(
            [heads[ctr.name], heads[avr.name]]
        ),
        cvr.name: post_click,
        ctcvr.name: keras.layers.Multiply(name=ctcvr.name)(
            [heads[ctr.name], post_click]
        ),
    }
    return keras.Model(inputs, outputs)
