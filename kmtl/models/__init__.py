"""Model builders and their registry."""

from kmtl.models.registry import build
from kmtl.models.registry import list_models
from kmtl.models.registry import model_tasks
from kmtl.models.registry import register_model

__all__ = ["build", "list_models", "model_tasks", "register_model"]
