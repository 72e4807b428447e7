"""Synthetic data whose ground truth differs by scenario: the yardstick of
the multi-scenario models (a model that shares what is common and keeps
what is specific should beat one that only shares, most clearly on a small
scenario)."""

from __future__ import annotations

import numpy as np

from kmtl import validation
from kmtl.data.synthetic import sigmoid

SHIFT_SCENARIOS = ("home", "search", "cart", "live")
SHIFT_SCENARIO_SHARES = (0.45, 0.3, 0.2, 0.05)
NUM_SIGNALS = 6
SHIFT_USERS = 500
SHIFT_ITEMS = 300


class _ShiftedWorld:
    """Effects fixed by the world seed: shared weights, and per-scenario
    weights that move away from them."""

    def __init__(self, seed: int, num_scenarios: int) -> None:
        rng = np.random.default_rng(seed)
        s = num_scenarios
        self.user_click = rng.normal(0.0, 0.5, SHIFT_USERS)
        self.user_buy = rng.normal(0.0, 0.4, SHIFT_USERS)
        self.item_click = rng.normal(0.0, 0.5, SHIFT_ITEMS)
        self.item_buy = rng.normal(0.0, 0.5, SHIFT_ITEMS)
        # Each scenario re-weighs the items a little.
        self.item_click_own = rng.normal(0.0, 0.2, (s, SHIFT_ITEMS))
        self.signal_click = rng.normal(0.0, 0.6, NUM_SIGNALS)
        self.signal_buy = rng.normal(0.0, 0.5, NUM_SIGNALS)
        # Per-scenario signal weights, larger than the shared ones; the
        # last scenario also reverses the shared ones.
        self.signal_click_own = rng.normal(0.0, 0.8, (s, NUM_SIGNALS))
        self.signal_buy_own = rng.normal(0.0, 0.6, (s, NUM_SIGNALS))
        self.shared_sign = np.ones(s)
        self.shared_sign[-1] = -1.0
        self.scenario_click = rng.normal(0.0, 0.5, s)
        self.scenario_buy = rng.normal(0.0, 0.4, s)
        # Drawn from a stream of their own, so that the effects above do
        # not depend on whether a table asks for them.
        own = np.random.default_rng([seed, 1])
        self.user_click_own = own.normal(0.0, 1.0, (s, SHIFT_USERS))


def make_scenario_shifted(
    num_rows: int,
    *,
    seed: int = 0,
    world_seed: int = 0,
    scenario_shares: tuple[float, ...] = SHIFT_SCENARIO_SHARES,
    id_scale: float = 1.0,
    signal_scale: float = 1.0,
    user_scenario_scale: float = 0.0,
    missing_share: float = 0.0,
    string_ids: bool = False,
):
    """Draws impressions whose click and purchase laws differ by scenario.

    Columns: `user_id` (int, 500 ids), `item_id` (int, 300 ids),
    `scenario` (int, `len(scenario_shares)` scenarios; the default four are
    named by `SHIFT_SCENARIOS` with shares 45/30/20/5 %, so `live` is
    small), six float signals `s0`..`s5` ~ N(0, 1), and the labels
    `click` and `purchase` (a purchase needs a click).

    The click logit of scenario `k` is `b_k + u_user + v_item + v_item,k +
    (c_k w + w_k) . s`: every scenario has its own (small) item effect and
    its own signal weights `w_k`, larger than the shared `w`, and the last
    scenario reverses the shared weights (`c_k = -1`, else 1). The
    purchase logit has shared user and item effects and signal weights
    built the same way.

    The options below make the ids matter more and the log messier; their
    defaults keep the table above, value for value. `id_scale` multiplies
    every user and item effect and `signal_scale` every signal weight;
    `user_scenario_scale = sigma` adds a per-user, per-scenario click effect
    `u_user,k ~ N(0, sigma^2)` (a user's taste differs by scenario), drawn
    from its own stream. With `missing_share = m` each signal value is
    missing (NaN) with probability `m`, and a missing signal does not act
    on the labels (the truth is the law of what the log holds).
    `string_ids=True` writes the ids as strings (`"u17"`, `"i5"`).

    Args:
        num_rows: int. Number of impressions.
        seed: int. Seed of the impressions. Defaults to 0.
        world_seed: int. Seed of the effects; keep it equal between a
            train and a test set. Defaults to 0.
        scenario_shares: the probability of each scenario. Defaults to
            `SHIFT_SCENARIO_SHARES`.
        id_scale: float >= 0. Factor of the user and item effects.
            Defaults to 1.
        signal_scale: float >= 0. Factor of the signal weights. Defaults
            to 1.
        user_scenario_scale: float >= 0. Standard deviation of the
            per-user, per-scenario click effect. Defaults to 0 (none).
        missing_share: float in [0, 1). Probability that a signal value is
            missing. Defaults to 0.
        string_ids: bool. Write `user_id` and `item_id` as strings.
            Defaults to `False`.

    Returns:
        (df, truth): the DataFrame, and a DataFrame of the true `ctr`,
        `cvr` (P(purchase | click)) and `ctcvr` of each row.

    Example:

    ```python
    df, truth = kmtl.data.make_scenario_shifted(50_000)
    small = df["scenario"] == 3

    # Ids matter more than the signals; a messy log.
    df, truth = kmtl.data.make_scenario_shifted(
        70_000, scenario_shares=(0.6, 0.3, 0.1), id_scale=2.0,
        signal_scale=0.4, missing_share=0.1, string_ids=True,
    )
    ```
    """
    import pandas as pd

    if num_rows < 1:
        raise ValueError(
            f"`num_rows` must be a positive integer. Received: "
            f"num_rows={num_rows}"
        )
    shares = np.asarray(scenario_shares, dtype="float64")
    if shares.ndim != 1 or not len(shares) or (shares <= 0).any():
        raise ValueError(
            "`scenario_shares` must be a non-empty list of positive "
            f"numbers. Received: scenario_shares={scenario_shares}"
        )
    for name, value in (
        ("id_scale", id_scale),
        ("signal_scale", signal_scale),
        ("user_scenario_scale", user_scenario_scale),
    ):
        validation.non_negative_float(value, name)
    if validation.non_negative_float(missing_share, "missing_share") >= 1:
        raise ValueError(
            "`missing_share` must be a float in [0, 1). Received: "
            f"missing_share={missing_share}"
        )
    validation.boolean(string_ids, "string_ids")
    world = _ShiftedWorld(world_seed, len(shares))
    rng = np.random.default_rng([world_seed, seed])
    n = num_rows
    user = (SHIFT_USERS * rng.random(n) ** 1.5).astype("int64")
    item = (SHIFT_ITEMS * rng.random(n) ** 1.5).astype("int64")
    scenario = rng.choice(len(shares), size=n, p=shares / shares.sum())
    signals = rng.normal(0.0, 1.0, (n, NUM_SIGNALS)).astype("float32")
    sign = world.shared_sign[scenario, None]
    click_weights = sign * world.signal_click + world.signal_click_own[scenario]
    buy_weights = sign * world.signal_buy + world.signal_buy_own[scenario]
    acting = signals
    if missing_share > 0:
        # A stream of its own: the other columns stay those of the
        # complete table.
        missing = (
            np.random.default_rng([world_seed, seed, 1]).random(signals.shape)
            < missing_share
        )
        acting = np.where(missing, 0.0, signals)
        signals = np.where(missing, np.nan, signals).astype("float32")
    click_logit = (
        -1.4
        + world.scenario_click[scenario]
        + id_scale
        * (
            world.user_click[user]
            + world.item_click[item]
            + world.item_click_own[scenario, item]
        )
        + user_scenario_scale * world.user_click_own[scenario, user]
        + signal_scale * (acting * click_weights).sum(1)
    )
    buy_logit = (
        -1.0
        + world.scenario_buy[scenario]
        + id_scale * (world.user_buy[user] + world.item_buy[item])
        + signal_scale * (acting * buy_weights).sum(1)
    )
    ctr = sigmoid(click_logit)
    cvr = sigmoid(buy_logit)
    click = (rng.random(n) < ctr).astype("int64")
    purchase = click * (rng.random(n) < cvr).astype("int64")
    if string_ids:
        user = np.array([f"u{u}" for u in user], dtype=object)
        item = np.array([f"i{i}" for i in item], dtype=object)
    columns = {
        "user_id": user,
        "item_id": item,
        "scenario": scenario.astype("int64"),
    }
    for i in range(NUM_SIGNALS):
        columns[f"s{i}"] = signals[:, i]
    columns["click"] = click
    columns["purchase"] = purchase
    truth = pd.DataFrame({"ctr": ctr, "cvr": cvr, "ctcvr": ctr * cvr})
    return pd.DataFrame(columns), truth
