"""PyTorch residual networks as discretizations of dX = f dt + eps g dW, their data and trainer.

Public API (models, docs/models.md): ``build_model(name, **options)``, ``list_models()``,
``model_options(name)``, ``build_config(name, **options)``. They are imported lazily, so
``import nets`` stays free of torch until a model is asked for.
"""
from __future__ import annotations

from typing import Any

__all__ = ["build_config", "build_model", "list_models", "model_options"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from nets import models

        return getattr(models, name)
    raise AttributeError(f"module 'nets' has no attribute {name!r}")
