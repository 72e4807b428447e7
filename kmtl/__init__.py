"""kmtl: multi-task and multi-scenario recommendation models for Keras 3,
exported for TensorFlow Serving."""

import importlib.util

from kmtl import data
from kmtl import inspection
from kmtl import layers
from kmtl import plots
from kmtl.features import CategoricalFeature
from kmtl.features import FeatureSpec
from kmtl.features import NumericalFeature
from kmtl.features import ScenarioSpec
from kmtl.features import SequenceFeature
from kmtl.features import TaskSpec
from kmtl.features import inputs
from kmtl.models import build
from kmtl.models import list_models
from kmtl.models import model_tasks
from kmtl.models import register_model
from kmtl.training import compile_args
from kmtl.training import evaluate
from kmtl.training import predict
from kmtl.version import __version__

# Export writes TensorFlow SavedModels. Without TensorFlow (Keras on JAX or
# PyTorch alone) the layers and models still load; `kmtl.export` does not.
if importlib.util.find_spec("tensorflow") is not None:
    from kmtl.export import export


__all__ = [
    "CategoricalFeature",
    "FeatureSpec",
    "NumericalFeature",
    "ScenarioSpec",
    "SequenceFeature",
    "TaskSpec",
    "__version__",
    "build",
    "compile_args",
    "evaluate",
    "data",
    "export",
    "inputs",
    "inspection",
    "layers",
    "list_models",
    "model_tasks",
    "plots",
    "predict",
    "register_model",
]
