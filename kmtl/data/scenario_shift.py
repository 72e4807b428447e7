"""Synthetic data whose ground truth differs by scenario: the yardstick of
the multi-scenario models (a model that shares what is common and keeps
what is specific should beat one that only shares, most clearly on a small
scenario)."""

from __future__ import annotations

import numpy as np

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


def make_scenario_shifted(
    num_rows: int,
    *,
    seed: int = 0,
    world_seed: int = 0,
    scenario_shares: tuple[float, ...] = SHIFT_SCENARIO_SHARES,
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

    Args:
        num_rows: int. Number of impressions.
        seed: int. Seed of the impressions. Defaults to 0.
        world_seed: int. Seed of the effects; keep it equal between a
            train and a test set. Defaults to 0.
        scenario_shares: the probability of each scenario. Defaults to
            `SHIFT_SCENARIO_SHARES`.

    Returns:
        (df, truth): the DataFrame, and a DataFrame of the true `ctr`,
        `cvr` (P(purchase | click)) and `ctcvr` of each row.

    Example:

    ```python
    df, truth = kmtl.data.make_scenario_shifted(50_000)
    small = df["scenario"] == 3
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
    click_logit = (
        -1.4
        + world.scenario_click[scenario]
        + world.user_click[user]
        + world.item_click[item]
        + world.item_click_own[scenario, item]
        + (signals * click_weights).sum(1)
    )
    buy_logit = (
        -1.0
        + world.scenario_buy[scenario]
        + world.user_buy[user]
        + world.item_buy[item]
        + (signals * buy_weights).sum(1)
    )
    ctr = sigmoid(click_logit)
    cvr = sigmoid(buy_logit)
    click = (rng.random(n) < ctr).astype("int64")
    purchase = click * (rng.random(n) < cvr).astype("int64")
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
