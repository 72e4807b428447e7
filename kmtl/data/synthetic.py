"""Synthetic multi-task, multi-scenario click/conversion data with a known
ground truth: the bundled demo data, and the yardstick of the tests (a model
that learns should approach the AUC of the true probabilities)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kmtl import validation

SCENARIOS = ("home", "search", "cart", "detail")
SCENARIO_SHARES = (0.4, 0.3, 0.2, 0.1)
DEVICES = ("android", "ios", "web")
NUM_USERS = 400
NUM_ITEMS = 200
NUM_CATEGORIES = 20
HISTORY_LENGTH = 8


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function of the generators' logits, element-wise."""
    return 1.0 / (1.0 + np.exp(-x))


class _World:
    """Fixed effects shared by every sample drawn with the same world seed,
    so that train and test sets come from one distribution."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.user_click = rng.normal(0.0, 0.6, NUM_USERS)
        self.user_buy = rng.normal(0.0, 0.4, NUM_USERS)
        self.user_taste = rng.integers(0, NUM_CATEGORIES, NUM_USERS)
        self.item_click = rng.normal(0.0, 0.6, NUM_ITEMS)
        self.item_buy = rng.normal(0.0, 0.7, NUM_ITEMS)
        self.item_category = rng.integers(0, NUM_CATEGORIES, NUM_ITEMS)
        self.category_click = rng.normal(0.0, 0.3, NUM_CATEGORIES)
        self.device_click = np.array([0.2, 0.0, -0.3])
        self.scenario_click = np.array([0.3, 0.0, -0.3, -0.6])
        self.scenario_buy = np.array([-0.3, 0.2, 0.5, 0.0])
        # Scenario-specific weight of the numericals (a scenario shift).
        self.scenario_price = np.array([-0.2, -0.5, 0.1, -0.8])


def make_synthetic(
    num_rows: int,
    *,
    seed: int = 0,
    world_seed: int = 0,
):
    """Draws an e-commerce-like impression log with click and purchase.

    Columns: `user_id` and `item_id` (int ids, 400 and 200), `category`
    and `device` (strings), `scenario` (int 0..3, named by `SCENARIOS`,
    shares 40/30/20/10 %), `price`, `age`, `rating` (floats), `history`
    (the user's last up to 8 item ids, a list), and the labels `click` and
    `purchase` (a purchase needs a click). The click logit mixes user and
    item effects, the match of the user's taste with the item category,
    numericals with a scenario-dependent price weight, an interaction and
    scenario offsets; the purchase logit shares the user effect and has
    item and scenario effects of its own.

    Args:
        num_rows: int. Number of impressions.
        seed: int. Seed of the impressions. Defaults to 0.
        world_seed: int. Seed of the fixed effects; keep it equal between a
            train and a test set. Defaults to 0.

    Returns:
        (df, truth): the DataFrame, and a DataFrame of the true
        probabilities `ctr` = P(click), `cvr` = P(purchase | click) and
        `ctcvr` = P(click and purchase) for each row.

    Example:

    ```python
    df, truth = kmtl.data.make_synthetic(10_000, seed=1)
    oracle_auc = roc_auc_score(df["click"], truth["ctr"])
    ```
    """
    import pandas as pd

    validation.positive_int(num_rows, "num_rows")
    world = _World(world_seed)
    rng = np.random.default_rng([world_seed, seed])
    n = num_rows
    user = (NUM_USERS * rng.random(n) ** 1.5).astype("int64")
    item = (NUM_ITEMS * rng.random(n) ** 2).astype("int64")
    scenario = rng.choice(len(SCENARIOS), size=n, p=SCENARIO_SHARES)
    device = rng.integers(0, len(DEVICES), n)
    price = rng.lognormal(3.0, 0.6, n).astype("float32")
    age = rng.normal(35.0, 10.0, n).clip(16, 80).astype("float32")
    rating = rng.normal(0.0, 1.0, n).astype("float32")
    lengths = rng.integers(0, HISTORY_LENGTH + 1, n)
    history_items = (NUM_ITEMS * rng.random((n, HISTORY_LENGTH)) ** 2).astype(
        "int64"
    )
    category = world.item_category[item]
    taste_match = (world.user_taste[user] == category).astype("float64")
    position = np.arange(HISTORY_LENGTH)[None, :]
    valid = position < lengths[:, None]
    history_match = (
        (world.item_category[history_items] == category[:, None]) & valid
    ).sum(1) / np.maximum(lengths, 1)

    log_price = (np.log(price) - 3.0) / 0.6
    age_z = (age - 35.0) / 10.0
    click_logit = (
        -1.6
        + world.user_click[user]
        + world.item_click[item]
        + world.category_click[category]
        + 0.9 * taste_match
        + 0.8 * history_match
        + world.device_click[device]
        + world.scenario_click[scenario]
        + world.scenario_price[scenario] * log_price
        + 0.4 * rating
        + 0.3 * rating * age_z
    )
    buy_logit = (
        -1.2
        + world.user_buy[user]
        + world.item_buy[item]
        + 0.5 * world.user_click[user]
        - 0.6 * log_price
        + 0.3 * age_z
        + world.scenario_buy[scenario]
    )
    ctr = sigmoid(click_logit)
    cvr = sigmoid(buy_logit)
    click = (rng.random(n) < ctr).astype("int64")
    purchase = click * (rng.random(n) < cvr).astype("int64")
    history = [
        row[:k].tolist() for row, k in zip(history_items, lengths, strict=True)
    ]
    df = pd.DataFrame(
        {
            "user_id": user,
            "item_id": item,
            "category": np.array(
                [f"cat_{c:02d}" for c in range(NUM_CATEGORIES)], object
            )[category],
            "device": np.array(DEVICES, object)[device],
            "scenario": scenario.astype("int64"),
            "price": price,
            "age": age,
            "rating": rating,
            "history": history,
            "click": click,
            "purchase": purchase,
        }
    )
    truth = pd.DataFrame({"ctr": ctr, "cvr": cvr, "ctcvr": ctr * cvr})
    return df, truth


def truth_column(task: Any) -> str | None:
    """The column of `make_synthetic`'s truth behind a task's label.

    `click` is `ctr`; `purchase` within clicks is `cvr`; `purchase` over
    every impression, or the product click x purchase (ESMM's `ctcvr`,
    AITM's end-to-end CVR), is `ctcvr`.

    Args:
        task: a `TaskSpec`.

    Returns:
        `"ctr"`, `"cvr"`, `"ctcvr"`, or `None` for a label the generator
        does not draw from these columns.

    Example:

    ```python
    truth_column(kmtl.TaskSpec("cvr", label="purchase", sample_space="ctr"))
    # 'cvr'
    ```
    """
    labels = set(task.label_columns)
    if labels == {"click"}:
        return "ctr"
    if labels == {"purchase"} and task.sample_space is not None:
        return "cvr"
    if labels in ({"purchase"}, {"click", "purchase"}):
        return "ctcvr"
    return None


def true_probabilities(truth: Any, tasks: Sequence[Any]) -> dict[str, Any]:
    """The true probability behind each task's label, per row
    (`truth_column` names the column).

    Args:
        truth: pandas.DataFrame from `make_synthetic`.
        tasks: TaskSpecs, e.g. `kmtl.model_tasks(name, spec)`.

    Returns:
        dict task name -> array of probabilities, for the tasks whose
        labels come from `click` and `purchase`.

    Example:

    ```python
    df, truth = make_synthetic(1000)
    oracle = true_probabilities(truth, kmtl.model_tasks("aitm", spec))
    ```
    """
    columns = {task.name: truth_column(task) for task in tasks}
    return {
        name: truth[column].to_numpy()
        for name, column in columns.items()
        if column is not None
    }
