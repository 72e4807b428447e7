"""Model registry: `register_model`, `build`, `list_models`, `model_tasks`.

Every module of `kmtl.models` is imported on the first look-up, so a model
registers itself by decorating its builder: nothing else lists it.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import TaskSpec
from kmtl.models.task_model import TaskModel
from kmtl.training.balancing import balance
from kmtl.training.compile import compile_args
from kmtl.validation import hparam_checks


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder, fixed and default hparams, and what
    `kmtl.list_models` says about it.

    Attributes:
        name: str. The name `kmtl.build` takes.
        builder: callable `(spec, *, hparam=default, ...) -> keras.Model`.
        description: str. One line for `kmtl.list_models`.
        tasks: callable `(spec, **hparams) -> tuple[TaskSpec]` or None: the
            output tasks when they differ from `spec.tasks`.
        fixed: dict. Hparams this name always passes (not settable).
        defaults: dict. Hparam defaults that differ from the builder's.
    """

    name: str
    builder: Callable[..., keras.Model]
    description: str
    tasks: Callable[..., tuple[TaskSpec, ...]] | None = None
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def hparams(self) -> dict[str, Any]:
        """The settable hyperparameters with their defaults."""
        params = inspect.signature(self.builder).parameters.values()
        out = {
            p.name: p.default
            for p in params
            if p.kind == p.KEYWORD_ONLY and p.name not in self.fixed
        }
        out.update(self.defaults)
        return out

    def resolve(self, hparams: Mapping[str, Any]) -> dict[str, Any]:
        """Checks user hparams and returns every builder argument.

        Unknown names are refused; each annotated hparam goes through its
        `kmtl.validation` check (its canonical value is kept); the defaults
        and the fixed hparams are filled in.
        """
        known = self.hparams
        unknown = sorted(set(hparams) - set(known))
        if unknown:
            fixed = sorted(set(unknown) & set(self.fixed))
            extra = (
                f" ({', '.join(fixed)} is fixed by this model)" if fixed else ""
            )
            raise ValueError(
                f"Model {self.name!r} does not take hparam(s) {unknown}"
                f"{extra}. Expected some of {sorted(known)}."
            )
        checks = hparam_checks(self.builder)
        owner = f"Model {self.name!r}: hparam "
        resolved = {**known, **self.fixed}
        for key, value in hparams.items():
            check = checks.get(key)
            resolved[key] = value if check is None else check(value, key, owner)
        return resolved


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    tasks: Callable[..., tuple[TaskSpec, ...]] | None = None,
    fixed: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    description: str | None = None,
) -> Callable:
    """Registers a builder `fn(spec, *, hparam: Type = default, ...)`.

    Hparams are declared once, on the builder's signature: annotate them
    with the types of `kmtl.validation` (`PositiveInt`, `Units`,
    `OneOf(...)`, ...) and `kmtl.build` checks them. A variant is one more
    registration of the same builder with some hparams fixed (OMoE is MMoE
    with `shared_gate=True`) or other defaults.

    Args:
        name: str. The model name for `kmtl.build`.
        tasks: callable `(spec, **hparams) -> tuple[TaskSpec]` giving the
            model's output tasks when they differ from `spec.tasks` (ESMM
            adds `ctcvr`). Defaults to `spec.tasks`.
        fixed: dict. Hparams this name always passes; they are not
            settable. Defaults to none.
        defaults: dict. Defaults that differ from the builder's. Defaults
            to none.
        description: str. The one-line description. Defaults to the first
            paragraph of the builder's docstring.

    Returns:
        The decorator (it returns the builder unchanged).

    Example:

    ```python
    @kmtl.register_model("omoe", fixed={"shared_gate": True},
                         description="OMoE: one gate for all tasks.")
    @kmtl.register_model("mmoe")
    def build_mmoe(spec, *, num_experts: PositiveInt = 8,
                   shared_gate: Bool = False) -> keras.Model: ...
    ```
    """

    def decorator(builder: Callable[..., keras.Model]) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"Model {name!r} is already registered.")
        params = inspect.signature(builder).parameters
        for key in {**(fixed or {}), **(defaults or {})}:
            if key not in params:
                raise ValueError(
                    f"register_model({name!r}): {builder.__name__} has no "
                    f"hparam {key!r}."
                )
        doc = inspect.getdoc(builder) or ""
        _REGISTRY[name] = ModelEntry(
            name,
            builder,
            description or " ".join(doc.split("\n\n")[0].split()),
            tasks,
            dict(fixed or {}),
            dict(defaults or {}),
        )
        return builder

    return decorator


def _entry(name: str) -> ModelEntry:
    _import_model_modules()
    if name not in _REGISTRY:
        raise ValueError(
            f"Unknown model {name!r}. Known models: {sorted(_REGISTRY)}."
        )
    return _REGISTRY[name]


def _output_tasks(
    entry: ModelEntry, spec: FeatureSpec, resolved: Mapping[str, Any]
) -> tuple[TaskSpec, ...]:
    if entry.tasks is None:
        return spec.tasks
    accepted = inspect.signature(entry.tasks).parameters
    return entry.tasks(
        spec, **{k: v for k, v in resolved.items() if k in accepted}
    )


def model_tasks(
    name: str, spec: FeatureSpec, **hparams: Any
) -> tuple[TaskSpec, ...]:
    """The output tasks of model `name` built on `spec`: one per output,
    with the losses, weights, sample spaces and metrics it trains with.

    Most models predict `spec.tasks`; ESMM adds `ctcvr` and trains its CVR
    output through it. A built model has them as `model.tasks`.

    Args:
        name: str. A registered model name.
        spec: FeatureSpec.
        **hparams: the hyperparameters the model is built with.

    Returns:
        tuple of `TaskSpec`.
    """
    entry = _entry(name)
    return _output_tasks(entry, spec, entry.resolve(hparams))


def build(
    name: str,
    spec: FeatureSpec,
    *,
    optimizer: Any = "adam",
    compile: bool = True,
    task_balancing: Any = None,
    **hparams: Any,
) -> TaskModel:
    """Builds a registered model on a spec, compiled with its tasks' losses.

    Args:
        name: str. A name from `kmtl.list_models()`.
        spec: FeatureSpec. Inputs, tasks and scenario.
        optimizer: str or optimizer for `compile`. Defaults to `"adam"`
            (Keras's). `kmtl.training.FusedAdam()` and `LazyAdam()` train
            faster on TensorFlow.
        compile: bool. Compile the model with `kmtl.compile_args`.
            Defaults to `True`.
        task_balancing: str, `kmtl.training.balancing.TaskBalancing` or
            None. How the tasks' losses are weighed in training (`"fixed"`,
            `"uncertainty"`, `"dwa"`, `"gradnorm"`, `"metabalance"`; see
            `kmtl.training.balance`). Defaults to `None` (`TaskSpec.weight`
            in the compiled loss).
        **hparams: the model's keyword-only hyperparameters.

    Returns:
        A functional `kmtl.models.TaskModel` with dict inputs (one per raw
        column) and dict outputs (one per task, named after it); its
        `tasks` are the output tasks, so `to_dataset(df, spec)` trains it.

    Raises:
        ValueError: an unknown model or hparam, an hparam that breaks its
            rule, or a spec the model cannot use; the message names it.

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
    resolved = entry.resolve(hparams)
    try:
        tasks = _output_tasks(entry, spec, resolved)
        built = entry.builder(spec, **resolved)
    except ValueError as error:
        if str(error).startswith("Model "):
            raise
        # A layer's own check, named after the model that passed the value.
        raise ValueError(f"Model {name!r}: {error}") from error
    model = TaskModel(
        inputs=built.input,
        outputs=built.output,
        tasks=tasks,
        label_keys={
            t.label_columns[0]: t.name
            for t in spec.tasks
            if len(t.label_columns) == 1
        },
        name=name,
    )
    if task_balancing is not None:
        balance(model, task_balancing)
    if compile:
        model.compile(optimizer=optimizer, **compile_args(tasks))
    return model


def list_models() -> dict[str, str]:
    """Registered model names with a one-line description each."""
    _import_model_modules()
    return {
        name: entry.description for name, entry in sorted(_REGISTRY.items())
    }


def get_model_entry(name: str) -> ModelEntry:
    """The registry entry of `name` (its builder, hparams, description)."""
    return _entry(name)


def _import_model_modules() -> None:
    """Imports every module of `kmtl.models`; each registers its builders."""
    import kmtl.models

    for module in pkgutil.iter_modules(kmtl.models.__path__):
        importlib.import_module(f"kmtl.models.{module.name}")
