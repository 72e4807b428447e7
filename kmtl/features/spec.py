"""Feature, scenario and task specifications: the contract between data,
models and serving.

A `FeatureSpec` says which raw columns a model takes (and how to turn them
into ids and floats), which column is the scenario, and which tasks it
predicts. It is plain data: validated on construction, round-tripped through
dicts and JSON, and inferable from a pandas DataFrame.

Example:

```python
spec = kmtl.FeatureSpec(
    features=[
        kmtl.CategoricalFeature("user_id", vocabulary_size=1000),
        kmtl.CategoricalFeature("city", vocabulary=["paris", "lyon"]),
        kmtl.NumericalFeature("price", mean=3.0, variance=4.0),
    ],
    tasks=[
        kmtl.TaskSpec("ctr", label="click"),
        kmtl.TaskSpec("cvr", label="purchase", sample_space="ctr"),
    ],
)
spec2 = kmtl.FeatureSpec.from_json(spec.to_json())
assert spec2 == spec
```
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import ClassVar

import numpy as np

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CATEGORICAL_DTYPES = ("int64", "string")
TASK_KINDS = ("binary", "regression", "multiclass")
SEQUENCE_INT_PAD = -1
SEQUENCE_STRING_PAD = ""
DEFAULT_LOSSES = {
    "binary": "binary_crossentropy",
    "regression": "mean_squared_error",
    "multiclass": "sparse_categorical_crossentropy",
}
DEFAULT_METRICS = {
    "binary": ("auc",),
    "regression": ("mae",),
    "multiclass": ("accuracy",),
}


def _check_name(what: str, name: Any) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"A {what} name must be a Python identifier (letters, digits, "
            "underscores; it becomes a SavedModel signature key). "
            f"Received: name={name!r}"
        )


def _check_positive_int(owner: str, arg: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{owner}: `{arg}` must be a positive integer. "
            f"Received: {arg}={value!r}"
        )


@dataclasses.dataclass(frozen=True)
class CategoricalFeature:
    """A categorical column, embedded as one field.

    Exactly one of `vocabulary_size`, `vocabulary` or `hash_bins` says how raw
    values become ids. Values outside the vocabulary go to one
    out-of-vocabulary (OOV) bucket, never to an error.

    Args:
        name: str. The column and input name.
        vocabulary_size: int. Raw values are integer ids in
            `[0, vocabulary_size)`; others (negative, too large) are OOV.
        vocabulary: list of str. Raw values are strings from this list.
        hash_bins: int. Raw values (int or str, see `dtype`) are hashed into
            this many buckets.
        dtype: str. Raw dtype, `"int64"` or `"string"`. Defaults to
            `"string"` with a vocabulary, else `"int64"`.
        group: str. A tag such as `"user"`, `"item"`, `"context"`,
            `"domain"`, `"prior"` that some models select fields by.
            Defaults to `None`.

    Example:

    >>> CategoricalFeature("country", vocabulary=["es", "fr"]).num_ids
    3
    """

    name: str
    vocabulary_size: int | None = None
    vocabulary: tuple[str, ...] | None = None
    hash_bins: int | None = None
    dtype: str | None = None
    group: str | None = None
    kind: ClassVar[str] = "categorical"

    def __post_init__(self) -> None:
        _check_name("feature", self.name)
        owner = f"CategoricalFeature {self.name!r}"
        given = [
            a
            for a in ("vocabulary_size", "vocabulary", "hash_bins")
            if getattr(self, a) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f"{owner}: give exactly one of `vocabulary_size`, "
                f"`vocabulary` or `hash_bins`. Received: {given or 'none'}"
            )
        if self.vocabulary is not None:
            vocab = tuple(str(v) for v in self.vocabulary)
            if not vocab or len(set(vocab)) != len(vocab):
                raise ValueError(
                    f"{owner}: `vocabulary` must be a non-empty list of "
                    f"distinct strings. Received: vocabulary={self.vocabulary}"
                )
            object.__setattr__(self, "vocabulary", vocab)
        for arg in ("vocabulary_size", "hash_bins"):
            if getattr(self, arg) is not None:
                _check_positive_int(owner, arg, getattr(self, arg))
        default = "string" if self.vocabulary is not None else "int64"
        dtype = self.dtype or default
        if dtype not in CATEGORICAL_DTYPES:
            raise ValueError(
                f"{owner}: `dtype` must be one of {CATEGORICAL_DTYPES}. "
                f"Received: dtype={self.dtype!r}"
            )
        if self.vocabulary is not None and dtype != "string":
            raise ValueError(
                f"{owner}: a `vocabulary` is for string values; integer ids "
                "use `vocabulary_size`. Received: dtype='int64'"
            )
        if self.vocabulary_size is not None and dtype != "int64":
            raise ValueError(
                f"{owner}: `vocabulary_size` is for integer ids; strings use "
                "`vocabulary` or `hash_bins`. Received: dtype='string'"
            )
        object.__setattr__(self, "dtype", dtype)

    @property
    def num_ids(self) -> int:
        """Rows the field needs in an embedding table, the OOV bucket included
        (hashing has no OOV: every value lands in a bin)."""
        if self.vocabulary is not None:
            return len(self.vocabulary) + 1
        if self.hash_bins is not None:
            return self.hash_bins
        return self.vocabulary_size + 1


@dataclasses.dataclass(frozen=True)
class NumericalFeature:
    """A float column (or a fixed-width float vector), optionally normalised.

    With `mean` and `variance` set, the encoder feeds
    `(x - mean) / sqrt(variance)`; `FeatureSpec.from_dataframe` adapts them
    from data. A vector feature (`dim > 1`) packs many numericals into one
    input, which is much cheaper than one input per column.

    Args:
        name: str. The column and input name.
        dim: int. Width of the value: 1 for a scalar column. Defaults to 1.
        mean: float or list of `dim` floats. Defaults to `None` (raw).
        variance: float or list of `dim` floats, > 0. Defaults to `None`.
        group: str. A field-group tag. Defaults to `None`.

    Example:

    >>> NumericalFeature("price", mean=10.0, variance=4.0).normalized
    True
    """

    name: str
    dim: int = 1
    mean: float | tuple[float, ...] | None = None
    variance: float | tuple[float, ...] | None = None
    group: str | None = None
    kind: ClassVar[str] = "numerical"
    dtype: ClassVar[str] = "float32"

    def __post_init__(self) -> None:
        _check_name("feature", self.name)
        owner = f"NumericalFeature {self.name!r}"
        _check_positive_int(owner, "dim", self.dim)
        if (self.mean is None) != (self.variance is None):
            raise ValueError(
                f"{owner}: give both `mean` and `variance`, or neither. "
                f"Received: mean={self.mean}, variance={self.variance}"
            )
        if self.mean is None:
            return
        for arg in ("mean", "variance"):
            value = np.atleast_1d(np.asarray(getattr(self, arg), "float64"))
            if value.shape not in ((1,), (self.dim,)):
                raise ValueError(
                    f"{owner}: `{arg}` must be a float or {self.dim} floats. "
                    f"Received: {arg} of shape {value.shape}"
                )
            if not np.all(np.isfinite(value)) or (
                arg == "variance" and np.any(value <= 0)
            ):
                raise ValueError(
                    f"{owner}: `{arg}` must be finite (variance > 0). "
                    f"Received: {arg}={getattr(self, arg)}"
                )
            stored = (
                float(value[0])
                if self.dim == 1
                else tuple(
                    float(v) for v in np.broadcast_to(value, (self.dim,))
                )
            )
            object.__setattr__(self, arg, stored)

    @property
    def normalized(self) -> bool:
        return self.mean is not None


@dataclasses.dataclass(frozen=True)
class SequenceFeature:
    """A variable-length list of categorical ids, embedded and pooled.

    The raw input is `[batch, max_length]`, padded with `-1` (ids) or `""`
    (strings); padding is masked out of the pooling.

    Args:
        name: str. The column and input name.
        max_length: int. Longest list kept (longer lists are truncated by
            `kmtl.data`).
        vocabulary_size / vocabulary / hash_bins: as `CategoricalFeature`;
            leave all unset when `shared_with` is given.
        shared_with: str. Name of a `CategoricalFeature` whose embeddings
            this sequence reuses (e.g. clicked items with `item_id`).
        combiner: str. `"mean"` or `"sum"`. Defaults to `"mean"`.
        dtype: str. `"int64"` or `"string"`. Defaults like
            `CategoricalFeature` (or to the shared feature's dtype).
        group: str. A field-group tag. Defaults to `None`.

    Example:

    >>> SequenceFeature("clicked", max_length=20, shared_with="item_id").kind
    'sequence'
    """

    name: str
    max_length: int
    vocabulary_size: int | None = None
    vocabulary: tuple[str, ...] | None = None
    hash_bins: int | None = None
    shared_with: str | None = None
    combiner: str = "mean"
    dtype: str | None = None
    group: str | None = None
    kind: ClassVar[str] = "sequence"

    def __post_init__(self) -> None:
        _check_name("feature", self.name)
        owner = f"SequenceFeature {self.name!r}"
        _check_positive_int(owner, "max_length", self.max_length)
        if self.combiner not in ("mean", "sum"):
            raise ValueError(
                f"{owner}: `combiner` must be 'mean' or 'sum'. "
                f"Received: combiner={self.combiner!r}"
            )
        if self.shared_with is None:
            ids = CategoricalFeature(
                self.name,
                vocabulary_size=self.vocabulary_size,
                vocabulary=self.vocabulary,
                hash_bins=self.hash_bins,
                dtype=self.dtype,
            )
            object.__setattr__(self, "vocabulary", ids.vocabulary)
            object.__setattr__(self, "dtype", ids.dtype)
        elif any(
            getattr(self, a) is not None
            for a in ("vocabulary_size", "vocabulary", "hash_bins")
        ):
            raise ValueError(
                f"{owner}: a sequence that shares embeddings "
                f"(shared_with={self.shared_with!r}) takes its vocabulary "
                "from that feature; do not give one."
            )

    @property
    def num_ids(self) -> int:
        return CategoricalFeature(
            self.name,
            vocabulary_size=self.vocabulary_size,
            vocabulary=self.vocabulary,
            hash_bins=self.hash_bins,
        ).num_ids


Feature = CategoricalFeature | NumericalFeature | SequenceFeature
FEATURE_CLASSES = {
    cls.kind: cls
    for cls in (CategoricalFeature, NumericalFeature, SequenceFeature)
}


@dataclasses.dataclass(frozen=True)
class ScenarioSpec:
    """The scenario (domain) column of a multi-scenario model.

    The column holds an integer scenario index in `[0, num_scenarios)`.
    It is a model input like any feature; ids outside the range are an error
    (at training in `kmtl.data`, at serving in the graph), never silent.

    A scenario hierarchy (country -> channel -> scenario) adds one integer
    column per coarser level, each with its own named values. Hierarchical
    models (AESM2) read the levels coarse to fine, then the scenario itself.

    Args:
        name: str. The column and input name.
        values: list of str. One name per scenario index (`values[i]` names
            scenario `i`); names the per-scenario signatures.
        levels: dict level column -> list of value names, coarse to fine
            (e.g. `{"country": ["us", "fr"]}`). Each level column holds ids
            in `[0, len(values))`. Defaults to none.

    Example:

    >>> s = ScenarioSpec("channel", ["home", "search"], {"country": ["us"]})
    >>> s.num_scenarios, s.level_names, s.level_sizes
    (2, ('country',), (1,))
    """

    name: str
    values: tuple[str, ...]
    levels: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __post_init__(self) -> None:
        _check_name("scenario", self.name)
        object.__setattr__(
            self, "values", _check_values(self.name, self.values)
        )
        levels = self.levels
        if isinstance(levels, Mapping):
            levels = tuple(levels.items())
        if isinstance(levels, str) or not all(
            isinstance(level, (tuple, list)) and len(level) == 2
            for level in levels
        ):
            raise ValueError(
                f"ScenarioSpec {self.name!r}: `levels` must map each level "
                "column to its list of value names, e.g. "
                f"{{'country': ['us', 'fr']}}. Received: levels={levels!r}"
            )
        checked = []
        for column, values in levels:
            _check_name("scenario level", column)
            checked.append((column, _check_values(column, values)))
        names = [self.name] + [column for column, _ in checked]
        if len(set(names)) != len(names):
            raise ValueError(
                f"ScenarioSpec {self.name!r}: the scenario and level columns "
                f"must be distinct. Received: {names}"
            )
        object.__setattr__(self, "levels", tuple(checked))

    @property
    def num_scenarios(self) -> int:
        return len(self.values)

    @property
    def level_names(self) -> tuple[str, ...]:
        """The hierarchy level columns, coarse to fine."""
        return tuple(column for column, _ in self.levels)

    @property
    def level_sizes(self) -> tuple[int, ...]:
        """Number of values of each level, coarse to fine."""
        return tuple(len(values) for _, values in self.levels)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "values": list(self.values)}
        if self.levels:
            out["levels"] = {c: list(v) for c, v in self.levels}
        return out


def _check_values(column: str, values: Any) -> tuple[str, ...]:
    """Validates the value names of a scenario column or level."""
    if isinstance(values, str):
        values = None
    checked = tuple(str(v) for v in values or ())
    if not checked or len(set(checked)) != len(checked):
        raise ValueError(
            f"ScenarioSpec column {column!r}: its values must be a non-empty "
            f"list of distinct names. Received: values={values!r}"
        )
    for value in checked:
        _check_name("scenario value", value)
    return checked


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One prediction task: its label, loss, weight, sample space, metrics.

    Args:
        name: str. The task name; the model output and SavedModel output
            are named after it.
        label: str or list of str. The label column, or several columns
            whose product is the label (ESMM's CTCVR = click x conversion).
            Defaults to `name`.
        kind: str. `"binary"`, `"regression"` or `"multiclass"`. Defaults to
            `"binary"`.
        num_classes: int. Classes of a multiclass task. Defaults to `None`.
        loss: str. A Keras loss name; `None` picks the kind's default
            (binary cross-entropy, MSE, sparse categorical cross-entropy).
        weight: float. Loss weight; 0 trains no loss on this output.
            Defaults to 1.0.
        sample_space: str. Name of another binary task: this task's loss
            and metrics only count rows where that task's label is 1 (CVR
            trained on clicks). Defaults to `None` (every row).
        metrics: list of str. Keras metric names (`"auc"` becomes
            `keras.metrics.AUC`). `None` picks the kind's defaults.

    Example:

    >>> TaskSpec("cvr", label="purchase", sample_space="ctr").loss
    'binary_crossentropy'
    """

    name: str
    label: str | tuple[str, ...] | None = None
    kind: str = "binary"
    num_classes: int | None = None
    loss: str | None = None
    weight: float = 1.0
    sample_space: str | None = None
    metrics: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_name("task", self.name)
        owner = f"TaskSpec {self.name!r}"
        if self.kind not in TASK_KINDS:
            raise ValueError(
                f"{owner}: `kind` must be one of {TASK_KINDS}. "
                f"Received: kind={self.kind!r}"
            )
        label = self.name if self.label is None else self.label
        labels = (label,) if isinstance(label, str) else tuple(label)
        if not labels or not all(isinstance(x, str) and x for x in labels):
            raise ValueError(
                f"{owner}: `label` must be a column name or a list of them. "
                f"Received: label={self.label!r}"
            )
        object.__setattr__(
            self, "label", labels[0] if len(labels) == 1 else labels
        )
        if self.kind == "multiclass":
            _check_positive_int(owner, "num_classes", self.num_classes)
        elif self.num_classes is not None:
            raise ValueError(
                f"{owner}: `num_classes` is for multiclass tasks. "
                f"Received: num_classes={self.num_classes}, kind={self.kind!r}"
            )
        weight = float(self.weight)
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(
                f"{owner}: `weight` must be a finite number >= 0. "
                f"Received: weight={self.weight!r}"
            )
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "loss", self.loss or DEFAULT_LOSSES[self.kind])
        metrics = (
            DEFAULT_METRICS[self.kind]
            if self.metrics is None
            else (self.metrics)
        )
        object.__setattr__(self, "metrics", tuple(metrics))
        if self.sample_space == self.name:
            raise ValueError(
                f"{owner}: a task cannot be its own sample space. "
                f"Received: sample_space={self.sample_space!r}"
            )

    @property
    def label_columns(self) -> tuple[str, ...]:
        """The label columns (one, or several multiplied together)."""
        return (self.label,) if isinstance(self.label, str) else self.label


def _to_dict(obj: Any) -> dict[str, Any]:
    out = {}
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if value is None:
            continue
        out[field.name] = list(value) if isinstance(value, tuple) else value
    return out


def _from_dict(cls: type, data: Mapping[str, Any], what: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known - {"kind"})
    if unknown:
        raise ValueError(
            f"Unknown key(s) {unknown} in a {what}; expected some of "
            f"{sorted(known)}."
        )
    return cls(**{k: v for k, v in data.items() if k != "kind"})


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """Everything a model needs to know about its inputs and tasks.

    Args:
        features: list of `CategoricalFeature`, `NumericalFeature`,
            `SequenceFeature`. The model inputs, in order.
        tasks: list of `TaskSpec`. The outputs, in order.
        scenario: `ScenarioSpec`. The scenario column, if any. It is a model
            input too (and may also appear as a categorical feature to be
            embedded). Defaults to `None`.
        embedding_dim: int. Width of every field embedding. Defaults to 16.

    Example:

    >>> spec = FeatureSpec(
    ...     features=[CategoricalFeature("item", vocabulary_size=10)],
    ...     tasks=[TaskSpec("ctr", label="click")],
    ... )
    >>> spec.feature("item").num_ids
    11
    """

    features: tuple[Feature, ...]
    tasks: tuple[TaskSpec, ...]
    scenario: ScenarioSpec | None = None
    embedding_dim: int = 16

    def __post_init__(self) -> None:
        features = tuple(self.features)
        tasks = tuple(self.tasks)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "tasks", tasks)
        for f in features:
            if not isinstance(f, tuple(FEATURE_CLASSES.values())):
                raise ValueError(
                    "FeatureSpec: every feature must be a CategoricalFeature, "
                    f"NumericalFeature or SequenceFeature. Received: {f!r}"
                )
        if not features:
            raise ValueError("FeatureSpec: `features` is empty.")
        if not tasks or not all(isinstance(t, TaskSpec) for t in tasks):
            raise ValueError(
                "FeatureSpec: `tasks` must be a non-empty list of TaskSpec. "
                f"Received: tasks={self.tasks!r}"
            )
        _check_positive_int("FeatureSpec", "embedding_dim", self.embedding_dim)
        self._check_unique("feature", [f.name for f in features])
        self._check_unique("task", [t.name for t in tasks])
        names = {f.name for f in features}
        if self.scenario is not None:
            if not isinstance(self.scenario, ScenarioSpec):
                raise ValueError(
                    "FeatureSpec: `scenario` must be a ScenarioSpec. "
                    f"Received: scenario={self.scenario!r}"
                )
            clash = names & set(self.scenario.level_names)
            if clash:
                raise ValueError(
                    f"FeatureSpec: scenario level column(s) {sorted(clash)} "
                    "are also features; a level is an input of its own."
                )
        task_names = [t.name for t in tasks]
        for task in tasks:
            if task.sample_space is None:
                continue
            if task.sample_space not in task_names:
                raise ValueError(
                    f"Task {task.name!r} has sample_space="
                    f"{task.sample_space!r}, which is not a task of this "
                    f"spec. Expected one of {task_names}."
                )
            if self.task(task.sample_space).kind != "binary":
                raise ValueError(
                    f"Task {task.name!r}: its sample space "
                    f"{task.sample_space!r} must be a binary task."
                )
        for f in features:
            if isinstance(f, SequenceFeature) and f.shared_with is not None:
                target = next(
                    (g for g in features if g.name == f.shared_with), None
                )
                if not isinstance(target, CategoricalFeature):
                    raise ValueError(
                        f"SequenceFeature {f.name!r}: shared_with="
                        f"{f.shared_with!r} must name a CategoricalFeature "
                        f"of this spec. Expected one of "
                        f"{self.names('categorical')}."
                    )
                if f.dtype not in (None, target.dtype):
                    raise ValueError(
                        f"SequenceFeature {f.name!r}: dtype {f.dtype!r} "
                        f"differs from {target.name!r}'s {target.dtype!r}."
                    )

    @staticmethod
    def _check_unique(what: str, names: list[str]) -> None:
        seen = set()
        for name in names:
            if name in seen:
                raise ValueError(
                    f"FeatureSpec: duplicate {what} name {name!r}; each "
                    f"{what} needs a distinct name."
                )
            seen.add(name)

    # --- look-ups ---------------------------------------------------------

    def names(self, kind: str | None = None) -> list[str]:
        """Feature names, optionally of one kind."""
        return [f.name for f in self.features if kind in (None, f.kind)]

    def feature(self, name: str) -> Feature:
        """The feature called `name` (a `ValueError` lists the known ones)."""
        for f in self.features:
            if f.name == name:
                return f
        raise ValueError(
            f"Unknown feature {name!r}. Expected one of {self.names()}."
        )

    def task(self, name: str) -> TaskSpec:
        """The task called `name` (a `ValueError` lists the known ones)."""
        for t in self.tasks:
            if t.name == name:
                return t
        raise ValueError(
            f"Unknown task {name!r}. Expected one of "
            f"{[t.name for t in self.tasks]}."
        )

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def input_names(self) -> list[str]:
        """Raw input columns: features, then scenario columns not already
        among them."""
        names = self.names()
        if self.scenario is not None:
            for col in (self.scenario.name, *self.scenario.level_names):
                if col not in names:
                    names.append(col)
        return names

    def replace(self, **changes: Any) -> FeatureSpec:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # --- serialisation ----------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "features": [
                {"kind": f.kind, **_to_dict(f)} for f in self.features
            ],
            "tasks": [_to_dict(t) for t in self.tasks],
            "embedding_dim": self.embedding_dim,
        }
        if self.scenario is not None:
            out["scenario"] = self.scenario.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        features = []
        for item in data.get("features", ()):
            kind = item.get("kind")
            if kind not in FEATURE_CLASSES:
                raise ValueError(
                    f"Feature {item.get('name')!r} has kind {kind!r}; "
                    f"expected one of {sorted(FEATURE_CLASSES)}."
                )
            features.append(_from_dict(FEATURE_CLASSES[kind], item, kind))
        scenario = data.get("scenario")
        return cls(
            features=features,
            tasks=[_from_dict(TaskSpec, t, "task") for t in data["tasks"]],
            scenario=None
            if scenario is None
            else _from_dict(ScenarioSpec, scenario, "scenario"),
            embedding_dim=data.get("embedding_dim", 16),
        )

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        return cls.from_dict(json.loads(text))

    # --- inference from data ----------------------------------------------

    @classmethod
    def from_dataframe(
        cls,
        df: Any,
        labels: Mapping[str, str | Sequence[str]] | Sequence[str],
        scenario: str | None = None,
        *,
        scenario_values: Sequence[str] | None = None,
        sample_spaces: Mapping[str, str] | None = None,
        exclude: Iterable[str] = (),
        max_vocabulary: int = 10_000,
        embedding_dim: int = 16,
        groups: Mapping[str, str] | None = None,
    ) -> FeatureSpec:
        """Infers features, vocabularies and normalisation from a DataFrame.

        Float columns become normalised `NumericalFeature`s; integer and
        string columns become `CategoricalFeature`s (integer ids keep
        `vocabulary_size = max + 1`; strings get their sorted vocabulary, or
        hashing into `2 * max_vocabulary` bins past `max_vocabulary`
        distinct values); list-valued columns become `SequenceFeature`s.
        Label columns and `exclude` are left out.

        Args:
            df: pandas.DataFrame. The training data.
            labels: dict task -> label column(s), or a list of label columns
                (each one a binary task of the same name).
            scenario: str. The scenario column (integer ids). It also stays
                a categorical feature. Defaults to `None`.
            scenario_values: list of str. Names of the scenario ids (they
                name the per-scenario signatures). Defaults to `s0`, `s1`...
            sample_spaces: dict task -> task whose positives are its
                sample space. Defaults to none.
            exclude: columns to ignore.
            max_vocabulary: int. Past this many distinct strings, hash.
            embedding_dim: int. Field embedding width. Defaults to 16.
            groups: dict column -> group tag. Defaults to none.

        Returns:
            A `FeatureSpec`.
        """
        import pandas as pd

        if isinstance(labels, Mapping):
            label_map = dict(labels)
        else:
            label_map = {name: name for name in labels}
        label_cols = set()
        for task, cols in label_map.items():
            cols = (cols,) if isinstance(cols, str) else tuple(cols)
            for col in cols:
                if col not in df.columns:
                    raise ValueError(
                        f"Label column {col!r} of task {task!r} is not in "
                        f"the DataFrame. Expected one of {list(df.columns)}."
                    )
            label_cols.update(cols)
        for col in (scenario, *exclude):
            if col is not None and col not in df.columns:
                raise ValueError(
                    f"Column {col!r} is not in the DataFrame. Expected one "
                    f"of {list(df.columns)}."
                )
        groups = dict(groups or {})
        features: list[Feature] = []
        skip = label_cols | set(exclude)
        for col in df.columns:
            if col in skip:
                continue
            series = df[col]
            group = groups.get(col)
            if pd.api.types.is_bool_dtype(series) or (
                pd.api.types.is_integer_dtype(series)
            ):
                if series.min() < 0:
                    raise ValueError(
                        f"Column {col!r} holds negative integers; integer "
                        "categorical ids must be >= 0 (or cast it to float "
                        "for a numerical feature)."
                    )
                features.append(
                    CategoricalFeature(
                        col,
                        vocabulary_size=int(series.max()) + 1,
                        group=group,
                    )
                )
            elif pd.api.types.is_float_dtype(series):
                values = series.to_numpy("float64")
                var = float(np.nanvar(values))
                features.append(
                    NumericalFeature(
                        col,
                        mean=float(np.nanmean(values)),
                        variance=var if var > 0 else 1.0,
                        group=group,
                    )
                )
            else:
                sample = series.dropna()
                first = sample.iloc[0] if len(sample) else ""
                if isinstance(first, (list, tuple, np.ndarray)):
                    features.append(_infer_sequence(col, sample, group))
                else:
                    features.append(
                        _infer_strings(col, sample, max_vocabulary, group)
                    )
        scenario_spec = None
        if scenario is not None:
            ids = df[scenario]
            if not pd.api.types.is_integer_dtype(ids) or ids.min() < 0:
                raise ValueError(
                    f"Scenario column {scenario!r} must hold integer ids "
                    f">= 0. Received dtype {ids.dtype}."
                )
            scenario_spec = ScenarioSpec(
                scenario,
                values=scenario_values
                or [f"s{i}" for i in range(int(ids.max()) + 1)],
            )
        spaces = dict(sample_spaces or {})
        tasks = [
            TaskSpec(
                name,
                label=cols,
                sample_space=spaces.get(name),
            )
            for name, cols in label_map.items()
        ]
        return cls(
            features=features,
            tasks=tasks,
            scenario=scenario_spec,
            embedding_dim=embedding_dim,
        )


def _infer_strings(
    col: str, sample: Any, max_vocabulary: int, group: str | None
) -> CategoricalFeature:
    values = sorted({str(v) for v in sample.unique()})
    if len(values) > max_vocabulary:
        return CategoricalFeature(
            col, hash_bins=2 * max_vocabulary, dtype="string", group=group
        )
    return CategoricalFeature(col, vocabulary=values, group=group)


def _infer_sequence(col: str, sample: Any, group: str | None) -> Any:
    lengths = sample.map(len)
    flat = [v for seq in sample for v in seq]
    max_length = max(1, int(lengths.max()))
    if flat and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool)
        for v in flat
    ):
        return SequenceFeature(
            col,
            max_length=max_length,
            vocabulary_size=int(max(flat)) + 1,
            group=group,
        )
    vocab = sorted({str(v) for v in flat} - {SEQUENCE_STRING_PAD}) or ["?"]
    return SequenceFeature(
        col, max_length=max_length, vocabulary=vocab, group=group
    )
