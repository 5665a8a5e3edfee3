"""The residual-network family of the four papers, each a discretization of dX = f dt + eps g dW.

See docs/models.md. Public API: :func:`build_model`, :func:`list_models`, :func:`model_options`.
"""
from nets.models.registry import build_config, build_model, list_models, model_options

__all__ = ["build_config", "build_model", "list_models", "model_options"]
