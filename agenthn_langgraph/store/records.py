"""What the adapter store says about adapters: records, reports, and the checks on every argument.

Shared by the store's files (:mod:`.files`), its index backends (:mod:`.index`) and the store
itself (:mod:`.adapter_store`), so each validates and names things the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import get_args

from pydantic import BaseModel, ConfigDict, Field

from ..errors import NamespaceError
from ..lora.adapter import AdapterKind

Namespace = tuple[str, ...]
NamespaceLike = str | Sequence[str]

KINDS: frozenset[str] = frozenset(get_args(AdapterKind))
MAX_NAMESPACE_DEPTH = 8
PREVIEW_CHARS = 160
PART_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")
"""A namespace part or an adapter id: it can never be ``_adapters`` nor contain ``/`` or ``::``."""


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
        if not PART_RE.fullmatch(part):
            raise NamespaceError(
                f"malformed namespace part {part!r}: 1-128 characters from [A-Za-z0-9_.@-], "
                "starting with a letter or digit"
            )
    return tuple(parts)  # type: ignore[arg-type]


def namespace_key(ns: Namespace) -> str:
    return "/".join(ns)


def doc_id(ns: Namespace, adapter_id: str) -> str:
    # "::" cannot occur in a namespace part or an id, so the split is unambiguous.
    return f"{namespace_key(ns)}::{adapter_id}"


def check_adapter_id(adapter_id: object) -> str:
    if not isinstance(adapter_id, str):
        raise TypeError(f"adapter_id must be a str, got {type(adapter_id).__name__}")
    if not PART_RE.fullmatch(adapter_id):
        raise ValueError(
            f"malformed adapter id {adapter_id!r}: 1-128 characters from [A-Za-z0-9_.@-], "
            "starting with a letter or digit"
        )
    return adapter_id


def check_kind(kind: object) -> str:
    if not isinstance(kind, str):
        raise TypeError(f"kind must be a str, got {type(kind).__name__}")
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(KINDS)}")
    return kind


def kind_filter(kind: object) -> list[str] | None:
    if kind is None:
        return None
    if isinstance(kind, str):
        return [check_kind(kind)]
    if isinstance(kind, Sequence | set | frozenset):
        return [check_kind(k) for k in kind]
    raise TypeError(f"kind must be a str or a sequence of str, got {type(kind).__name__}")


def check_name(name: object) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__}")
    if not name.strip():
        raise ValueError("name must not be empty")
    return name


def check_int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    return value


def check_extra(extra: object) -> dict[str, str | int | float | bool]:
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


def now_iso() -> str:
    # Fixed microsecond precision keeps ISO strings sortable as text.
    return datetime.now(UTC).isoformat(timespec="microseconds")
