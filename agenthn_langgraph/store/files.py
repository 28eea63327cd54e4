"""The adapter store's files: the truth, one directory per adapter version, written crash-safely.

Layout under the store's ``path``::

    store.json                                  # base fingerprint + embedding name the store was built for
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
A ``.deleting`` marker in an adapter's (or a namespace's) directory makes a crash in the middle of a
delete finish the delete instead of resurrecting it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import AdapterFormatError, StoreMismatchError
from ..lora.adapter import LoraAdapter
from .records import PART_RE, AdapterRecord, Namespace, now_iso

VERSION_RE = re.compile(r"v(\d{8})")
ADAPTERS_DIR = "_adapters"  # cannot be a namespace part: parts start with a letter or digit
RECORD_FILE = "record.json"
DELETING_MARKER = ".deleting"
STORE_FILE = "store.json"
RECORD_FORMAT = "agenthn-adapter-record"
STORE_FORMAT = "agenthn-adapter-store"
STORE_FORMAT_VERSION = 1

# Locks and in-flight temp dirs are per process and per store directory, not per AdapterStore
# object: two objects opened on the same directory in one process must not race each other.
_PATH_LOCKS: dict[str, threading.RLock] = {}
_IN_FLIGHT: set[str] = set()
_GLOBAL_LOCK = threading.Lock()


def path_lock(path: Path) -> threading.RLock:
    """The one re-entrant lock of this process for the store directory ``path``."""
    with _GLOBAL_LOCK:
        return _PATH_LOCKS.setdefault(str(path), threading.RLock())


# ---------------------------------------------------------------------------------------- durable writes
def fsync_dir(path: Path) -> None:
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


def write_file_durable(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    write_file_durable(tmp, json.dumps(payload, indent=2).encode("utf-8"))
    os.replace(tmp, path)
    fsync_dir(path.parent)


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


def read_record(version_dir: Path) -> AdapterRecord:
    path = version_dir / RECORD_FILE
    try:
        payload = json.loads(path.read_bytes())
        if not isinstance(payload, dict) or payload.get("format") != RECORD_FORMAT:
            raise AdapterFormatError(f"{path}: not an agenthn adapter record")
        return AdapterRecord.model_validate(payload["record"])
    except FileNotFoundError as e:
        raise AdapterFormatError(f"{version_dir}: missing {RECORD_FILE}") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, ValidationError) as e:
        raise AdapterFormatError(f"{path}: unreadable adapter record ({type(e).__name__})") from e


def versions(id_dir: Path) -> list[Path]:
    """Version dirs of one adapter, newest first (``[]`` when the adapter does not exist)."""
    try:
        names = [e.name for e in os.scandir(id_dir) if e.is_dir() and VERSION_RE.fullmatch(e.name)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [id_dir / n for n in sorted(names, reverse=True)]


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime ns) of ``path``, or None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


# ---------------------------------------------------------------------------------------- the tree
class AdapterFiles:
    """The directory tree of one store: paths, versions, temp dirs, deletion markers, quarantine.

    It neither indexes nor locks: :class:`~agenthn_langgraph.store.AdapterStore` holds the lock
    (``self.lock``, one per directory and process) around every change it makes here.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.adapters_root = path / "adapters"
        self.tmp_root = path / "tmp"
        self.quarantine_root = path / "quarantine"
        self.lock = path_lock(path)

    def create(self) -> None:
        for d in (self.adapters_root, self.tmp_root):
            d.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ identity (store.json)
    def check_identity(self, base_fingerprint: str, embedding_name: str) -> None:
        """Refuse a directory built for another base or embedding, before touching anything."""
        path = self.path / STORE_FILE
        if not path.exists():
            return
        try:
            found = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise StoreMismatchError(f"{path} is unreadable; is this an AdapterStore directory?") from e
        if not isinstance(found, dict) or found.get("format") != STORE_FORMAT:
            raise StoreMismatchError(f"{path} is not an AdapterStore identity file")
        if found.get("base_fingerprint") != base_fingerprint:
            raise StoreMismatchError(
                f"the store at {self.path} holds adapters for base model "
                f"{str(found.get('base_fingerprint'))[:16]}..., not {base_fingerprint[:16]}..."
            )
        if found.get("embedding") != embedding_name:
            raise StoreMismatchError(
                f"the store at {self.path} was indexed with embedding {found.get('embedding')!r}, "
                f"not {embedding_name!r}"
            )

    def write_identity(self, identity: Mapping[str, Any]) -> None:
        if not (self.path / STORE_FILE).exists():
            write_json_atomic(
                self.path / STORE_FILE, {"format": STORE_FORMAT, "version": STORE_FORMAT_VERSION, **identity}
            )

    # ------------------------------------------------------------------ paths
    def ns_dir(self, ns: Namespace) -> Path:
        return self.adapters_root.joinpath(*ns, ADAPTERS_DIR)

    def id_dir(self, ns: Namespace, adapter_id: str) -> Path:
        return self.ns_dir(ns) / adapter_id

    def current_version(self, ns: Namespace, adapter_id: str) -> Path | None:
        id_dir = self.id_dir(ns, adapter_id)
        if (id_dir / DELETING_MARKER).exists() or (id_dir.parent / DELETING_MARKER).exists():
            return None
        found = versions(id_dir)
        return found[0] if found else None

    def ids_on_disk(self, ns: Namespace) -> set[str]:
        ns_dir = self.ns_dir(ns)
        if not ns_dir.is_dir():
            return set()
        return {e.name for e in os.scandir(ns_dir) if e.is_dir() and PART_RE.fullmatch(e.name)}

    def namespaces(self) -> list[Namespace]:
        """Every namespace that holds at least one adapter version, sorted."""
        found: list[Namespace] = []
        for ns, adapters_dir in self.walk_namespaces():
            deleting = (adapters_dir / DELETING_MARKER).exists()
            if not deleting and any(versions(Path(e.path)) for e in os.scandir(adapters_dir) if e.is_dir()):
                found.append(ns)
        return sorted(found)

    def walk_namespaces(self) -> Iterator[tuple[Namespace, Path]]:
        """(namespace, its ``_adapters`` dir) for every namespace directory in the tree."""
        if not self.adapters_root.is_dir():
            return
        for dirpath, dirnames, _files in os.walk(self.adapters_root):
            here = Path(dirpath)
            if ADAPTERS_DIR in dirnames and here != self.adapters_root:
                yield here.relative_to(self.adapters_root).parts, here / ADAPTERS_DIR
            # Never descend into adapter dirs; only namespace parts can be sub-namespaces.
            dirnames[:] = [d for d in dirnames if PART_RE.fullmatch(d)]

    # ------------------------------------------------------------------ writing
    def new_temp_dir(self, tag: str) -> Path:
        tmp = self.tmp_root / f"{os.getpid()}-{uuid.uuid4().hex}-{tag}"
        with _GLOBAL_LOCK:
            _IN_FLIGHT.add(str(tmp))
        self.tmp_root.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        return tmp

    @staticmethod
    def done_with_temp(tmp: Path) -> None:
        with _GLOBAL_LOCK:
            _IN_FLIGHT.discard(str(tmp))

    def write_version(self, adapter: LoraAdapter, record: AdapterRecord) -> Path:
        """Write adapter + record.json to tmp/, fsync, rename in as the next version. Returns it."""
        tmp = self.new_temp_dir("put")
        try:
            adapter.save(tmp)
            payload = {"format": RECORD_FORMAT, "record": record.model_dump(mode="json", exclude={"score"})}
            write_file_durable(tmp / RECORD_FILE, json.dumps(payload, indent=2).encode("utf-8"))
            fsync_dir(tmp)
            id_dir = self.id_dir(record.namespace, record.id)
            for _ in range(100):
                found = versions(id_dir)
                n = int(found[0].name[1:]) + 1 if found else 1
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
                fsync_dir(id_dir)
                fsync_dir(id_dir.parent)
                return target
            raise OSError(f"could not place a new version under {id_dir}")
        except Exception:
            # A failed put leaves nothing behind. A crash (or KeyboardInterrupt) skips this and
            # leaves the temp dir for reconcile().
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            self.done_with_temp(tmp)

    def mark_deleting(self, directory: Path) -> None:
        """The marker that makes a crash between index and files finish a delete, not resurrect it."""
        write_file_durable(directory / DELETING_MARKER, b"")
        fsync_dir(directory)

    @staticmethod
    def is_marked_deleting(directory: Path) -> bool:
        return (directory / DELETING_MARKER).exists()

    def remove_dir(self, path: Path) -> None:
        """Take ``path`` out of the tree atomically (rename into tmp/), then delete it."""
        if not path.exists():
            return
        trash = self.tmp_root / f"{os.getpid()}-{uuid.uuid4().hex}-trash"
        with _GLOBAL_LOCK:
            _IN_FLIGHT.add(str(trash))
        try:
            self.tmp_root.mkdir(parents=True, exist_ok=True)
            os.rename(path, trash)
            fsync_dir(path.parent)
            shutil.rmtree(trash, ignore_errors=True)
        finally:
            self.done_with_temp(trash)

    def prune_empty(self, start: Path) -> None:
        """Remove empty directories from ``start`` up to (not including) ``adapters/``."""
        d = start
        while d != self.adapters_root and self.adapters_root in d.parents:
            try:
                d.rmdir()
            except OSError:
                return
            d = d.parent

    # ------------------------------------------------------------------ repair helpers
    def quarantine(self, path: Path, reason: str) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        dest = self.quarantine_root / f"{stamp}-{uuid.uuid4().hex[:8]}"
        dest.mkdir(parents=True)
        write_json_atomic(
            dest / "reason.json",
            {"original_path": str(path.relative_to(self.path)), "reason": reason, "at": now_iso()},
        )
        os.rename(path, dest / path.name)
        fsync_dir(path.parent)
        return dest

    def remove_quarantined(self, original: Path) -> None:
        """Delete quarantined copies of anything at or below ``original`` (forgetting includes them)."""
        if not self.quarantine_root.is_dir():
            return
        prefix = str(original.relative_to(self.path))
        for entry in os.scandir(self.quarantine_root):
            try:
                reason = json.loads((Path(entry.path) / "reason.json").read_text())
                moved_from = str(reason["original_path"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if moved_from == prefix or moved_from.startswith(prefix + os.sep):
                shutil.rmtree(entry.path, ignore_errors=True)

    def clean_temp(self) -> int:
        """Delete temp dirs of dead writers (another live process's are left alone); returns how many."""
        if not self.tmp_root.is_dir():
            return 0
        removed = 0
        me = os.getpid()
        for entry in os.scandir(self.tmp_root):
            pid_text = entry.name.split("-", 1)[0]
            pid = int(pid_text) if pid_text.isdigit() else None
            with _GLOBAL_LOCK:
                in_flight = entry.path in _IN_FLIGHT
            if in_flight or (pid is not None and pid != me and _pid_alive(pid)):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                Path(entry.path).unlink(missing_ok=True)
            removed += 1
        return removed
