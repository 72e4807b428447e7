"""Data: DataFrames to model inputs and tf.data, synthetic data."""

from kmtl.data import datasets
from kmtl.data.batching import batched_dataset
from kmtl.data.pandas import check_features
from kmtl.data.pandas import features_from_dataframe
from kmtl.data.pandas import labels_from_dataframe
from kmtl.data.pandas import to_dataset
from kmtl.data.scenario_shift import make_scenario_shifted
from kmtl.data.synthetic import make_synthetic

__all__ = [
    "batched_dataset",
    "datasets",
    "check_features",
    "features_from_dataframe",
    "labels_from_dataframe",
    "make_scenario_shifted",
    "make_synthetic",
    "to_dataset",
]
