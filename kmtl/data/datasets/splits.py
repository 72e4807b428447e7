"""`DatasetSplits`: what every dataset loader returns."""

from __future__ import annotations

import dataclasses
from typing import Any

from kmtl.features.spec import FeatureSpec


@dataclasses.dataclass(frozen=True)
class DatasetSplits:
    """Train, validation and test DataFrames with the FeatureSpec to train
    on them.

    The spec's vocabularies and normalisation statistics come from `train`
    only; values of `val` and `test` unseen in `train` go to the OOV bucket.

    Args:
        train: pandas.DataFrame. Input and label columns.
        val: pandas.DataFrame. Same columns; for early stopping.
        test: pandas.DataFrame. Same columns; for the reported figures.
        spec: FeatureSpec. Inputs and tasks.

    Example:

    ```python
    data = kmtl.data.datasets.load_census()
    model = kmtl.build("mmoe", data.spec)
    model.fit(kmtl.data.to_dataset(data.train, data.spec, shuffle=True))
    ```
    """

    train: Any
    val: Any
    test: Any
    spec: FeatureSpec
