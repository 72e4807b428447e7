"""Losses, metrics, compile arguments, optimizers and evaluation."""

from kmtl.training.compile import compile_args
from kmtl.training.evaluate import evaluate
from kmtl.training.fused_adam import FusedAdam
from kmtl.training.lazy_adam import LazyAdam

__all__ = ["FusedAdam", "LazyAdam", "compile_args", "evaluate"]
