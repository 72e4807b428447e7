"""`kmtl.evaluate`: a trained model's figures per task and per scenario."""

from __future__ import annotations

from typing import Any

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.training.metrics import evaluate_predictions


def evaluate(
    model: keras.Model,
    df: Any,
    *,
    spec: FeatureSpec | None = None,
    batch_size: int = 4096,
) -> Any:
    """AUC, logloss, count and positive rate of every binary output, on
    each task's sample space, overall and per scenario.

    Args:
        model: a model from `kmtl.build` (or any model holding a
            `FeatureEncoder`).
        df: pandas.DataFrame with the input, label and scenario columns.
        spec: FeatureSpec. Defaults to the one the model's encoder holds.
        batch_size: int. Prediction batch size. Defaults to 4096.

    Returns:
        pandas.DataFrame with columns task, scenario (the scenario's name,
        or `"all"` for the overall row), auc, logloss, count and
        positive_rate; one row per task and scenario.

    Example:

    ```python
    table = kmtl.evaluate(model, test_df)
    table.pivot(index="scenario", columns="task", values="auc")
    ```
    """
    from kmtl.data.pandas import to_dataset
    from kmtl.export.saved_model import find_spec
    from kmtl.models.registry import list_models
    from kmtl.models.registry import model_tasks

    spec = spec or find_spec(model)
    if spec is None:
        raise ValueError(
            f"Model {model.name!r} holds no FeatureEncoder; pass "
            "`spec=` to `kmtl.evaluate`."
        )
    tasks = (
        model_tasks(model.name, spec)
        if model.name in list_models()
        else list(spec.tasks)
    )
    outputs = set(model.output_names)
    tasks = [task for task in tasks if task.name in outputs]
    predictions = model.predict(
        to_dataset(df, spec, batch_size=batch_size, with_labels=False),
        verbose=0,
    )
    scenario = spec.scenario
    table = evaluate_predictions(
        df,
        predictions,
        tasks,
        scenario=None if scenario is None else scenario.name,
    )
    if scenario is not None:
        names = {i: name for i, name in enumerate(scenario.values)}
        table["scenario"] = [names.get(v, v) for v in table["scenario"]]
    return table
