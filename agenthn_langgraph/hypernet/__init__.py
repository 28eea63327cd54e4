"""The hypernetwork (text -> LoRA in one forward pass) and its meta-training loop."""

from .model import HypernetConfig, Hypernetwork, TokenPieces

__all__ = ["HypernetConfig", "Hypernetwork", "TokenPieces"]
