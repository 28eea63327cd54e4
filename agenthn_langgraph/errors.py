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


class NoHypernetworkError(CheckpointError):
    """The model runs without a hypernetwork (it chats as its plain base), so it cannot internalize
    text; the message says how to get one."""


class UntrustedCheckpointError(CheckpointError):
    """A pickled checkpoint was not unpickled because the caller did not say it trusts it
    (``--trust-pickle`` / ``trust_pickle=True``): loading a pickle can run arbitrary code."""


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


class DatasetError(AgenthnError, ValueError):
    """A QA dataset file or example is malformed (the message names the file and line)."""


class OutOfVocabularyError(AgenthnError, ValueError):
    """Most of a text is unknown to the model's tokenizer (a closed-vocabulary model, such as the
    tiny default, cannot read it); use a real model for open text."""


class ModelNotFoundError(CheckpointError, FileNotFoundError):
    """A base model or hypernetwork path does not exist (nothing is downloaded in its place)."""


class InvalidArgumentError(AgenthnError, ValueError):
    """An argument or option has a value outside what it accepts (``max_tokens <= 0``, a negative or
    NaN ``temperature``, ``top_p`` outside [0, 1], a search ``k`` out of range, ...)."""


class ArgumentTypeError(AgenthnError, TypeError):
    """An argument or option has the wrong type (``max_tokens="7"``, ``seed="x"``, ``stop=[5]``, ...).

    Nothing is coerced: a string where a number belongs is refused, not parsed."""


class ChatModelConfigError(InvalidArgumentError):
    """A :class:`~agenthn_langgraph.LocalHypernetChatModel` field failed validation at construction.

    Wraps pydantic's ``ValidationError`` (kept as ``__cause__``); like it, this is a ``ValueError``."""


class EngineClosedError(AgenthnError, RuntimeError):
    """A :class:`~agenthn_langgraph.WeightMemoryModel` was used after :meth:`close`."""


class StorePathError(AgenthnError, NotADirectoryError):
    """An adapter store path exists but is not a directory (a file, say)."""


class MessageFormatError(AgenthnError, ValueError):
    """A message of a known type but malformed: an unknown role, a dict without ``content``, ..."""


class PurgeIncompleteError(AgenthnError, RuntimeError):
    """A deletion went through (the store's API, index and files no longer hold the data), but the
    vector database's own log still holds some of it; the message says what is left and what to do."""


class StoreArgumentError(ArgumentTypeError):
    """A factory's ``store=`` got an :class:`~agenthn_langgraph.store.AdapterStore` or a directory path.

    ``store`` is langgraph's own ``BaseStore`` (passed through to ``compile``, as in langgraph's
    ``create_react_agent``); the adapter store is ``adapter_store=``."""


class ServingError(AgenthnError, RuntimeError):
    """A model server (vLLM) failed a request; the message carries the server's own words."""


class ServerUnavailableError(ServingError, ConnectionError):
    """The model server could not be reached (refused, timed out, reset)."""


class AdapterRejectedError(ServingError, ValueError):
    """The server refused an adapter (rank above its ``max_lora_rank``, weights it does not adapt, a
    malformed ``adapter_config.json``), or the client refused it before asking (its rank)."""
