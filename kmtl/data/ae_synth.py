"""The "ae-synth" workload: an AliExpress-like synthetic data set with a
known click probability, shared by the speed benchmark (`kmtl benchmark
speed`), the benchmark scripts and the tests.

16 categorical ids with skewed vocabularies from 100,000 down to 3, 63 raw
N(0, 1) floats in one vector feature, a scenario id in 0..3 (a
`ScenarioSpec` column, which the multi-scenario models read) and two
labels, click and conversion (a conversion needs a click). Every field is
embedded in 16 dimensions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from kmtl.data.pandas import check_features
from kmtl.data.pandas import labels_from_dataframe
from kmtl.data.synthetic import sigmoid
from kmtl.features.spec import CategoricalFeature
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import NumericalFeature
from kmtl.features.spec import ScenarioSpec
from kmtl.features.spec import TaskSpec

VOCABULARY_SIZES = (
    100000, 50000, 20000, 10000, 5000, 2000, 1000, 500,
    200, 100, 50, 20, 10, 10, 5, 3,
)  # fmt: skip
NUM_DENSE = 63
EMBEDDING_DIM = 16
SCENARIO_SHARES = (0.4, 0.3, 0.2, 0.1)
# The seeds of the workload's training and prediction sets.
TRAIN_SEED = 0
EVAL_SEED = 1


@dataclasses.dataclass(frozen=True)
class AESynthData:
    """One ae-synth set: the raw columns and the labels.

    Args:
        ids: int64 `[N, 16]`. The categorical ids c0..c15.
        dense: float32 `[N, 63]`. The floats d0..d62.
        scenario: int64 `[N]`. Scenario ids in 0..3.
        click: int64 `[N]`. 0/1.
        conversion: int64 `[N]`. 0/1, and 0 wherever `click` is 0.
        ctr: float64 `[N]`. The true click probability (the oracle).
    """

    ids: np.ndarray
    dense: np.ndarray
    scenario: np.ndarray
    click: np.ndarray
    conversion: np.ndarray
    ctr: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scenario)


def make_ae_synth(rows: int, seed: int) -> AESynthData:
    """Draws `rows` rows of the ae-synth workload.

    ids `= min(vocab - 1, floor(vocab * u**3))` with `u ~ U(0, 1)`; the
    floats `~ N(0, 1)`; scenarios with probabilities 0.4, 0.3, 0.2, 0.1;
    `click ~ Bernoulli(sigmoid(-3 + 0.8 d0 + 0.5 d1 + 0.3 [c15 == 1]
    + 0.2 (scenario - 1.5)))`; `conversion = click * Bernoulli(sigmoid(-2
    + 0.6 d2 + 0.4 d0))`. Draw order (NumPy PCG64 seeded `seed`): the id
    uniforms `[rows, 16]`, the floats `[rows, 63]`, the scenarios, then
    the click and the conversion uniforms.

    Args:
        rows: int. Number of rows (the speed benchmark: 200,000 for
            training with seed `TRAIN_SEED`, 50,000 for prediction with
            seed `EVAL_SEED`).
        seed: int. The generator's seed.

    Returns:
        `AESynthData`.

    Example:

    ```python
    data = make_ae_synth(4096, seed=0)
    data.ids.shape  # (4096, 16)
    ```
    """
    if rows < 1:
        raise ValueError(f"`rows` must be at least 1. Received: rows={rows}")
    rng = np.random.default_rng(seed)
    vocab = np.asarray(VOCABULARY_SIZES, dtype=np.int64)
    u = rng.random((rows, len(vocab)))
    ids = np.minimum(vocab - 1, np.floor(vocab * u**3).astype(np.int64))
    dense = rng.standard_normal((rows, NUM_DENSE), dtype=np.float32)
    scenario = rng.choice(len(SCENARIO_SHARES), size=rows, p=SCENARIO_SHARES)
    d0, d1, d2 = (dense[:, i].astype(np.float64) for i in range(3))
    click_logit = (
        -3.0
        + 0.8 * d0
        + 0.5 * d1
        + 0.3 * (ids[:, 15] == 1)
        + 0.2 * (scenario - 1.5)
    )
    ctr = sigmoid(click_logit)
    click = rng.random(rows) < ctr
    converted = rng.random(rows) < sigmoid(-2.0 + 0.6 * d2 + 0.4 * d0)
    return AESynthData(
        ids=ids,
        dense=dense,
        scenario=scenario.astype(np.int64),
        click=click.astype(np.int64),
        conversion=(click & converted).astype(np.int64),
        ctr=ctr,
    )


def ae_synth_spec(layout: str = "vector", metrics: str = "auc") -> FeatureSpec:
    """The `FeatureSpec` of ae-synth.

    16 categorical features `c0..c15` (`VOCABULARY_SIZES`), the floats,
    the scenario column `scenario` (`ScenarioSpec` with values s0..s3, no
    hierarchy levels), tasks `click` and `conversion`, embedding dim 16.

    Args:
        layout: str. `"vector"`: the floats are one
            `NumericalFeature("dense", dim=63)`; `"per_field"`: 63 scalar
            features `d0..d62`. Defaults to `"vector"`.
        metrics: str. `"auc"`: the tasks' default metrics (what
            `kmtl.build` compiles); `"none"`: losses only. Defaults to
            `"auc"`.

    Returns:
        `kmtl.FeatureSpec`.

    Example:

    ```python
    spec = ae_synth_spec()
    model = kmtl.build("mmoe", spec)
    ```
    """
    if layout not in ("vector", "per_field"):
        raise ValueError(
            "`layout` must be 'vector' or 'per_field'. Received: "
            f"layout={layout!r}"
        )
    if metrics not in ("auc", "none"):
        raise ValueError(
            f"`metrics` must be 'auc' or 'none'. Received: metrics={metrics!r}"
        )
    if layout == "vector":
        numericals = [NumericalFeature("dense", dim=NUM_DENSE)]
    else:
        numericals = [NumericalFeature(f"d{i}") for i in range(NUM_DENSE)]
    task_metrics = None if metrics == "auc" else ()
    return FeatureSpec(
        features=[
            CategoricalFeature(f"c{i}", vocabulary_size=size)
            for i, size in enumerate(VOCABULARY_SIZES)
        ]
        + numericals,
        tasks=[
            TaskSpec("click", metrics=task_metrics),
            TaskSpec("conversion", metrics=task_metrics),
        ],
        scenario=ScenarioSpec(
            "scenario", values=[f"s{i}" for i in range(len(SCENARIO_SHARES))]
        ),
        embedding_dim=EMBEDDING_DIM,
    )


def ae_synth_features(
    data: AESynthData, spec: FeatureSpec
) -> dict[str, np.ndarray]:
    """The model inputs of `spec` (from `ae_synth_spec`), checked and
    converted by `kmtl.data.check_features`.

    Args:
        data: `AESynthData`.
        spec: `FeatureSpec` from `ae_synth_spec` (either layout).

    Returns:
        dict input name -> array.

    Example:

    ```python
    features = ae_synth_features(make_ae_synth(100, 0), ae_synth_spec())
    ```
    """
    columns: dict[str, np.ndarray] = {
        f"c{i}": data.ids[:, i] for i in range(len(VOCABULARY_SIZES))
    }
    if "dense" in spec.input_names:
        columns["dense"] = data.dense
    else:
        columns.update({f"d{i}": data.dense[:, i] for i in range(NUM_DENSE)})
    columns["scenario"] = data.scenario
    return check_features(columns, spec)


def ae_synth_labels(
    data: AESynthData, tasks: Sequence[TaskSpec]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Labels and sample weights of a model's output tasks.

    Args:
        data: `AESynthData`.
        tasks: the model's tasks (`kmtl.model_tasks(name, spec)`; ESMM's
            include `ctcvr`).

    Returns:
        (labels, sample_weights), dicts task name -> float32 `[N]`.

    Example:

    ```python
    labels, weights = ae_synth_labels(data, kmtl.model_tasks("esmm", spec))
    ```
    """
    import pandas as pd

    frame = pd.DataFrame({"click": data.click, "conversion": data.conversion})
    return labels_from_dataframe(frame, tasks)
