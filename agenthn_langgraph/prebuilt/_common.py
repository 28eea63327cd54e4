"""What the prebuilt graphs share: the run context, and turning a path into a store."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..chat_model import LocalHypernetChatModel

DEFAULT_STORE_DIR_ENV = "AGENTHN_STORE_DIR"


@dataclass
class AgentContext:
    """Run-scoped context for the prebuilt graphs (``graph.invoke(..., context=AgentContext(...))``).

    ``user_id`` picks the user's namespace for profiles; segments default to the thread.
    """

    user_id: str | None = None


def default_store_dir() -> Path:
    return Path(os.environ.get(DEFAULT_STORE_DIR_ENV, Path.cwd() / ".agenthn" / "store"))


def resolve_model(model: LocalHypernetChatModel | None) -> LocalHypernetChatModel:
    if model is None:
        return LocalHypernetChatModel()
    if not isinstance(model, LocalHypernetChatModel):
        raise TypeError(
            f"weight memory needs a LocalHypernetChatModel (it owns the hypernetwork), got {type(model).__name__}"
        )
    return model


def resolve_store(model: LocalHypernetChatModel, store: Any) -> Any:
    """An AdapterStore as given, or one opened at a path (default ``$AGENTHN_STORE_DIR`` or ``./.agenthn/store``)."""
    from ..store import AdapterStore

    if isinstance(store, AdapterStore):
        return store
    if store is None or isinstance(store, (str, os.PathLike)):
        return AdapterStore.for_model(model.engine, store or default_store_dir())
    raise TypeError(f"store must be an AdapterStore or a directory path, got {type(store).__name__}")
