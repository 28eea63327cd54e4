"""``AdapterStore``: LoRA adapters on disk, found by meaning through a Chroma index, per namespace.

Each adapter is stored as files (the truth) and as one Chroma entry (the index: the source text,
its MiniLM embedding and a few metadata fields). Every read and search is scoped to one exact
namespace, e.g. ``("users", "alice")``, so one user's memories never reach another user.

Layout under ``path``::

    store.json                                  # base fingerprint + embedding name the store was built for
    chroma/                                     # the embedded index (only when no ``client`` is given)
    adapters/<ns parts...>/_adapters/<id>/v00000001/
        adapter.safetensors  adapter.json       # LoraAdapter.save()
        record.json                             # the AdapterRecord (incl. the source text)
    tmp/                                        # writes and deletions in progress
    quarantine/                                 # incomplete or corrupt dirs found by reconcile()

``_adapters`` cannot clash with a namespace part (parts start with a letter or digit), so
``("users",)`` with adapter id ``alice`` and namespace ``("users", "alice")`` live apart. An
adapter's versions (``v00000001``, ``v00000002``, ...) make replacement atomic: a new version is
written to ``tmp/``, fsynced and renamed into the adapter's directory; the highest version is the
current one, so the old one stays readable until the new one is durable, and is removed after.

Crash safety: files are durable before the index entry is written; deletion marks the directory,
removes the index entry, then the files. :meth:`AdapterStore.reconcile` (run on every open) finishes
or undoes whatever a crash interrupted, and moves anything unreadable to ``quarantine/`` instead
of deleting it.

Forgetting: deleting from Chroma's API does not delete from Chroma's files. Its write-ahead log
(``embeddings_queue`` in ``chroma.sqlite3``) keeps every document, metadata and vector written,
until the vector segment has been synced to disk past it; SQLite keeps deleted rows in free pages;
the FTS index keeps deleted documents' trigrams; HNSW keeps deleted vectors in their slots. So a
delete here (by default) overwrites the doomed vectors, deletes the entries, makes Chroma purge its
log (see :meth:`AdapterStore.purge`), merges the FTS index and VACUUMs the database.

One embedded store (``chroma/``) should be used by one process at a time (Chroma's local mode);
for several processes, run ``chroma run --path DIR`` and pass ``client=chromadb.HttpClient(...)``.

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
import json
import math
import os
import re
import shutil
import sqlite3
import threading
import time
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, get_args

from langgraph.store.base import BaseStore
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import (
    AdapterFormatError,
    AdapterMismatchError,
    AdapterNotFoundError,
    EmptyTextError,
    NamespaceError,
    PurgeIncompleteError,
    StoreMismatchError,
)
from ..lora.adapter import AdapterKind, LoraAdapter
from .langgraph_store import LangGraphStoreMixin, also_langgraph

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from chromadb.api.types import Documents, EmbeddingFunction

Namespace = tuple[str, ...]
NamespaceLike = str | Sequence[str]

KINDS: frozenset[str] = frozenset(get_args(AdapterKind))
MAX_NAMESPACE_DEPTH = 8
PREVIEW_CHARS = 160
DEFAULT_COLLECTION = "agenthn_adapters"

_PART_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")
_VERSION_RE = re.compile(r"v(\d{8})")
_ADAPTERS_DIR = "_adapters"  # cannot be a namespace part: parts start with a letter or digit
_RECORD_FILE = "record.json"
_DELETING_MARKER = ".deleting"
_STORE_FILE = "store.json"
_RECORD_FORMAT = "agenthn-adapter-record"
_STORE_FORMAT = "agenthn-adapter-store"
_META_FINGERPRINT = "agenthn_base_fingerprint"
_META_EMBEDDING = "agenthn_embedding"
_META_FORMAT = "agenthn_store_format"
_STORE_FORMAT_VERSION = 1
_PAGE = 5000
# Chroma's local HNSW segment records how far it has synced only every ``sync_threshold`` log
# records, and the log is purged only below that point; 2 is the smallest value Chroma accepts.
_HNSW_SYNC_THRESHOLD = 2
# Entries written and deleted again by purge() to push that sync point past every real record.
# Store entries' ids always contain "::", so these can never be an adapter's.
_PURGE_IDS = tuple(f"_agenthn_purge_{i}" for i in range(_HNSW_SYNC_THRESHOLD))
_FTS_TABLE = "embedding_fulltext_search"
DEFAULT_CACHE_SIZE = 64
DEFAULT_CACHE_BYTES = 512 * 2**20

# Locks and in-flight temp dirs are per process and per store directory, not per AdapterStore
# object: two objects opened on the same directory in one process must not race each other.
_PATH_LOCKS: dict[str, threading.RLock] = {}
_IN_FLIGHT: set[str] = set()
_GLOBAL_LOCK = threading.Lock()


def _path_lock(path: Path) -> threading.RLock:
    with _GLOBAL_LOCK:
        return _PATH_LOCKS.setdefault(str(path), threading.RLock())


# ---------------------------------------------------------------------------------------- records
class AdapterRecord(BaseModel):
    """What the store knows about one adapter (everything except the tensors).

    ``score`` is set only by :meth:`AdapterStore.search`: ``1 - cosine distance``, higher is better.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    namespace: tuple[str, ...]
    kind: str
    text: str
    preview: str
    created_at: str
    name: str | None = None
    turn_start: int | None = None
    turn_end: int | None = None
    score: float | None = None
    extra: dict[str, str | int | float | bool] = Field(default_factory=dict)


class ReconcileReport(BaseModel):
    """What :meth:`AdapterStore.reconcile` repaired. All zero means the store was consistent."""

    model_config = ConfigDict(frozen=True)

    removed_temp: int = 0
    """Leftover temp dirs (interrupted writes or deletions) deleted from ``tmp/``."""
    reindexed: int = 0
    """Complete adapters on disk whose index entry was missing or stale, (re-)indexed from record.json."""
    dropped_index_entries: int = 0
    """Index entries whose files were missing, deleted from the index."""
    quarantined: int = 0
    """Incomplete or corrupt adapter dirs moved to ``quarantine/`` (never deleted)."""
    completed_deletes: int = 0
    """Deletions a crash interrupted, finished."""
    superseded_removed: int = 0
    """Old versions of replaced adapters that a crash left behind, removed."""

    @property
    def clean(self) -> bool:
        return not any(self.model_dump().values())


class PurgeReport(BaseModel):
    """What :meth:`AdapterStore.purge` did to Chroma's own files."""

    model_config = ConfigDict(frozen=True)

    log_entries_left: int | None
    """Records of this store's collection still in Chroma's log (``embeddings_queue``) that are not
    the purge's own marker; 0 after a complete purge, None when the database is not local (server)."""
    fts_optimized: bool
    """The full-text index was merged, dropping deleted documents' trigrams."""
    vacuumed: bool
    """``chroma.sqlite3`` was rebuilt by SQLite's VACUUM, so deleted rows left no bytes in free pages."""
    seconds: float


# ---------------------------------------------------------------------------------------- validation
def normalize_namespace(namespace: object) -> Namespace:
    """Return ``namespace`` as a tuple of 1-8 parts, each ``[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}``.

    A bare ``str`` is one part (``"alice"`` -> ``("alice",)``); a list is accepted like a tuple.

    >>> normalize_namespace("alice"), normalize_namespace(["users", "bob"])
    (('alice',), ('users', 'bob'))
    """
    if isinstance(namespace, str):
        parts: tuple[object, ...] = (namespace,)
    elif isinstance(namespace, tuple | list):
        parts = tuple(namespace)
    else:
        raise TypeError(f"namespace must be a str or a tuple of str, got {type(namespace).__name__}")
    if not 1 <= len(parts) <= MAX_NAMESPACE_DEPTH:
        raise NamespaceError(f"a namespace has 1 to {MAX_NAMESPACE_DEPTH} parts, got {len(parts)}")
    for part in parts:
        if not isinstance(part, str):
            raise TypeError(f"namespace parts must be str, got {type(part).__name__}")
        if not _PART_RE.fullmatch(part):
            raise NamespaceError(
                f"malformed namespace part {part!r}: 1-128 characters from [A-Za-z0-9_.@-], "
                "starting with a letter or digit"
            )
    return tuple(parts)  # type: ignore[arg-type]


def _namespace_key(ns: Namespace) -> str:
    return "/".join(ns)


def _doc_id(ns: Namespace, adapter_id: str) -> str:
    # "::" cannot occur in a namespace part or an id, so the split is unambiguous.
    return f"{_namespace_key(ns)}::{adapter_id}"


def _check_adapter_id(adapter_id: object) -> str:
    if not isinstance(adapter_id, str):
        raise TypeError(f"adapter_id must be a str, got {type(adapter_id).__name__}")
    if not _PART_RE.fullmatch(adapter_id):
        raise ValueError(
            f"malformed adapter id {adapter_id!r}: 1-128 characters from [A-Za-z0-9_.@-], "
            "starting with a letter or digit"
        )
    return adapter_id


def _check_kind(kind: object) -> str:
    if not isinstance(kind, str):
        raise TypeError(f"kind must be a str, got {type(kind).__name__}")
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(KINDS)}")
    return kind


def _kind_filter(kind: object) -> list[str] | None:
    if kind is None:
        return None
    if isinstance(kind, str):
        return [_check_kind(kind)]
    if isinstance(kind, Sequence | set | frozenset):
        return [_check_kind(k) for k in kind]
    raise TypeError(f"kind must be a str or a sequence of str, got {type(kind).__name__}")


def _check_name(name: object) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__}")
    if not name.strip():
        raise ValueError("name must not be empty")
    return name


def _check_int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    return value


def _check_extra(extra: object) -> dict[str, str | int | float | bool]:
    if extra is None:
        return {}
    if not isinstance(extra, Mapping):
        raise TypeError(f"extra must be a dict, got {type(extra).__name__}")
    out: dict[str, str | int | float | bool] = {}
    for key, value in extra.items():
        if not isinstance(key, str):
            raise TypeError(f"extra keys must be str, got {type(key).__name__}")
        if not isinstance(value, str | int | float | bool):
            raise TypeError(f"extra[{key!r}] must be str, int, float or bool, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"extra[{key!r}] is not finite")
        out[key] = value
    return out


def make_preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """The first ``limit`` characters of ``text`` with whitespace collapsed (``...`` when cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


def _now() -> str:
    # Fixed microsecond precision keeps ISO strings sortable as text.
    return datetime.now(UTC).isoformat(timespec="microseconds")


# ---------------------------------------------------------------------------------------- files
def _fsync_dir(path: Path) -> None:
    """Make a rename or create inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_file_durable(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    _write_file_durable(tmp, json.dumps(payload, indent=2).encode("utf-8"))
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OSError:
        return False
    return True


def _read_record(version_dir: Path) -> AdapterRecord:
    path = version_dir / _RECORD_FILE
    try:
        payload = json.loads(path.read_bytes())
        if not isinstance(payload, dict) or payload.get("format") != _RECORD_FORMAT:
            raise AdapterFormatError(f"{path}: not an agenthn adapter record")
        return AdapterRecord.model_validate(payload["record"])
    except FileNotFoundError as e:
        raise AdapterFormatError(f"{version_dir}: missing {_RECORD_FILE}") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, ValidationError) as e:
        raise AdapterFormatError(f"{path}: unreadable adapter record ({type(e).__name__})") from e


def _versions(id_dir: Path) -> list[Path]:
    """Version dirs of one adapter, newest first (``[]`` when the adapter does not exist)."""
    try:
        names = [e.name for e in os.scandir(id_dir) if e.is_dir() and _VERSION_RE.fullmatch(e.name)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [id_dir / n for n in sorted(names, reverse=True)]


def _file_signature(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime ns) of ``path``, or None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _random_unit_vectors(n: int, dim: int) -> list[list[float]]:
    """Vectors that carry no information: they replace a deleted entry's embedding in HNSW."""
    import numpy as np

    v = np.random.default_rng().standard_normal((n, dim))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return [[float(x) for x in row] for row in v]


_CacheKey = tuple[Namespace, str, str]  # (namespace, adapter id, version dir name)


class _AdapterCache:
    """A bounded, thread-safe LRU of loaded adapters, keyed by namespace, id and version.

    Why: every model call resolves its active adapters through :meth:`AdapterStore.get`, and a load
    reads the tensors, hashes them and checks their norms; the same few adapters are resolved on
    every turn. A version directory never changes once it is renamed into place, so its name
    identifies immutable content -- except that after a delete (perhaps by another process) and a
    new put, numbering restarts at ``v00000001``; the ``adapter.json`` file signature (inode, size,
    mtime) tells such a reused name apart, so a stale entry is never served.
    """

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[_CacheKey, tuple[tuple[int, int, int], LoraAdapter]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: _CacheKey, signature: tuple[int, int, int]) -> LoraAdapter | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] != signature:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[1]

    def put(self, key: _CacheKey, signature: tuple[int, int, int], adapter: LoraAdapter) -> None:
        size = adapter.nbytes
        if self.max_entries <= 0 or size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1].nbytes
            self._items[key] = (signature, adapter)
            self._bytes += size
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, evicted) = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes

    def invalidate(self, ns: Namespace, adapter_id: str | None = None) -> None:
        """Drop every cached version of one adapter, or of a whole namespace when ``adapter_id`` is None."""
        with self._lock:
            for key in [k for k in self._items if k[0] == ns and (adapter_id is None or k[1] == adapter_id)]:
                self._bytes -= self._items.pop(key)[1].nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def info(self) -> dict[str, int]:
        with self._lock:
            return {
                "entries": len(self._items),
                "bytes": self._bytes,
                "hits": self.hits,
                "misses": self.misses,
                "max_entries": self.max_entries,
                "max_bytes": self.max_bytes,
            }


# ---------------------------------------------------------------------------------------- the store
class AdapterStore(LangGraphStoreMixin):
    """Namespaced, searchable, crash-safe storage for :class:`~agenthn_langgraph.lora.LoraAdapter` s.

    Args:
        path: directory for the adapter files (and the embedded index when ``client`` is None).
        base_fingerprint: the base model's fingerprint; adapters for any other base are refused.
        embedding_function: a registered Chroma embedding function; default
            :class:`~agenthn_langgraph.store.embeddings.MiniLMEmbeddingFunction` (offline).
        client: any chromadb client (e.g. ``chromadb.HttpClient`` for a ``chroma run`` server); the
            files still live under ``path``. Default: an embedded ``PersistentClient`` at ``path/chroma``.
        collection: Chroma collection name (3-512 characters).
        cache_size: how many loaded adapters :meth:`get` keeps in memory (LRU; 0 turns the cache off).
        cache_bytes: and at most this many bytes of tensors.

    Raises:
        StoreMismatchError: the store was built for another base model or embedding function
            (checked against ``path/store.json`` and the collection's metadata; nothing is modified).

    Attributes:
        base_fingerprint: the base model this store's adapters belong to.
        embedding_name: the embedding function's registered name.
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
        if not isinstance(collection, str) or not 3 <= len(collection) <= 512:
            raise ValueError("collection must be a str of 3 to 512 characters")
        for what, value in (("cache_size", cache_size), ("cache_bytes", cache_bytes)):
            if _check_int(value, what) < 0:
                raise ValueError(f"{what} must be >= 0, got {value}")
        import chromadb
        from chromadb.config import Settings

        from .embeddings import MiniLMEmbeddingFunction

        self.path = Path(path).expanduser().resolve()
        if self.path.exists() and not self.path.is_dir():
            from ..errors import StorePathError

            raise StorePathError(f"store path {self.path} exists and is not a directory")
        self.base_fingerprint = base_fingerprint
        self.collection_name = collection
        self._ef: Any = embedding_function if embedding_function is not None else MiniLMEmbeddingFunction()
        ef_name = self._ef.name()
        if not isinstance(ef_name, str) or not ef_name:
            raise TypeError("embedding_function must implement name() (a registered Chroma embedding function)")
        self.embedding_name: str = ef_name
        self._lock = _path_lock(self.path)
        self._adapters_root = self.path / "adapters"
        self._tmp_root = self.path / "tmp"
        self._quarantine_root = self.path / "quarantine"
        self._cache = _AdapterCache(cache_size, cache_bytes)
        self._dim: int | None = None
        self.last_purge: PurgeReport | None = None

        # Check the files' own record of what built them before touching anything.
        self._check_store_file()
        if client is None:
            client = chromadb.PersistentClient(
                path=str(self.path / "chroma"), settings=Settings(anonymized_telemetry=False)
            )
        self._client = client
        self._sqlite_path = self._local_sqlite_path(client)
        self._collection: Collection = self._open_collection()
        with self._lock:
            for d in (self._adapters_root, self._tmp_root):
                d.mkdir(parents=True, exist_ok=True)
            if not (self.path / _STORE_FILE).exists():
                _write_json_atomic(self.path / _STORE_FILE, self._store_identity())
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
        return (
            f"AdapterStore(path={str(self.path)!r}, collection={self.collection_name!r}, "
            f"base={self.base_fingerprint[:12]}, embedding={self.embedding_name!r})"
        )

    @property
    def embedding_function(self) -> EmbeddingFunction[Documents]:
        return self._ef

    @property
    def collection(self) -> Collection:
        """The underlying Chroma collection (read it freely; write through the store)."""
        return self._collection

    # ------------------------------------------------------------------ opening
    def _store_identity(self) -> dict[str, Any]:
        return {
            "format": _STORE_FORMAT,
            "version": _STORE_FORMAT_VERSION,
            "base_fingerprint": self.base_fingerprint,
            "embedding": self.embedding_name,
            "collection": self.collection_name,
        }

    def _check_store_file(self) -> None:
        path = self.path / _STORE_FILE
        if not path.exists():
            return
        try:
            found = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise StoreMismatchError(f"{path} is unreadable; is this an AdapterStore directory?") from e
        if not isinstance(found, dict) or found.get("format") != _STORE_FORMAT:
            raise StoreMismatchError(f"{path} is not an AdapterStore identity file")
        if found.get("base_fingerprint") != self.base_fingerprint:
            raise StoreMismatchError(
                f"the store at {self.path} holds adapters for base model "
                f"{str(found.get('base_fingerprint'))[:16]}..., not {self.base_fingerprint[:16]}..."
            )
        if found.get("embedding") != self.embedding_name:
            raise StoreMismatchError(
                f"the store at {self.path} was indexed with embedding {found.get('embedding')!r}, "
                f"not {self.embedding_name!r}"
            )

    def _open_collection(self) -> Collection:
        from chromadb.errors import NotFoundError

        wanted = {
            _META_FINGERPRINT: self.base_fingerprint,
            _META_EMBEDDING: self.embedding_name,
            _META_FORMAT: _STORE_FORMAT_VERSION,
        }
        try:
            col = self._client.get_collection(self.collection_name, embedding_function=self._ef)
        except NotFoundError:
            col = self._client.get_or_create_collection(
                self.collection_name,
                embedding_function=self._ef,
                metadata=wanted,
                configuration={
                    "hnsw": {
                        "space": "cosine",
                        "sync_threshold": _HNSW_SYNC_THRESHOLD,
                        "batch_size": _HNSW_SYNC_THRESHOLD,
                    }
                },
            )
        except ValueError as e:
            # Chroma refuses an embedding function whose name differs from the persisted one.
            if "conflict" in str(e).lower():
                raise StoreMismatchError(
                    f"collection {self.collection_name!r} was built with another embedding function "
                    f"than {self.embedding_name!r}"
                ) from e
            raise
        meta = dict(col.metadata or {})
        if meta.get(_META_FINGERPRINT) is None or meta.get(_META_EMBEDDING) is None:
            raise StoreMismatchError(f"collection {self.collection_name!r} was not created by an AdapterStore")
        if meta[_META_FINGERPRINT] != self.base_fingerprint:
            raise StoreMismatchError(
                f"collection {self.collection_name!r} indexes adapters for base model "
                f"{str(meta[_META_FINGERPRINT])[:16]}..., not {self.base_fingerprint[:16]}..."
            )
        if meta[_META_EMBEDDING] != self.embedding_name:
            raise StoreMismatchError(
                f"collection {self.collection_name!r} was indexed with embedding {meta[_META_EMBEDDING]!r}, "
                f"not {self.embedding_name!r}"
            )
        hnsw = (col.configuration or {}).get("hnsw") or {}
        space = hnsw.get("space")
        if space not in (None, "cosine"):
            raise StoreMismatchError(f"collection {self.collection_name!r} uses {space!r} distance, not cosine")
        if hnsw.get("sync_threshold") != _HNSW_SYNC_THRESHOLD:
            # A store created before purging existed (Chroma's default is 1000): lower it, so that
            # purge() can make Chroma drop its log. Chroma applies this to the vector segment the
            # next time it is loaded, which for a store opened in a fresh process is now.
            col.modify(
                configuration={"hnsw": {"sync_threshold": _HNSW_SYNC_THRESHOLD, "batch_size": _HNSW_SYNC_THRESHOLD}}
            )
        return col

    @staticmethod
    def _local_sqlite_path(client: Any) -> Path | None:
        """``chroma.sqlite3`` of an embedded client (None for a server, whose files are not ours)."""
        try:
            settings = client.get_settings()
        except Exception:
            return None
        directory = getattr(settings, "persist_directory", None)
        if not getattr(settings, "is_persistent", False) or not directory:
            return None
        return Path(directory).expanduser().resolve() / "chroma.sqlite3"

    # ------------------------------------------------------------------ paths
    def _ns_dir(self, ns: Namespace) -> Path:
        return self._adapters_root.joinpath(*ns, _ADAPTERS_DIR)

    def _id_dir(self, ns: Namespace, adapter_id: str) -> Path:
        return self._ns_dir(ns) / adapter_id

    def _current_version(self, ns: Namespace, adapter_id: str) -> Path | None:
        id_dir = self._id_dir(ns, adapter_id)
        if (id_dir / _DELETING_MARKER).exists() or (id_dir.parent / _DELETING_MARKER).exists():
            return None
        versions = _versions(id_dir)
        return versions[0] if versions else None

    def _new_temp_dir(self, tag: str) -> Path:
        tmp = self._tmp_root / f"{os.getpid()}-{uuid.uuid4().hex}-{tag}"
        with _GLOBAL_LOCK:
            _IN_FLIGHT.add(str(tmp))
        self._tmp_root.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        return tmp

    @staticmethod
    def _done_with_temp(tmp: Path) -> None:
        with _GLOBAL_LOCK:
            _IN_FLIGHT.discard(str(tmp))

    def _remove_dir(self, path: Path) -> None:
        """Take ``path`` out of the tree atomically (rename into tmp/), then delete it."""
        if not path.exists():
            return
        trash = self._tmp_root / f"{os.getpid()}-{uuid.uuid4().hex}-trash"
        with _GLOBAL_LOCK:
            _IN_FLIGHT.add(str(trash))
        try:
            self._tmp_root.mkdir(parents=True, exist_ok=True)
            os.rename(path, trash)
            _fsync_dir(path.parent)
            shutil.rmtree(trash, ignore_errors=True)
        finally:
            self._done_with_temp(trash)

    def _prune_empty(self, start: Path) -> None:
        """Remove empty directories from ``start`` up to (not including) ``adapters/``."""
        d = start
        while d != self._adapters_root and self._adapters_root in d.parents:
            try:
                d.rmdir()
            except OSError:
                return
            d = d.parent

    # ------------------------------------------------------------------ index helpers
    def _metadata(self, rec: AdapterRecord, version: str) -> dict[str, str | int | float | bool]:
        # Chroma metadata values cannot be None: missing fields are omitted.
        meta: dict[str, str | int | float | bool] = {
            "namespace": _namespace_key(rec.namespace),
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

    @staticmethod
    def _record_from_index(meta: Mapping[str, Any], document: str | None, score: float | None) -> AdapterRecord:
        return AdapterRecord(
            id=str(meta["adapter_id"]),
            namespace=tuple(str(meta["namespace"]).split("/")),
            kind=str(meta["kind"]),
            text=document or "",
            preview=str(meta.get("preview", "")),
            created_at=str(meta.get("created_at", "")),
            name=meta.get("name"),
            turn_start=meta.get("turn_start"),
            turn_end=meta.get("turn_end"),
            score=score,
            extra=json.loads(meta["extra_json"]) if meta.get("extra_json") else {},
        )

    def _upsert(self, items: Sequence[tuple[AdapterRecord, str]], embeddings: Sequence[Sequence[float]]) -> None:
        self._collection.upsert(
            ids=[_doc_id(r.namespace, r.id) for r, _ in items],
            embeddings=[list(e) for e in embeddings],
            documents=[r.text for r, _ in items],
            metadatas=[self._metadata(r, v) for r, v in items],  # type: ignore[misc]
        )

    def _where(self, ns: Namespace, kinds: list[str] | None = None, name: str | None = None) -> dict[str, Any]:
        conds: list[dict[str, Any]] = [{"namespace": _namespace_key(ns)}]
        if kinds is not None:
            conds.append({"kind": kinds[0]} if len(kinds) == 1 else {"kind": {"$in": kinds}})
        if name is not None:
            conds.append({"name": name})
        return conds[0] if len(conds) == 1 else {"$and": conds}

    def _index_entries(self) -> dict[str, dict[str, Any]]:
        """Every index entry made by an AdapterStore: ``{doc id: metadata}`` (paged)."""
        out: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            page = self._collection.get(include=["metadatas"], limit=_PAGE, offset=offset)  # type: ignore[list-item]
            ids, metas = page["ids"], page["metadatas"] or []
            for doc_id, meta in zip(ids, metas, strict=False):
                if meta and "namespace" in meta and "adapter_id" in meta:
                    out[doc_id] = dict(meta)
            if len(ids) < _PAGE:
                return out
            offset += _PAGE

    def _raise_missing(self, ns: Namespace, adapter_id: str) -> NoReturn:
        elsewhere = self._collection.get(
            where={"$and": [{"adapter_id": adapter_id}, {"namespace": {"$ne": _namespace_key(ns)}}]},
            limit=1,
            include=[],
        )
        if elsewhere["ids"]:
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
        kind = _check_kind(adapter.metadata.kind if kind is None else kind)
        adapter_id = uuid.uuid4().hex if adapter_id is None else _check_adapter_id(adapter_id)
        name = _check_name(name)
        turn_start = turn_end = None
        if turn_range is not None:
            if not isinstance(turn_range, tuple | list) or len(turn_range) != 2:
                raise TypeError("turn_range must be a (first, last) pair of ints")
            turn_start = _check_int(turn_range[0], "turn_range[0]")
            turn_end = _check_int(turn_range[1], "turn_range[1]")
            if not 0 <= turn_start <= turn_end:
                raise ValueError(f"turn_range must satisfy 0 <= first <= last, got {tuple(turn_range)}")
        extra_clean = _check_extra(extra)
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
            created_at=_now(),
            name=name,
            turn_start=turn_start,
            turn_end=turn_end,
            extra=extra_clean,
        )
        # Embedding is the slow part and needs no lock.
        embedding = self._embed_documents([text])[0]
        with self._lock:
            self._finish_pending_deletes(ns, adapter_id)
            version_dir = self._write_files(adapter, record)
            try:
                self._upsert([(record, version_dir.name)], [embedding])
            except Exception:
                # The put failed as a whole: drop the new version so the previous one (if any) stays
                # current. A crash here instead leaves it for reconcile() to index (roll forward).
                self._remove_dir(version_dir)
                self._prune_empty(version_dir.parent)
                raise
            finally:
                self._cache.invalidate(ns, adapter_id)
            for old in _versions(version_dir.parent):
                if old.name < version_dir.name:
                    self._remove_dir(old)
        return record

    def _write_files(self, adapter: LoraAdapter, record: AdapterRecord) -> Path:
        """Write adapter + record.json to tmp/, fsync, rename in as the next version. Returns it."""
        tmp = self._new_temp_dir("put")
        try:
            adapter.save(tmp)
            payload = {"format": _RECORD_FORMAT, "record": record.model_dump(mode="json", exclude={"score"})}
            _write_file_durable(tmp / _RECORD_FILE, json.dumps(payload, indent=2).encode("utf-8"))
            _fsync_dir(tmp)
            id_dir = self._id_dir(record.namespace, record.id)
            for _ in range(100):
                versions = _versions(id_dir)
                n = int(versions[0].name[1:]) + 1 if versions else 1
                target = id_dir / f"v{n:08d}"
                id_dir.mkdir(parents=True, exist_ok=True)
                try:
                    os.rename(tmp, target)
                except FileNotFoundError:
                    continue  # a parent was pruned by another process in between: recreate it
                except OSError:
                    if target.exists():
                        continue  # another process took this version number
                    raise
                _fsync_dir(id_dir)
                _fsync_dir(id_dir.parent)
                return target
            raise OSError(f"could not place a new version under {id_dir}")
        except Exception:
            # A failed put leaves nothing behind. A crash (or KeyboardInterrupt) skips this and
            # leaves the temp dir for reconcile().
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            self._done_with_temp(tmp)

    def _finish_pending_deletes(self, ns: Namespace, adapter_id: str) -> None:
        """Complete a deletion of this namespace or id that a crash interrupted, before writing into it."""
        ns_dir = self._ns_dir(ns)
        if (ns_dir / _DELETING_MARKER).exists():
            self._forget_index_entries(self._collection.get(where=self._where(ns), include=[])["ids"])
            self._remove_dir(ns_dir)
            self._cache.invalidate(ns)
            self.purge()
        id_dir = self._id_dir(ns, adapter_id)
        if (id_dir / _DELETING_MARKER).exists():
            self._forget_index_entries([_doc_id(ns, adapter_id)])
            self._remove_dir(id_dir)
            self._cache.invalidate(ns, adapter_id)
            self.purge()

    def _embed_documents(self, texts: list[str]) -> list[list[float]]:
        if hasattr(self._ef, "embed_documents"):
            return [list(map(float, e)) for e in self._ef.embed_documents(texts)]
        return [list(map(float, e)) for e in self._ef(texts)]

    def _embed_query(self, text: str) -> list[float]:
        out = self._ef.embed_query([text]) if hasattr(self._ef, "embed_query") else self._ef([text])
        return [float(x) for x in out[0]]

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
        from ..lora.adapter import CONFIG_FILE

        ns = normalize_namespace(namespace)
        adapter_id = _check_adapter_id(adapter_id)
        version_dir = self._current_version(ns, adapter_id)
        for _ in range(5):
            if version_dir is None:
                self._raise_missing(ns, adapter_id)
            key = (ns, adapter_id, version_dir.name)
            signature = _file_signature(version_dir / CONFIG_FILE)
            if signature is not None:
                cached = self._cache.get(key, signature)
                if cached is not None:
                    return cached
            try:
                adapter = LoraAdapter.load(version_dir)
            except AdapterFormatError:
                # A concurrent replace or delete may have removed this version while we read it.
                now = self._current_version(ns, adapter_id)
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
        adapter_id = _check_adapter_id(adapter_id)
        version_dir = self._current_version(ns, adapter_id)
        for _ in range(5):
            if version_dir is None:
                self._raise_missing(ns, adapter_id)
            try:
                return _read_record(version_dir)
            except AdapterFormatError:
                now = self._current_version(ns, adapter_id)
                if now == version_dir:
                    raise
                version_dir = now
        raise AdapterFormatError(f"adapter {adapter_id!r} keeps changing while being read")

    def exists(self, adapter_id: str, *, namespace: NamespaceLike) -> bool:
        """Whether ``namespace`` holds an adapter with this id (False for another namespace's ids)."""
        ns = normalize_namespace(namespace)
        return self._current_version(ns, _check_adapter_id(adapter_id)) is not None

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

        The namespace is part of Chroma's ``where`` filter, so other namespaces' records are never
        even candidates. ``kind`` and ``name`` filter exactly; ``min_score`` drops weaker matches.
        """
        ns = normalize_namespace(namespace)
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        if not query.strip():
            raise EmptyTextError("query is empty or only whitespace")
        k = _check_int(k, "k")
        if not 1 <= k <= 100_000:  # Chroma overflows on huge k; no search needs more
            from ..errors import InvalidArgumentError

            raise InvalidArgumentError(f"k must be in [1, 100000], got {k}")
        kinds = _kind_filter(kind)
        name = _check_name(name)
        if min_score is not None and (not isinstance(min_score, int | float) or isinstance(min_score, bool)):
            raise TypeError("min_score must be a float or None")
        if kinds == []:
            return []
        res = self._collection.query(
            query_embeddings=[self._embed_query(query)],
            n_results=k,
            where=self._where(ns, kinds, name),
            include=["documents", "metadatas", "distances"],  # type: ignore[list-item]
        )
        metas = (res["metadatas"] or [[]])[0]
        docs = (res["documents"] or [[]])[0]
        dists = (res["distances"] or [[]])[0]
        out: list[AdapterRecord] = []
        key = _namespace_key(ns)
        for meta, doc, dist in zip(metas, docs, dists, strict=False):
            if not meta or meta.get("namespace") != key:  # belt and braces: the where already did this
                continue
            score = 1.0 - float(dist)
            if min_score is not None and score < min_score:
                continue
            out.append(self._record_from_index(meta, doc, score))
        out.sort(key=lambda r: -(r.score or 0.0))
        return out

    def list(
        self, *, namespace: NamespaceLike, kind: str | Sequence[str] | None = None, name: str | None = None
    ) -> list[AdapterRecord]:
        """Every record of ``namespace`` (optionally of some kinds / one name), oldest first."""
        ns = normalize_namespace(namespace)
        kinds = _kind_filter(kind)
        name = _check_name(name)
        if kinds == []:
            return []
        res = self._collection.get(where=self._where(ns, kinds, name), include=["documents", "metadatas"])  # type: ignore[list-item]
        records = [
            self._record_from_index(meta, doc, None)
            for meta, doc in zip(res["metadatas"] or [], res["documents"] or [], strict=False)
            if meta
        ]
        return sorted(records, key=lambda r: (r.created_at, r.id))

    def namespaces(self) -> builtins.list[Namespace]:
        """Every namespace that holds at least one adapter, sorted."""
        found: list[Namespace] = []
        root = self._adapters_root
        for dirpath, dirnames, _files in os.walk(root):
            if _ADAPTERS_DIR in dirnames:
                adapters_dir = Path(dirpath) / _ADAPTERS_DIR
                deleting = (adapters_dir / _DELETING_MARKER).exists()
                if not deleting and any(_versions(Path(e.path)) for e in os.scandir(adapters_dir) if e.is_dir()):
                    found.append(Path(dirpath).relative_to(root).parts)
            # Never descend into adapter dirs; only namespace parts can be sub-namespaces.
            dirnames[:] = [d for d in dirnames if _PART_RE.fullmatch(d)]
        return sorted(found)

    def count(self, *, namespace: NamespaceLike | None = None) -> int:
        """Number of indexed adapters in ``namespace`` (in the whole store when None)."""
        if namespace is None:
            return self._collection.count()
        ns = normalize_namespace(namespace)
        return len(self._collection.get(where=self._where(ns), include=[])["ids"])

    # ------------------------------------------------------------------ deleting
    @also_langgraph(BaseStore.delete)
    def delete(self, adapter_id: str, *, namespace: NamespaceLike, purge: bool = True) -> None:
        """Delete one adapter: its index entry first, then its files, then (``purge``) Chroma's copies.

        With ``purge=False`` the adapter is gone from every API at once, but Chroma's log and free
        pages keep its text and vector until the next :meth:`purge` (batch many deletes that way).

        Raises AdapterNotFoundError (or NamespaceError if the id belongs to another namespace), and
        PurgeIncompleteError if Chroma kept some of its log (the adapter itself is deleted).
        """
        ns = normalize_namespace(namespace)
        adapter_id = _check_adapter_id(adapter_id)
        with self._lock:
            id_dir = self._id_dir(ns, adapter_id)
            doc_id = _doc_id(ns, adapter_id)
            indexed = bool(self._collection.get(ids=[doc_id], include=[])["ids"])
            if not indexed and not id_dir.exists():
                self._raise_missing(ns, adapter_id)
            if id_dir.exists():
                # The marker makes a crash between the two steps finish the delete, not resurrect it.
                _write_file_durable(id_dir / _DELETING_MARKER, b"")
                _fsync_dir(id_dir)
            if indexed:
                self._forget_index_entries([doc_id])
            self._remove_dir(id_dir)
            self._prune_empty(id_dir.parent)
            self._cache.invalidate(ns, adapter_id)
            self._remove_quarantined(id_dir)
            if purge:
                self.purge()

    def delete_namespace(self, namespace: NamespaceLike, *, purge: bool = True) -> int:
        """Forget a namespace: every index entry and adapter file in it, and Chroma's copies. Returns how many.

        Only the exact namespace: ``delete_namespace(("users",))`` leaves ``("users", "alice")``
        alone (delete sub-namespaces explicitly; :meth:`namespaces` lists them). Quarantined
        copies of its adapters go too. With ``purge`` (the default) Chroma's log, its full-text
        index and free database pages are cleaned as well (:meth:`purge`), so no file under the
        store's directory holds the namespace's texts, ids or vectors afterwards.

        Raises PurgeIncompleteError if Chroma kept some of its log (the namespace itself is deleted).
        """
        ns = normalize_namespace(namespace)
        with self._lock:
            ns_dir = self._ns_dir(ns)
            indexed = self._collection.get(where=self._where(ns), include=[])["ids"]
            on_disk = {e.name for e in os.scandir(ns_dir) if e.is_dir()} if ns_dir.is_dir() else set()
            ids = {d.split("::", 1)[1] for d in indexed} | on_disk
            if ns_dir.is_dir():
                _write_file_durable(ns_dir / _DELETING_MARKER, b"")
                _fsync_dir(ns_dir)
            if indexed:
                self._forget_index_entries(indexed)
            self._remove_dir(ns_dir)
            self._prune_empty(ns_dir.parent)
            self._cache.invalidate(ns)
            self._remove_quarantined(ns_dir)
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
        keep = {_check_adapter_id(i) for i in keep_ids}
        with self._lock:
            found = {r.id for r in self.list(namespace=ns, kind=kind)}
            ns_dir = self._ns_dir(ns)
            if kind is None and ns_dir.is_dir():  # files that never reached the index count too
                found |= {e.name for e in os.scandir(ns_dir) if e.is_dir() and _PART_RE.fullmatch(e.name)}
            orphans = sorted(found - keep)
            for adapter_id in orphans:
                self.delete(adapter_id, namespace=ns, purge=False)
            if orphans and purge:
                self.purge()
            return orphans

    def purge(self) -> PurgeReport:
        """Make the vector database drop what deletes left in its own files.

        Chroma (1.x, local) logs every write in ``embeddings_queue`` and deletes log records only
        below the point its HNSW segment has synced to disk, which moves every ``sync_threshold``
        records (this store's collections use Chroma's minimum, 2). So purge writes
        ``sync_threshold`` throw-away entries and deletes them again: the segment syncs past every
        earlier record and Chroma's own automatic purge deletes them (only the last throw-away
        record stays). Then, for an embedded store, the SQLite FTS index is merged (FTS5
        ``optimize``: deleted documents' trigrams leave the index) and ``chroma.sqlite3`` is
        VACUUMed (what ``chroma utils vacuum`` runs), so no deleted row survives in a free page.

        Against a server (``client=HttpClient``) the log is purged the same way, but the server's
        database file is not ours to vacuum: run ``chroma utils vacuum --path ...`` there.

        Raises:
            PurgeIncompleteError: Chroma still logs records of this store's collection (e.g. its
                vector segment was loaded with another ``sync_threshold`` earlier in this process).
        """
        with self._lock:
            started = time.perf_counter()
            dim = self._embedding_dim()
            ids = list(_PURGE_IDS)
            self._collection.upsert(ids=ids, embeddings=_random_unit_vectors(len(ids), dim))  # type: ignore[arg-type]
            self._collection.delete(ids=ids)
            left: int | None = None
            fts_optimized = vacuumed = False
            if self._sqlite_path is not None and self._sqlite_path.is_file():
                left = self._log_entries_left()
                fts_optimized, vacuumed = self._compact_sqlite()
            report = PurgeReport(
                log_entries_left=left,
                fts_optimized=fts_optimized,
                vacuumed=vacuumed,
                seconds=round(time.perf_counter() - started, 4),
            )
            self.last_purge = report
            if left:
                raise PurgeIncompleteError(
                    f"Chroma's log still holds {left} record(s) of collection {self.collection_name!r}: its "
                    f"vector segment did not sync (sync_threshold other than {_HNSW_SYNC_THRESHOLD} in "
                    "this process?). Open the store in a fresh process and call purge() again."
                )
            return report

    def _embedding_dim(self) -> int:
        if self._dim is None:
            self._dim = len(self._embed_query("dimension probe"))
        return self._dim

    def _forget_index_entries(self, doc_ids: Sequence[str]) -> None:
        """Delete index entries, first overwriting their vectors with random ones.

        HNSW only marks a deleted element; its vector stays in ``data_level0.bin``. An update
        overwrites the slot in place, so what stays is noise, not the deleted text's embedding.
        """
        existing = self._collection.get(ids=list(doc_ids), include=[])["ids"]
        if not existing:
            return
        self._collection.update(ids=existing, embeddings=_random_unit_vectors(len(existing), self._embedding_dim()))  # type: ignore[arg-type]
        self._collection.delete(ids=existing)

    def _log_entries_left(self) -> int:
        """Records of our collection in Chroma's log other than the purge's own last one (read only)."""
        assert self._sqlite_path is not None
        uri = f"{self._sqlite_path.as_uri()}?mode=ro"
        con = sqlite3.connect(uri, uri=True, timeout=60.0)
        try:
            rows = con.execute(
                "SELECT id FROM embeddings_queue WHERE topic LIKE ?", (f"%/{self._collection.id}",)
            ).fetchall()
        except sqlite3.DatabaseError:
            return 0  # not the schema we know: nothing to check against
        finally:
            con.close()
        return sum(1 for (doc_id,) in rows if doc_id not in _PURGE_IDS)

    def _compact_sqlite(self) -> tuple[bool, bool]:
        """Merge the FTS index and VACUUM ``chroma.sqlite3``; returns (fts_optimized, vacuumed).

        Both are plain SQLite maintenance that leaves the logical content unchanged; VACUUM is the
        statement Chroma's own ``vacuum`` command runs (its CLI prints to stdout and starts a second
        Chroma instance, which a library should not do per delete).
        """
        assert self._sqlite_path is not None
        con = sqlite3.connect(str(self._sqlite_path), timeout=60.0, isolation_level=None)
        try:
            con.execute("PRAGMA secure_delete = ON")
            fts_optimized = False
            if con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (_FTS_TABLE,)).fetchone():
                try:
                    con.execute(f"INSERT INTO {_FTS_TABLE}({_FTS_TABLE}) VALUES ('optimize')")
                    fts_optimized = True
                except sqlite3.OperationalError as e:  # e.g. a Python whose SQLite lacks FTS5/trigram
                    warnings.warn(
                        f"could not merge Chroma's full-text index ({e}); deleted documents' trigrams "
                        "stay in it until SQLite merges it by itself",
                        RuntimeWarning,
                        stacklevel=3,
                    )
            con.execute("VACUUM")
            if str(con.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return fts_optimized, True
        finally:
            con.close()

    def _remove_quarantined(self, original: Path) -> None:
        """Delete quarantined copies of anything at or below ``original`` (forgetting includes them)."""
        if not self._quarantine_root.is_dir():
            return
        prefix = str(original.relative_to(self.path))
        for entry in os.scandir(self._quarantine_root):
            try:
                reason = json.loads((Path(entry.path) / "reason.json").read_text())
                moved_from = str(reason["original_path"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if moved_from == prefix or moved_from.startswith(prefix + os.sep):
                shutil.rmtree(entry.path, ignore_errors=True)

    # ------------------------------------------------------------------ repair
    def reconcile(self, *, verify: bool = False) -> ReconcileReport:
        """Repair what a crash left half-done; run automatically when a store is opened.

        - temp dirs of dead writers are deleted;
        - interrupted deletions are finished;
        - complete adapter dirs (record.json + loadable files) with a missing or stale index
          entry are (re-)indexed from record.json;
        - index entries whose files are missing are deleted;
        - incomplete or corrupt dirs are moved to ``quarantine/`` (never deleted);
        - when anything was deleted, Chroma's copies are purged (:meth:`purge`).

        Adapters that are already indexed are only checked for their files' presence; pass
        ``verify=True`` to load every adapter (slower: every checksum and norm) and quarantine
        corrupt ones too.
        """
        with self._lock:
            counts = dict.fromkeys(ReconcileReport.model_fields, 0)
            counts["removed_temp"] = self._clean_temp()
            index = self._index_entries()
            on_disk: dict[str, tuple[AdapterRecord, str]] = {}
            for ns, adapters_dir in self._walk_namespaces():
                if (adapters_dir / _DELETING_MARKER).exists():
                    self._remove_dir(adapters_dir)
                    self._prune_empty(adapters_dir.parent)
                    counts["completed_deletes"] += 1
                    continue
                for entry in sorted(os.scandir(adapters_dir), key=lambda e: e.name):
                    found = self._reconcile_adapter(ns, Path(entry.path), index, verify, counts)
                    if found is not None:
                        on_disk[_doc_id(ns, found[0].id)] = found
            stale = [
                (rec, version)
                for doc_id, (rec, version) in on_disk.items()
                if index.get(doc_id, {}).get("version") != version
            ]
            if stale:
                embeddings = self._embed_documents([rec.text for rec, _ in stale])
                self._upsert(stale, embeddings)
                counts["reindexed"] = len(stale)
            dangling = [doc_id for doc_id in index if doc_id not in on_disk]
            if dangling:
                self._forget_index_entries(dangling)
                counts["dropped_index_entries"] = len(dangling)
            report = ReconcileReport(**counts)
            if not report.clean:
                self._cache.clear()
            # A delete a crash interrupted must forget as thoroughly as one that finished; a purge
            # a crash interrupted may have left its throw-away entries behind (the next one removes them).
            interrupted_purge = bool(self._collection.get(ids=list(_PURGE_IDS), include=[])["ids"])
            if counts["completed_deletes"] or counts["dropped_index_entries"] or interrupted_purge:
                self.purge()
            return report

    def _walk_namespaces(self) -> Iterator[tuple[Namespace, Path]]:
        if not self._adapters_root.is_dir():
            return
        for dirpath, dirnames, _files in os.walk(self._adapters_root):
            here = Path(dirpath)
            if _ADAPTERS_DIR in dirnames and here != self._adapters_root:
                yield here.relative_to(self._adapters_root).parts, here / _ADAPTERS_DIR
            dirnames[:] = [d for d in dirnames if _PART_RE.fullmatch(d)]

    def _reconcile_adapter(
        self,
        ns: Namespace,
        id_dir: Path,
        index: Mapping[str, Mapping[str, Any]],
        verify: bool,
        counts: dict[str, int],
    ) -> tuple[AdapterRecord, str] | None:
        """Settle one adapter dir; return its current (record, version) or None if nothing valid remains."""
        if not id_dir.is_dir() or not _PART_RE.fullmatch(id_dir.name):
            self._quarantine(id_dir, "not an adapter directory")
            counts["quarantined"] += 1
            return None
        if (id_dir / _DELETING_MARKER).exists():
            self._remove_dir(id_dir)
            self._prune_empty(id_dir.parent)
            counts["completed_deletes"] += 1
            return None
        indexed_version = index.get(_doc_id(ns, id_dir.name), {}).get("version")
        current: tuple[AdapterRecord, str] | None = None
        for entry in sorted(os.scandir(id_dir), key=lambda e: e.name, reverse=True):
            path = Path(entry.path)
            if not (entry.is_dir() and _VERSION_RE.fullmatch(entry.name)):
                self._quarantine(path, "unexpected entry in an adapter directory")
                counts["quarantined"] += 1
                continue
            if current is not None:
                # An older version a crash kept from being removed after a replace.
                self._remove_dir(path)
                counts["superseded_removed"] += 1
                continue
            try:
                record = self._check_version(ns, id_dir.name, path, full=verify or entry.name != indexed_version)
            except AdapterFormatError as e:
                self._quarantine(path, str(e))
                counts["quarantined"] += 1
                continue
            current = (record, entry.name)
        if current is None:
            self._prune_empty(id_dir)
        return current

    def _check_version(self, ns: Namespace, adapter_id: str, path: Path, *, full: bool) -> AdapterRecord:
        record = _read_record(path)
        if record.namespace != ns or record.id != adapter_id:
            raise AdapterFormatError(f"{path}: record.json names {record.namespace}/{record.id}, not its location")
        if full:
            adapter = LoraAdapter.load(path)
            if adapter.metadata.base_fingerprint != self.base_fingerprint:
                raise AdapterFormatError(f"{path}: adapter made for another base model")
        else:
            from ..lora.adapter import CONFIG_FILE, WEIGHTS_FILE

            for name in (CONFIG_FILE, WEIGHTS_FILE):
                if not (path / name).is_file():
                    raise AdapterFormatError(f"{path}: missing {name}")
        return record

    def _quarantine(self, path: Path, reason: str) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        dest = self._quarantine_root / f"{stamp}-{uuid.uuid4().hex[:8]}"
        dest.mkdir(parents=True)
        _write_json_atomic(
            dest / "reason.json",
            {"original_path": str(path.relative_to(self.path)), "reason": reason, "at": _now()},
        )
        os.rename(path, dest / path.name)
        _fsync_dir(path.parent)
        return dest

    def _clean_temp(self) -> int:
        if not self._tmp_root.is_dir():
            return 0
        removed = 0
        me = os.getpid()
        for entry in os.scandir(self._tmp_root):
            pid_text = entry.name.split("-", 1)[0]
            pid = int(pid_text) if pid_text.isdigit() else None
            with _GLOBAL_LOCK:
                in_flight = entry.path in _IN_FLIGHT
            # Another live process may be writing into its own temp dir right now: leave those.
            if in_flight or (pid is not None and pid != me and _pid_alive(pid)):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                Path(entry.path).unlink(missing_ok=True)
            removed += 1
        return removed

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
