"""Synthetic impressions whose click and purchase laws differ by user group:
the yardstick of the faceted models (MFH, H-MTL). A small group of new
users shares the regular users' structure but shifts it (own signal
weights, a reversed price effect, a stronger item effect), and a shared
model fitted mostly on regular users serves it worse."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kmtl import validation
from kmtl.data.synthetic import sigmoid

FACET_BEHAVIOURS = ("click", "purchase")
FACET_GROUPS = ("new", "regular")
NEW_SHARE = 0.1
REGULAR_USERS = 2000
FACET_ITEMS = 500
FACET_CATEGORIES = 20
FACET_SIGNALS = 4
FACET_DEVICES = ("android", "ios", "web")
ROWS_PER_NEW_USER = 2


class _FacetWorld:
    """Effects fixed by the world seed: the regular users, the items, and
    the signal weights of both groups."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.user_click = rng.normal(0.0, 0.5, REGULAR_USERS)
        self.user_buy = rng.normal(0.0, 0.4, REGULAR_USERS)
        self.user_taste = rng.integers(0, FACET_CATEGORIES, REGULAR_USERS)
        self.item_click = rng.normal(0.0, 0.5, FACET_ITEMS)
        self.item_buy = rng.normal(0.0, 0.5, FACET_ITEMS)
        self.item_category = rng.integers(0, FACET_CATEGORIES, FACET_ITEMS)
        self.device_click = np.array([0.2, 0.0, -0.3])
        self.signal_click = rng.normal(0.0, 0.6, FACET_SIGNALS)
        self.signal_buy = rng.normal(0.0, 0.5, FACET_SIGNALS)
        # New users: the shared weights reversed, plus their own.
        self.new_signal_click = -self.signal_click + rng.normal(
            0.0, 0.6, FACET_SIGNALS
        )
        self.new_signal_buy = -self.signal_buy + rng.normal(
            0.0, 0.5, FACET_SIGNALS
        )


def make_faceted(
    num_rows: int,
    *,
    seed: int = 0,
    world_seed: int = 0,
    new_share: float = NEW_SHARE,
) -> tuple[Any, Any]:
    """Draws impressions of regular and new users with click and purchase.

    Columns: `user_id` (strings: 2,000 regular users `u0000`.., seen in
    every draw of a world; new users `n<seed>_<k>`, about two rows each and
    never seen in another draw: cold start), `item_id` (strings, 500 items,
    popularity-skewed), `category` (string, 5 % missing), `device`
    (string, 3 % missing), `user_group` (`"new"` with probability
    `new_share`, else `"regular"`), `price` (float), `days_active` (float,
    missing for every new user), `s0`..`s3` (floats ~ N(0, 1), `s1` 10 %
    missing), and the labels `click` and `purchase` (a purchase needs a
    click).

    Regular users: `click_logit = -1.2 + u_user + v_item + 0.8 taste_match
    + d_device + w . s - 0.3 z_price + 0.2 z_days`. New users share the
    item effect (stronger, `1.3 v_item`), not the taste (unknown) nor a
    learnable user effect (each new user's is drawn afresh), and shift the
    rest: `-1.5 + u_new + 1.3 v_item + d_device + w_new . s + 0.4 z_price`
    with `w_new = -w + N(0, 0.6)`. The purchase probability given a click
    has shared user and item effects and signal weights built the same way
    (`cvr_logit = -1.0 + b_user + b_item + 0.5 u_user + c . s - 0.6 z_price`
    for regular users; `-0.8 + b_new + b_item + c_new . s - 0.2 z_price`,
    `c_new = -c + N(0, 0.5)`, for new users). A missing value hides a
    signal from the model, not from the truth.

    Args:
        num_rows: int. Number of impressions.
        seed: int. Seed of the impressions (and of the new users). Defaults
            to 0.
        world_seed: int. Seed of the effects; keep it equal between a train
            and a test set. Defaults to 0.
        new_share: float in (0, 1). Share of new-user impressions. Defaults
            to 0.1.

    Returns:
        (df, truth): the DataFrame, and a DataFrame of the true probability
        of each behaviour label per row: `click` = P(click), `purchase` =
        P(click and purchase).

    Example:

    ```python
    from kmtl.data.facets import faceted_spec, make_faceted

    train, _ = make_faceted(50_000, seed=0)
    test, truth = make_faceted(20_000, seed=1)
    spec = faceted_spec(train)  # tasks click_new, ..., routed click, purchase
    new = test.user_group == "new"
    ```
    """
    import pandas as pd

    validation.positive_int(num_rows, "num_rows", "make_faceted: ")
    if not 0.0 < new_share < 1.0:
        raise ValueError(
            "make_faceted: `new_share` must be a float in (0, 1). "
            f"Received: new_share={new_share!r}"
        )
    world = _FacetWorld(world_seed)
    rng = np.random.default_rng([world_seed, seed])
    n = int(num_rows)
    new = rng.random(n) < new_share
    num_new = int(new.sum())

    regular_user = (REGULAR_USERS * rng.random(n) ** 1.5).astype("int64")
    new_users = max(1, num_new // ROWS_PER_NEW_USER)
    new_user = rng.integers(0, new_users, n)
    new_user_click = rng.normal(0.0, 0.3, new_users)[new_user]
    new_user_buy = rng.normal(0.0, 0.3, new_users)[new_user]
    user_id = np.where(
        new,
        np.char.add(f"n{seed}_", new_user.astype(str)),
        np.char.add("u", np.char.zfill(regular_user.astype(str), 4)),
    ).astype(object)

    item = (FACET_ITEMS * rng.random(n) ** 2).astype("int64")
    category = world.item_category[item]
    device = rng.integers(0, len(FACET_DEVICES), n)
    price = rng.lognormal(3.0, 0.6, n)
    z_price = (np.log(price) - 3.0) / 0.6
    days = rng.lognormal(4.0, 1.0, n)
    z_days = (np.log(days) - 4.0) / 1.0
    signals = rng.normal(0.0, 1.0, (n, FACET_SIGNALS))
    taste = (world.user_taste[regular_user] == category).astype("float64")

    regular_click = (
        -1.2
        + world.user_click[regular_user]
        + world.item_click[item]
        + 0.8 * taste
        + world.device_click[device]
        + signals @ world.signal_click
        - 0.3 * z_price
        + 0.2 * z_days
    )
    new_click = (
        -1.5
        + new_user_click
        + 1.3 * world.item_click[item]
        + world.device_click[device]
        + signals @ world.new_signal_click
        + 0.4 * z_price
    )
    regular_buy = (
        -1.0
        + world.user_buy[regular_user]
        + world.item_buy[item]
        + 0.5 * world.user_click[regular_user]
        + signals @ world.signal_buy
        - 0.6 * z_price
    )
    new_buy = (
        -0.8
        + new_user_buy
        + world.item_buy[item]
        + signals @ world.new_signal_buy
        - 0.2 * z_price
    )
    ctr = sigmoid(np.where(new, new_click, regular_click))
    cvr = sigmoid(np.where(new, new_buy, regular_buy))
    click = (rng.random(n) < ctr).astype("int64")
    purchase = click * (rng.random(n) < cvr).astype("int64")

    categories = np.array(
        [f"cat_{c:02d}" for c in range(FACET_CATEGORIES)], object
    )[category]
    categories[rng.random(n) < 0.05] = None
    devices = np.array(FACET_DEVICES, object)[device]
    devices[rng.random(n) < 0.03] = None
    observed = signals.astype("float32")
    observed[rng.random(n) < 0.1, 1] = np.nan
    columns = {
        "user_id": user_id,
        "item_id": np.char.add("i", item.astype(str)).astype(object),
        "category": categories,
        "device": devices,
        "user_group": np.where(new, "new", "regular").astype(object),
        "price": price.astype("float32"),
        "days_active": np.where(new, np.nan, days).astype("float32"),
    }
    for i in range(FACET_SIGNALS):
        columns[f"s{i}"] = observed[:, i]
    columns["click"] = click
    columns["purchase"] = purchase
    truth = pd.DataFrame({"click": ctr, "purchase": ctr * cvr})
    return pd.DataFrame(columns), truth


def faceted_tasks(
    groups: Sequence[str] = FACET_GROUPS,
    behaviours: Sequence[str] = FACET_BEHAVIOURS,
    *,
    routed: bool = True,
) -> list[Any]:
    """The tasks of a `make_faceted` log: behaviour x user group, with
    facets, and (with `routed`) one group-routed task per behaviour.

    `<behaviour>_<group>` (label `<behaviour>`, facets `{"behaviour": b,
    "user_group": g}`) is the behaviour of that group's users. A routed
    task `<behaviour>` (facets `{"behaviour": b}`, no user group) is served
    by the row's own group's task; its weight is 0, so it adds metrics (the
    served predictions' AUC), not a loss.

    Args:
        groups: the user groups. Defaults to `("new", "regular")`.
        behaviours: the behaviour labels. Defaults to `("click",
            "purchase")`.
        routed: bool. Add the routed tasks. Defaults to `True`.

    Returns:
        list of `TaskSpec`.

    Example:

    >>> [t.name for t in faceted_tasks(routed=False)]
    ['click_new', 'click_regular', 'purchase_new', 'purchase_regular']
    """
    from kmtl.features.spec import TaskSpec

    tasks = [
        TaskSpec(
            f"{behaviour}_{group}",
            label=behaviour,
            facets={"behaviour": behaviour, "user_group": group},
        )
        for behaviour in behaviours
        for group in groups
    ]
    if routed:
        tasks += [
            TaskSpec(
                behaviour,
                label=behaviour,
                weight=0.0,
                facets={"behaviour": behaviour},
            )
            for behaviour in behaviours
        ]
    return tasks


def faceted_spec(df: Any, *, routed: bool = True, **options: Any) -> Any:
    """The FeatureSpec of a `make_faceted` log: the inferred features and
    `faceted_tasks(routed=routed)`.

    Args:
        df: pandas.DataFrame from `make_faceted`.
        routed: bool. Add the routed tasks. Defaults to `True`.
        **options: more `FeatureSpec.from_dataframe` arguments
            (`embedding_dim`, ...).

    Returns:
        A `FeatureSpec`.
    """
    from kmtl.features.spec import FeatureSpec

    spec = FeatureSpec.from_dataframe(
        df, labels=list(FACET_BEHAVIOURS), **options
    )
    return spec.replace(tasks=faceted_tasks(routed=routed))


__all__ = [
    "FACET_BEHAVIOURS",
    "FACET_GROUPS",
    "faceted_spec",
    "faceted_tasks",
    "make_faceted",
]
