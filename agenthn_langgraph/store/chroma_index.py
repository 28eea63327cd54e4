"""The default index backend: Chroma, embedded in the store's directory or a ``chroma run`` server.

Forgetting: deleting from Chroma's API does not delete from Chroma's files. Its write-ahead log
(``embeddings_queue`` in ``chroma.sqlite3``) keeps every document, metadata and vector written,
until the vector segment has been synced to disk past it; SQLite keeps deleted rows in free pages;
the FTS index keeps deleted documents' trigrams; HNSW keeps deleted vectors in their slots. So
:meth:`ChromaIndex.forget` overwrites the doomed vectors before deleting the entries, and
:meth:`ChromaIndex.purge` makes Chroma purge its log, merges the FTS index and VACUUMs the database.

One embedded index should be used by one process at a time (Chroma's local mode); for several
processes, run ``chroma run --path DIR`` and pass ``client=chromadb.HttpClient(...)``.
"""

from __future__ import annotations

import sqlite3
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PurgeIncompleteError, StoreMismatchError
from .index import AdapterIndex, Entry, Key, entry_metadata, is_entry, record_from_metadata
from .records import AdapterRecord, Namespace, PurgeReport, doc_id, namespace_key

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from chromadb.api.types import Documents, EmbeddingFunction

DEFAULT_COLLECTION = "agenthn_adapters"
_META_FINGERPRINT = "agenthn_base_fingerprint"
_META_EMBEDDING = "agenthn_embedding"
_META_FORMAT = "agenthn_store_format"
_INDEX_FORMAT_VERSION = 1
_PAGE = 5000
# Chroma's local HNSW segment records how far it has synced only every ``sync_threshold`` log
# records, and the log is purged only below that point; 2 is the smallest value Chroma accepts.
HNSW_SYNC_THRESHOLD = 2
# Entries written and deleted again by purge() to push that sync point past every real record.
# Entries' ids always contain "::", so these can never be an adapter's.
PURGE_IDS = tuple(f"_agenthn_purge_{i}" for i in range(HNSW_SYNC_THRESHOLD))
_FTS_TABLE = "embedding_fulltext_search"


def _random_unit_vectors(n: int, dim: int) -> list[list[float]]:
    """Vectors that carry no information: they replace a deleted entry's embedding in HNSW."""
    import numpy as np

    v = np.random.default_rng().standard_normal((n, dim))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return [[float(x) for x in row] for row in v]


class ChromaIndex(AdapterIndex):
    """Adapters indexed in a Chroma collection (cosine distance over ``embedding_function``).

    Args:
        client: any chromadb client, e.g. ``chromadb.HttpClient(host, port)`` for a ``chroma run``
            server. Default: an embedded ``PersistentClient`` at ``path``.
        path: the embedded database's directory (``AdapterStore`` passes ``<store>/chroma``).
        collection: collection name (3-512 characters).
        embedding_function: a registered Chroma embedding function; default
            :class:`~agenthn_langgraph.store.embeddings.MiniLMEmbeddingFunction` (offline).
    """

    def __init__(
        self,
        client: ClientAPI | None = None,
        *,
        path: str | Path | None = None,
        collection: str = DEFAULT_COLLECTION,
        embedding_function: EmbeddingFunction[Documents] | None = None,
    ) -> None:
        if not isinstance(collection, str) or not 3 <= len(collection) <= 512:
            raise ValueError("collection must be a str of 3 to 512 characters")
        if client is None and path is None:
            raise TypeError("ChromaIndex needs a client or the path of an embedded database")
        from .embeddings import MiniLMEmbeddingFunction

        self.collection_name = collection
        self._ef: Any = embedding_function if embedding_function is not None else MiniLMEmbeddingFunction()
        ef_name = self._ef.name()
        if not isinstance(ef_name, str) or not ef_name:
            raise TypeError("embedding_function must implement name() (a registered Chroma embedding function)")
        self.embedding_name = ef_name
        self._client_arg = client
        self._path = None if path is None else Path(path)
        self._client: ClientAPI | None = None
        self._collection: Collection | None = None
        self._sqlite_path: Path | None = None
        self._dim: int | None = None

    def __repr__(self) -> str:
        where = "embedded" if self._client_arg is None else type(self._client_arg).__name__
        return f"ChromaIndex({where}, collection={self.collection_name!r}, embedding={self.embedding_name!r})"

    @property
    def embedding_function(self) -> EmbeddingFunction[Documents]:
        return self._ef

    @property
    def collection(self) -> Collection:
        """The Chroma collection (read it freely; write through the store)."""
        if self._collection is None:
            raise RuntimeError("the index is not bound to a store yet")
        return self._collection

    # ------------------------------------------------------------------ opening
    def bind(self, base_fingerprint: str) -> None:
        import chromadb
        from chromadb.config import Settings

        client = self._client_arg
        if client is None:
            assert self._path is not None
            client = chromadb.PersistentClient(path=str(self._path), settings=Settings(anonymized_telemetry=False))
        self._client = client
        self._sqlite_path = self._local_sqlite_path(client)
        self._collection = self._open_collection(client, base_fingerprint)

    def _open_collection(self, client: ClientAPI, base_fingerprint: str) -> Collection:
        from chromadb.errors import NotFoundError

        wanted = {
            _META_FINGERPRINT: base_fingerprint,
            _META_EMBEDDING: self.embedding_name,
            _META_FORMAT: _INDEX_FORMAT_VERSION,
        }
        name = self.collection_name
        try:
            col = client.get_collection(name, embedding_function=self._ef)
        except NotFoundError:
            col = client.get_or_create_collection(
                name,
                embedding_function=self._ef,
                metadata=wanted,
                configuration={
                    "hnsw": {
                        "space": "cosine",
                        "sync_threshold": HNSW_SYNC_THRESHOLD,
                        "batch_size": HNSW_SYNC_THRESHOLD,
                    }
                },
            )
        except ValueError as e:
            # Chroma refuses an embedding function whose name differs from the persisted one.
            if "conflict" in str(e).lower():
                raise StoreMismatchError(
                    f"collection {name!r} was built with another embedding function than {self.embedding_name!r}"
                ) from e
            raise
        meta = dict(col.metadata or {})
        if meta.get(_META_FINGERPRINT) is None or meta.get(_META_EMBEDDING) is None:
            raise StoreMismatchError(f"collection {name!r} was not created by an AdapterStore")
        if meta[_META_FINGERPRINT] != base_fingerprint:
            raise StoreMismatchError(
                f"collection {name!r} indexes adapters for base model "
                f"{str(meta[_META_FINGERPRINT])[:16]}..., not {base_fingerprint[:16]}..."
            )
        if meta[_META_EMBEDDING] != self.embedding_name:
            raise StoreMismatchError(
                f"collection {name!r} was indexed with embedding {meta[_META_EMBEDDING]!r}, not {self.embedding_name!r}"
            )
        hnsw = (col.configuration or {}).get("hnsw") or {}
        space = hnsw.get("space")
        if space not in (None, "cosine"):
            raise StoreMismatchError(f"collection {name!r} uses {space!r} distance, not cosine")
        if hnsw.get("sync_threshold") != HNSW_SYNC_THRESHOLD:
            # A store created before purging existed (Chroma's default is 1000): lower it, so that
            # purge() can make Chroma drop its log. Chroma applies this to the vector segment the
            # next time it is loaded, which for a store opened in a fresh process is now.
            col.modify(
                configuration={"hnsw": {"sync_threshold": HNSW_SYNC_THRESHOLD, "batch_size": HNSW_SYNC_THRESHOLD}}
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

    # ------------------------------------------------------------------ embedding
    def _embed_documents(self, texts: list[str]) -> list[list[float]]:
        if hasattr(self._ef, "embed_documents"):
            return [list(map(float, e)) for e in self._ef.embed_documents(texts)]
        return [list(map(float, e)) for e in self._ef(texts)]

    def _embed_query(self, text: str) -> list[float]:
        out = self._ef.embed_query([text]) if hasattr(self._ef, "embed_query") else self._ef([text])
        return [float(x) for x in out[0]]

    def _embedding_dim(self) -> int:
        if self._dim is None:
            self._dim = len(self._embed_query("dimension probe"))
        return self._dim

    # ------------------------------------------------------------------ writing
    def prepare(self, texts: Sequence[str]) -> list[list[float]]:
        """The texts' embeddings (the slow part of a put, done outside the store's lock)."""
        return self._embed_documents(list(texts)) if texts else []

    def upsert(self, entries: Sequence[Entry], prepared: list[list[float]] | None = None) -> None:
        if not entries:
            return
        embeddings = prepared if prepared is not None else self.prepare([rec.text for rec, _ in entries])
        self.collection.upsert(
            ids=[doc_id(r.namespace, r.id) for r, _ in entries],
            embeddings=[list(e) for e in embeddings],  # type: ignore[arg-type]
            documents=[r.text for r, _ in entries],
            metadatas=[entry_metadata(r, v) for r, v in entries],  # type: ignore[misc]
        )

    def forget(self, keys: Sequence[Key]) -> None:
        """Delete entries, first overwriting their vectors with random ones.

        HNSW only marks a deleted element; its vector stays in ``data_level0.bin``. An update
        overwrites the slot in place, so what stays is noise, not the deleted text's embedding.
        """
        self._forget_ids([doc_id(ns, i) for ns, i in keys])

    def _forget_ids(self, ids: Sequence[str]) -> None:
        existing = self.collection.get(ids=list(ids), include=[])["ids"] if ids else []
        if not existing:
            return
        self.collection.update(ids=existing, embeddings=_random_unit_vectors(len(existing), self._embedding_dim()))  # type: ignore[arg-type]
        self.collection.delete(ids=existing)

    # ------------------------------------------------------------------ reading
    @staticmethod
    def _where(ns: Namespace, kinds: list[str] | None = None, name: str | None = None) -> dict[str, Any]:
        conds: list[dict[str, Any]] = [{"namespace": namespace_key(ns)}]
        if kinds is not None:
            conds.append({"kind": kinds[0]} if len(kinds) == 1 else {"kind": {"$in": kinds}})
        if name is not None:
            conds.append({"name": name})
        return conds[0] if len(conds) == 1 else {"$and": conds}

    def search(
        self, ns: Namespace, query: str, *, k: int, kinds: list[str] | None, name: str | None
    ) -> list[AdapterRecord]:
        res = self.collection.query(
            query_embeddings=[self._embed_query(query)],  # type: ignore[arg-type]
            n_results=k,
            where=self._where(ns, kinds, name),
            include=["documents", "metadatas", "distances"],  # type: ignore[list-item]
        )
        metas = (res["metadatas"] or [[]])[0]
        docs = (res["documents"] or [[]])[0]
        dists = (res["distances"] or [[]])[0]
        key = namespace_key(ns)
        return [
            record_from_metadata(meta, doc, 1.0 - float(dist))
            for meta, doc, dist in zip(metas, docs, dists, strict=False)
            if meta and meta.get("namespace") == key  # belt and braces: the where already did this
        ]

    def list(self, ns: Namespace, *, kinds: list[str] | None, name: str | None) -> list[AdapterRecord]:
        res = self.collection.get(where=self._where(ns, kinds, name), include=["documents", "metadatas"])  # type: ignore[list-item]
        return [
            record_from_metadata(meta, doc, None)
            for meta, doc in zip(res["metadatas"] or [], res["documents"] or [], strict=False)
            if meta
        ]

    def ids(self, ns: Namespace) -> list[str]:
        return [d.split("::", 1)[1] for d in self.collection.get(where=self._where(ns), include=[])["ids"]]

    def contains(self, ns: Namespace, adapter_id: str) -> bool:
        return bool(self.collection.get(ids=[doc_id(ns, adapter_id)], include=[])["ids"])

    def held_elsewhere(self, ns: Namespace, adapter_id: str) -> bool:
        found = self.collection.get(
            where={"$and": [{"adapter_id": adapter_id}, {"namespace": {"$ne": namespace_key(ns)}}]},
            limit=1,
            include=[],
        )
        return bool(found["ids"])

    def versions(self) -> dict[Key, str]:
        out: dict[Key, str] = {}
        offset = 0
        while True:
            page = self.collection.get(include=["metadatas"], limit=_PAGE, offset=offset)  # type: ignore[list-item]
            ids, metas = page["ids"], page["metadatas"] or []
            for meta in metas:
                if is_entry(meta):
                    out[(tuple(str(meta["namespace"]).split("/")), str(meta["adapter_id"]))] = str(meta.get("version"))
            if len(ids) < _PAGE:
                return out
            offset += _PAGE

    def count(self, ns: Namespace | None = None) -> int:
        if ns is None:
            return self.collection.count()
        return len(self.collection.get(where=self._where(ns), include=[])["ids"])

    # ------------------------------------------------------------------ forgetting for real
    def purge(self) -> PurgeReport:
        """Make Chroma drop what deletes left in its own files.

        Chroma (1.x, local) logs every write in ``embeddings_queue`` and deletes log records only
        below the point its HNSW segment has synced to disk, which moves every ``sync_threshold``
        records (this index's collections use Chroma's minimum, 2). So purge writes
        ``sync_threshold`` throw-away entries and deletes them again: the segment syncs past every
        earlier record and Chroma's own automatic purge deletes them (only the last throw-away
        record stays). Then, for an embedded index, the SQLite FTS index is merged (FTS5
        ``optimize``: deleted documents' trigrams leave the index) and ``chroma.sqlite3`` is
        VACUUMed (what ``chroma utils vacuum`` runs), so no deleted row survives in a free page.

        Against a server (``client=HttpClient``) the log is purged the same way, but the server's
        database file is not ours to vacuum: run ``chroma utils vacuum --path ...`` there.

        Raises:
            PurgeIncompleteError: Chroma still logs records of this collection (e.g. its vector
                segment was loaded with another ``sync_threshold`` earlier in this process).
        """
        started = time.perf_counter()
        ids = list(PURGE_IDS)
        self.collection.upsert(ids=ids, embeddings=_random_unit_vectors(len(ids), self._embedding_dim()))  # type: ignore[arg-type]
        self.collection.delete(ids=ids)
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
        if left:
            error = PurgeIncompleteError(
                f"Chroma's log still holds {left} record(s) of collection {self.collection_name!r}: its "
                f"vector segment did not sync (sync_threshold other than {HNSW_SYNC_THRESHOLD} in "
                "this process?). Open the store in a fresh process and call purge() again."
            )
            error.report = report  # type: ignore[attr-defined]  # what was measured, for last_purge
            raise error
        return report

    def purge_interrupted(self) -> bool:
        # a purge a crash interrupted may have left its throw-away entries behind
        return bool(self.collection.get(ids=list(PURGE_IDS), include=[])["ids"])

    def _log_entries_left(self) -> int:
        """Records of our collection in Chroma's log other than the purge's own last one (read only)."""
        assert self._sqlite_path is not None
        uri = f"{self._sqlite_path.as_uri()}?mode=ro"
        con = sqlite3.connect(uri, uri=True, timeout=60.0)
        try:
            rows = con.execute(
                "SELECT id FROM embeddings_queue WHERE topic LIKE ?", (f"%/{self.collection.id}",)
            ).fetchall()
        except sqlite3.DatabaseError:
            return 0  # not the schema we know: nothing to check against
        finally:
            con.close()
        return sum(1 for (entry_id,) in rows if entry_id not in PURGE_IDS)

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
                        stacklevel=4,
                    )
            con.execute("VACUUM")
            if str(con.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return fts_optimized, True
        finally:
            con.close()
