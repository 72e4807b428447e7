"""Clicks and orders whose numericals go missing not at random: the ground
truth of learned missing-value fills."""

from __future__ import annotations

import numpy as np

from kmtl import validation
from kmtl.data.synthetic import sigmoid

NUM_CATEGORIES = 10


def make_missing_not_at_random(
    num_rows: int,
    *,
    seed: int = 0,
    world_seed: int = 0,
    num_users: int = 500,
    num_items: int = 300,
):
    """Draws an impression log whose best numerical is often missing, and
    the more so the higher it is.

    `income` (z-scored, float) raises both the click and the conversion
    logits; it is missing with probability `sigmoid(5 * income - 3)`
    (about 25 % of rows, nearly all high incomes; mostly an income of the
    impression, little of the user, so a user's id does not recover it),
    so a missing income means a high one and the mean is the wrong fill.
    The income also sets the price sensitivity
    (`-0.6 * price * (1 - income)`), so a wrong fill misranks the missing
    rows among themselves, not only against the others. `tenure` is
    missing at random (10 %) and `price` never. The click logit also has
    user and item effects and a user-category match; a conversion needs a
    click.

    Columns: `user_id`, `item_id`, `category` (strings), `income`,
    `tenure`, `price` (floats, NaN where missing), `click`, `conversion`
    (on clicked rows; 0 elsewhere).

    Args:
        num_rows: int. Number of impressions.
        seed: int. Seed of the impressions. Defaults to 0.
        world_seed: int. Seed of the user and item effects; keep it equal
            between a train and a test set. Defaults to 0.
        num_users: int. Defaults to 500.
        num_items: int. Defaults to 300.

    Returns:
        (df, truth): the DataFrame and the true probabilities `ctr`,
        `cvr` (conversion given click) and `ctcvr`.

    Example:

    ```python
    df, truth = kmtl.data.make_missing_not_at_random(20_000, seed=1)
    df.income.isna().mean()  # ~0.35
    ```
    """
    import pandas as pd

    validation.positive_int(num_rows, "num_rows")
    world = np.random.default_rng(world_seed)
    user_click = world.normal(0.0, 0.5, num_users)
    item_click = world.normal(0.0, 0.6, num_items)
    item_buy = world.normal(0.0, 0.5, num_items)
    user_taste = world.integers(0, NUM_CATEGORIES, num_users)
    item_category = world.integers(0, NUM_CATEGORIES, num_items)
    user_income = world.normal(0.0, 1.0, num_users)

    rng = np.random.default_rng([world_seed, seed, 11])
    n = num_rows
    user = (num_users * rng.random(n) ** 1.3).astype("int64")
    item = (num_items * rng.random(n) ** 1.5).astype("int64")
    income = user_income[user] * 0.3 + rng.normal(0.0, 0.95, n)
    tenure = rng.normal(0.0, 1.0, n)
    price = rng.normal(0.0, 1.0, n)
    match = (user_taste[user] == item_category[item]).astype("float64")
    click_logit = (
        -1.2
        + user_click[user]
        + item_click[item]
        + 0.8 * match
        + 1.0 * income
        + 0.3 * tenure
        - 0.6 * price * (1.0 - income)
    )
    buy_logit = -1.0 + item_buy[item] + 0.8 * income - 0.5 * price
    ctr, cvr = sigmoid(click_logit), sigmoid(buy_logit)
    click = (rng.random(n) < ctr).astype("int64")
    conversion = click * (rng.random(n) < cvr).astype("int64")
    income_seen = income.astype("float32")
    income_seen[rng.random(n) < sigmoid(5.0 * income - 3.0)] = np.nan
    tenure_seen = tenure.astype("float32")
    tenure_seen[rng.random(n) < 0.1] = np.nan
    df = pd.DataFrame(
        {
            "user_id": np.array([f"u{u}" for u in user], object),
            "item_id": np.array([f"i{i}" for i in item], object),
            "category": np.array(
                [f"cat{c}" for c in range(NUM_CATEGORIES)], object
            )[item_category[item]],
            "income": income_seen,
            "tenure": tenure_seen,
            "price": price.astype("float32"),
            "click": click,
            "conversion": conversion,
        }
    )
    truth = pd.DataFrame({"ctr": ctr, "cvr": cvr, "ctcvr": ctr * cvr})
    return df, truth
