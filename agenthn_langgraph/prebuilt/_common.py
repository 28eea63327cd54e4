"""What the prebuilt graphs share: the run context, turning a path into a store, and compiling.

The factories follow langgraph's own ``create_react_agent``: ``state_schema`` / ``context_schema``
go to ``StateGraph(...)``; ``checkpointer``, ``store`` (langgraph's ``BaseStore``),
``interrupt_before`` / ``interrupt_after``, ``debug`` and ``name`` go to ``compile(...)``. Our
:class:`~agenthn_langgraph.store.AdapterStore` is ``adapter_store``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import All, Checkpointer

from ..chat_model import LocalHypernetChatModel
from ..errors import ArgumentTypeError, InvalidArgumentError, StoreArgumentError

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


def resolve_store(model: LocalHypernetChatModel, adapter_store: Any) -> Any:
    """An AdapterStore as given, or one opened at a path (default ``$AGENTHN_STORE_DIR`` or ``./.agenthn/store``)."""
    from ..store import AdapterStore

    if isinstance(adapter_store, AdapterStore):
        return adapter_store
    if adapter_store is None or isinstance(adapter_store, (str, os.PathLike)):
        return AdapterStore.for_model(model.engine, adapter_store or default_store_dir())
    raise TypeError(f"adapter_store must be an AdapterStore or a directory path, got {type(adapter_store).__name__}")


def check_langgraph_store(store: Any, adapter_store: Any = None) -> BaseStore | None:
    """``store`` as langgraph's ``compile(store=...)`` takes it: a ``BaseStore`` or ``None``.

    An AdapterStore is a langgraph ``BaseStore`` too, and may be both: ``adapter_store=s, store=s``
    makes the adapters visible to langgraph (``get_store()``, a server's store API). Given as
    ``store=`` alone, or a directory path there (the factories' old ``store=`` meaning), it is
    refused (:class:`StoreArgumentError`, a ``TypeError``) rather than read as something else.
    """
    if store is None:
        return None
    from ..store import AdapterStore

    if isinstance(store, AdapterStore) and store is not adapter_store:
        raise StoreArgumentError(
            "store= is langgraph's own BaseStore (passed to compile); pass the AdapterStore as "
            "adapter_store= (and as store= too, the same object, to make langgraph see it)"
        )
    if isinstance(store, (str, os.PathLike)):
        raise StoreArgumentError(
            "store= is langgraph's own BaseStore (passed to compile); pass the directory of the "
            "adapter store as adapter_store= instead"
        )
    if not isinstance(store, BaseStore):
        raise StoreArgumentError(f"store must be a langgraph BaseStore or None, got {type(store).__name__}")
    return store


def check_state_schema(state_schema: type | None, default: type) -> type:
    """``state_schema`` if it declares every key of ``default`` (best: subclass it), else ``default``.

    Like langgraph's ``create_react_agent``, a schema missing a key the nodes write is refused.
    """
    if state_schema is None:
        return default
    if not isinstance(state_schema, type):
        raise ArgumentTypeError(f"state_schema must be a class, got {type(state_schema).__name__}")
    missing = _schema_keys(default) - _schema_keys(state_schema)
    if missing:
        raise InvalidArgumentError(
            f"state_schema {state_schema.__name__} is missing key(s) {sorted(missing)}; subclass {default.__name__}"
        )
    return state_schema


def _schema_keys(schema: type) -> set[str]:
    try:
        return set(get_type_hints(schema))
    except (NameError, TypeError):  # a forward reference that does not resolve here: read the names only
        return {k for cls in schema.__mro__ for k in getattr(cls, "__annotations__", {})}


def compile_graph(
    graph: StateGraph,
    *,
    checkpointer: Checkpointer,
    store: BaseStore | None,
    interrupt_before: All | list[str] | None,
    interrupt_after: All | list[str] | None,
    debug: bool,
    name: str | None,
) -> CompiledStateGraph:
    """``graph.compile`` with langgraph's own options, as the factories receive them."""
    return graph.compile(
        checkpointer=checkpointer,
        store=store,
        interrupt_before=interrupt_before,
        interrupt_after=interrupt_after,
        debug=debug,
        name=name,
    )
