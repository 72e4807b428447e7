"""MFH and H-MTL: trees of switchers over the facets of the tasks
(behaviour x user group), towers per task, group-routed serving."""

from __future__ import annotations

import re
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Annotated
from typing import Any

import keras

from kmtl import validation
from kmtl.features.spec import CategoricalFeature
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import TaskSpec
from kmtl.layers.group_gradient_gate import GroupGradientGate
from kmtl.layers.group_membership import GroupMembership
from kmtl.layers.group_router import GroupRouter
from kmtl.layers.mlp import MLP
from kmtl.layers.switcher import get_switcher
from kmtl.layers.switcher import switcher_name
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_output
from kmtl.models.heads import task_width
from kmtl.models.registry import register_model
from kmtl.validation import Activation
from kmtl.validation import Bool
from kmtl.validation import Check
from kmtl.validation import Name
from kmtl.validation import NonNegativeInt
from kmtl.validation import OptionalName
from kmtl.validation import OptionalNames
from kmtl.validation import OptionalUnits
from kmtl.validation import Units

# --- hparam types of their own ---


def _switcher_list(value: Any, name: str, owner: str = "") -> tuple[str, ...]:
    """A list of registered switcher names, one per tree level."""
    names = validation.name_list(value, name, owner)
    for i, item in enumerate(names):
        switcher_name(item, f"{name}[{i}]", owner)
    return names


def _group_inclusion(
    value: Any, name: str, owner: str = ""
) -> dict[str, tuple[str, ...]]:
    """A dict group -> list of groups (names)."""
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and k for k in value
    ):
        raise ValueError(
            f"{owner}`{name}` must map a user group to the groups whose "
            "tasks its rows also train, e.g. {'new': ['regular']}. "
            f"Received: {name}={value!r}"
        )
    return {
        k: validation.name_list(v, f"{name}[{k!r}]", owner)
        for k, v in value.items()
    }


def _units_by_task(
    value: Any, name: str, owner: str = ""
) -> dict[str, tuple[int, ...]]:
    """A dict task name -> tower units (may be empty)."""
    if not isinstance(value, Mapping):
        raise ValueError(
            f"{owner}`{name}` must map task names to tower units, e.g. "
            f"{{'click_new': (16,)}}. Received: {name}={value!r}"
        )
    return {
        k: validation.units(v, f"{name}[{k!r}]", owner, allow_empty=True)
        for k, v in value.items()
    }


OptionalSwitcherNames = Annotated[
    Sequence[str] | None, Check(_switcher_list, optional=True)
]
OptionalGroupInclusion = Annotated[
    Mapping[str, Sequence[str]] | None, Check(_group_inclusion, optional=True)
]
OptionalUnitsByTask = Annotated[
    Mapping[str, Sequence[int]] | None, Check(_units_by_task, optional=True)
]

# --- the facets of the spec's tasks ---

ROOT = ()
"""The root node of a tree: no facet fixed yet."""


def _facet_error(model: str, spec: FeatureSpec, why: str) -> ValueError:
    return ValueError(
        f"Model {model!r} routes tasks on their facets: {why} Declare each "
        "task's value on every facet, e.g. TaskSpec('click_new', "
        "label='click', facets={'behaviour': 'click', 'user_group': "
        "'new'}); a task without the user-group facet (facets={'behaviour': "
        "'click'}) is served by the row's group's task. Received tasks "
        f"{[(t.name, dict(t.facets)) for t in spec.tasks]}."
    )


def _tree_facets(
    model: str,
    spec: FeatureSpec,
    facets: Sequence[str] | None,
    group_facet: str,
) -> tuple[tuple[str, ...], list[TaskSpec], list[TaskSpec]]:
    """The facets in tree order, the tasks with every facet (the tree's
    leaves) and the routed tasks (every facet but the group's)."""
    declared = sorted({f for t in spec.tasks for f, _ in t.facets})
    if not declared:
        raise _facet_error(model, spec, "no task of the spec has facets.")
    facets = tuple(facets) if facets is not None else tuple(declared)
    if len(set(facets)) != len(facets) or group_facet not in facets:
        raise _facet_error(
            model,
            spec,
            f"hparam `facets` must list distinct facets, the group facet "
            f"{group_facet!r} among them; got facets={list(facets)}.",
        )
    leaves, routed = [], []
    for task in spec.tasks:
        names = {f for f, _ in task.facets}
        if names == set(facets):
            leaves.append(task)
        elif names == set(facets) - {group_facet}:
            routed.append(task)
        else:
            raise _facet_error(
                model,
                spec,
                f"task {task.name!r} has facets {sorted(names)}, expected "
                f"{list(facets)} (or all but {group_facet!r}, routed).",
            )
    if not leaves:
        raise _facet_error(
            model, spec, f"no task has all the facets {list(facets)}."
        )
    codes = [_code(t, facets) for t in leaves]
    if len(set(codes)) != len(codes):
        raise _facet_error(
            model, spec, "two tasks have the same value on every facet."
        )
    return facets, leaves, routed


def _code(task: TaskSpec, facets: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The task's (facet, value) pairs, in tree order."""
    return tuple((f, task.facet(f)) for f in facets if task.facet(f))


def _group_membership(
    model: str,
    spec: FeatureSpec,
    column: str,
    group_facet: str,
    groups: list[str],
    default_group: str | None,
) -> GroupMembership:
    """The layer reading each row's group from `column`: the scenario
    column (its ids named by the scenario's values) or a categorical
    feature (strings, or decimal integer ids)."""
    scenario = spec.scenario
    if scenario is not None and column == scenario.name:
        missing = [g for g in groups if g not in scenario.values]
        if missing:
            raise ValueError(
                f"Model {model!r}: the groups {missing} of facet "
                f"{group_facet!r} are not values of the scenario {column!r} "
                f"({list(scenario.values)}), which names each row's group."
            )
        ids = {g: str(scenario.values.index(g)) for g in groups}
        return GroupMembership(
            [ids[g] for g in groups],
            default_group=ids.get(default_group),
            integer_ids=True,
            name="group_membership",
        )
    feature = next((f for f in spec.features if f.name == column), None)
    if not isinstance(feature, CategoricalFeature) or feature.bias:
        raise ValueError(
            f"Model {model!r} reads each row's {group_facet!r} (the group "
            f"facet's values {groups}) from the scenario column or a "
            f"categorical feature {column!r}: declare it in the spec, or "
            "name another with hparam `group_column`. Received categorical "
            f"features {spec.names('categorical')}, scenario "
            f"{scenario.name if scenario else None!r}."
        )
    integer_ids = feature.dtype == "int64"
    if integer_ids and not all(g.isdigit() for g in groups):
        raise ValueError(
            f"Model {model!r}: the integer column {column!r} holds the "
            f"groups of facet {group_facet!r} as ids, so its values must be "
            f"decimal ids ('0', '1'). Received: {groups}"
        )
    return GroupMembership(
        groups,
        default_group=default_group,
        integer_ids=integer_ids,
        name="group_membership",
    )


def _check_group_rules(
    model: str,
    groups: list[str],
    default_group: str | None,
    group_inclusion: Mapping[str, Sequence[str]],
) -> None:
    named = {"default_group": [default_group] if default_group else []}
    for key, targets in group_inclusion.items():
        named[f"group_inclusion[{key!r}]"] = [key, *targets]
    for what, values in named.items():
        unknown = [v for v in values if v not in groups]
        if unknown:
            raise ValueError(
                f"Model {model!r}: hparam `{what}` names user groups "
                f"{unknown}, which no task has. Expected some of {groups}."
            )


# --- the tree ---


def _children(
    node: Any,
    facets: tuple[str, ...],
    values: Mapping[str, list[str]],
    leaves: set[tuple[tuple[str, str], ...]],
    nested: bool,
) -> list[Any]:
    """The nodes one switcher level below `node`.

    A node is `ROOT`, a facet name (MFH's facet nodes, below the root) or a
    code: (facet, value) pairs in tree order. Only codes that some task's
    code contains are kept.
    """
    order = {f: i for i, f in enumerate(facets)}

    def alive(code: tuple) -> bool:
        return any(set(code) <= set(leaf) for leaf in leaves)

    def extend(code: tuple, facet: str) -> list[tuple]:
        grown = [
            tuple(sorted((*code, (facet, v)), key=lambda p: order[p[0]]))
            for v in values[facet]
        ]
        return [c for c in grown if alive(c)]

    if node == ROOT:
        return list(facets) if nested else extend(ROOT, facets[0])
    if isinstance(node, str):  # a facet node
        return extend(ROOT, node)
    if not nested:
        return extend(node, facets[len(node)])
    fixed = {f for f, _ in node}
    return [c for f in facets if f not in fixed for c in extend(node, f)]


def _node_name(node: Any) -> str:
    if node == ROOT:
        return "root"
    if isinstance(node, str):
        return re.sub(r"\W", "_", node)
    return "__".join(re.sub(r"\W", "_", f"{f}_{v}") for f, v in node)


def _combined(node: Any, paths: list[Any]) -> Any:
    """The paths that reach a node, concatenated: the node's first Dense
    then combines them linearly (`sum_p W_p h_p`)."""
    if len(paths) == 1:
        return paths[0]
    return keras.layers.Concatenate(name=f"{_node_name(node)}_paths")(paths)


@register_model(
    "hmtl",
    fixed={"nested": False},
    description="H-MTL: a tree of switchers, one level per facet in order "
    "(behaviour, then user group), a tower per task (MFH paper's baseline, "
    "Liu et al. 2022).",
)
@register_model("mfh", fixed={"nested": True})
def build_mfh(
    spec: FeatureSpec,
    *,
    facets: OptionalNames = None,
    group_facet: Name = "user_group",
    group_column: OptionalName = None,
    default_group: OptionalName = None,
    group_inclusion: OptionalGroupInclusion = None,
    switchers: OptionalSwitcherNames = None,
    num_shared_experts: NonNegativeInt = 2,
    num_task_experts: NonNegativeInt = 1,
    expert_units: Units = (64,),
    node_units: OptionalUnits = (64,),
    tower_units: OptionalUnits = (64, 32),
    task_tower_units: OptionalUnitsByTask = None,
    activation: Activation = "relu",
    nested: Bool = True,
) -> keras.Model:
    """MFH: nested trees of switchers over the task facets (Liu et al. 2022).

    Tasks carry facets (`TaskSpec(facets={"behaviour": "click",
    "user_group": "new"})`); a task is one value per facet. MFH
    (`nested`): the level-0 switcher branches to one MLP per facet, the
    level-1 switcher of each facet to one MLP per value (`click`, `new`),
    and each value's level-2 switcher to the tasks holding it, so a task's
    tower combines one path per facet:

    `y_{new&click} = tower_{new&click}(S_click^{new&click}(MLP_click(
    S_behaviour^click(MLP_behaviour(S_0^behaviour(x))))) + S_new^{new&click}
    (MLP_new(S_group^new(MLP_group(S_0^group(x))))))`

    with `+` a linear combination (the paths are concatenated into the
    tower's first Dense). With N facets there are N + 1 levels; a node on
    k facets is reached from each node on k - 1 of them. H-MTL
    (`"hmtl"`, not nested) is one tree in the order of `facets`: the
    level-0 switcher branches to one MLP per value of the first facet, the
    next level to the tasks (N levels), `y = tower(S_click^{new&click}(
    MLP_click(S_0^click(x))))`. Any registered switcher can sit at any level
    (`switchers`, default shared-bottom at level 0 and CGC above, as the
    paper's best).

    User groups: a row's value on the group facet is read from
    `group_column`: the scenario column (its values name the groups; the
    export's `scenario_<group>` signatures then serve one group each) or a
    categorical feature (then also embedded as an input). Training rule
    (paper V.A.3): a task of group g learns from g's rows and from the rows
    of each group h with g in `group_inclusion[h]` (`{"new": ["regular"]}`:
    new users' rows also train the regular users' tasks), as if those rows
    had sample weight 1 and the others 0 (`GroupGradientGate`: the others
    send no gradient), so the plain `to_dataset(df, spec)` -> `fit` applies
    it. Serving: a spec task without the group facet (`facets={"behaviour":
    "click"}`) is a routed output: each row gets its own group's task's
    prediction (`GroupRouter`); a row whose group is missing or unknown is
    in `default_group`.

    Deviations from the paper: PLE at level 1 (its best choice) is not a
    registered switcher, so level 1 defaults to CGC (one PLE level); only
    the group facet partitions rows, the other facets' tasks see every row
    (their own labels); the compiled loss and metrics of a per-group output
    count every row (Keras gives them the data's sample weights only),
    though its gradient does not: read the routed outputs' metrics, or
    evaluate a group's task on that group's rows.

    Args:
        spec: FeatureSpec whose tasks have facets.
        facets: facet names in tree order (H-MTL's split order). Defaults
            to the spec's facets, sorted.
        group_facet: the facet whose value is a row's group. Defaults to
            `"user_group"`.
        group_column: the scenario column or categorical feature holding
            each row's group (named by the group facet's values; an integer
            feature holds them as decimal ids). Defaults to `group_facet`.
        default_group: the group of rows whose group is missing or
            unknown. Defaults to the group facet's first value.
        group_inclusion: dict group -> groups whose tasks its rows also
            train. Defaults to none (each group trains its own tasks).
        switchers: one registered switcher name per level
            (`kmtl.layers.switcher_names()`): N + 1 for MFH, N for H-MTL.
            Defaults to `"shared_bottom"` then `"cgc"` at every level.
        num_shared_experts: each switcher's shared experts (the expert
            budget, mapped by each switcher as in `hinet`). Defaults to 2.
        num_task_experts: each switcher's experts per branch. Defaults
            to 1.
        expert_units: hidden units of each expert (the bottom of
            `shared_bottom`). Defaults to `(64,)` (the paper: one layer).
        node_units: hidden units of the MLP at each tree node (facet and
            value nodes); empty for none. Defaults to `(64,)`.
        tower_units: hidden units of each task tower; empty for none.
            Defaults to `(64, 32)`.
        task_tower_units: dict task -> tower units, for heterogeneous
            towers (smaller ones for tasks with fewer rows). Defaults to
            none.
        activation: hidden activation. Defaults to `"relu"`.
        nested: MFH's nested trees (`"mfh"`) or one tree (`"hmtl"`); fixed
            by the registered name.

    Returns:
        A functional `keras.Model`, one output per task.

    Example:

    ```python
    from kmtl.data.facets import faceted_spec, make_faceted

    df, _ = make_faceted(20_000)
    spec = faceted_spec(df)  # click_new, ..., purchase_regular, click, ...
    model = kmtl.build("mfh", spec, group_inclusion={"new": ["regular"]})
    model.fit(kmtl.data.to_dataset(df, spec, shuffle=True), epochs=2)
    ```

    Reference:
        - [Liu et al., CIKM 2022](https://arxiv.org/abs/2110.13365)
          (Multi-Faceted Hierarchical Multi-Task Learning for Recommender
          Systems).
    """
    model = "mfh" if nested else "hmtl"
    facets, leaves, routed = _tree_facets(model, spec, facets, group_facet)
    values = {
        f: list(dict.fromkeys(t.facet(f) for t in leaves)) for f in facets
    }
    groups = values[group_facet]
    group_inclusion = dict(group_inclusion or {})
    _check_group_rules(model, groups, default_group, group_inclusion)
    levels = len(facets) + 1 if nested else len(facets)
    switchers = tuple(switchers or ("shared_bottom",) + ("cgc",) * (levels - 1))
    if len(switchers) != levels:
        raise ValueError(
            f"Model {model!r}: hparam `switchers` needs one switcher per "
            f"level, {levels} for the facets {list(facets)}. Received: "
            f"switchers={list(switchers)}"
        )
    unknown = sorted(set(task_tower_units or {}) - {t.name for t in leaves})
    if unknown:
        raise ValueError(
            f"Model {model!r}: hparam `task_tower_units` names {unknown}, "
            f"which are not tasks with a tower. Expected some of "
            f"{[t.name for t in leaves]}."
        )
    column = group_column or group_facet
    group_layer = _group_membership(
        model, spec, column, group_facet, groups, default_group
    )
    codes = {_code(t, facets): t for t in leaves}
    by_routed = {}
    for task in routed:
        members = [
            codes.get(
                tuple(
                    sorted(
                        (*_code(task, facets), (group_facet, g)),
                        key=lambda p: facets.index(p[0]),
                    )
                )
            )
            for g in groups
        ]
        if any(m is None for m in members) or any(
            (m.kind, task_width(m)) != (task.kind, task_width(task))
            for m in members
        ):
            raise _facet_error(
                model,
                spec,
                f"the routed task {task.name!r} needs, for every group "
                f"{groups}, a task of the same kind with its facets.",
            )
        by_routed[task.name] = members

    # === Inputs ===
    inputs, _, flat = encoded_inputs(spec)
    membership = group_layer(inputs[column])
    # === Layers ===
    nodes = {ROOT: flat}
    for level, switcher in enumerate(switchers):
        paths = {}
        for node, hidden in nodes.items():
            kids = _children(node, facets, values, set(codes), nested)
            branches = get_switcher(
                switcher,
                len(kids),
                num_shared_experts=num_shared_experts,
                num_task_experts=num_task_experts,
                expert_units=expert_units,
                activation=activation,
                name=f"{_node_name(node)}_switcher",
            )(hidden)
            for kid, branch in zip(kids, branches, strict=True):
                paths.setdefault(kid, []).append(branch)
        if level < levels - 1:
            nodes = {
                kid: MLP(
                    node_units,
                    activation=activation,
                    name=f"{_node_name(kid)}_mlp",
                )(_combined(kid, reaching))
                if node_units
                else _combined(kid, reaching)
                for kid, reaching in paths.items()
            }
    # === Outputs ===
    predictions, outputs = {}, {}
    for code, task in codes.items():
        hidden = _combined(code, paths[code])
        units = (task_tower_units or {}).get(task.name, tower_units)
        if units:
            hidden = MLP(
                units, activation=activation, name=f"{task.name}_tower"
            )(hidden)
        predictions[task.name] = task_output(
            hidden, task, name=f"{task.name}_prediction"
        )
        group = groups.index(task.facet(group_facet))
        trained_by = [
            i
            for i, g in enumerate(groups)
            if i == group or groups[group] in group_inclusion.get(g, ())
        ]
        outputs[task.name] = GroupGradientGate(trained_by, name=task.name)(
            [predictions[task.name], membership]
        )
    for name, members in by_routed.items():
        outputs[name] = GroupRouter(name=name)(
            [membership, *(predictions[m.name] for m in members)]
        )
    return keras.Model(inputs, {t.name: outputs[t.name] for t in spec.tasks})
