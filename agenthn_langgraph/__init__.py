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
    "load_default": "agenthn_langgraph.models.registry",
    "register_model": "agenthn_langgraph.models.registry",
    "ModelSpec": "agenthn_langgraph.models.registry",
    "ChatFormat": "agenthn_langgraph.hypernet.config",
    "QAExample": "agenthn_langgraph.data.qa",
    "QAPair": "agenthn_langgraph.data.qa",
    "DatasetError": "agenthn_langgraph.errors",
    "OutOfVocabularyError": "agenthn_langgraph.errors",
    "ModelNotFoundError": "agenthn_langgraph.errors",
    "WeightMemoryModel": "agenthn_langgraph.engine",
    "LoraAdapter": "agenthn_langgraph.lora.adapter",
    "AdapterMetadata": "agenthn_langgraph.lora.adapter",
    "LoraInjector": "agenthn_langgraph.lora.inject",
    "export_peft": "agenthn_langgraph.lora.peft_export",
    "Hypernetwork": "agenthn_langgraph.hypernet.model",
    "HypernetConfig": "agenthn_langgraph.hypernet.config",
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
    "PromptTooLongError": "agenthn_langgraph.errors",
    "ArgumentTypeError": "agenthn_langgraph.errors",
    "ChatModelConfigError": "agenthn_langgraph.errors",
    "EngineClosedError": "agenthn_langgraph.errors",
    "InvalidArgumentError": "agenthn_langgraph.errors",
    "MessageFormatError": "agenthn_langgraph.errors",
    "StorePathError": "agenthn_langgraph.errors",
    "StoreArgumentError": "agenthn_langgraph.errors",
    "PurgeIncompleteError": "agenthn_langgraph.errors",
    "LocalHypernetChatModel": "agenthn_langgraph.chat_model",
    "AdapterStore": "agenthn_langgraph.store",
    "AdapterRecord": "agenthn_langgraph.store",
    "CompactNode": "agenthn_langgraph.nodes",
    "MemoryRecallNode": "agenthn_langgraph.nodes",
    "ProfileUpdateNode": "agenthn_langgraph.nodes",
    "SkillRecallNode": "agenthn_langgraph.nodes",
    "SkillLibrary": "agenthn_langgraph.nodes",
    "ReflectNode": "agenthn_langgraph.nodes",
    "CallModelNode": "agenthn_langgraph.nodes",
    "WeightMemoryState": "agenthn_langgraph.nodes",
    "create_memory_agent": "agenthn_langgraph.prebuilt",
    "create_personalized_agent": "agenthn_langgraph.prebuilt",
    "create_skill_agent": "agenthn_langgraph.prebuilt",
    "create_self_improvement_graph": "agenthn_langgraph.prebuilt",
    "WeightMemoryMiddleware": "agenthn_langgraph.prebuilt",
    "AgentContext": "agenthn_langgraph.prebuilt",
}

__all__ = [
    "ChatFormat",
    "DatasetError",
    "ModelNotFoundError",
    "ModelSpec",
    "OutOfVocabularyError",
    "QAExample",
    "QAPair",
    "register_model",
    "AdapterFormatError",
    "AdapterMetadata",
    "AdapterMismatchError",
    "AdapterNormError",
    "AdapterNotFoundError",
    "AdapterRecord",
    "AdapterStore",
    "AgentContext",
    "AgenthnError",
    "ArgumentTypeError",
    "CallModelNode",
    "ChatModelConfigError",
    "CheckpointError",
    "CompactNode",
    "EmptyConversationError",
    "EmptyTextError",
    "EngineClosedError",
    "HypernetConfig",
    "InvalidArgumentError",
    "Hypernetwork",
    "LocalHypernetChatModel",
    "LoraAdapter",
    "LoraInjector",
    "MemoryRecallNode",
    "MessageFormatError",
    "MessageTypeError",
    "NamespaceError",
    "ProfileUpdateNode",
    "PromptTooLongError",
    "PurgeIncompleteError",
    "ReflectNode",
    "SkillLibrary",
    "SkillRecallNode",
    "StoreArgumentError",
    "StoreMismatchError",
    "StorePathError",
    "TextTooLongError",
    "WeightMemoryMiddleware",
    "WeightMemoryModel",
    "WeightMemoryState",
    "create_memory_agent",
    "create_personalized_agent",
    "create_self_improvement_graph",
    "create_skill_agent",
    "export_peft",
    "load_default",
]

if TYPE_CHECKING:
    from .chat_model import LocalHypernetChatModel
    from .data.qa import QAExample, QAPair
    from .engine import WeightMemoryModel
    from .errors import (
        AdapterFormatError,
        AdapterMismatchError,
        AdapterNormError,
        AdapterNotFoundError,
        AgenthnError,
        ArgumentTypeError,
        ChatModelConfigError,
        CheckpointError,
        DatasetError,
        EmptyConversationError,
        EmptyTextError,
        EngineClosedError,
        InvalidArgumentError,
        MessageFormatError,
        MessageTypeError,
        ModelNotFoundError,
        NamespaceError,
        OutOfVocabularyError,
        PromptTooLongError,
        PurgeIncompleteError,
        StoreArgumentError,
        StoreMismatchError,
        StorePathError,
        TextTooLongError,
    )
    from .hypernet.config import ChatFormat, HypernetConfig
    from .hypernet.model import Hypernetwork
    from .lora.adapter import AdapterMetadata, LoraAdapter
    from .lora.inject import LoraInjector
    from .lora.peft_export import export_peft
    from .models.registry import ModelSpec, load_default, register_model
    from .nodes import (
        CallModelNode,
        CompactNode,
        MemoryRecallNode,
        ProfileUpdateNode,
        ReflectNode,
        SkillLibrary,
        SkillRecallNode,
        WeightMemoryState,
    )
    from .prebuilt import (
        AgentContext,
        WeightMemoryMiddleware,
        create_memory_agent,
        create_personalized_agent,
        create_self_improvement_graph,
        create_skill_agent,
    )
    from .store import AdapterRecord, AdapterStore


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'agenthn_langgraph' has no attribute {name!r}")
