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
