"""Typed errors. Each subclasses the built-in a caller would naturally catch (ValueError, ...)."""

from __future__ import annotations


class AgenthnError(Exception):
    """Base class of every error this package raises on purpose."""


class EmptyTextError(AgenthnError, ValueError):
    """A text to internalize is empty or only whitespace."""


class AdapterFormatError(AgenthnError, ValueError):
    """An adapter file is missing, truncated, corrupt, or not an agenthn adapter."""


class AdapterNormError(AdapterFormatError):
    """An adapter holds NaN/Inf or a delta of absurd size; it is refused, never applied."""


class AdapterMismatchError(AgenthnError, ValueError):
    """An adapter was made for another base model, or does not fit its target modules."""


class CheckpointError(AgenthnError, ValueError):
    """A model or hypernetwork checkpoint is missing, corrupt, or for another architecture."""


class TextTooLongError(AgenthnError, ValueError):
    """A text would need more chunks than the model's ``max_chunks``; split it or raise the limit."""


class AdapterNotFoundError(AgenthnError, LookupError):
    """No adapter (or skill) with that id exists in the store."""


class NamespaceError(AgenthnError, PermissionError):
    """An adapter was asked for from a namespace it does not belong to, or a namespace is malformed."""


class StoreMismatchError(AgenthnError, ValueError):
    """A store was opened with a different embedding model or base model than the one that built it."""


class EmptyConversationError(AgenthnError, ValueError):
    """A node or model got no messages where it needs at least one."""


class MessageTypeError(AgenthnError, TypeError):
    """A message of an unexpected type (not a LangChain message or a role/content mapping)."""


class PromptTooLongError(TextTooLongError):
    """A prompt is longer than the base model's context window; compact or trim the conversation."""
