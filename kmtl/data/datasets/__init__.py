"""Loaders of public datasets from local files (never downloaded)."""

from kmtl.data.datasets.census import load_census
from kmtl.data.datasets.files import find_data_file
from kmtl.data.datasets.splits import DatasetSplits

__all__ = ["DatasetSplits", "find_data_file", "load_census"]
