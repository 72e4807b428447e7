"""Feature, scenario and task specs; model inputs; the feature encoder."""

from kmtl.features.encoder import FeatureEncoder
from kmtl.features.inputs import inputs
from kmtl.features.spec import CategoricalFeature
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import NumericalFeature
from kmtl.features.spec import ScenarioSpec
from kmtl.features.spec import SequenceFeature
from kmtl.features.spec import TaskSpec

__all__ = [
    "CategoricalFeature",
    "FeatureEncoder",
    "FeatureSpec",
    "NumericalFeature",
    "ScenarioSpec",
    "SequenceFeature",
    "TaskSpec",
    "inputs",
]
