"""An index backend on any langgraph ``BaseStore`` with a vector index (e.g. a LangGraph server's Postgres).

Deployments that already run a LangGraph server have a store with semantic search (``PostgresStore``
with pgvector, configured by ``langgraph.json``'s ``store.index``). :class:`BaseStoreIndex` keeps
the adapter store's index there instead of in Chroma: each adapter is one item under
``(*prefix, *namespace)`` with key = the adapter id, and the item's ``"text"`` field is embedded by
the store's own embedding. The files stay in the adapter store's directory (or a shared volume).

    >>> from langgraph.store.memory import InMemoryStore
    >>> from agenthn_langgraph.store import BaseStoreIndex
    >>> from agenthn_langgraph.store.embeddings import MiniLMEmbeddingFunction
    >>> ef = MiniLMEmbeddingFunction()
    >>> backing = InMemoryStore(index={"dims": 384, "embed": ef.embed_documents})
    >>> BaseStoreIndex(backing).embedding_name
    'langgraph-store/InMemoryStore/384'

Namespaces stay exact: every search filters on the adapter's own namespace field, so a prefix
search of the backing store never returns a sub-namespace's adapters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langgraph.store.base import BaseStore, PutOp, SearchItem

from ..errors import InvalidArgumentError, StoreMismatchError
from .index import AdapterIndex, Entry, Key, entry_metadata, is_entry, record_from_metadata
from .records import AdapterRecord, Namespace, namespace_key, normalize_namespace

DEFAULT_PREFIX = ("agenthn_index",)
_IDENTITY_KEY = "agenthn_identity"
_IDENTITY_FORMAT = "agenthn-basestore-index"
_PAGE = 1000


def _label(part: str) -> str:
    # langgraph refuses "." in namespace labels (the Postgres store joins labels with "."); our
    # parts may hold "." but never "%", so this escape cannot collide
    return part.replace(".", "%2E")


class BaseStoreIndex(AdapterIndex):
    """Adapter entries kept as items of a langgraph ``BaseStore`` that has a vector index.

    Args:
        store: the backing store, e.g. ``PostgresStore(conn, index={"dims": ..., "embed": ...})``
            or, inside a LangGraph server's graph, ``langgraph.config.get_store()``.
        prefix: the namespace prefix the entries live under (kept apart from the store's other items).
        embedding_name: how ``store.json`` names the store's embedding; default from its index
            config (``embed`` when it is a string such as ``"openai:text-embedding-3-small"``, else
            the store's class and dimensions). A different name on reopening is refused.
    """

    def __init__(
        self, store: BaseStore, *, prefix: Sequence[str] = DEFAULT_PREFIX, embedding_name: str | None = None
    ) -> None:
        if not isinstance(store, BaseStore):
            raise TypeError(f"store must be a langgraph BaseStore, got {type(store).__name__}")
        index_config = getattr(store, "index_config", None)
        if not index_config:
            raise InvalidArgumentError(
                f"{type(store).__name__} has no vector index: create it with index={{'dims': ..., 'embed': ...}} "
                "(or langgraph.json's store.index), since adapters are found by meaning"
            )
        self.prefix = tuple(_label(p) for p in normalize_namespace(tuple(prefix)))
        self.store = store
        if embedding_name is None:
            embed = index_config.get("embed")
            detail = embed if isinstance(embed, str) else f"{type(store).__name__}/{index_config.get('dims')}"
            embedding_name = f"langgraph-store/{detail}"
        if not isinstance(embedding_name, str) or not embedding_name:
            raise TypeError("embedding_name must be a non-empty str")
        self.embedding_name = embedding_name

    def __repr__(self) -> str:
        return f"BaseStoreIndex({type(self.store).__name__}, prefix={self.prefix}, embedding={self.embedding_name!r})"

    def _ns(self, ns: Namespace) -> tuple[str, ...]:
        return (*self.prefix, *(_label(p) for p in ns))

    # ------------------------------------------------------------------ opening
    def bind(self, base_fingerprint: str) -> None:
        wanted = {"format": _IDENTITY_FORMAT, "base_fingerprint": base_fingerprint, "embedding": self.embedding_name}
        found = self.store.get(self.prefix, _IDENTITY_KEY)
        if found is None:
            self.store.put(self.prefix, _IDENTITY_KEY, wanted, index=False)
            return
        value = found.value
        if value.get("format") != _IDENTITY_FORMAT:
            raise StoreMismatchError(f"{self.prefix} of {type(self.store).__name__} is not an adapter index")
        if value.get("base_fingerprint") != base_fingerprint:
            raise StoreMismatchError(
                f"the index under {self.prefix} holds adapters for base model "
                f"{str(value.get('base_fingerprint'))[:16]}..., not {base_fingerprint[:16]}..."
            )
        if value.get("embedding") != self.embedding_name:
            raise StoreMismatchError(
                f"the index under {self.prefix} was built with embedding {value.get('embedding')!r}, "
                f"not {self.embedding_name!r}"
            )

    # ------------------------------------------------------------------ writing
    def upsert(self, entries: Sequence[Entry], prepared: Any = None) -> None:
        ops = [
            PutOp(self._ns(rec.namespace), rec.id, {**entry_metadata(rec, version), "text": rec.text}, index=["text"])
            for rec, version in entries
        ]
        if ops:
            self.store.batch(ops)

    def forget(self, keys: Sequence[Key]) -> None:
        if keys:
            self.store.batch([PutOp(self._ns(ns), adapter_id, None) for ns, adapter_id in keys])

    # ------------------------------------------------------------------ reading
    def _records(self, items: Sequence[SearchItem], ns: Namespace | None) -> list[AdapterRecord]:
        key = None if ns is None else namespace_key(ns)
        return [
            record_from_metadata(item.value, str(item.value.get("text", "")), item.score)
            for item in items
            if is_entry(item.value) and (key is None or item.value.get("namespace") == key)
        ]

    def _filter(self, ns: Namespace, kind: str | None, name: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"namespace": namespace_key(ns)}
        if kind is not None:
            out["kind"] = kind
        if name is not None:
            out["name"] = name
        return out

    def _all(self, prefix: tuple[str, ...], filter: dict[str, Any] | None) -> list[SearchItem]:
        items: list[SearchItem] = []
        while True:
            page = self.store.search(prefix, filter=filter, limit=_PAGE, offset=len(items))
            items.extend(page)
            if len(page) < _PAGE:
                return items

    def search(
        self, ns: Namespace, query: str, *, k: int, kinds: list[str] | None, name: str | None
    ) -> list[AdapterRecord]:
        found: list[AdapterRecord] = []
        for kind in kinds if kinds is not None else [None]:  # filters are equalities: one search per kind
            items = self.store.search(self._ns(ns), query=query, filter=self._filter(ns, kind, name), limit=k)
            found.extend(self._records(items, ns))
        found.sort(key=lambda r: -(r.score if r.score is not None else float("-inf")))
        return found[:k]

    def list(self, ns: Namespace, *, kinds: list[str] | None, name: str | None) -> list[AdapterRecord]:
        found: list[AdapterRecord] = []
        for kind in kinds if kinds is not None else [None]:
            found.extend(self._records(self._all(self._ns(ns), self._filter(ns, kind, name)), ns))
        return found

    def ids(self, ns: Namespace) -> list[str]:
        return [r.id for r in self.list(ns, kinds=None, name=None)]

    def contains(self, ns: Namespace, adapter_id: str) -> bool:
        item = self.store.get(self._ns(ns), adapter_id)
        return item is not None and item.value.get("namespace") == namespace_key(ns)

    def held_elsewhere(self, ns: Namespace, adapter_id: str) -> bool:
        items = self.store.search(
            self.prefix, filter={"adapter_id": adapter_id, "namespace": {"$ne": namespace_key(ns)}}, limit=1
        )
        return any(is_entry(i.value) for i in items)

    def versions(self) -> dict[Key, str]:
        return {(r.namespace, r.id): str(i.value.get("version")) for i, r in self._entries()}

    def _entries(self) -> list[tuple[SearchItem, AdapterRecord]]:
        items = [i for i in self._all(self.prefix, None) if is_entry(i.value)]
        return [(i, record_from_metadata(i.value, None, None)) for i in items]

    def count(self, ns: Namespace | None = None) -> int:
        if ns is None:
            return len(self._entries())
        return len(self._all(self._ns(ns), {"namespace": namespace_key(ns)}))
