"""agenthn-langgraph: weight-based memory for LangGraph agents.

A hypernetwork turns text into a LoRA adapter in one forward pass; the model then answers from its
weights with the text gone from the prompt.

Example:
    >>> from agenthn_langgraph import load_default
    >>> model = load_default()
    >>> memory = model.internalize("<user> my pet is a frog . <assistant> nice ! <end>")
    >>> model.generate("what pet do i have ?", adapters=[memory])
    'frog'

Heavy imports (torch, transformers) happen on first use of a name, not at ``import``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "load_default": "agenthn_langgraph.tiny_default",
    "WeightMemoryModel": "agenthn_langgraph.engine",
    "LoraAdapter": "agenthn_langgraph.lora.adapter",
    "AdapterMetadata": "agenthn_langgraph.lora.adapter",
    "LoraInjector": "agenthn_langgraph.lora.inject",
    "export_peft": "agenthn_langgraph.lora.peft_export",
    "Hypernetwork": "agenthn_langgraph.hypernet.model",
    "HypernetConfig": "agenthn_langgraph.hypernet.model",
    "AgenthnError": "agenthn_langgraph.errors",
    "AdapterFormatError": "agenthn_langgraph.errors",
    "AdapterNormError": "agenthn_langgraph.errors",
    "AdapterMismatchError": "agenthn_langgraph.errors",
    "CheckpointError": "agenthn_langgraph.errors",
    "EmptyTextError": "agenthn_langgraph.errors",
    "TextTooLongError": "agenthn_langgraph.errors",
    "AdapterNotFoundError": "agenthn_langgraph.errors",
    "NamespaceError": "agenthn_langgraph.errors",
    "StoreMismatchError": "agenthn_langgraph.errors",
    "EmptyConversationError": "agenthn_langgraph.errors",
    "MessageTypeError": "agenthn_langgraph.errors",
    "LocalHypernetChatModel": "agenthn_langgraph.chat_model",
}

__all__ = [
    "AdapterFormatError",
    "AdapterNotFoundError",
    "EmptyConversationError",
    "LocalHypernetChatModel",
    "MessageTypeError",
    "NamespaceError",
    "StoreMismatchError",
    "AdapterMetadata",
    "AdapterMismatchError",
    "AdapterNormError",
    "AgenthnError",
    "CheckpointError",
    "EmptyTextError",
    "HypernetConfig",
    "Hypernetwork",
    "LoraAdapter",
    "LoraInjector",
    "TextTooLongError",
    "WeightMemoryModel",
    "export_peft",
    "load_default",
]

if TYPE_CHECKING:
    from .chat_model import LocalHypernetChatModel
    from .engine import WeightMemoryModel
    from .errors import (
        AdapterFormatError,
        AdapterMismatchError,
        AdapterNormError,
        AdapterNotFoundError,
        AgenthnError,
        CheckpointError,
        EmptyConversationError,
        EmptyTextError,
        MessageTypeError,
        NamespaceError,
        StoreMismatchError,
        TextTooLongError,
    )
    from .hypernet.model import HypernetConfig, Hypernetwork
    from .lora.adapter import AdapterMetadata, LoraAdapter
    from .lora.inject import LoraInjector
    from .lora.peft_export import export_peft
    from .tiny_default import load_default


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'agenthn_langgraph' has no attribute {name!r}")
