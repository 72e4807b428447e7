"""Data: DataFrames to model inputs and tf.data, synthetic data."""

from kmtl.data import datasets
from kmtl.data.batching import batched_dataset
from kmtl.data.files import expand_paths
from kmtl.data.files import files_to_dataset
from kmtl.data.funnel import make_funnel
from kmtl.data.pandas import check_features
from kmtl.data.pandas import features_from_dataframe
from kmtl.data.pandas import labels_from_dataframe
from kmtl.data.pandas import to_dataset
from kmtl.data.scenario_shift import make_scenario_shifted
from kmtl.data.synthetic import make_synthetic
from kmtl.data.writers import write_parquet
from kmtl.data.writers import write_tfrecord

__all__ = [
    "batched_dataset",
    "datasets",
    "expand_paths",
    "files_to_dataset",
    "check_features",
    "features_from_dataframe",
    "labels_from_dataframe",
    "make_funnel",
    "make_scenario_shifted",
    "make_synthetic",
    "to_dataset",
    "write_parquet",
    "write_tfrecord",
]
