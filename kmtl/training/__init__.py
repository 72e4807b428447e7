"""Losses, metrics and compile arguments."""

from kmtl.training.compile import compile_args

__all__ = ["compile_args"]
