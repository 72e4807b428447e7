"""Census-Income (KDD) with the MMoE paper's task groups."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from kmtl.data.datasets.files import find_data_file
from kmtl.data.datasets.splits import DatasetSplits
from kmtl.features.spec import FeatureSpec

DATASET = "census-income"
TRAIN_FILE = "census-income.data.gz"
TEST_FILE = "census-income.test.gz"
# The 42 fields of UCI's census-income.names, in file order.
COLUMNS = (
    "age",
    "class_of_worker",
    "detailed_industry_recode",
    "detailed_occupation_recode",
    "education",
    "wage_per_hour",
    "enroll_in_edu_inst_last_wk",
    "marital_stat",
    "major_industry_code",
    "major_occupation_code",
    "race",
    "hispanic_origin",
    "sex",
    "member_of_a_labor_union",
    "reason_for_unemployment",
    "full_or_part_time_employment_stat",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
    "tax_filer_stat",
    "region_of_previous_residence",
    "state_of_previous_residence",
    "detailed_household_and_family_stat",
    "detailed_household_summary_in_household",
    "instance_weight",
    "migration_code_change_in_msa",
    "migration_code_change_in_reg",
    "migration_code_move_within_reg",
    "live_in_this_house_1_year_ago",
    "migration_prev_res_in_sunbelt",
    "num_persons_worked_for_employer",
    "family_members_under_18",
    "country_of_birth_father",
    "country_of_birth_mother",
    "country_of_birth_self",
    "citizenship",
    "own_business_or_self_employed",
    "fill_inc_questionnaire_for_veterans_admin",
    "veterans_benefits",
    "weeks_worked_in_year",
    "year",
    "income",
)
# Continuous fields; every other input (integer codes included) is a
# categorical string.
NUMERICAL = (
    "age",
    "wage_per_hour",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
    "num_persons_worked_for_employer",
    "weeks_worked_in_year",
)
# "Education at least college": any college, with or without a degree.
COLLEGE = (
    "Some college but no degree",
    "Associates degree-occup /vocational",
    "Associates degree-academic program",
    "Bachelors degree(BA AB BS)",
    "Masters degree(MA MS MEng MEd MSW MBA)",
    "Prof school degree (MD DDS DVM LLB JD)",
    "Doctorate degree(PhD EdD)",
)
TASK_GROUPS = {
    "income_marital": ("income", "never_married"),
    "education_marital": ("education", "never_married"),
}
# Fields that define a task of the group are labels, never inputs.
_SOURCES = {
    "income": "income",
    "never_married": "marital_stat",
    "education": "education",
}


def read_census_file(path: str | os.PathLike) -> Any:
    """Reads one census-income file (gzip, 42 comma-separated fields).

    Args:
        path: str or path. `census-income.data.gz` or `.test.gz`.

    Returns:
        pandas.DataFrame with the 42 `COLUMNS`: `NUMERICAL` and
        `instance_weight` as float32, the others as stripped strings.

    Example:

    ```python
    df = read_census_file("data/census-income/census-income.test.gz")
    ```
    """
    import pandas as pd

    df = pd.read_csv(
        path,
        header=None,
        names=list(COLUMNS),
        dtype=str,
        skipinitialspace=True,
        keep_default_na=False,
    )
    for col in df.columns:
        if col in NUMERICAL or col == "instance_weight":
            df[col] = df[col].astype("float32")
        else:
            df[col] = df[col].str.strip()
    return df


def _prepare(raw: Any, tasks: tuple[str, ...]) -> Any:
    """The task labels (int64 0/1) beside the input columns."""
    labels = {
        "income": raw["income"].str.startswith("50000+"),
        "never_married": raw["marital_stat"] == "Never married",
        "education": raw["education"].isin(COLLEGE),
    }
    drop = {"instance_weight", "income", *(_SOURCES[t] for t in tasks)}
    df = raw[[c for c in COLUMNS if c not in drop]].copy()
    for task in tasks:
        df[task] = labels[task].astype("int64").to_numpy()
    return df


def load_census(
    data_dir: str | os.PathLike | None = None,
    *,
    tasks: str = "income_marital",
    seed: int = 0,
) -> DatasetSplits:
    """Loads Census-Income (KDD) with the protocol of the MMoE paper.

    The official training file (199,523 rows) is `train`; the official test
    file (99,762 rows) is shuffled with `seed` and split 1:1 into `val` and
    `test`. The instance weight, the income field and the fields that
    define a task are dropped from the inputs (they would leak the label):
    `"income_marital"` keeps 39 input columns, `"education_marital"` 38.
    The 7 continuous fields are normalised numericals; the others are
    string vocabularies built on `train`.

    Task groups:
    - `"income_marital"`: `income` (income above 50K) and `never_married`
      (marital status "Never married").
    - `"education_marital"`: `education` (education at least college: any
      college, with or without a degree; the paper gives no finer
      definition) and `never_married`.

    Args:
        data_dir: str or path. Folder holding `census-income.data.gz` and
            `census-income.test.gz`, directly or in a `census-income/`
            subfolder. Defaults to the `KMTL_DATA_DIR` environment variable.
        tasks: str. `"income_marital"` or `"education_marital"`. Defaults to
            `"income_marital"`.
        seed: int. Seed of the validation/test split. Defaults to 0.

    Returns:
        `DatasetSplits` with `train`, `val`, `test` and `spec`.

    Raises:
        FileNotFoundError: a file is missing; the message names it and
            where it was expected.

    Example:

    ```python
    data = kmtl.data.datasets.load_census("/data", tasks="income_marital")
    model = kmtl.build("mmoe", data.spec)
    ```
    """
    if tasks not in TASK_GROUPS:
        raise ValueError(
            f"`tasks` must be one of {sorted(TASK_GROUPS)}. "
            f"Received: tasks={tasks!r}"
        )
    group = TASK_GROUPS[tasks]
    train_path = find_data_file(TRAIN_FILE, DATASET, data_dir)
    test_path = find_data_file(TEST_FILE, DATASET, data_dir)
    train = _prepare(read_census_file(train_path), group)
    held_out = _prepare(read_census_file(test_path), group)
    order = np.random.default_rng(seed).permutation(len(held_out))
    half = len(held_out) // 2
    val = held_out.iloc[order[:half]].reset_index(drop=True)
    test = held_out.iloc[order[half:]].reset_index(drop=True)
    spec = FeatureSpec.from_dataframe(train, labels=list(group))
    return DatasetSplits(train=train, val=val, test=test, spec=spec)
