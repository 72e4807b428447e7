"""The argument checks that layers, model builders and specs share.

Every check takes the value, the argument's name and an optional `owner`
prefix, and returns the value in its canonical form (a NumPy integer
becomes a Python `int`, a list of units a tuple), or raises a `ValueError`
that names the owner and the argument, states the rule and ends with the
received value:

`Model 'hinet': hparam `num_shared_experts` must be a positive integer.
Received: num_shared_experts=0`

"Integer" means any `numbers.Integral` but `bool` (NumPy integers
included); "float" means any finite `numbers.Real` but `bool`.

The annotated types (`PositiveInt`, `Units`, `Rate`, `OneOf(...)`, ...) put
a check on a model builder's signature; `kmtl.build` applies them
(`hparam_checks`), so a builder hand-writes only the rules that tie its
hparams to each other or to the spec.

Example:

```python
from kmtl import validation

width = validation.positive_int(np.int64(8), "units")  # 8, a Python int
validation.rate(1.5, "dropout")  # ValueError: `dropout` must be a float in
                                 # [0, 1). Received: dropout=1.5
```
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from collections.abc import Callable
from collections.abc import Sequence
from typing import Annotated
from typing import Any

import numpy as np


def is_integer(value: Any) -> bool:
    """Whether `value` is an integer (NumPy integers too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """Whether `value` is a real number (NumPy floats too), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _fail(owner: str, name: str, rule: str, value: Any) -> ValueError:
    return ValueError(
        f"{owner}`{name}` must be {rule}. Received: {name}={value!r}"
    )


def positive_int(value: Any, name: str, owner: str = "") -> int:
    """Returns `value` as an int >= 1, or raises a `ValueError`."""
    if not is_integer(value) or value < 1:
        raise _fail(owner, name, "a positive integer", value)
    return int(value)


def non_negative_int(value: Any, name: str, owner: str = "") -> int:
    """Returns `value` as an int >= 0, or raises a `ValueError`."""
    if not is_integer(value) or value < 0:
        raise _fail(owner, name, "a non-negative integer", value)
    return int(value)


def positive_ints(value: Any, name: str, owner: str = "") -> Any:
    """Returns a positive int, or a tuple of them, or raises."""
    if is_integer(value):
        return positive_int(value, name, owner)
    if (
        isinstance(value, (list, tuple))
        and value
        and all(is_integer(v) and v >= 1 for v in value)
    ):
        return tuple(int(v) for v in value)
    raise _fail(owner, name, "a positive integer or a list of them", value)


def units(
    value: Any, name: str, owner: str = "", allow_empty: bool = False
) -> tuple[int, ...]:
    """Returns layer widths as a tuple of ints >= 1, or raises.

    Args:
        value: a list or tuple of positive integers.
        name: str. The argument's name.
        owner: str. Prefix of the message (`"Model 'mmoe': hparam "`).
        allow_empty: bool. Whether `()` is valid (no layer). Defaults to
            `False`.

    Returns:
        tuple of int.
    """
    if (
        not isinstance(value, (list, tuple))
        or (not value and not allow_empty)
        or not all(is_integer(u) and u >= 1 for u in value)
    ):
        rule = "a sequence of positive integers"
        if not allow_empty:
            rule = "a non-empty " + rule[2:]
        raise _fail(owner, name, rule, value)
    return tuple(int(u) for u in value)


def rate(value: Any, name: str, owner: str = "") -> float:
    """Returns a float in `[0, 1)` (a dropout rate), or raises."""
    if not is_real(value) or not 0.0 <= value < 1.0:
        raise _fail(owner, name, "a float in [0, 1)", value)
    return float(value)


def non_negative_float(value: Any, name: str, owner: str = "") -> float:
    """Returns a finite float >= 0, or raises."""
    if not is_real(value) or not math.isfinite(value) or value < 0:
        raise _fail(owner, name, "a non-negative finite float", value)
    return float(value)


def positive_float(value: Any, name: str, owner: str = "") -> float:
    """Returns a finite float > 0, or raises."""
    if not is_real(value) or not math.isfinite(value) or value <= 0:
        raise _fail(owner, name, "a positive finite float", value)
    return float(value)


def boolean(value: Any, name: str, owner: str = "") -> bool:
    """Returns `value` if it is a bool (NumPy bools too), or raises."""
    if not isinstance(value, (bool, np.bool_)):
        raise _fail(owner, name, "a bool", value)
    return bool(value)


def one_of(
    value: Any, name: str, owner: str = "", choices: Sequence[Any] = ()
) -> Any:
    """Returns `value` if it is one of `choices`, or raises."""
    if not isinstance(value, typing.Hashable) or value not in choices:
        raise _fail(owner, name, f"one of {list(choices)}", value)
    return value


def name_list(value: Any, name: str, owner: str = "") -> tuple[str, ...]:
    """Returns a list of names (strings) as a tuple, or raises."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise _fail(owner, name, "a list of names", value)
    if not all(isinstance(v, str) and v for v in value):
        raise _fail(owner, name, "a list of non-empty strings", value)
    return tuple(value)


def text(value: Any, name: str, owner: str = "") -> str:
    """Returns a non-empty string, or raises."""
    if not isinstance(value, str) or not value:
        raise _fail(owner, name, "a non-empty string", value)
    return value


def activation(value: Any, name: str, owner: str = "") -> Any:
    """Returns `value` if Keras knows it as an activation, or raises."""
    import keras

    try:
        keras.activations.get(value)
    except (ValueError, TypeError):
        raise _fail(
            owner, name, "a Keras activation name or callable", value
        ) from None
    return value


# --- Annotated hparam types ---


@dataclasses.dataclass(frozen=True)
class Check:
    """A check attached to a type with `typing.Annotated`.

    Args:
        function: a check of this module, `(value, name, owner, **options)
            -> value`.
        optional: bool. Whether `None` is also valid. Defaults to `False`.
        options: dict. Extra keyword arguments of `function`.
    """

    function: Callable[..., Any]
    optional: bool = False
    options: tuple[tuple[str, Any], ...] = ()

    def __call__(self, value: Any, name: str, owner: str = "") -> Any:
        if value is None and self.optional:
            return None
        return self.function(value, name, owner, **dict(self.options))


PositiveInt = Annotated[int, Check(positive_int)]
NonNegativeInt = Annotated[int, Check(non_negative_int)]
OptionalPositiveInt = Annotated[int | None, Check(positive_int, optional=True)]
PositiveInts = Annotated[int | Sequence[int], Check(positive_ints)]
Units = Annotated[Sequence[int], Check(units)]
OptionalUnits = Annotated[
    Sequence[int], Check(units, options=(("allow_empty", True),))
]
Rate = Annotated[float, Check(rate)]
NonNegativeFloat = Annotated[float, Check(non_negative_float)]
OptionalNonNegativeFloat = Annotated[
    float | None, Check(non_negative_float, optional=True)
]
PositiveFloat = Annotated[float, Check(positive_float)]
Bool = Annotated[bool, Check(boolean)]
Names = Annotated[Sequence[str], Check(name_list)]
OptionalNames = Annotated[Sequence[str] | None, Check(name_list, True)]
OptionalName = Annotated[str | None, Check(text, optional=True)]
Name = Annotated[str, Check(text)]
Activation = Annotated[str, Check(activation)]


def OneOf(*choices: Any) -> Any:  # noqa: N802 (a type, written like one)
    """The annotated type of an hparam that takes one of `choices`.

    Example: `cross_kind: OneOf("vector", "matrix") = "matrix"`.
    """
    return Annotated[str, Check(one_of, options=(("choices", tuple(choices)),))]


def hparam_checks(function: Callable[..., Any]) -> dict[str, Check]:
    """The `Check` of each annotated keyword-only parameter of `function`.

    Args:
        function: a model builder `(spec, *, hparam: Type = default, ...)`.

    Returns:
        dict parameter name -> Check (parameters without one are left out).
    """
    hints = typing.get_type_hints(function, include_extras=True)
    checks = {}
    for name, hint in hints.items():
        for meta in getattr(hint, "__metadata__", ()):
            if isinstance(meta, Check):
                checks[name] = meta
    return checks


__all__ = [
    "Activation",
    "Bool",
    "Check",
    "Name",
    "Names",
    "NonNegativeFloat",
    "NonNegativeInt",
    "OneOf",
    "OptionalName",
    "OptionalNames",
    "OptionalNonNegativeFloat",
    "OptionalPositiveInt",
    "OptionalUnits",
    "PositiveFloat",
    "PositiveInt",
    "PositiveInts",
    "Rate",
    "Units",
    "activation",
    "boolean",
    "hparam_checks",
    "is_integer",
    "is_real",
    "name_list",
    "non_negative_float",
    "non_negative_int",
    "one_of",
    "positive_float",
    "positive_int",
    "positive_ints",
    "rate",
    "text",
    "units",
]
