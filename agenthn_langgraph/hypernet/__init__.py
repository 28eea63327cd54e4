"""The hypernetwork (text -> LoRA in one forward pass) and its meta-training loop."""

from .config import ChatFormat, HypernetConfig
from .model import Hypernetwork, TokenPieces

__all__ = ["ChatFormat", "HypernetConfig", "Hypernetwork", "TokenPieces"]
