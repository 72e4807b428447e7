"""Position-biased feedback with a known relevance: the ground truth of
BiasNet (a click depends on where the item was shown, and the logging
policy puts promoted items first whatever their relevance)."""

from __future__ import annotations

import numpy as np

from kmtl import validation
from kmtl.data.synthetic import sigmoid

NUM_POSITIONS = 10
POSITION_CLICK = np.array(
    [0.0, -0.5, -0.9, -1.2, -1.5, -1.7, -1.9, -2.1, -2.3, -2.5]
)
"""Click logit offset of each display position (0 = top): the bias."""
POSITION_LIKE = 0.4 * POSITION_CLICK
"""The like objective's weaker position bias."""
DEVICES = ("android", "ios", "web")
NUM_CATEGORIES = 12


class _World:
    """User and item effects shared by the samples of one world seed."""

    def __init__(self, seed: int, num_users: int, num_items: int) -> None:
        rng = np.random.default_rng(seed)
        self.user_click = rng.normal(0.0, 0.6, num_users)
        self.user_like = rng.normal(0.0, 0.5, num_users)
        self.user_taste = rng.integers(0, NUM_CATEGORIES, num_users)
        self.item_click = rng.normal(0.0, 0.7, num_items)
        self.item_like = rng.normal(0.0, 0.6, num_items)
        self.item_category = rng.integers(0, NUM_CATEGORIES, num_items)
        # A promoted item is shown near the top whatever its relevance; its
        # `promoted` flag is a feature, so a model that ignores the position
        # credits the flag with the position's clicks.
        self.item_promoted = rng.random(num_items) < 0.2


def make_position_biased(
    num_rows: int,
    *,
    seed: int = 0,
    world_seed: int = 0,
    num_users: int = 500,
    num_items: int = 300,
    missing_rate: float = 0.05,
):
    """Draws impressions whose clicks and likes are biased by position.

    Each row is an item shown to a user at a display `position` (0..9).
    The relevance logit of each objective mixes user and item effects, the
    match of the user's favourite category with the item's, `price` and the
    device; the logged click adds `POSITION_CLICK[position]` to it (the like
    a weaker `POSITION_LIKE`). The logging policy ranks by
    `0.3 * relevance + 2 * promoted + noise`, so the top positions hold
    relevant items and promoted ones: a model without the position takes
    the promotion for relevance.

    The relevance of a row is its probability with the bias removed,
    i.e. had the item been shown at the top: `p_click_relevance =
    sigmoid(click relevance logit)`; `relevant_click` and `relevant_like`
    are labels drawn from it (independently of the logged ones), the
    yardstick of a model served without the position.

    Columns: `user_id`, `item_id` (strings `u17`, `i4`), `category`,
    `device` (strings), `promoted` (int 0/1), `price` (float, a
    `missing_rate` share NaN), `position` (int), labels `click`, `like`,
    and `relevant_click`, `relevant_like` (evaluation only).

    Args:
        num_rows: int. Number of impressions.
        seed: int. Seed of the impressions. Defaults to 0.
        world_seed: int. Seed of the user and item effects; keep it equal
            between a train and a test set. Defaults to 0.
        num_users: int. Defaults to 500.
        num_items: int. Defaults to 300.
        missing_rate: float. Share of NaN prices. Defaults to 0.05.

    Returns:
        (df, truth): the DataFrame and the true probabilities: `ctr` and
        `like` (logged, position included), `ctr_relevance` and
        `like_relevance` (position removed).

    Example:

    ```python
    df, truth = kmtl.data.make_position_biased(50_000, seed=1)
    oracle = roc_auc_score(df["relevant_click"], truth["ctr_relevance"])
    ```
    """
    import pandas as pd

    validation.positive_int(num_rows, "num_rows")
    world = _World(world_seed, num_users, num_items)
    rng = np.random.default_rng([world_seed, seed, 7])
    n = num_rows
    user = (num_users * rng.random(n) ** 1.3).astype("int64")
    item = (num_items * rng.random(n) ** 1.6).astype("int64")
    device = rng.choice(len(DEVICES), size=n, p=(0.55, 0.3, 0.15))
    price = rng.lognormal(3.0, 0.6, n)
    log_price = (np.log(price) - 3.0) / 0.6
    category = world.item_category[item]
    match = (world.user_taste[user] == category).astype("float64")
    device_effect = np.array([0.1, 0.0, -0.3])[device]
    click_relevance = (
        -0.4
        + world.user_click[user]
        + world.item_click[item]
        + 0.9 * match
        - 0.3 * log_price
        + device_effect
    )
    like_relevance = (
        -1.5
        + world.user_like[user]
        + world.item_like[item]
        + 0.4 * match
        + 0.2 * log_price
    )
    promoted = world.item_promoted[item]
    policy = 0.3 * click_relevance + 2.0 * promoted + rng.normal(0, 1.0, n)
    # Position by the policy score's decile among the impressions: the
    # best-scored tenth is shown first.
    ranks = np.argsort(np.argsort(-policy))
    position = (ranks * NUM_POSITIONS // n).astype("int64")
    ctr = sigmoid(click_relevance + POSITION_CLICK[position])
    like = sigmoid(like_relevance + POSITION_LIKE[position])
    ctr_relevance = sigmoid(click_relevance)
    like_relevance_p = sigmoid(like_relevance)
    price_column = price.astype("float32")
    price_column[rng.random(n) < missing_rate] = np.nan
    df = pd.DataFrame(
        {
            "user_id": np.array([f"u{u}" for u in user], object),
            "item_id": np.array([f"i{i}" for i in item], object),
            "category": np.array(
                [f"cat{c}" for c in range(NUM_CATEGORIES)], object
            )[category],
            "device": np.array(DEVICES, object)[device],
            "promoted": promoted.astype("int64"),
            "price": price_column,
            "position": position,
            "click": (rng.random(n) < ctr).astype("int64"),
            "like": (rng.random(n) < like).astype("int64"),
            "relevant_click": (rng.random(n) < ctr_relevance).astype("int64"),
            "relevant_like": (rng.random(n) < like_relevance_p).astype("int64"),
        }
    )
    truth = pd.DataFrame(
        {
            "ctr": ctr,
            "like": like,
            "ctr_relevance": ctr_relevance,
            "like_relevance": like_relevance_p,
        }
    )
    return df, truth
