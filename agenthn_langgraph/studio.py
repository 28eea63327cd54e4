"""Serving the prebuilt graphs with ``langgraph dev`` / a LangGraph server, fast to start.

A server imports every graph module of ``langgraph.json`` at startup and warns when one takes
over 3 s; loading a model there would also load it for graphs nobody runs. So ``graphs/*.py``
export *graph factories* (:func:`graph_factory`): importing one imports nothing heavy (this module
needs neither torch nor the model), and the graph -- model, adapter store and all -- is built on
the first run or schema request, once per process. ``langgraph.json``'s ``store.path`` points at
:func:`default_adapter_store`, the same :class:`~agenthn_langgraph.store.AdapterStore` object the
graphs use, so the server's store API (``/store/items``, ``/store/items/search``,
``/store/namespaces``) lists and writes the graphs' adapters.

    >>> make_graph = graph_factory("memory_agent", max_turns=4)
    >>> callable(make_graph)
    True
    >>> graph_factory("no_such_agent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    agenthn_langgraph.errors.InvalidArgumentError: unknown graph 'no_such_agent'; one of [...]
"""

from __future__ import annotations

import asyncio
import importlib
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.graph.state import CompiledStateGraph

    from .store import AdapterStore

FACTORIES = {
    "memory_agent": "create_memory_agent",
    "personalized_agent": "create_personalized_agent",
    "self_improvement": "create_self_improvement_graph",
    "skill_agent": "create_skill_agent",
}

_LOCK = threading.Lock()
_STORES: dict[tuple[str, str], AdapterStore] = {}  # at most one per model and directory: bounded by config


def served_model() -> str:
    """The model the served graphs run: ``$AGENTHN_MODEL`` (``tiny``, ``smollm2``, a directory), default ``tiny``.

    ``AGENTHN_MODEL=smollm2 langgraph dev`` serves every prebuilt graph on SmolLM2.
    """
    return os.environ.get("AGENTHN_MODEL", "").strip() or "tiny"


def default_adapter_store(model: str | None = None) -> AdapterStore:
    """The process's adapter store for ``model`` (default :func:`served_model`) at ``$AGENTHN_STORE_DIR``
    (default ``./.agenthn/store``).

    One object per model and directory, opened on first call: what ``langgraph.json``'s
    ``"store": {"path": "./graphs/store.py:store"}`` serves and what :func:`graph_factory` graphs use.
    """
    from .chat_model import LocalHypernetChatModel
    from .prebuilt._common import default_store_dir

    model = model or served_model()
    path = str(default_store_dir().expanduser().resolve())
    with _LOCK:
        store = _STORES.get((model, path))
        if store is None:
            from .store import AdapterStore

            store = AdapterStore.for_model(LocalHypernetChatModel(model=model).engine, path)
            _STORES[(model, path)] = store
        return store


def graph_factory(
    name: str, /, *, model: str | None = None, **options: Any
) -> Callable[[RunnableConfig], Awaitable[CompiledStateGraph]]:
    """An async graph factory for a LangGraph server: ``create_<name>(...)`` built on its first call, then reused.

    ``model``: default :func:`served_model`, read when the graph is first built.
    ``options`` go to the factory (e.g. ``max_turns=4``); the graph gets
    :func:`default_adapter_store` as both ``adapter_store`` and langgraph's ``store``.
    """
    if name not in FACTORIES:
        raise InvalidArgumentError(f"unknown graph {name!r}; one of {sorted(FACTORIES)}")
    built: list[CompiledStateGraph] = []
    lock = threading.Lock()

    def build() -> CompiledStateGraph:
        with lock:
            if not built:
                from .chat_model import LocalHypernetChatModel

                create = getattr(importlib.import_module("agenthn_langgraph.prebuilt"), FACTORIES[name])
                chosen = model or served_model()
                store = default_adapter_store(chosen)
                llm = LocalHypernetChatModel(model=chosen)
                built.append(create(llm, adapter_store=store, store=store, name=name, **options))
            return built[0]

    async def make_graph(config: RunnableConfig) -> CompiledStateGraph:
        # the server calls factories on its event loop, where loading a model would block it
        return built[0] if built else await asyncio.to_thread(build)

    make_graph.__name__ = f"make_{name}"
    return make_graph


async def adapter_store_for_server() -> AdapterStore:
    """:func:`default_adapter_store`, opened off the server's event loop (``langgraph.json``'s ``store.path``)."""
    return await asyncio.to_thread(default_adapter_store)
