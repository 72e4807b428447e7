"""Behaviour sequences whose labels depend on which past items match the
target: the ground truth of sequence models (DUPN and its kin)."""

from __future__ import annotations

import numpy as np

from kmtl import validation
from kmtl.data.synthetic import sigmoid

NUM_CATEGORIES = 20
MAX_LENGTH = 20
RECENCY = 0.8
"""Weight of the step `k` places before the last one: `RECENCY ** k`."""


def make_behaviour_log(
    num_rows: int,
    *,
    seed: int = 0,
    world_seed: int = 0,
    num_users: int = 500,
    num_items: int = 400,
    max_length: int = MAX_LENGTH,
):
    """Draws impressions of a target item after a user's item history.

    Each row has the user's last `0..max_length` items (`history`, item ids
    as strings, most recent last) and a target `item_id`. The click logit
    is user and item effects plus `4 * match`, where `match` is the
    recency-weighted share of past items of the target's category
    (`sum_k RECENCY**k [cat(h_{L-k}) == cat(target)] / sum_k RECENCY**k`),
    and a price term; the purchase (on clicks) depends on whether the very
    last item matches. So what matters is which steps match the target and
    how recent they are: a mean-pooled history loses both. The category of
    each past item is also given step by step (`history_category`, a step
    feature); 5 % of prices are missing.

    Columns: `user_id`, `item_id`, `category` (strings), `price` (float),
    `history`, `history_category` (lists of strings), `click`, `purchase`.

    Args:
        num_rows: int. Number of impressions.
        seed: int. Seed of the impressions. Defaults to 0.
        world_seed: int. Seed of the user and item effects. Defaults to 0.
        num_users: int. Defaults to 500.
        num_items: int. Defaults to 400.
        max_length: int. Longest history. Defaults to 20.

    Returns:
        (df, truth): the DataFrame and the true `ctr`, `cvr` (purchase
        given click) and `ctcvr`.

    Example:

    ```python
    df, truth = kmtl.data.make_behaviour_log(20_000, seed=1)
    df.history[0]  # ['i12', 'i310', ...]
    ```
    """
    import pandas as pd

    validation.positive_int(num_rows, "num_rows")
    world = np.random.default_rng(world_seed)
    user_click = world.normal(0.0, 0.5, num_users)
    item_click = world.normal(0.0, 0.5, num_items)
    item_buy = world.normal(0.0, 0.5, num_items)
    item_category = world.integers(0, NUM_CATEGORIES, num_items)

    rng = np.random.default_rng([world_seed, seed, 13])
    n = num_rows
    user = (num_users * rng.random(n) ** 1.3).astype("int64")
    item = (num_items * rng.random(n) ** 1.4).astype("int64")
    lengths = rng.integers(0, max_length + 1, n)
    # Past items: each from the target's category with a per-row interest
    # in [0, 0.7), else anywhere (a user browsing around the target).
    anywhere = rng.integers(0, num_items, (n, max_length))
    by_category = [
        np.flatnonzero(item_category == c) for c in range(NUM_CATEGORIES)
    ]
    similar = np.stack(
        [rng.choice(by_category[item_category[i]], max_length) for i in item]
    )
    interest = rng.uniform(0.0, 0.7, (n, 1))
    history = np.where(
        rng.random((n, max_length)) < interest, similar, anywhere
    )
    steps = np.arange(max_length)[None, :]
    valid = steps < lengths[:, None]
    # Step j of a row of length L is k = L - 1 - j places before the last.
    weight = np.where(valid, RECENCY ** (lengths[:, None] - 1 - steps), 0.0)
    same = item_category[history] == item_category[item][:, None]
    match = (weight * same).sum(1) / np.maximum(weight.sum(1), 1e-9)
    last = history[np.arange(n), np.maximum(lengths - 1, 0)]
    last_match = (lengths > 0) & (item_category[last] == item_category[item])
    price = rng.normal(0.0, 1.0, n)
    click_logit = (
        -2.0 + user_click[user] + item_click[item] + 4.0 * match - 0.3 * price
    )
    buy_logit = -1.0 + item_buy[item] + 1.2 * last_match - 0.4 * price
    ctr, cvr = sigmoid(click_logit), sigmoid(buy_logit)
    click = (rng.random(n) < ctr).astype("int64")
    purchase = click * (rng.random(n) < cvr).astype("int64")
    names = np.array([f"i{i}" for i in range(num_items)], object)
    categories = np.array([f"c{c}" for c in range(NUM_CATEGORIES)], object)
    price_column = price.astype("float32")
    price_column[rng.random(n) < 0.05] = np.nan
    df = pd.DataFrame(
        {
            "user_id": np.array([f"u{u}" for u in user], object),
            "item_id": names[item],
            "category": categories[item_category[item]],
            "price": price_column,
            "history": [
                list(names[row[:k]])
                for row, k in zip(history, lengths, strict=True)
            ],
            "history_category": [
                list(categories[item_category[row[:k]]])
                for row, k in zip(history, lengths, strict=True)
            ],
            "click": click,
            "purchase": purchase,
        }
    )
    truth = pd.DataFrame({"ctr": ctr, "cvr": cvr, "ctcvr": ctr * cvr})
    return df, truth


def behaviour_spec(df, embedding_dim: int = 8):
    """The spec of a `make_behaviour_log` DataFrame: inferred, with
    `history` sharing `item_id`'s embeddings and `history_category`
    describing its steps (`step_of`).

    Args:
        df: a DataFrame of `make_behaviour_log`.
        embedding_dim: int. Defaults to 8.

    Returns:
        A `FeatureSpec` with tasks `ctr` (click) and `cvr` (purchase, on
        clicks).
    """
    from kmtl.features.spec import FeatureSpec
    from kmtl.features.spec import SequenceFeature

    spec = FeatureSpec.from_dataframe(
        df,
        {"ctr": "click", "cvr": "purchase"},
        sample_spaces={"cvr": "ctr"},
        embedding_dim=embedding_dim,
    )
    length = spec.feature("history").max_length
    shared = {
        "history": SequenceFeature("history", length, shared_with="item_id"),
        "history_category": SequenceFeature(
            "history_category",
            length,
            shared_with="category",
            step_of="history",
        ),
    }
    return spec.replace(features=[shared.get(f.name, f) for f in spec.features])
