"""Every dataset loader names the file it misses, or the variable to set."""

import pytest

from kmtl.data.datasets import load_aliccp
from kmtl.data.datasets import load_aliexpress
from kmtl.data.datasets import load_census
from kmtl.data.datasets import load_kuairand
from kmtl.data.datasets import load_movielens_1m

LOADERS = {
    "aliccp": load_aliccp,
    "aliexpress": load_aliexpress,
    "census": load_census,
    "kuairand": load_kuairand,
    "movielens": load_movielens_1m,
}


@pytest.fixture(autouse=True)
def no_data_dir(monkeypatch):
    monkeypatch.delenv("KMTL_DATA_DIR", raising=False)


@pytest.mark.parametrize(
    "name, kwargs, missing",
    [
        ("aliccp", {}, "ali_ccp_train.csv"),
        ("aliexpress", {}, "AliExpress_NL/train.csv"),
        ("aliexpress", {"countries": ["FR"]}, "aliexpress_FR_train.csv"),
        ("census", {}, "census-income.data.gz"),
        ("kuairand", {}, "log_standard_4_08_to_4_21_pure.csv"),
        ("kuairand", {"version": "1k"}, "KuaiRand-1K/data"),
        ("movielens", {}, "ratings.dat"),
    ],
)
def test_missing_file_names_it(tmp_path, name, kwargs, missing):
    with pytest.raises(FileNotFoundError, match=missing):
        LOADERS[name](tmp_path, **kwargs)


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_no_data_dir_names_the_variable(name):
    with pytest.raises(FileNotFoundError, match="KMTL_DATA_DIR"):
        LOADERS[name]()
