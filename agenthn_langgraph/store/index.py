"""The adapter store's index: what finds an adapter by meaning, behind one small interface.

The files (:mod:`.files`) are the truth; an index holds one entry per adapter -- its source text,
an embedding of it, and flat metadata (namespace, id, kind, name, turn range, version, ...) -- and
answers "which adapters of this namespace are closest to this query". Every call is scoped to one
exact namespace. Two backends ship:

- :class:`~agenthn_langgraph.store.chroma_index.ChromaIndex`: Chroma, embedded in the store's
  directory (the default) or a ``chroma run`` server (``chromadb.HttpClient``);
- :class:`~agenthn_langgraph.store.langgraph_index.BaseStoreIndex`: any langgraph ``BaseStore``
  with a vector index, e.g. the Postgres store of a LangGraph server, for deployments that run one.

A backend is given to ``AdapterStore(path, index=...)``; the store calls :meth:`AdapterIndex.bind`
once, then the rest under its own lock for writes.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from .records import AdapterRecord, Namespace, PurgeReport, namespace_key

Key = tuple[Namespace, str]
"""An index entry's identity: (namespace, adapter id)."""
Entry = tuple[AdapterRecord, str]
"""What is indexed: an adapter's record and the name of its current version dir."""
Metadata = dict[str, str | int | float | bool]


class AdapterIndex(ABC):
    """What :class:`~agenthn_langgraph.store.AdapterStore` needs from an index backend."""

    embedding_name: str
    """Names the embedding, recorded in the store's ``store.json``: a store indexed with one
    embedding is never searched with another."""

    @abstractmethod
    def bind(self, base_fingerprint: str) -> None:
        """Open (or create) the index for adapters of this base; refuse one built for another
        base or embedding (:class:`~agenthn_langgraph.errors.StoreMismatchError`)."""

    def prepare(self, texts: Sequence[str]) -> Any:
        """Work on the texts that needs no lock (embedding them), done before :meth:`upsert`; default none."""
        return None

    @abstractmethod
    def upsert(self, entries: Sequence[Entry], prepared: Any = None) -> None:
        """Write (or replace) ``entries``; ``prepared`` is what :meth:`prepare` returned for their texts."""

    @abstractmethod
    def search(
        self, ns: Namespace, query: str, *, k: int, kinds: list[str] | None, name: str | None
    ) -> list[AdapterRecord]:
        """Up to ``k`` records of exactly ``ns`` nearest to ``query``, with ``score`` (higher is better)."""

    @abstractmethod
    def list(self, ns: Namespace, *, kinds: list[str] | None, name: str | None) -> list[AdapterRecord]:
        """Every record of exactly ``ns`` (``score`` None), in any order."""

    @abstractmethod
    def ids(self, ns: Namespace) -> list[str]:
        """The adapter ids indexed in exactly ``ns``."""

    @abstractmethod
    def contains(self, ns: Namespace, adapter_id: str) -> bool: ...

    @abstractmethod
    def held_elsewhere(self, ns: Namespace, adapter_id: str) -> bool:
        """Whether some other namespace indexes this id (to say "not yours", never whose)."""

    @abstractmethod
    def versions(self) -> dict[Key, str]:
        """Every entry of the index: its key and the version it points to (for reconcile)."""

    @abstractmethod
    def forget(self, keys: Sequence[Key]) -> None:
        """Delete these entries (missing ones are ignored), leaving as little of them as the backend allows."""

    @abstractmethod
    def count(self, ns: Namespace | None = None) -> int: ...

    def purge(self) -> PurgeReport:
        """Make the backend drop what deletes left in its own files; default: nothing to do."""
        return PurgeReport(log_entries_left=None, fts_optimized=False, vacuumed=False, seconds=0.0)

    def purge_interrupted(self) -> bool:
        """Whether a purge was cut short by a crash (reconcile then purges again)."""
        return False

    def close(self) -> None:  # noqa: B027 - optional for backends
        """Release what the backend holds open."""


# ---------------------------------------------------------------------------------------- metadata
def entry_metadata(rec: AdapterRecord, version: str) -> Metadata:
    """The flat metadata of an entry (no None values: Chroma refuses them, so missing fields are omitted)."""
    meta: Metadata = {
        "namespace": namespace_key(rec.namespace),
        "adapter_id": rec.id,
        "kind": rec.kind,
        "created_at": rec.created_at,
        "preview": rec.preview,
        "version": version,
    }
    if rec.name is not None:
        meta["name"] = rec.name
    if rec.turn_start is not None and rec.turn_end is not None:
        meta["turn_start"], meta["turn_end"] = rec.turn_start, rec.turn_end
    if rec.extra:
        meta["extra_json"] = json.dumps(rec.extra, sort_keys=True)
    return meta


def record_from_metadata(meta: Mapping[str, Any], text: str | None, score: float | None) -> AdapterRecord:
    return AdapterRecord(
        id=str(meta["adapter_id"]),
        namespace=tuple(str(meta["namespace"]).split("/")),
        kind=str(meta["kind"]),
        text=text or "",
        preview=str(meta.get("preview", "")),
        created_at=str(meta.get("created_at", "")),
        name=meta.get("name"),
        turn_start=meta.get("turn_start"),
        turn_end=meta.get("turn_end"),
        score=score,
        extra=json.loads(meta["extra_json"]) if meta.get("extra_json") else {},
    )


def is_entry(meta: Mapping[str, Any] | None) -> bool:
    """Whether metadata is an adapter entry's (not a backend's own bookkeeping)."""
    return bool(meta) and "namespace" in meta and "adapter_id" in meta  # type: ignore[operator]
