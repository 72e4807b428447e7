"""Model registry: `register_model`, `build`, `list_models`, `model_tasks`."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import TaskSpec
from kmtl.training.compile import compile_args


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A registered builder and what `kmtl.list_models` says about it."""

    name: str
    builder: Callable[..., keras.Model]
    description: str
    tasks: Callable[..., tuple[TaskSpec, ...]] | None = None

    @property
    def hparams(self) -> dict[str, Any]:
        """Keyword-only hyperparameters of the builder, with defaults."""
        params = inspect.signature(self.builder).parameters.values()
        return {p.name: p.default for p in params if p.kind == p.KEYWORD_ONLY}


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    tasks: Callable[..., tuple[TaskSpec, ...]] | None = None,
) -> Callable:
    """Registers a builder `fn(spec, *, hparam=default, ...) -> keras.Model`.

    The builder's docstring's first line is the model's description.

    Args:
        name: str. The model name for `kmtl.build`.
        tasks: callable `(spec, **hparams) -> tuple[TaskSpec]` giving the
            model's output tasks when they differ from `spec.tasks` (ESMM
            adds `ctcvr`). Defaults to `spec.tasks`.

    Returns:
        The decorator.
    """

    def decorator(builder: Callable[..., keras.Model]) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"Model {name!r} is already registered.")
        doc = inspect.getdoc(builder) or ""
        _REGISTRY[name] = ModelEntry(
            name, builder, doc.splitlines()[0] if doc else "", tasks
        )
        return builder

    return decorator


def _entry(name: str) -> ModelEntry:
    _load_builtin_models()
    if name not in _REGISTRY:
        raise ValueError(
            f"Unknown model {name!r}. Known models: {sorted(_REGISTRY)}."
        )
    return _REGISTRY[name]


def _check_hparams(entry: ModelEntry, hparams: dict[str, Any]) -> None:
    known = entry.hparams
    unknown = sorted(set(hparams) - set(known))
    if unknown:
        raise ValueError(
            f"Model {entry.name!r} does not take hparam(s) {unknown}. "
            f"Expected some of {sorted(known)}."
        )


def model_tasks(
    name: str, spec: FeatureSpec, **hparams: Any
) -> tuple[TaskSpec, ...]:
    """The output tasks of model `name` built on `spec`: one per output,
    with the losses, weights, sample spaces and metrics it trains with.

    Most models predict `spec.tasks`; ESMM adds `ctcvr` and trains its CVR
    output through it. Pass the result to `kmtl.data.to_dataset(tasks=...)`.

    Args:
        name: str. A registered model name.
        spec: FeatureSpec.
        **hparams: the hyperparameters the model is built with.

    Returns:
        tuple of `TaskSpec`.
    """
    entry = _entry(name)
    _check_hparams(entry, hparams)
    if entry.tasks is None:
        return spec.tasks
    accepted = inspect.signature(entry.tasks).parameters
    return entry.tasks(
        spec, **{k: v for k, v in hparams.items() if k in accepted}
    )


def build(
    name: str,
    spec: FeatureSpec,
    *,
    optimizer: Any = "adam",
    compile: bool = True,
    **hparams: Any,
) -> keras.Model:
    """Builds a registered model on a spec, compiled with its tasks' losses.

    Args:
        name: str. A name from `kmtl.list_models()`.
        spec: FeatureSpec. Inputs, tasks and scenario.
        optimizer: str or optimizer for `compile`. Defaults to `"adam"`
            (Keras's). `kmtl.training.FusedAdam()` and `LazyAdam()` train
            faster on TensorFlow.
        compile: bool. Compile the model with `kmtl.compile_args`.
            Defaults to `True`.
        **hparams: the model's keyword-only hyperparameters.

    Returns:
        A functional `keras.Model` with dict inputs (one per raw column)
        and dict outputs (one per task, named after it).

    Raises:
        ValueError: an unknown model or hparam, or a spec the model cannot
            use; the message names it.

    Example:

    ```python
    model = kmtl.build("mmoe", spec, num_experts=4)
    model.fit(kmtl.data.to_dataset(df, spec), epochs=2)
    ```
    """
    if not isinstance(spec, FeatureSpec):
        raise ValueError(
            f"kmtl.build: `spec` must be a FeatureSpec. Received: {spec!r}"
        )
    entry = _entry(name)
    _check_hparams(entry, hparams)
    model = entry.builder(spec, **hparams)
    if compile:
        model.compile(
            optimizer=optimizer,
            **compile_args(model_tasks(name, spec, **hparams)),
        )
    return model


def list_models() -> dict[str, str]:
    """Registered model names with a one-line description each."""
    _load_builtin_models()
    return {
        name: entry.description for name, entry in sorted(_REGISTRY.items())
    }


def get_model_entry(name: str) -> ModelEntry:
    """The registry entry of `name` (its builder, hparams, description)."""
    return _entry(name)


def _load_builtin_models() -> None:
    """Imports kmtl's model files, each registering its builders."""
    import kmtl.models.builtin  # noqa: F401
