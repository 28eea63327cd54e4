"""Repair after a crash: make the index agree with the files, which are the truth.

Run by :meth:`AdapterStore.reconcile` (and so on every open), under the store's lock:

- temp dirs of dead writers are deleted;
- interrupted deletions (a ``.deleting`` marker) are finished;
- complete adapter dirs (record.json + loadable files) with a missing or stale index entry are
  (re-)indexed from record.json (a put that crashed after its files were durable rolls forward);
- index entries whose files are missing are deleted;
- incomplete or corrupt dirs are moved to ``quarantine/`` (never deleted);
- older versions a crash kept from being removed after a replace are removed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import AdapterFormatError
from ..lora.adapter import CONFIG_FILE, WEIGHTS_FILE, LoraAdapter
from .files import VERSION_RE, AdapterFiles, read_record
from .index import AdapterIndex, Entry, Key
from .records import PART_RE, AdapterRecord, Namespace, ReconcileReport


def reconcile(files: AdapterFiles, index: AdapterIndex, base_fingerprint: str, *, verify: bool) -> ReconcileReport:
    """Settle every namespace on disk against ``index``; the caller holds the store's lock.

    Adapters already indexed at their current version are only checked for their files'
    presence; ``verify`` loads every adapter (every checksum and norm) and quarantines corrupt ones.
    """
    counts = dict.fromkeys(ReconcileReport.model_fields, 0)
    counts["removed_temp"] = files.clean_temp()
    indexed = index.versions()
    on_disk: dict[Key, Entry] = {}
    for ns, adapters_dir in files.walk_namespaces():
        if files.is_marked_deleting(adapters_dir):
            files.remove_dir(adapters_dir)
            files.prune_empty(adapters_dir.parent)
            counts["completed_deletes"] += 1
            continue
        for entry in sorted(os.scandir(adapters_dir), key=lambda e: e.name):
            found = _settle_adapter(files, base_fingerprint, ns, Path(entry.path), indexed, verify, counts)
            if found is not None:
                on_disk[(ns, found[0].id)] = found
    stale = [entry for key, entry in on_disk.items() if indexed.get(key) != entry[1]]
    if stale:
        index.upsert(stale, index.prepare([rec.text for rec, _ in stale]))
        counts["reindexed"] = len(stale)
    dangling = [key for key in indexed if key not in on_disk]
    if dangling:
        index.forget(dangling)
        counts["dropped_index_entries"] = len(dangling)
    return ReconcileReport(**counts)


def _settle_adapter(
    files: AdapterFiles,
    base_fingerprint: str,
    ns: Namespace,
    id_dir: Path,
    indexed: Mapping[Key, str],
    verify: bool,
    counts: dict[str, int],
) -> Entry | None:
    """Settle one adapter dir; return its current (record, version) or None if nothing valid remains."""
    if not id_dir.is_dir() or not PART_RE.fullmatch(id_dir.name):
        files.quarantine(id_dir, "not an adapter directory")
        counts["quarantined"] += 1
        return None
    if files.is_marked_deleting(id_dir):
        files.remove_dir(id_dir)
        files.prune_empty(id_dir.parent)
        counts["completed_deletes"] += 1
        return None
    indexed_version = indexed.get((ns, id_dir.name))
    current: Entry | None = None
    for entry in sorted(os.scandir(id_dir), key=lambda e: e.name, reverse=True):
        path = Path(entry.path)
        if not (entry.is_dir() and VERSION_RE.fullmatch(entry.name)):
            files.quarantine(path, "unexpected entry in an adapter directory")
            counts["quarantined"] += 1
            continue
        if current is not None:
            # An older version a crash kept from being removed after a replace.
            files.remove_dir(path)
            counts["superseded_removed"] += 1
            continue
        try:
            record = _check_version(
                base_fingerprint, ns, id_dir.name, path, full=verify or entry.name != indexed_version
            )
        except AdapterFormatError as e:
            files.quarantine(path, str(e))
            counts["quarantined"] += 1
            continue
        current = (record, entry.name)
    if current is None:
        files.prune_empty(id_dir)
    return current


def _check_version(base_fingerprint: str, ns: Namespace, adapter_id: str, path: Path, *, full: bool) -> AdapterRecord:
    record = read_record(path)
    if record.namespace != ns or record.id != adapter_id:
        raise AdapterFormatError(f"{path}: record.json names {record.namespace}/{record.id}, not its location")
    if full:
        adapter = LoraAdapter.load(path)
        if adapter.metadata.base_fingerprint != base_fingerprint:
            raise AdapterFormatError(f"{path}: adapter made for another base model")
    else:
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (path / name).is_file():
                raise AdapterFormatError(f"{path}: missing {name}")
    return record
