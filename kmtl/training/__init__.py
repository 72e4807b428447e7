"""Losses, metrics, compile arguments, optimizers and evaluation."""

from kmtl.training.compile import compile_args
from kmtl.training.evaluate import evaluate
from kmtl.training.lazy_adam import LazyAdam

__all__ = ["LazyAdam", "compile_args", "evaluate"]
