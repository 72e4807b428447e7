"""Loaders of public datasets from local files (never downloaded)."""

from kmtl.data.datasets.aliccp import load_aliccp
from kmtl.data.datasets.aliexpress import load_aliexpress
from kmtl.data.datasets.census import load_census
from kmtl.data.datasets.files import find_data_file
from kmtl.data.datasets.kuairand import load_kuairand
from kmtl.data.datasets.movielens import load_movielens_1m
from kmtl.data.datasets.splits import DatasetSplits

__all__ = [
    "DatasetSplits",
    "find_data_file",
    "load_aliccp",
    "load_aliexpress",
    "load_census",
    "load_kuairand",
    "load_movielens_1m",
]
