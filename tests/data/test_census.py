import gzip
import os

import pytest

from kmtl.data.datasets import load_census
from kmtl.data.datasets.census import COLUMNS
from kmtl.data.datasets.census import NUMERICAL

REAL_DIR = "/work/shared/data"

# Two rows of the real training file, verbatim (", "-separated, 42 fields).
WIDOWED = (
    "73, Not in universe, 0, 0, High school graduate, 0, Not in universe, "
    "Widowed, Not in universe or children, Not in universe, White, "
    "All other, Female, Not in universe, Not in universe, "
    "Not in labor force, 0, 0, 0, Nonfiler, Not in universe, "
    "Not in universe, Other Rel 18+ ever marr not in subfamily, "
    "Other relative of householder, 1700.09, ?, ?, ?, "
    "Not in universe under 1 year old, ?, 0, Not in universe, "
    "United-States, United-States, United-States, "
    "Native- Born in the United States, 0, Not in universe, 2, 0, 95, "
    "- 50000."
)
NEVER_MARRIED = (
    "18, Not in universe, 0, 0, 10th grade, 0, High school, Never married, "
    "Not in universe or children, Not in universe, "
    "Asian or Pacific Islander, All other, Female, Not in universe, "
    "Not in universe, Not in labor force, 0, 0, 0, Nonfiler, "
    "Not in universe, Not in universe, "
    "Child 18+ never marr Not in a subfamily, Child 18 or older, 991.95, "
    "?, ?, ?, Not in universe under 1 year old, ?, 0, Not in universe, "
    "Vietnam, Vietnam, Vietnam, "
    "Foreign born- Not a citizen of U S , 0, Not in universe, 2, 0, 95, "
    "- 50000."
)


def _rich(row: str) -> str:
    """The row as a married, college-educated earner above 50K."""
    fields = row.split(", ")
    fields[4] = "Bachelors degree(BA AB BS)"
    fields[7] = "Married-civilian spouse present"
    fields[-1] = "50000+."
    return ", ".join(fields)


def _write(path, rows):
    with gzip.open(path, "wt") as f:
        f.write("\n".join(rows) + "\n")


@pytest.fixture
def census_dir(tmp_path):
    folder = tmp_path / "census-income"
    folder.mkdir()
    _write(folder / "census-income.data.gz", [WIDOWED, NEVER_MARRIED] * 3)
    _write(
        folder / "census-income.test.gz",
        [WIDOWED, NEVER_MARRIED, _rich(WIDOWED)] * 3,
    )
    return tmp_path


def test_format_labels_and_splits(census_dir):
    assert len(WIDOWED.split(", ")) == len(COLUMNS) == 42
    data = load_census(census_dir)
    inputs = [c for c in data.train.columns if c not in data.spec.task_names]
    assert len(inputs) == 39
    assert {"instance_weight", "income", "marital_stat"}.isdisjoint(inputs)
    assert [t.name for t in data.spec.tasks] == ["income", "never_married"]
    assert len(data.spec.features) == 39
    assert (len(data.train), len(data.val), len(data.test)) == (6, 4, 5)
    for col in NUMERICAL:
        assert data.train[col].dtype == "float32"
        assert data.spec.feature(col).normalized
    assert data.spec.feature("race").vocabulary == (
        "Asian or Pacific Islander",
        "White",
    )
    assert data.train.income.tolist() == [0] * 6
    assert data.train.never_married.tolist() == [0, 1] * 3
    held_out = list(data.val.income) + list(data.test.income)
    assert sorted(held_out) == [0] * 6 + [1] * 3


def test_split_is_seeded(census_dir):
    first = load_census(census_dir, seed=1)
    again = load_census(census_dir, seed=1)
    other = load_census(census_dir, seed=2)
    assert first.val.equals(again.val)
    assert first.test.equals(again.test)
    assert not (
        first.val.income.equals(other.val.income)
        and first.val.never_married.equals(other.val.never_married)
    )


def test_education_marital(census_dir):
    data = load_census(census_dir / "census-income", tasks="education_marital")
    assert [t.name for t in data.spec.tasks] == ["education", "never_married"]
    assert len(data.spec.features) == 38
    held_out = list(data.val.education) + list(data.test.education)
    assert sorted(held_out) == [0] * 6 + [1] * 3


def test_data_dir_from_environment(census_dir, monkeypatch):
    monkeypatch.setenv("KMTL_DATA_DIR", str(census_dir))
    assert len(load_census().train) == 6


def test_unknown_tasks_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="tasks='income'"):
        load_census(tmp_path, tasks="income")


@pytest.mark.skipif(
    not os.path.isdir(os.path.join(REAL_DIR, "census-income")),
    reason="the real Census-Income files are not here",
)
def test_real_files():
    data = load_census(REAL_DIR)
    assert len(data.train) == 199_523
    assert len(data.val) + len(data.test) == 99_762
    assert data.train.income.sum() == 12_382
    assert data.train.never_married.sum() == 86_485
