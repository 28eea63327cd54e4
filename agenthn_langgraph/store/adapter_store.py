"""``AdapterStore``: LoRA adapters on disk, found by meaning through an index, per namespace.

Each adapter is stored as files (the truth, :mod:`.files`) and as one index entry (the source
text, its embedding and a few metadata fields, :mod:`.index`). The index is Chroma embedded in the
store's directory by default (:mod:`.chroma_index`), a ``chroma run`` server, or any langgraph
``BaseStore`` with a vector index (:mod:`.langgraph_index`). Every read and search is scoped to one
exact namespace, e.g. ``("users", "alice")``, so one user's memories never reach another user.

Crash safety: files are durable before the index entry is written; deletion marks the directory,
removes the index entry, then the files. :meth:`AdapterStore.reconcile` (run on every open,
:mod:`.reconcile`) finishes or undoes whatever a crash interrupted, and moves anything unreadable
to ``quarantine/`` instead of deleting it. A delete (by default) also makes the index drop what
it kept of the deleted entries in its own files (:meth:`AdapterStore.purge`).

Example:
    >>> import tempfile
    >>> from agenthn_langgraph import load_default
    >>> from agenthn_langgraph.store import AdapterStore
    >>> model = load_default()
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = AdapterStore.for_model(model, tmp.name)
    >>> text = "<user> my pet is a frog . <assistant> nice ! <end>"
    >>> rec = store.put(model.internalize(text, kind="segment"), namespace=("users", "alice"), text=text)
    >>> [r.id for r in store.search("which animal do i own?", namespace=("users", "alice"))] == [rec.id]
    True
    >>> store.search("which animal do i own?", namespace=("users", "bob"))
    []
    >>> model.generate("what pet do i have ?", adapters=[store.get(rec.id, namespace=("users", "alice"))]).split()[0]
    'frog'
    >>> tmp.cleanup()
"""

from __future__ import annotations

import asyncio
import builtins
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from langgraph.store.base import BaseStore

from ..errors import (
    AdapterFormatError,
    AdapterMismatchError,
    AdapterNotFoundError,
    EmptyTextError,
    InvalidArgumentError,
    NamespaceError,
    PurgeIncompleteError,
    StorePathError,
)
from ..lora.adapter import CONFIG_FILE, LoraAdapter
from .cache import DEFAULT_CACHE_BYTES, DEFAULT_CACHE_SIZE, AdapterCache
from .chroma_index import DEFAULT_COLLECTION, ChromaIndex
from .files import AdapterFiles, file_signature, read_record, versions
from .index import AdapterIndex
from .langgraph_index import BaseStoreIndex
from .langgraph_store import LangGraphStoreMixin, also_langgraph
from .reconcile import reconcile as reconcile_store
from .records import (
    AdapterRecord,
    Namespace,
    NamespaceLike,
    PurgeReport,
    ReconcileReport,
    check_adapter_id,
    check_extra,
    check_int,
    check_kind,
    check_name,
    kind_filter,
    make_preview,
    normalize_namespace,
    now_iso,
)

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from chromadb.api.types import Documents, EmbeddingFunction


class AdapterStore(LangGraphStoreMixin):
    """Namespaced, searchable, crash-safe storage for :class:`~agenthn_langgraph.lora.LoraAdapter` s.

    Args:
        path: directory for the adapter files (and the embedded index when no other is given).
        base_fingerprint: the base model's fingerprint; adapters for any other base are refused.
        index: where adapters are found by meaning: an :class:`~agenthn_langgraph.store.AdapterIndex`,
            or any langgraph ``BaseStore`` with a vector index (wrapped in
            :class:`~agenthn_langgraph.store.BaseStoreIndex`, e.g. a LangGraph server's Postgres
            store). Default: Chroma embedded at ``path/chroma``.
        embedding_function: for the Chroma index, a registered Chroma embedding function; default
            :class:`~agenthn_langgraph.store.embeddings.MiniLMEmbeddingFunction` (offline).
        client: for the Chroma index, any chromadb client (e.g. ``chromadb.HttpClient`` for a
            ``chroma run`` server); the files still live under ``path``.
        collection: for the Chroma index, the collection name (3-512 characters).
        cache_size: how many loaded adapters :meth:`get` keeps in memory (LRU; 0 turns the cache off).
        cache_bytes: and at most this many bytes of tensors.

    Raises:
        StoreMismatchError: the store was built for another base model or embedding (checked
            against ``path/store.json`` and the index's own record; nothing is modified).

    Attributes:
        base_fingerprint: the base model this store's adapters belong to.
        embedding_name: the index's embedding name.
        index: the index backend.
        last_reconcile: the :class:`ReconcileReport` of the repair run when the store was opened.

    Thread-safe: writes are serialised by a lock per store directory; reads need no lock. A put
    that raises leaves no trace; one cut short by a crash is finished by :meth:`reconcile`.

    Adapters returned by :meth:`get` are shared with its cache: treat them as read-only (``compose``
    and ``to`` make new ones).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        base_fingerprint: str,
        index: AdapterIndex | BaseStore | None = None,
        embedding_function: EmbeddingFunction[Documents] | None = None,
        client: ClientAPI | None = None,
        collection: str = DEFAULT_COLLECTION,
        cache_size: int = DEFAULT_CACHE_SIZE,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"path must be a str or PathLike, got {type(path).__name__}")
        if not isinstance(base_fingerprint, str) or not base_fingerprint:
            raise TypeError("base_fingerprint must be a non-empty str (e.g. model.fingerprint)")
        for what, value in (("cache_size", cache_size), ("cache_bytes", cache_bytes)):
            if check_int(value, what) < 0:
                raise ValueError(f"{what} must be >= 0, got {value}")
        self.path = Path(path).expanduser().resolve()
        if self.path.exists() and not self.path.is_dir():
            raise StorePathError(f"store path {self.path} exists and is not a directory")
        if index is None:
            index = ChromaIndex(
                client, path=self.path / "chroma", collection=collection, embedding_function=embedding_function
            )
        elif client is not None or embedding_function is not None or collection != DEFAULT_COLLECTION:
            raise InvalidArgumentError(
                "client, embedding_function and collection configure the Chroma index: not with index="
            )
        elif isinstance(index, BaseStore) and not isinstance(index, AdapterIndex):
            if isinstance(index, AdapterStore):
                raise InvalidArgumentError("an AdapterStore cannot index another AdapterStore")
            index = BaseStoreIndex(index)
        elif not isinstance(index, AdapterIndex):
            raise TypeError(f"index must be an AdapterIndex or a langgraph BaseStore, got {type(index).__name__}")
        self.index: AdapterIndex = index
        self.base_fingerprint = base_fingerprint
        self.embedding_name: str = index.embedding_name
        self.files = AdapterFiles(self.path)
        self._lock = self.files.lock
        self._cache = AdapterCache(cache_size, cache_bytes)
        self.last_purge: PurgeReport | None = None

        # Check the files' own record of what built them before touching anything.
        self.files.check_identity(base_fingerprint, self.embedding_name)
        self.index.bind(base_fingerprint)
        with self._lock:
            self.files.create()
            self.files.write_identity(self._identity())
            self.last_reconcile: ReconcileReport = self.reconcile()

    @classmethod
    def for_model(cls, model: Any, path: str | os.PathLike[str], **kwargs: Any) -> AdapterStore:
        """A store for ``model``'s adapters (``base_fingerprint=model.fingerprint``).

        The model is kept as the store's ``internalizer``: a langgraph ``put`` of a value with only
        ``"text"`` is internalized by it (see :mod:`agenthn_langgraph.store.langgraph_store`).
        """
        store = cls(path, base_fingerprint=model.fingerprint, **kwargs)
        store.internalizer = model
        return store

    def __repr__(self) -> str:
        return f"AdapterStore(path={str(self.path)!r}, index={self.index!r}, base={self.base_fingerprint[:12]})"

    def _identity(self) -> dict[str, Any]:
        identity: dict[str, Any] = {"base_fingerprint": self.base_fingerprint, "embedding": self.embedding_name}
        if isinstance(self.index, ChromaIndex):
            identity["collection"] = self.index.collection_name
        return identity

    @property
    def collection_name(self) -> str:
        return self._chroma().collection_name

    @property
    def embedding_function(self) -> EmbeddingFunction[Documents]:
        return self._chroma().embedding_function

    @property
    def collection(self) -> Collection:
        """The underlying Chroma collection (read it freely; write through the store)."""
        return self._chroma().collection

    def _chroma(self) -> ChromaIndex:
        if not isinstance(self.index, ChromaIndex):
            raise AttributeError(f"this store's index is {self.index!r}, not Chroma")
        return self.index

    def _raise_missing(self, ns: Namespace, adapter_id: str) -> NoReturn:
        if self.index.held_elsewhere(ns, adapter_id):
            # Say only that it is not this namespace's: never which namespace holds it.
            raise NamespaceError(f"adapter {adapter_id!r} does not belong to namespace {ns}")
        raise AdapterNotFoundError(f"no adapter {adapter_id!r} in namespace {ns}")

    # ------------------------------------------------------------------ writing
    @also_langgraph(BaseStore.put)
    def put(
        self,
        adapter: LoraAdapter,
        *,
        namespace: NamespaceLike,
        text: str,
        kind: str | None = None,
        adapter_id: str | None = None,
        name: str | None = None,
        turn_range: tuple[int, int] | None = None,
        extra: Mapping[str, str | int | float | bool] | None = None,
    ) -> AdapterRecord:
        """Store ``adapter`` (made from ``text``) in ``namespace``; returns its record.

        ``kind`` defaults to the adapter's own; ``adapter_id`` to a new uuid4 hex. Ids are unique per
        namespace, and putting an existing ``(namespace, id)`` replaces it atomically (the old
        version stays readable until the new one is durable). ``turn_range`` is the inclusive
        ``(first, last)`` turn index of a conversation segment.

        Raises:
            AdapterMismatchError: the adapter was made for another base model.
            EmptyTextError: ``text`` is empty or whitespace.
            TypeError / ValueError / NamespaceError: malformed arguments.
        """
        if not isinstance(adapter, LoraAdapter):
            raise TypeError(f"adapter must be a LoraAdapter, got {type(adapter).__name__}")
        ns = normalize_namespace(namespace)
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text.strip():
            raise EmptyTextError("text is empty or only whitespace: an adapter needs its source text")
        kind = check_kind(adapter.metadata.kind if kind is None else kind)
        adapter_id = uuid.uuid4().hex if adapter_id is None else check_adapter_id(adapter_id)
        name = check_name(name)
        turn_start = turn_end = None
        if turn_range is not None:
            if not isinstance(turn_range, tuple | list) or len(turn_range) != 2:
                raise TypeError("turn_range must be a (first, last) pair of ints")
            turn_start = check_int(turn_range[0], "turn_range[0]")
            turn_end = check_int(turn_range[1], "turn_range[1]")
            if not 0 <= turn_start <= turn_end:
                raise ValueError(f"turn_range must satisfy 0 <= first <= last, got {tuple(turn_range)}")
        extra_clean = check_extra(extra)
        if adapter.metadata.base_fingerprint != self.base_fingerprint:
            raise AdapterMismatchError(
                f"adapter was made for base model {adapter.metadata.base_fingerprint[:16]}..., "
                f"this store holds adapters for {self.base_fingerprint[:16]}..."
            )
        record = AdapterRecord(
            id=adapter_id,
            namespace=ns,
            kind=kind,
            text=text,
            preview=make_preview(text),
            created_at=now_iso(),
            name=name,
            turn_start=turn_start,
            turn_end=turn_end,
            extra=extra_clean,
        )
        prepared = self.index.prepare([text])  # embedding is the slow part and needs no lock
        with self._lock:
            self._finish_pending_deletes(ns, adapter_id)
            version_dir = self.files.write_version(adapter, record)
            try:
                self.index.upsert([(record, version_dir.name)], prepared)
            except Exception:
                # The put failed as a whole: drop the new version so the previous one (if any) stays
                # current. A crash here instead leaves it for reconcile() to index (roll forward).
                self.files.remove_dir(version_dir)
                self.files.prune_empty(version_dir.parent)
                raise
            finally:
                self._cache.invalidate(ns, adapter_id)
            for old in versions(version_dir.parent):
                if old.name < version_dir.name:
                    self.files.remove_dir(old)
        return record

    def _finish_pending_deletes(self, ns: Namespace, adapter_id: str) -> None:
        """Complete a deletion of this namespace or id that a crash interrupted, before writing into it."""
        ns_dir = self.files.ns_dir(ns)
        if self.files.is_marked_deleting(ns_dir):
            self.index.forget([(ns, i) for i in self.index.ids(ns)])
            self.files.remove_dir(ns_dir)
            self._cache.invalidate(ns)
            self.purge()
        id_dir = self.files.id_dir(ns, adapter_id)
        if self.files.is_marked_deleting(id_dir):
            self.index.forget([(ns, adapter_id)])
            self.files.remove_dir(id_dir)
            self._cache.invalidate(ns, adapter_id)
            self.purge()

    # ------------------------------------------------------------------ reading
    @also_langgraph(BaseStore.get)
    def get(self, adapter_id: str, *, namespace: NamespaceLike) -> LoraAdapter:
        """Load an adapter (from the in-memory cache when its current version is there).

        The files are read, checksummed and validated once per version; later calls for the same
        version return the cached object (shared: do not modify its tensors in place). A replace or
        delete makes the next call read the new files.

        Raises:
            AdapterNotFoundError: no such id in this namespace (nor any other).
            NamespaceError: the id exists only in another namespace (the adapter is never returned).
            AdapterFormatError: its files are corrupt (e.g. a checksum mismatch).
        """
        ns = normalize_namespace(namespace)
        adapter_id = check_adapter_id(adapter_id)
        version_dir = self.files.current_version(ns, adapter_id)
        for _ in range(5):
            if version_dir is None:
                self._raise_missing(ns, adapter_id)
            key = (ns, adapter_id, version_dir.name)
            signature = file_signature(version_dir / CONFIG_FILE)
            if signature is not None:
                cached = self._cache.get(key, signature)
                if cached is not None:
                    return cached
            try:
                adapter = LoraAdapter.load(version_dir)
            except AdapterFormatError:
                # A concurrent replace or delete may have removed this version while we read it.
                now = self.files.current_version(ns, adapter_id)
                if now == version_dir:
                    raise
                version_dir = now
                continue
            if adapter.metadata.base_fingerprint != self.base_fingerprint:
                raise AdapterMismatchError(f"{version_dir}: adapter was made for another base model")
            if signature is not None:
                self._cache.put(key, signature, adapter)
            return adapter
        raise AdapterFormatError(f"adapter {adapter_id!r} keeps changing while being read")

    def cache_info(self) -> dict[str, int]:
        """The adapter cache's ``entries``, ``bytes``, ``hits``, ``misses`` and bounds."""
        return self._cache.info()

    def get_record(self, adapter_id: str, *, namespace: NamespaceLike) -> AdapterRecord:
        """The stored record (text, kind, name, turn range, ...) of an adapter; same errors as :meth:`get`."""
        ns = normalize_namespace(namespace)
        adapter_id = check_adapter_id(adapter_id)
        version_dir = self.files.current_version(ns, adapter_id)
        for _ in range(5):
            if version_dir is None:
                self._raise_missing(ns, adapter_id)
            try:
                return read_record(version_dir)
            except AdapterFormatError:
                now = self.files.current_version(ns, adapter_id)
                if now == version_dir:
                    raise
                version_dir = now
        raise AdapterFormatError(f"adapter {adapter_id!r} keeps changing while being read")

    def exists(self, adapter_id: str, *, namespace: NamespaceLike) -> bool:
        """Whether ``namespace`` holds an adapter with this id (False for another namespace's ids)."""
        ns = normalize_namespace(namespace)
        return self.files.current_version(ns, check_adapter_id(adapter_id)) is not None

    @also_langgraph(BaseStore.search)
    def search(
        self,
        query: str,
        *,
        namespace: NamespaceLike,
        k: int = 4,
        kind: str | Sequence[str] | None = None,
        name: str | None = None,
        min_score: float | None = None,
    ) -> list[AdapterRecord]:
        """The ``k`` records of ``namespace`` most similar to ``query``, best first (``score`` set).

        The namespace is part of the index's filter, so other namespaces' records are never even
        candidates. ``kind`` and ``name`` filter exactly; ``min_score`` drops weaker matches.
        """
        ns = normalize_namespace(namespace)
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        if not query.strip():
            raise EmptyTextError("query is empty or only whitespace")
        k = check_int(k, "k")
        if not 1 <= k <= 100_000:  # Chroma overflows on huge k; no search needs more
            raise InvalidArgumentError(f"k must be in [1, 100000], got {k}")
        kinds = kind_filter(kind)
        name = check_name(name)
        if min_score is not None and (not isinstance(min_score, int | float) or isinstance(min_score, bool)):
            raise TypeError("min_score must be a float or None")
        if kinds == []:
            return []
        found = [
            r
            for r in self.index.search(ns, query, k=k, kinds=kinds, name=name)
            if r.namespace == ns and (min_score is None or (r.score is not None and r.score >= min_score))
        ]
        found.sort(key=lambda r: -(r.score or 0.0))
        return found

    def list(
        self, *, namespace: NamespaceLike, kind: str | Sequence[str] | None = None, name: str | None = None
    ) -> list[AdapterRecord]:
        """Every record of ``namespace`` (optionally of some kinds / one name), oldest first."""
        ns = normalize_namespace(namespace)
        kinds = kind_filter(kind)
        name = check_name(name)
        if kinds == []:
            return []
        return sorted(self.index.list(ns, kinds=kinds, name=name), key=lambda r: (r.created_at, r.id))

    def namespaces(self) -> builtins.list[Namespace]:
        """Every namespace that holds at least one adapter, sorted."""
        return self.files.namespaces()

    def count(self, *, namespace: NamespaceLike | None = None) -> int:
        """Number of indexed adapters in ``namespace`` (in the whole store when None)."""
        return self.index.count(None if namespace is None else normalize_namespace(namespace))

    # ------------------------------------------------------------------ deleting
    @also_langgraph(BaseStore.delete)
    def delete(self, adapter_id: str, *, namespace: NamespaceLike, purge: bool = True) -> None:
        """Delete one adapter: its index entry first, then its files, then (``purge``) the index's copies.

        With ``purge=False`` the adapter is gone from every API at once, but Chroma's log and free
        pages keep its text and vector until the next :meth:`purge` (batch many deletes that way).

        Raises AdapterNotFoundError (or NamespaceError if the id belongs to another namespace), and
        PurgeIncompleteError if Chroma kept some of its log (the adapter itself is deleted).
        """
        ns = normalize_namespace(namespace)
        adapter_id = check_adapter_id(adapter_id)
        with self._lock:
            id_dir = self.files.id_dir(ns, adapter_id)
            indexed = self.index.contains(ns, adapter_id)
            if not indexed and not id_dir.exists():
                self._raise_missing(ns, adapter_id)
            if id_dir.exists():
                self.files.mark_deleting(id_dir)
            if indexed:
                self.index.forget([(ns, adapter_id)])
            self.files.remove_dir(id_dir)
            self.files.prune_empty(id_dir.parent)
            self._cache.invalidate(ns, adapter_id)
            self.files.remove_quarantined(id_dir)
            if purge:
                self.purge()

    def delete_namespace(self, namespace: NamespaceLike, *, purge: bool = True) -> int:
        """Forget a namespace: every index entry and adapter file in it, and the index's copies. Returns how many.

        Only the exact namespace: ``delete_namespace(("users",))`` leaves ``("users", "alice")``
        alone (delete sub-namespaces explicitly; :meth:`namespaces` lists them). Quarantined
        copies of its adapters go too. With ``purge`` (the default) Chroma's log, its full-text
        index and free database pages are cleaned as well (:meth:`purge`), so no file under the
        store's directory holds the namespace's texts, ids or vectors afterwards.

        Raises PurgeIncompleteError if Chroma kept some of its log (the namespace itself is deleted).
        """
        ns = normalize_namespace(namespace)
        with self._lock:
            ns_dir = self.files.ns_dir(ns)
            indexed = self.index.ids(ns)
            ids = set(indexed) | self.files.ids_on_disk(ns)
            if ns_dir.is_dir():
                self.files.mark_deleting(ns_dir)
            if indexed:
                self.index.forget([(ns, i) for i in indexed])
            self.files.remove_dir(ns_dir)
            self.files.prune_empty(ns_dir.parent)
            self._cache.invalidate(ns)
            self.files.remove_quarantined(ns_dir)
            if purge:
                self.purge()
            return len(ids)

    def remove_orphans(
        self,
        namespace: NamespaceLike,
        keep_ids: Iterable[str],
        *,
        kind: str | Sequence[str] | None = None,
        purge: bool = True,
    ) -> builtins.list[str]:
        """Delete the adapters of ``namespace`` (optionally only of ``kind``) whose id is not in ``keep_ids``.

        The store cannot know which adapters some graph state still refers to; the caller can (for a
        thread's segments: ``state["memory_segments"]``, see ``CompactNode.remove_orphans``). Call it
        only when no write to ``namespace`` is in flight, or an adapter being written may be removed
        before its id reaches the state. Returns the removed ids, sorted.
        """
        ns = normalize_namespace(namespace)
        if isinstance(keep_ids, str):
            raise TypeError("keep_ids must be a collection of ids, not one str")
        keep = {check_adapter_id(i) for i in keep_ids}
        with self._lock:
            found = {r.id for r in self.list(namespace=ns, kind=kind)}
            if kind is None:  # files that never reached the index count too
                found |= self.files.ids_on_disk(ns)
            orphans = sorted(found - keep)
            for adapter_id in orphans:
                self.delete(adapter_id, namespace=ns, purge=False)
            if orphans and purge:
                self.purge()
            return orphans

    def purge(self) -> PurgeReport:
        """Make the index drop what deletes left in its own files (see :meth:`ChromaIndex.purge`).

        For Chroma: its log is purged, its full-text index merged and an embedded database
        VACUUMed. A ``BaseStore`` index deletes its items through the store's own API; what its
        database keeps afterwards (Postgres: dead rows until VACUUM) is that database's to clean.

        Raises:
            PurgeIncompleteError: Chroma still logs records of this store's collection.
        """
        with self._lock:
            try:
                report = self.index.purge()
            except PurgeIncompleteError as e:
                self.last_purge = getattr(e, "report", None)
                raise
            self.last_purge = report
            return report

    # ------------------------------------------------------------------ repair
    def reconcile(self, *, verify: bool = False) -> ReconcileReport:
        """Repair what a crash left half-done (see :mod:`agenthn_langgraph.store.reconcile`); run on every open.

        Adapters that are already indexed are only checked for their files' presence; pass
        ``verify=True`` to load every adapter (slower: every checksum and norm) and quarantine
        corrupt ones too. When anything was deleted, the index's copies are purged (:meth:`purge`).
        """
        with self._lock:
            report = reconcile_store(self.files, self.index, self.base_fingerprint, verify=verify)
            if not report.clean:
                self._cache.clear()
            # A delete a crash interrupted must forget as thoroughly as one that finished.
            if report.completed_deletes or report.dropped_index_entries or self.index.purge_interrupted():
                self.purge()
            return report

    # ------------------------------------------------------------------ async twins
    @also_langgraph(BaseStore.aput)
    async def aput(
        self,
        adapter: LoraAdapter,
        *,
        namespace: NamespaceLike,
        text: str,
        kind: str | None = None,
        adapter_id: str | None = None,
        name: str | None = None,
        turn_range: tuple[int, int] | None = None,
        extra: Mapping[str, str | int | float | bool] | None = None,
    ) -> AdapterRecord:
        """:meth:`put` in a worker thread (for async LangGraph nodes)."""
        return await asyncio.to_thread(
            self.put,
            adapter,
            namespace=namespace,
            text=text,
            kind=kind,
            adapter_id=adapter_id,
            name=name,
            turn_range=turn_range,
            extra=extra,
        )

    @also_langgraph(BaseStore.aget)
    async def aget(self, adapter_id: str, *, namespace: NamespaceLike) -> LoraAdapter:
        """:meth:`get` in a worker thread."""
        return await asyncio.to_thread(self.get, adapter_id, namespace=namespace)

    async def aget_record(self, adapter_id: str, *, namespace: NamespaceLike) -> AdapterRecord:
        """:meth:`get_record` in a worker thread."""
        return await asyncio.to_thread(self.get_record, adapter_id, namespace=namespace)

    @also_langgraph(BaseStore.asearch)
    async def asearch(
        self,
        query: str,
        *,
        namespace: NamespaceLike,
        k: int = 4,
        kind: str | Sequence[str] | None = None,
        name: str | None = None,
        min_score: float | None = None,
    ) -> builtins.list[AdapterRecord]:
        """:meth:`search` in a worker thread."""
        return await asyncio.to_thread(
            self.search, query, namespace=namespace, k=k, kind=kind, name=name, min_score=min_score
        )

    async def alist(
        self, *, namespace: NamespaceLike, kind: str | Sequence[str] | None = None, name: str | None = None
    ) -> builtins.list[AdapterRecord]:
        """:meth:`list` in a worker thread."""
        return await asyncio.to_thread(self.list, namespace=namespace, kind=kind, name=name)

    @also_langgraph(BaseStore.adelete)
    async def adelete(self, adapter_id: str, *, namespace: NamespaceLike, purge: bool = True) -> None:
        """:meth:`delete` in a worker thread."""
        await asyncio.to_thread(self.delete, adapter_id, namespace=namespace, purge=purge)

    async def adelete_namespace(self, namespace: NamespaceLike, *, purge: bool = True) -> int:
        """:meth:`delete_namespace` in a worker thread."""
        return await asyncio.to_thread(self.delete_namespace, namespace, purge=purge)

    async def aremove_orphans(
        self,
        namespace: NamespaceLike,
        keep_ids: Iterable[str],
        *,
        kind: str | Sequence[str] | None = None,
        purge: bool = True,
    ) -> builtins.list[str]:
        """:meth:`remove_orphans` in a worker thread."""
        return await asyncio.to_thread(self.remove_orphans, namespace, keep_ids, kind=kind, purge=purge)

    async def apurge(self) -> PurgeReport:
        """:meth:`purge` in a worker thread."""
        return await asyncio.to_thread(self.purge)
