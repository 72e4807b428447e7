"""Switchers: layers that turn one representation into one per branch, and
the registry that finds them by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from typing import Any

from kmtl import validation
from kmtl.layers.expert_mixture import ExpertMixture
from kmtl.layers.keras_objects import constructor_config


def shape_list(shape: Any) -> list[tuple[Any, ...]] | None:
    """Returns the shapes of a list input, or None for a single shape."""
    if isinstance(shape, (list, tuple)) and shape:
        if all(isinstance(s, (list, tuple)) for s in shape):
            return [tuple(s) for s in shape]
    return None


class Switcher(ExpertMixture):
    """Base class of the layers that route a representation to K branches.

    A switcher maps one representation `x` of shape `[B, d]` (or, for
    hierarchical ones such as stacked CGC levels, a list of per-branch
    representations) to a Python list of `num_outputs` tensors
    `[y_1, ..., y_K]`, one per downstream branch (usually a task tower):

    `[y_1, ..., y_K] = switcher(x)`

    Every switcher takes `num_tasks` and the `ExpertMixture` arguments
    (`expert_units`, `activation`, `kernel_initializer`,
    `kernel_regularizer`), which this base stores, checks and serializes;
    a subclass adds only its own. Subclasses register themselves with
    `@register_switcher(name)`, so `get_switcher(name, ...)` builds any of
    them and a model takes any switcher by name. `get_switcher` also
    accepts an expert budget in one vocabulary for all switchers
    (`num_shared_experts`, `num_task_experts`), which each subclass maps to
    its own arguments as its `expert_budget` says.

    Args:
        num_tasks: int. The number of task branches `K`.
        **kwargs: The `ExpertMixture` arguments and base layer keyword
            arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor of shape `[B, d]`, or a list of them for switchers
            that take one input per branch.

    Returns:
        A list of `num_outputs` tensors of shape `[B, h]`.

    Example:

    ```python
    switcher = kmtl.layers.get_switcher("mmoe", 2, num_experts=4)
    ctr, cvr = switcher(np.random.rand(8, 16))

    inputs = keras.Input(shape=(16,))
    branches = kmtl.layers.get_switcher("cgc", 2)(inputs)
    outputs = [keras.layers.Dense(1)(b) for b in branches]
    model = keras.Model(inputs, outputs)
    ```

    Reference:
        - Multi-Faceted Hierarchical Multi-Task Learning for Recommender
          Systems (MFH), CIKM 2022, section III.C (the switcher).
    """

    def __init__(self, num_tasks: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_tasks = validation.positive_int(num_tasks, "num_tasks")

    @property
    def num_outputs(self) -> int:
        """The number of tensors returned by `call`."""
        return self.num_tasks

    #: How `get_switcher`'s expert budget (`num_shared_experts` shared
    #: experts, `num_task_experts` per task) maps to this switcher's own
    #: arguments: `"split"` takes both as they are (CGC), `"pooled"` pools
    #: them into `num_experts = shared + num_tasks * per_task` (MMoE), `None`
    #: ignores them (a switcher without experts to count).
    expert_budget: str | None = None

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, Switcher))
        return config


_SWITCHERS: dict[str, tuple[type[Switcher], dict[str, Any]]] = {}


def register_switcher(name: str, **fixed: Any) -> Callable[[type], type]:
    """Registers a `Switcher` subclass under `name`, with arguments fixed.

    Args:
        name: str. The name for `get_switcher` and the models' switcher
            hparams.
        **fixed: constructor arguments this name always passes (OMoE is
            MMoE with `shared_gate=True`).

    Returns:
        A class decorator.

    Example:

    ```python
    @register_switcher("mmoe")
    @register_switcher("omoe", shared_gate=True)
    class MMoELayer(Switcher): ...
    ```
    """

    def decorator(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Switcher)):
            raise ValueError(
                f"register_switcher({name!r}) decorates Switcher subclasses. "
                f"Received: {cls!r}"
            )
        if name in _SWITCHERS:
            raise ValueError(f"Switcher {name!r} is already registered.")
        _SWITCHERS[name] = (cls, dict(fixed))
        return cls

    return decorator


def switcher_names() -> tuple[str, ...]:
    """The registered switcher names, sorted."""
    return tuple(sorted(_SWITCHERS))


def get_switcher(
    name: str,
    /,
    num_tasks: int,
    *,
    num_shared_experts: int | None = None,
    num_task_experts: int | None = None,
    **kwargs: Any,
) -> Switcher:
    """Builds the switcher registered under `name`.

    Args:
        name: str. One of `switcher_names()`: `"shared_bottom"`,
            `"mmoe"`, `"omoe"`, `"cgc"`, ... Positional-only, so that the
            layer's own `name=` can be passed in `kwargs`.
        num_tasks: int. The number of task branches.
        num_shared_experts: int or None. The expert budget's shared
            experts, mapped by the switcher (`cgc` takes it as is, `mmoe`
            and `omoe` pool it with the task experts into `num_experts`,
            `shared_bottom` has no experts to count).
        num_task_experts: int or None. The expert budget's experts per task.
        **kwargs: The other constructor arguments of the layer.

    Returns:
        The switcher layer (not built).

    Example:

    ```python
    layer = kmtl.layers.get_switcher("omoe", 2, num_experts=4, name="moe")
    same_budget = kmtl.layers.get_switcher(
        "mmoe", 2, num_shared_experts=2, num_task_experts=1
    )  # 4 experts
    ```
    """
    if name not in _SWITCHERS:
        raise ValueError(
            f"Unknown switcher `name`: expected one of {list(switcher_names())}"
            f". Received: name={name!r}"
        )
    cls, fixed = _SWITCHERS[name]
    clash = sorted(set(fixed) & set(kwargs))
    if clash:
        raise ValueError(
            f"The `{name}` switcher always has "
            + ", ".join(f"{k}={fixed[k]!r}" for k in clash)
            + f". Received: {', '.join(f'{k}={kwargs[k]!r}' for k in clash)}"
        )
    budget = {
        "num_shared_experts": num_shared_experts,
        "num_task_experts": num_task_experts,
    }
    budget = {k: v for k, v in budget.items() if v is not None}
    if cls.expert_budget == "pooled" and budget:
        budget = {
            "num_experts": budget.get("num_shared_experts", 0)
            + num_tasks * budget.get("num_task_experts", 0)
        }
    elif cls.expert_budget is None:
        budget = {}
    return cls(num_tasks=num_tasks, **budget, **fixed, **kwargs)


def switcher_name(value: Any, name: str, owner: str = "") -> str:
    """Returns `value` if it names a registered switcher, or raises."""
    return validation.one_of(value, name, owner, choices=switcher_names())


#: The annotated type of a model hparam that takes any switcher by name.
SwitcherName = Annotated[str, validation.Check(switcher_name)]


__all__ = [
    "SwitcherName",
    "Switcher",
    "get_switcher",
    "register_switcher",
    "shape_list",
    "switcher_name",
    "switcher_names",
]
