"""Where models come from: the registry of named models (``load_default("tiny")``, entry points, paths)."""

from .registry import ModelSpec, available_models, get_model_spec, language_of, load_default, register_model

__all__ = ["ModelSpec", "available_models", "get_model_spec", "language_of", "load_default", "register_model"]
