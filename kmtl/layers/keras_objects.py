"""Keras object arguments of kmtl layers (activations, initializers,
regularizers), cloned for sub-layers, and the config of a layer's
constructor arguments."""

from __future__ import annotations

import inspect
from typing import Any

import keras

_SERIALIZERS = {
    "activation": keras.activations.serialize,
    "initializer": keras.initializers.serialize,
    "regularizer": keras.regularizers.serialize,
    "constraint": keras.constraints.serialize,
}


def clone_initializer(initializer: Any) -> Any:
    """Returns a fresh copy of a Keras initializer, so that sub-layers do not
    share random values (an unseeded Keras 3 initializer draws the same
    values at every call, so two sub-layers given one object would start
    identical). Anything else is returned unchanged.

    Args:
        initializer: `keras.initializers.Initializer` or anything else.

    Returns:
        The copy, or `initializer`.
    """
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    return initializer.__class__.from_config(initializer.get_config())


def serialize_objects(**objects: Any) -> dict[str, Any]:
    """Serializes Keras objects for a layer config, by argument name.

    The serializer follows the name's suffix: `*activation`,
    `*initializer`, `*regularizer`, `*constraint`; `None` stays `None`.

    Args:
        **objects: argument name -> object (e.g. `activation=self.activation`).

    Returns:
        dict argument name -> serialized object.

    Example:

    ```python
    config.update(serialize_objects(activation=self.activation,
                                    kernel_initializer=self.kernel_initializer))
    ```
    """
    out = {}
    for name, value in objects.items():
        kind = next((k for k in _SERIALIZERS if name.endswith(k)), None)
        if kind is None:
            raise ValueError(
                f"serialize_objects: cannot tell the kind of `{name}` "
                "(expected "
                f"a name ending in one of {sorted(_SERIALIZERS)})."
            )
        out[name] = None if value is None else _SERIALIZERS[kind](value)
    return out


def _plain(value: Any) -> Any:
    """Tuples (nested too) as lists, for a JSON config."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def constructor_config(layer: Any, cls: type) -> dict[str, Any]:
    """The config entries of the named arguments of `cls.__init__`.

    kmtl layers keep each constructor argument as a public attribute of the
    same name (STYLE.md), so `get_config` reads them back: Keras objects
    are serialized by name (see `serialize_objects`), tuples become lists.
    Each class of a hierarchy passes itself, so a subclass adds only its
    own arguments to its base's config.

    Args:
        layer: the layer instance.
        cls: the class whose `__init__` arguments to read (not `*args`,
            `**kwargs`).

    Returns:
        dict argument name -> config value.

    Example:

    ```python
    def get_config(self):
        config = super().get_config()
        config.update(constructor_config(self, MMoELayer))
        return config
    ```
    """
    parameters = inspect.signature(cls.__init__).parameters.values()
    names = [
        p.name
        for p in parameters
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    config = {}
    for name in names:
        value = getattr(layer, name)
        if any(name.endswith(kind) for kind in _SERIALIZERS):
            config.update(serialize_objects(**{name: value}))
        else:
            config[name] = _plain(value)
    return config


__all__ = ["clone_initializer", "constructor_config", "serialize_objects"]
