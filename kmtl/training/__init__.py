"""Losses, metrics, compile arguments and evaluation."""

from kmtl.training.compile import compile_args
from kmtl.training.evaluate import evaluate

__all__ = ["compile_args", "evaluate"]
