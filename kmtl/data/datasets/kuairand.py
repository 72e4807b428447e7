"""KuaiRand (Pure or 1K): click, long view and like, one scenario per tab."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from kmtl.data.datasets.files import find_data_file
from kmtl.data.datasets.splits import DatasetSplits
from kmtl.features.spec import CategoricalFeature
from kmtl.features.spec import FeatureSpec

VERSIONS = {"pure": "KuaiRand-Pure", "1k": "KuaiRand-1K"}
LOG_FILES = ("log_standard_4_08_to_4_21", "log_standard_4_22_to_5_08")
USER_FILE = "user_features"
VIDEO_FILE = "video_features_basic"
TASKS = ("is_click", "long_view", "is_like")
SCENARIO = "tab"
NUM_TABS = 15  # the README: tab is in [0, 14]
FRACTIONS = (0.8, 0.1, 0.1)
# Integer id columns whose largest id exceeds this are hashed into this
# many bins (author and music ids reach 10^9).
HASH_BINS = 2**20
# Columns read from each file; everything else (the other feedback
# signals, view times, dates) is a label or would leak one.
LOG_COLUMNS = ("user_id", "video_id", "hourmin", "time_ms", "tab", *TASKS)
USER_CATEGORICAL = (
    "user_active_degree",
    "is_lowactive_period",
    "is_live_streamer",
    "is_video_author",
    "follow_user_num_range",
    "fans_user_num_range",
    "friend_user_num_range",
    "register_days_range",
    *(f"onehot_feat{i}" for i in range(18)),
)
USER_COUNTS = (
    "follow_user_num",
    "fans_user_num",
    "friend_user_num",
    "register_days",
)
VIDEO_IDS = ("author_id", "music_id")
VIDEO_CATEGORICAL = ("video_type", "upload_type", "music_type")
VIDEO_COLUMNS = ("video_id", *VIDEO_IDS, *VIDEO_CATEGORICAL)


def _as_strings(series: Any) -> Any:
    """Codes as strings, missing as `""`; integral floats lose `.0`."""
    import pandas as pd

    if pd.api.types.is_float_dtype(series):
        whole = series.dropna()
        if (whole == whole.round()).all():
            series = series.astype("Int64")
    return series.astype("string").fillna("").astype(object)


def read_kuairand(
    data_dir: str | os.PathLike | None = None,
    *,
    version: str = "pure",
    max_rows: int | None = None,
) -> Any:
    """Reads the standard logs of KuaiRand and joins the user and basic
    video features, before any split.

    Args:
        data_dir: str or path. See `load_kuairand`.
        version: str. `"pure"` or `"1k"`. Defaults to `"pure"`.
        max_rows: int. Read only the first rows of each log. Defaults to
            all.

    Returns:
        pandas.DataFrame ordered by `time_ms`: the model inputs (see
        `load_kuairand`), the three labels, and `time_ms`.

    Example:

    ```python
    df = read_kuairand("/data", version="pure")
    ```
    """
    import pandas as pd

    if version not in VERSIONS:
        raise ValueError(
            f"`version` must be one of {sorted(VERSIONS)}. "
            f"Received: version={version!r}"
        )
    dataset = VERSIONS[version]
    suffix = f"_{version}.csv"
    # A release keeps its CSVs in a `data/` folder; accept them beside it.
    *paths, user_path, video_path = (
        find_data_file(
            (f"data/{name}{suffix}", name + suffix), dataset, data_dir
        )
        for name in (*LOG_FILES, USER_FILE, VIDEO_FILE)
    )
    logs = pd.concat(
        [
            pd.read_csv(
                p, usecols=list(LOG_COLUMNS), dtype="int64", nrows=max_rows
            )
            for p in paths
        ],
        ignore_index=True,
    )
    logs = logs.sort_values("time_ms", kind="stable", ignore_index=True)
    logs["hour"] = (logs.pop("hourmin") // 100).astype("int64")
    users = pd.read_csv(
        user_path, usecols=["user_id", *USER_CATEGORICAL, *USER_COUNTS]
    )
    videos = pd.read_csv(
        video_path, usecols=[*VIDEO_COLUMNS, "video_duration", "tag"]
    )
    df = logs.merge(users, on="user_id", how="left").merge(
        videos, on="video_id", how="left"
    )
    for col in (*USER_CATEGORICAL, *VIDEO_CATEGORICAL):
        df[col] = _as_strings(df[col])
    for col in VIDEO_IDS:
        df[col] = df[col].fillna(0).astype("int64").clip(lower=0)
    for col in USER_COUNTS:
        df[col] = np.log1p(df[col].fillna(0).clip(lower=0)).astype("float32")
    seconds = df.pop("video_duration").fillna(0).clip(lower=0) / 1000
    df["log_video_seconds"] = np.log1p(seconds).astype("float32")
    df["tag"] = [
        [t for t in str(v).split(",") if t] if isinstance(v, str) else []
        for v in df["tag"]
    ]
    inputs = [
        "user_id",
        "video_id",
        "hour",
        SCENARIO,
        *USER_CATEGORICAL,
        *USER_COUNTS,
        *VIDEO_IDS,
        *VIDEO_CATEGORICAL,
        "log_video_seconds",
        "tag",
    ]
    return df[[*inputs, *TASKS, "time_ms"]]


def load_kuairand(
    data_dir: str | os.PathLike | None = None,
    *,
    version: str = "pure",
    tabs: Sequence[int] | None = None,
    max_rows: int | None = None,
) -> DatasetSplits:
    """Loads KuaiRand with three binary tasks over its tab scenarios.

    Files (as released, in `<data_dir>/KuaiRand-Pure/data/`,
    `<data_dir>/KuaiRand-Pure/`, `<data_dir>/data/` or `<data_dir>`; `1K`
    and `_1k` for the 1K version): `log_standard_4_08_to_4_21_pure.csv`,
    `log_standard_4_22_to_5_08_pure.csv`, `user_features_pure.csv`,
    `video_features_basic_pure.csv`. The random-exposure log and the
    statistic video features are not read.

    Tasks: `is_click`, `long_view`, `is_like` (the logs' binary signals).
    Scenario: `tab` (ids 0-14, named `tab0`...`tab14`), or with `tabs` only
    those tabs, re-indexed in the given order. Inputs: `user_id`,
    `video_id`, `hour` (of `hourmin`), `tab`; the user's categorical
    features as strings (missing: `""`) and `log1p` of its four counts;
    the video's `author_id` and `music_id` (hashed past 2^20), type,
    upload type and music type as strings, `log1p` of its duration in
    seconds and its `tag` list as a sequence. Other feedback signals and
    view times are outcomes and are dropped.

    Split: time-ordered. The rows are sorted by `time_ms`; the first 80%
    are `train`, the next 10% `val`, the last 10% `test`, so no model is
    evaluated on an earlier moment than it trained on.

    Args:
        data_dir: str or path. Defaults to the `KMTL_DATA_DIR` environment
            variable.
        version: str. `"pure"` (KuaiRand-Pure) or `"1k"` (KuaiRand-1K).
            Defaults to `"pure"`.
        tabs: list of int. Keep only these tabs. Defaults to all 15.
        max_rows: int. Read only the first rows of each log (quick runs).
            Defaults to all.

    Returns:
        `DatasetSplits` with `train`, `val`, `test` and `spec`.

    Raises:
        FileNotFoundError: a file is missing; the message names it and
            where it was expected.

    Example:

    ```python
    data = kmtl.data.datasets.load_kuairand("/data", tabs=[0, 1, 2, 4])
    model = kmtl.build("pepnet", data.spec)
    ```
    """
    if tabs is not None:
        tabs = tuple(int(t) for t in tabs)
        if (
            not tabs
            or len(set(tabs)) != len(tabs)
            or not all(0 <= t < NUM_TABS for t in tabs)
        ):
            raise ValueError(
                f"`tabs` must be distinct ids in [0, {NUM_TABS}). "
                f"Received: tabs={tabs!r}"
            )
    df = read_kuairand(data_dir, version=version, max_rows=max_rows)
    df = df.drop(columns=["time_ms"])
    if tabs is None:
        names = tuple(f"tab{t}" for t in range(NUM_TABS))
    else:
        names = tuple(f"tab{t}" for t in tabs)
        df = df[df[SCENARIO].isin(tabs)].reset_index(drop=True)
        index = {t: i for i, t in enumerate(tabs)}
        df[SCENARIO] = df[SCENARIO].map(index).astype("int64")
    bad = ~df[SCENARIO].between(0, len(names) - 1)
    if bad.any():
        raise ValueError(
            f"KuaiRand tab ids must be in [0, {NUM_TABS}); found "
            f"{sorted(df.loc[bad, SCENARIO].unique())[:5]}."
        )
    n_train = int(FRACTIONS[0] * len(df))
    n_val = int(FRACTIONS[1] * len(df))
    train = df.iloc[:n_train].reset_index(drop=True)
    val = df.iloc[n_train : n_train + n_val].reset_index(drop=True)
    test = df.iloc[n_train + n_val :].reset_index(drop=True)
    spec = FeatureSpec.from_dataframe(
        train, labels=list(TASKS), scenario=SCENARIO, scenario_values=names
    )
    # Large integer ids: from_dataframe keeps a vocabulary or, for sparse
    # ids, already hashes them (into fewer bins); both get HASH_BINS here.
    features = [
        CategoricalFeature(f.name, hash_bins=HASH_BINS, group=f.group)
        if isinstance(f, CategoricalFeature)
        and f.dtype == "int64"
        and (f.hash_bins is not None or f.vocabulary_size > HASH_BINS)
        else f
        for f in spec.features
    ]
    spec = spec.replace(features=features)
    return DatasetSplits(train=train, val=val, test=test, spec=spec)
