"""The task balancing strategies by name: `register_balancing`, `get`,
`balance`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from kmtl.training.balancing.base import TaskBalancing

_STRATEGIES: dict[str, type[TaskBalancing]] = {}


def register_balancing(name: str) -> Callable[[type], type]:
    """Registers a `TaskBalancing` subclass under `name`.

    Its hparams are the keyword arguments of its `__init__`, annotated with
    the types of `kmtl.validation`; `get` checks them.

    Args:
        name: str. The name `balance` and `kmtl.build(task_balancing=...)`
            take.

    Returns:
        The class decorator (it returns the class unchanged).
    """

    def decorator(cls: type[TaskBalancing]) -> type[TaskBalancing]:
        if name in _STRATEGIES:
            raise ValueError(f"Task balancing {name!r} is already registered.")
        cls.strategy_name = name
        _STRATEGIES[name] = cls
        return cls

    return decorator


def list_balancing() -> dict[str, str]:
    """Registered strategy names with the first line of their docstring."""
    return {
        name: (inspect.getdoc(cls) or "").split("\n")[0]
        for name, cls in sorted(_STRATEGIES.items())
    }


def get(strategy: str | TaskBalancing, **hparams: Any) -> TaskBalancing:
    """A strategy object from its name and hparams (or the object itself).

    Args:
        strategy: str (`"fixed"`, `"uncertainty"`, `"dwa"`, `"gradnorm"`,
            `"metabalance"`) or a `TaskBalancing`.
        **hparams: the strategy's hparams (only with a name).

    Returns:
        A new, unattached `TaskBalancing`.

    Raises:
        ValueError: an unknown name or hparam, or an invalid value; the
            message names the strategy and the hparam.
    """
    if isinstance(strategy, TaskBalancing):
        if hparams:
            raise ValueError(
                f"Task balancing {strategy.name!r}: hparams go to the "
                f"strategy's constructor. Received: {sorted(hparams)}"
            )
        return strategy
    if not isinstance(strategy, str) or strategy not in _STRATEGIES:
        raise ValueError(
            f"Unknown task balancing {strategy!r}. Expected one of "
            f"{sorted(_STRATEGIES)} or a TaskBalancing object."
        )
    cls = _STRATEGIES[strategy]
    params = inspect.signature(cls.__init__).parameters
    known = sorted(p for p, v in params.items() if v.kind == v.KEYWORD_ONLY)
    unknown = sorted(set(hparams) - set(known))
    if unknown:
        raise ValueError(
            f"Task balancing {strategy!r} does not take hparam(s) {unknown}. "
            f"Expected some of {known}."
        )
    return cls(**hparams)


def balance(model: Any, strategy: str | TaskBalancing, **hparams: Any) -> Any:
    """Trains a `TaskModel` with a task balancing strategy.

    Call it before the first `fit` (the optimizer must not be built yet).
    Every strategy logs each task's current weight as `weight_<task>` in
    `fit`'s History at the end of each epoch, and saves its state with the
    model (`.keras`).

    Args:
        model: a `kmtl.models.TaskModel` (what `kmtl.build` returns).
        strategy: str or `TaskBalancing`. See `get`.
        **hparams: the strategy's hparams (with a name).

    Returns:
        The model (balanced in place).

    Raises:
        ValueError: not a TaskModel, already balanced, already trained, or
            the strategy cannot balance this model.

    Example:

    ```python
    model = kmtl.build("mmoe", spec)
    kmtl.training.balance(model, "gradnorm", alpha=1.5)
    history = model.fit(ds, epochs=3)
    history.history["weight_ctr"]
    ```
    """
    from kmtl.models.task_model import TaskModel

    if not isinstance(model, TaskModel):
        raise ValueError(
            "kmtl.training.balance: `model` must be a kmtl TaskModel (what "
            f"kmtl.build returns). Received: {type(model).__name__}"
        )
    model.set_task_balancing(get(strategy, **hparams))
    return model


__all__ = ["balance", "get", "list_balancing", "register_balancing"]
