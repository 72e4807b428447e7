"""Exact per-task (and per-scenario) AUC and logloss of predictions."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np

from kmtl.data.pandas import labels_from_dataframe
from kmtl.features.spec import TaskSpec


def roc_auc(labels: Any, scores: Any) -> float:
    """Exact ROC AUC (ties count one half), NaN when one class is absent.

    Args:
        labels: 0/1 array.
        scores: array of predictions, same length.

    Returns:
        float.

    Example:

    >>> roc_auc([0, 1, 1], [0.1, 0.4, 0.3])
    1.0
    """
    import pandas as pd

    labels = np.asarray(labels, "float64").ravel()
    scores = np.asarray(scores, "float64").ravel()
    positives = labels.sum()
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    rank_sum = ranks[labels == 1].sum()
    return float(
        (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
    )


def logloss(labels: Any, probabilities: Any, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy, probabilities clipped to [eps, 1 - eps]."""
    y = np.asarray(labels, "float64").ravel()
    p = np.clip(np.asarray(probabilities, "float64").ravel(), eps, 1 - eps)
    if not len(y):
        return float("nan")
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def evaluate_predictions(
    df: Any,
    predictions: Mapping[str, Any],
    tasks: Sequence[TaskSpec],
    *,
    scenario: str | None = None,
) -> Any:
    """AUC, logloss, count and positive rate per binary task, each on its
    sample space (CVR on clicked rows), overall and per scenario.

    Args:
        df: pandas.DataFrame with the label (and scenario) columns.
        predictions: dict task name -> predictions `[N]` or `[N, 1]`.
        tasks: the model's output tasks.
        scenario: str. Scenario column to break the figures down by.
            Defaults to none.

    Returns:
        pandas.DataFrame with columns task, scenario ("all" for the
        overall row), auc, logloss, count, positive_rate.
    """
    import pandas as pd

    labels, weights = labels_from_dataframe(df, tasks)
    groups = [("all", np.ones(len(df), bool))]
    if scenario is not None:
        values = df[scenario].to_numpy()
        groups += [(v, values == v) for v in sorted(np.unique(values))]
    rows = []
    for task in tasks:
        if task.kind != "binary" or task.name not in predictions:
            continue
        pred = np.asarray(predictions[task.name]).reshape(-1)
        in_space = weights[task.name] > 0
        for name, rows_of_group in groups:
            keep = in_space & rows_of_group
            y, p = labels[task.name][keep], pred[keep]
            rows.append(
                {
                    "task": task.name,
                    "scenario": name,
                    "auc": roc_auc(y, p),
                    "logloss": logloss(y, p),
                    "count": int(keep.sum()),
                    "positive_rate": float(y.mean()) if len(y) else np.nan,
                }
            )
    return pd.DataFrame(rows)
