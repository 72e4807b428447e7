"""A purchase funnel with a deterministic action and selection-biased
clicks: the ground truth of ESM2 and ESCM2 (impression -> click ->
cart/wishlist ("DAction") or another action -> purchase)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kmtl.data.synthetic import sigmoid

FUNNEL_USERS = 600
FUNNEL_ITEMS = 300
FUNNEL_CATEGORIES = 12
FUNNEL_DEVICES = ("android", "ios", "web")
FUNNEL_DEVICE_SHARES = (0.62, 0.3, 0.08)
FUNNEL_NUMERICALS = ("price", "discount", "rating")
#: Share of missing values per numerical (`rating` is missing more often
#: on unpopular items: not at random).
FUNNEL_MISSING = {"price": 0.05, "discount": 0.1, "rating": 0.15}


class _FunnelWorld:
    """Effects fixed by the world seed: per-user and per-item effects of
    each funnel step, category and device offsets."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.user_click = rng.normal(0.0, 0.5, FUNNEL_USERS)
        self.user_cart = rng.normal(0.0, 1.0, FUNNEL_USERS)
        self.user_buy = rng.normal(0.0, 0.1, FUNNEL_USERS)
        self.item_click = rng.normal(0.0, 0.5, FUNNEL_ITEMS)
        # How much an item is wanted once seen: drives the cart and the
        # purchase, and (through the selection bias) the click.
        self.item_appeal = rng.normal(0.0, 1.4, FUNNEL_ITEMS)
        self.item_buy = rng.normal(0.0, 0.1, FUNNEL_ITEMS)
        self.item_category = rng.choice(
            FUNNEL_CATEGORIES, FUNNEL_ITEMS, p=_zipf(FUNNEL_CATEGORIES)
        )
        self.item_price = rng.normal(0.0, 1.0, FUNNEL_ITEMS)
        self.item_rating = rng.normal(0.0, 1.0, FUNNEL_ITEMS)
        self.category_click = rng.normal(0.0, 0.3, FUNNEL_CATEGORIES)
        self.category_cart = rng.normal(0.0, 0.5, FUNNEL_CATEGORIES)
        self.device_click = np.array([0.1, 0.0, -0.4])
        self.device_buy = np.array([0.0, 0.3, -0.2])


def _zipf(n: int, exponent: float = 1.0) -> np.ndarray:
    """Probabilities proportional to `1 / rank ** exponent` (imbalanced)."""
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return weights / weights.sum()


def make_funnel(
    num_rows: int,
    *,
    seed: int = 0,
    world_seed: int = 0,
    selection_bias: float = 1.0,
):
    """Draws an impression log of a purchase funnel with a known truth.

    Each impression may be clicked; a click leads to a deterministic action
    (`daction`: add to cart or wishlist) or to another action; a purchase
    follows either, much likelier after the deterministic action (ESM2's
    decomposition, Wen et al. 2020):

    `P(purchase | click) = a * b_D + (1 - a) * b_O`, with
    `a = P(daction | click)`, `b_D = P(purchase | daction)`,
    `b_O = P(purchase | other action)`.

    Columns: `user_id` and `item_id` (strings, 600 and 300 ids drawn
    with long tails), `category` (string, Zipf-imbalanced), `device`
    (string, 62/30/8 %), `price`, `discount`, `rating` (floats, with
    missing values: 5, 10 and 15 %, `rating` missing more often on rarely
    shown items), and the labels `click`, `daction` and `purchase`
    (`daction` and `purchase` need a click).

    **Selection bias**: the click logit holds `-selection_bias` times the
    item's appeal (the item effect of the cart and purchase logits) and a
    clickbait `discount` that lowers the purchase: items that convert best
    are clicked least, so a CVR model trained on clicked rows sees few of
    them, and is biased on the entire impression space.

    Args:
        num_rows: int. Number of impressions.
        seed: int. Seed of the impressions. Defaults to 0.
        world_seed: int. Seed of the user and item effects; keep it equal
            between a train and a test set. Defaults to 0.
        selection_bias: float. Weight of the items' conversion appeal in
            the click logit, negated (0: clicks ignore it). Defaults to 1.

    Returns:
        (df, truth): the DataFrame, and a DataFrame of each row's true
        probabilities: `p_click`, `p_daction_given_click` (a),
        `p_purchase_given_daction` (b_D), `p_purchase_given_oaction` (b_O),
        `p_purchase_given_click` (the entire-space CVR, defined on every
        impression, clicked or not), `p_ctavr` = P(click and daction) and
        `p_ctcvr` = P(click and purchase).

    Example:

    ```python
    df, truth = kmtl.data.make_funnel(50_000, seed=1)
    # entire-space CVR: every impression, against the truth
    truth["p_purchase_given_click"].describe()
    ```
    """
    import pandas as pd

    if num_rows < 1:
        raise ValueError(
            "make_funnel: `num_rows` must be a positive integer. "
            f"Received: num_rows={num_rows}"
        )
    world = _FunnelWorld(world_seed)
    rng = np.random.default_rng([world_seed, seed, 13])
    n = num_rows
    user = (FUNNEL_USERS * rng.random(n) ** 1.6).astype("int64")
    item = (FUNNEL_ITEMS * rng.random(n) ** 1.8).astype("int64")
    device = rng.choice(len(FUNNEL_DEVICES), n, p=FUNNEL_DEVICE_SHARES)
    category = world.item_category[item]
    price = world.item_price[item] + rng.normal(0.0, 0.3, n)
    discount = rng.beta(1.2, 4.0, n)
    rating = world.item_rating[item] + rng.normal(0.0, 0.4, n)
    appeal = world.item_appeal[item]
    bait = 2.0 * (discount - 0.25)

    click_logit = (
        -2.3
        + world.user_click[user]
        + world.item_click[item]
        + world.category_click[category]
        + world.device_click[device]
        - 0.3 * price
        + 0.2 * rating
        + selection_bias * (bait - appeal)
    )
    cart_logit = (
        0.4
        + world.user_cart[user]
        + appeal
        + world.category_cart[category]
        + 1.0 * rating
        - 0.4 * price
        - 0.8 * bait
    )
    buy_cart_logit = (
        -1.4
        + world.user_buy[user]
        + world.item_buy[item]
        + world.device_buy[device]
        - 0.2 * price
    )
    buy_other_logit = buy_cart_logit - 3.0
    p_click = sigmoid(click_logit)
    p_cart = sigmoid(cart_logit)
    p_buy_cart = sigmoid(buy_cart_logit)
    p_buy_other = sigmoid(buy_other_logit)
    p_buy = p_cart * p_buy_cart + (1.0 - p_cart) * p_buy_other

    click = rng.random(n) < p_click
    daction = click & (rng.random(n) < p_cart)
    bought = rng.random(n) < np.where(daction, p_buy_cart, p_buy_other)
    purchase = click & bought

    # Item popularity: `rating` is missing more often on rare items.
    shown = np.bincount(item, minlength=FUNNEL_ITEMS)[item] / n
    rare = shown < np.quantile(shown, 0.3)
    numericals = {"price": price, "discount": discount, "rating": rating}
    for name, share in FUNNEL_MISSING.items():
        odds = np.full(n, share)
        if name == "rating":
            odds = np.where(rare, 2.0 * share, 0.6 * share)
        numericals[name] = np.where(
            rng.random(n) < odds, np.nan, numericals[name]
        ).astype("float32")

    df = pd.DataFrame(
        {
            "user_id": _names("u", FUNNEL_USERS)[user],
            "item_id": _names("i", FUNNEL_ITEMS)[item],
            "category": _names("cat", FUNNEL_CATEGORIES)[category],
            "device": np.array(FUNNEL_DEVICES, object)[device],
            **numericals,
            "click": click.astype("int64"),
            "daction": daction.astype("int64"),
            "purchase": purchase.astype("int64"),
        }
    )
    truth = pd.DataFrame(
        {
            "p_click": p_click,
            "p_daction_given_click": p_cart,
            "p_purchase_given_daction": p_buy_cart,
            "p_purchase_given_oaction": p_buy_other,
            "p_purchase_given_click": p_buy,
            "p_ctavr": p_click * p_cart,
            "p_ctcvr": p_click * p_buy,
        }
    )
    return df, truth


def _names(prefix: str, count: int) -> np.ndarray:
    """String ids `prefix0000`, `prefix0001`, ... as an object array."""
    return np.array([f"{prefix}{i:04d}" for i in range(count)], object)


def truth_column(task: Any) -> str | None:
    """The column of `make_funnel`'s truth behind a task's label.

    A label of `click` is `p_click`. A label of `daction` or `purchase`
    (alone or times `click`) is that event given the click when the task
    has a sample space (its loss and metrics count clicked rows: ESMM's
    and ESM2's post-click `cvr`), else the event and the click together
    (`p_ctavr`, `p_ctcvr`).

    Args:
        task: a `TaskSpec`.

    Returns:
        The column name, or `None` for a label the funnel does not draw.

    Example:

    ```python
    truth_column(kmtl.TaskSpec("ctcvr", label=("click", "purchase")))
    # 'p_ctcvr'
    ```
    """
    events = set(task.label_columns) - {"click"}
    if not events:
        return "p_click" if "click" in task.label_columns else None
    if len(events) != 1 or not events <= {"daction", "purchase"}:
        return None
    (event,) = events
    if task.sample_space is not None:
        return f"p_{event}_given_click"
    return {"daction": "p_ctavr", "purchase": "p_ctcvr"}[event]


def true_probabilities(truth: Any, tasks: Sequence[Any]) -> dict[str, Any]:
    """The true probability behind each task's label, per row.

    Args:
        truth: pandas.DataFrame from `make_funnel`.
        tasks: TaskSpecs, e.g. `kmtl.model_tasks("esm2", spec)`.

    Returns:
        dict task name -> array, for the tasks `truth_column` knows.

    Example:

    ```python
    oracle = true_probabilities(truth, kmtl.model_tasks("esm2", spec))
    ```
    """
    columns = {task.name: truth_column(task) for task in tasks}
    return {
        name: truth[column].to_numpy()
        for name, column in columns.items()
        if column is not None
    }
