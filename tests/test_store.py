"""AdapterStore: real Chroma, real MiniLM embeddings, real adapters from the shipped tiny model."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
import torch
from chromadb.config import Settings
from chromadb.utils.embedding_functions import register_embedding_function

from agenthn_langgraph.errors import (
    AdapterFormatError,
    AdapterMismatchError,
    AdapterNotFoundError,
    EmptyTextError,
    NamespaceError,
    PurgeIncompleteError,
    StoreMismatchError,
)
from agenthn_langgraph.lora.adapter import AdapterMetadata, LoraAdapter
from agenthn_langgraph.store import (
    AdapterRecord,
    AdapterStore,
    ChromaIndex,
    MiniLMEmbeddingFunction,
    chroma_index,
    normalize_namespace,
)
from agenthn_langgraph.store import embeddings as embeddings_module
from agenthn_langgraph.store import files as files_module
from agenthn_langgraph.tiny_default import load_default

ROOT = Path(__file__).resolve().parents[1]
FROG = "<user> my pet is a frog . <assistant> nice ! <end>"
LIMA = "<user> i work as a teacher in lima . <assistant> cool ! <end>"
TEA = "<user> my favorite drink is green tea . <assistant> ok ! <end>"
ALICE = ("users", "alice")
BOB = ("users", "bob")


# ---------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def model() -> Any:
    return load_default()


@pytest.fixture(scope="module")
def adapters(model: Any) -> dict[str, LoraAdapter]:
    return {text: model.internalize(text, kind="segment") for text in (FROG, LIMA, TEA)}


@pytest.fixture()
def store(tmp_path: Path, model: Any) -> AdapterStore:
    return AdapterStore.for_model(model, tmp_path / "store")


@register_embedding_function
class _OtherNameEmbedding(MiniLMEmbeddingFunction):
    """Same vectors, another name: a store built with MiniLM must refuse it."""

    @staticmethod
    def name() -> str:
        return "agenthn-test-other-embedding"

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> _OtherNameEmbedding:
        return _OtherNameEmbedding(device=str(config.get("device", "cpu")))


class _SimulatedCrash(BaseException):
    """Raised at a crash point: a BaseException, so the store's ``except Exception`` cleanup is skipped."""


def _crash_in(
    monkeypatch: pytest.MonkeyPatch, owner: object, attr: str, when: Callable[..., bool] = lambda *a, **k: True
) -> None:
    """Make ``owner.attr`` "crash" (raise _SimulatedCrash) when ``when(*args)`` holds.

    The fault is injected from the test into the real step, so production code carries no hooks:
    ``ChromaIndex.upsert`` crashes between durable files and the index entry, the files module's
    ``write_file_durable`` (for record.json) while the files are written, ``store.files.remove_dir``
    after the index entry, before the old version is cleaned up, and
    ``store.index.forget`` after a delete's marker, before the index entry goes.
    """
    real = getattr(owner, attr)

    def crash(*args: Any, **kwargs: Any) -> Any:
        if when(*args, **kwargs):
            raise _SimulatedCrash(attr)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, attr, crash)


def _same_tensors(a: LoraAdapter, b: LoraAdapter) -> bool:
    return (
        a.weights.keys() == b.weights.keys()
        and a.scaling == b.scaling
        and all(torch.equal(a.weights[n][0], b.weights[n][0]) for n in a.weights)
        and all(torch.equal(a.weights[n][1], b.weights[n][1]) for n in a.weights)
    )


def _version_dirs(store: AdapterStore, ns: tuple[str, ...], adapter_id: str) -> list[str]:
    id_dir = store.path / "adapters" / Path(*ns) / "_adapters" / adapter_id
    return sorted(p.name for p in id_dir.iterdir()) if id_dir.is_dir() else []


def _all_adapter_dirs(store: AdapterStore) -> set[str]:
    """``"ns/key::id"`` for every adapter directory holding a version, found by walking the files."""
    out = set()
    for adapters_dir in (store.path / "adapters").rglob("_adapters"):
        ns = adapters_dir.parent.relative_to(store.path / "adapters").as_posix()
        for id_dir in adapters_dir.iterdir():
            if id_dir.is_dir() and any(v.name.startswith("v") for v in id_dir.iterdir()):
                out.add(f"{ns}::{id_dir.name}")
    return out


# ---------------------------------------------------------------------------------------- 1. basics
def test_put_get_round_trip_and_search(store: AdapterStore, adapters: dict[str, LoraAdapter]) -> None:
    frog = store.put(adapters[FROG], namespace=ALICE, text=FROG, turn_range=(0, 1), extra={"src": "chat", "n": 2})
    lima = store.put(adapters[LIMA], namespace=ALICE, text=LIMA, kind="profile", name="job", adapter_id="job-1")
    tea = store.put(adapters[TEA], namespace=ALICE, text=TEA, kind="notes")

    assert isinstance(frog, AdapterRecord) and len(frog.id) == 32 and lima.id == "job-1"
    loaded = store.get(frog.id, namespace=ALICE)
    assert _same_tensors(loaded, adapters[FROG])
    assert loaded.metadata == adapters[FROG].metadata

    rec = store.get_record(frog.id, namespace=ALICE)
    assert rec == frog
    assert (rec.kind, rec.turn_start, rec.turn_end, rec.namespace, rec.text) == ("segment", 0, 1, ALICE, FROG)
    assert rec.preview == FROG and rec.extra == {"src": "chat", "n": 2} and rec.score is None
    assert store.get_record("job-1", namespace=ALICE).name == "job"
    assert store.exists("job-1", namespace=ALICE) and not store.exists("nope", namespace=ALICE)

    hits = store.search("what animal do i keep as a pet?", namespace=ALICE, k=3)
    assert [h.id for h in hits][0] == frog.id and len(hits) == 3
    assert all(h.score is not None for h in hits) and hits[0].score > hits[1].score >= hits[2].score
    assert hits[0].text == FROG and hits[0].extra == {"src": "chat", "n": 2}
    assert store.search("where is my job? i teach school", namespace=ALICE, k=1)[0].id == "job-1"
    assert [h.id for h in store.search("pet frog", namespace=ALICE, kind="profile")] == ["job-1"]
    assert {h.id for h in store.search("pet frog", namespace=ALICE, kind=["notes", "segment"])} == {tea.id, frog.id}
    assert [h.id for h in store.search("anything", namespace=ALICE, name="job")] == ["job-1"]
    assert store.search("pet frog", namespace=ALICE, min_score=0.99) == []
    assert store.search("pet frog", namespace=("users", "nobody")) == []

    assert [r.id for r in store.list(namespace=ALICE)] == [frog.id, "job-1", tea.id]  # by created_at
    assert [r.id for r in store.list(namespace=ALICE, kind="notes")] == [tea.id]
    assert store.count(namespace=ALICE) == 3 and store.count() == 3
    assert store.namespaces() == [ALICE]

    # Replacing an id keeps one entry and one version; the new content wins everywhere.
    new = store.put(adapters[TEA], namespace=ALICE, text=TEA, kind="profile", adapter_id="job-1", name="drink")
    assert store.count(namespace=ALICE) == 3
    assert _same_tensors(store.get("job-1", namespace=ALICE), adapters[TEA])
    assert store.get_record("job-1", namespace=ALICE) == new
    assert store.search("green tea", namespace=ALICE, name="drink")[0].id == "job-1"
    assert store.search("green tea", namespace=ALICE, name="job") == []
    assert _version_dirs(store, ALICE, "job-1") == ["v00000002"]

    store.delete(tea.id, namespace=ALICE)
    assert store.count(namespace=ALICE) == 2 and not store.exists(tea.id, namespace=ALICE)
    with pytest.raises(AdapterNotFoundError):
        store.get(tea.id, namespace=ALICE)


def test_preview_and_bare_str_namespace(store: AdapterStore, adapters: dict[str, LoraAdapter]) -> None:
    long_text = "word " * 100
    rec = store.put(adapters[FROG], namespace="alice", text=long_text)
    assert rec.namespace == ("alice",) and len(rec.preview) <= 160 and rec.preview.endswith("...")
    assert store.get_record(rec.id, namespace=["alice"]).preview == rec.preview
    assert normalize_namespace("alice") == ("alice",)


async def test_async_twins(store: AdapterStore, adapters: dict[str, LoraAdapter]) -> None:
    rec = await store.aput(adapters[FROG], namespace=ALICE, text=FROG)
    other = await store.aput(adapters[LIMA], namespace=ALICE, text=LIMA)
    got, hits, listed = await asyncio.gather(
        store.aget(rec.id, namespace=ALICE),
        store.asearch("my pet frog", namespace=ALICE, k=1),
        store.alist(namespace=ALICE),
    )
    assert _same_tensors(got, adapters[FROG]) and hits[0].id == rec.id and len(listed) == 2
    await store.adelete(other.id, namespace=ALICE)
    assert (await store.aget_record(rec.id, namespace=ALICE)).id == rec.id
    assert await store.adelete_namespace(ALICE) == 1


def test_concurrent_puts_from_threads(store: AdapterStore, adapters: dict[str, LoraAdapter]) -> None:
    texts = [f"memory {i}: {t}" for i, t in enumerate([FROG, LIMA, TEA] * 4)]

    def put(i: int) -> AdapterRecord:
        # Every third write replaces the same "profile" id; the rest get fresh ids.
        aid = "profile" if i % 3 == 0 else None
        return store.put(adapters[FROG], namespace=ALICE, text=texts[i], adapter_id=aid)

    with ThreadPoolExecutor(4) as pool:
        records = list(pool.map(put, range(len(texts))))
    assert store.count(namespace=ALICE) == len({r.id for r in records}) == 9
    assert _version_dirs(store, ALICE, "profile") == ["v00000004"]
    assert not list((store.path / "tmp").iterdir())


# ---------------------------------------------------------------------------------------- 2. namespaces
def test_namespace_isolation(
    store: AdapterStore, adapters: dict[str, LoraAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put(adapters[FROG], namespace=ALICE, text=FROG, adapter_id="profile", kind="profile")
    alice_tea = store.put(adapters[TEA], namespace=ALICE, text=TEA)
    store.put(adapters[LIMA], namespace=BOB, text=LIMA, adapter_id="profile", kind="profile")
    store.put(adapters[LIMA], namespace=BOB, text=LIMA + " i teach maths in lima", adapter_id="bob-only-id")

    # The namespace must be part of Chroma's own filter, not only a post-filter.
    wheres: list[Any] = []
    real_query = store.collection.query

    def spy(*args: Any, **kwargs: Any) -> Any:
        wheres.append(kwargs.get("where"))
        return real_query(*args, **kwargs)

    monkeypatch.setattr(store.collection, "query", spy)
    hits = store.search("i am a teacher in lima", namespace=ALICE, k=10)
    assert wheres == [{"namespace": "users/alice"}]
    assert {h.id for h in hits} == {"profile", alice_tea.id} and all(h.namespace == ALICE for h in hits)
    assert all("lima" not in h.text for h in hits)
    assert store.search("i am a teacher in lima", namespace=BOB, k=1)[0].text.startswith(LIMA)

    assert _same_tensors(store.get("profile", namespace=ALICE), adapters[FROG])
    assert _same_tensors(store.get("profile", namespace=BOB), adapters[LIMA])
    with pytest.raises(NamespaceError) as info:
        store.get("bob-only-id", namespace=ALICE)
    assert "bob" not in str(info.value).replace("bob-only-id", "")  # never says whose it is
    with pytest.raises(NamespaceError):
        store.get_record("bob-only-id", namespace=ALICE)
    with pytest.raises(NamespaceError):
        store.delete("bob-only-id", namespace=ALICE)
    assert not store.exists("bob-only-id", namespace=ALICE)
    assert store.namespaces() == [ALICE, BOB]

    assert store.delete_namespace(BOB) == 2
    assert not (store.path / "adapters" / "users" / "bob").exists()
    assert store.count(namespace=BOB) == 0 and store.list(namespace=BOB) == []
    assert store.search("teacher in lima", namespace=BOB) == []
    with pytest.raises(AdapterNotFoundError):
        store.get("bob-only-id", namespace=ALICE)  # gone everywhere now
    assert store.count(namespace=ALICE) == 2 and store.namespaces() == [ALICE]
    assert _same_tensors(store.get("profile", namespace=ALICE), adapters[FROG])
    assert store.delete_namespace(BOB) == 0


def test_nested_namespaces_do_not_collide(store: AdapterStore, adapters: dict[str, LoraAdapter]) -> None:
    # ("users",) with adapter id "alice" vs the namespace ("users", "alice"): separate on disk.
    store.put(adapters[FROG], namespace=("users",), text=FROG, adapter_id="alice")
    store.put(adapters[LIMA], namespace=ALICE, text=LIMA, adapter_id="alice")
    assert _same_tensors(store.get("alice", namespace=("users",)), adapters[FROG])
    assert _same_tensors(store.get("alice", namespace=ALICE), adapters[LIMA])
    assert store.namespaces() == [("users",), ALICE]
    assert store.delete_namespace(("users",)) == 1  # exact namespace only
    assert store.namespaces() == [ALICE]
    assert _same_tensors(store.get("alice", namespace=ALICE), adapters[LIMA])


# ---------------------------------------------------------------------------------------- 3. errors
def test_argument_errors(store: AdapterStore, adapters: dict[str, LoraAdapter]) -> None:
    frog = adapters[FROG]
    with pytest.raises(AdapterNotFoundError):
        store.get("unknown", namespace=ALICE)
    with pytest.raises(AdapterNotFoundError):
        store.get_record("unknown", namespace=ALICE)
    with pytest.raises(AdapterNotFoundError):
        store.delete("unknown", namespace=ALICE)
    for bad in ("../x", "", ("a/b",), (), ("a", ""), ("..",), ("a",) * 9, ("-a",), "a b", ("x" * 129,)):
        with pytest.raises(NamespaceError):
            store.put(frog, namespace=bad, text=FROG)  # type: ignore[arg-type]
        with pytest.raises(NamespaceError):
            store.search("q", namespace=bad)  # type: ignore[arg-type]
    assert issubclass(NamespaceError, PermissionError)
    for bad_type in (None, 3, ("a", 1), {"a"}, b"alice"):
        with pytest.raises(TypeError):
            store.get("x", namespace=bad_type)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.put("not an adapter", namespace=ALICE, text=FROG)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.put(frog, namespace=ALICE, text=b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.put(frog, namespace=ALICE, text=FROG, extra={"x": [1]})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        store.search("q", namespace=ALICE, k="3")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.get(42, namespace=ALICE)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.put(frog, namespace=ALICE, text=FROG, adapter_id="../etc")
    with pytest.raises(ValueError):
        store.put(frog, namespace=ALICE, text=FROG, kind="diary")
    with pytest.raises(ValueError):
        store.put(frog, namespace=ALICE, text=FROG, turn_range=(3, 1))
    with pytest.raises(EmptyTextError):
        store.put(frog, namespace=ALICE, text="  \n ")
    with pytest.raises(EmptyTextError):
        store.search("   ", namespace=ALICE)
    foreign = LoraAdapter(frog.weights, metadata=AdapterMetadata(base_fingerprint="another-base", kind="segment"))
    with pytest.raises(AdapterMismatchError):
        store.put(foreign, namespace=ALICE, text=FROG)
    assert store.count() == 0 and not any((store.path / "adapters").iterdir())
    assert not any((store.path / "tmp").iterdir())


def test_reopen_with_other_model_or_embedding_is_refused(
    store: AdapterStore, adapters: dict[str, LoraAdapter], tmp_path: Path
) -> None:
    rec = store.put(adapters[FROG], namespace=ALICE, text=FROG)
    identity = (store.path / "store.json").read_bytes()
    with pytest.raises(StoreMismatchError):
        AdapterStore(store.path, base_fingerprint="another-base")
    with pytest.raises(StoreMismatchError):
        AdapterStore(store.path, base_fingerprint=store.base_fingerprint, embedding_function=_OtherNameEmbedding())
    # The same Chroma collection behind a fresh files directory: the collection itself refuses.
    chroma = chromadb.PersistentClient(path=str(store.path / "chroma"), settings=Settings(anonymized_telemetry=False))
    with pytest.raises(StoreMismatchError):
        AdapterStore(tmp_path / "files-a", base_fingerprint="another-base", client=chroma)
    with pytest.raises(StoreMismatchError):
        AdapterStore(
            tmp_path / "files-b",
            base_fingerprint=store.base_fingerprint,
            embedding_function=_OtherNameEmbedding(),
            client=chroma,
        )
    assert not (tmp_path / "files-a").exists() and not (tmp_path / "files-b").exists()
    # Nothing was modified.
    assert (store.path / "store.json").read_bytes() == identity
    again = AdapterStore(store.path, base_fingerprint=store.base_fingerprint)
    assert again.last_reconcile.clean and again.count() == 1
    assert _same_tensors(again.get(rec.id, namespace=ALICE), adapters[FROG])


def test_corrupt_adapter_file(store: AdapterStore, adapters: dict[str, LoraAdapter]) -> None:
    bad = store.put(adapters[FROG], namespace=ALICE, text=FROG)
    good = store.put(adapters[LIMA], namespace=ALICE, text=LIMA)
    weights = store.path / "adapters/users/alice/_adapters" / bad.id / "v00000001/adapter.safetensors"
    weights.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(AdapterFormatError):
        store.get(bad.id, namespace=ALICE)
    # Nothing else is lost: the record, the other adapter and search still work.
    assert store.get_record(bad.id, namespace=ALICE).text == FROG
    assert _same_tensors(store.get(good.id, namespace=ALICE), adapters[LIMA])
    assert {h.id for h in store.search("pet", namespace=ALICE)} == {bad.id, good.id}
    # The cheap reconcile keeps it (files present); a verifying one quarantines it, never deletes.
    assert store.reconcile().clean
    report = store.reconcile(verify=True)
    assert (report.quarantined, report.dropped_index_entries) == (1, 1)
    moved = list((store.path / "quarantine").glob("*/v00000001/adapter.safetensors"))
    assert len(moved) == 1 and moved[0].read_bytes() == b"\x00garbage" * 10
    reason = json.loads((moved[0].parent.parent / "reason.json").read_text())
    assert bad.id in reason["original_path"]
    with pytest.raises(AdapterNotFoundError):
        store.get(bad.id, namespace=ALICE)
    assert store.count() == 1 and _same_tensors(store.get(good.id, namespace=ALICE), adapters[LIMA])


# ---------------------------------------------------------------------------------------- 4. offline
def test_no_network_access(tmp_path: Path, model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[str] = []

    def is_loopback(host: object) -> bool:
        if host in (None, "", "localhost"):
            return True
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    real_connect, real_create, real_getaddrinfo = socket.socket.connect, socket.create_connection, socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
            attempts.append(f"connect {address}")
            raise OSError(f"test forbids network access: connect to {address}")
        return real_connect(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback(address[0]):
            attempts.append(f"create_connection {address}")
            raise OSError(f"test forbids network access: {address}")
        return real_create(address, *args, **kwargs)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback(host):
            attempts.append(f"getaddrinfo {host}")
            raise OSError(f"test forbids DNS lookups: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Load the embedding model afresh under the guard (not the copy earlier tests cached).
    monkeypatch.setattr(embeddings_module, "_MODELS", {})
    with pytest.raises(OSError):
        socket.create_connection(("203.0.113.1", 443), timeout=1)
    attempts.clear()

    store = AdapterStore.for_model(model, tmp_path / "offline")
    rec = store.put(model.internalize(FROG, kind="segment"), namespace=ALICE, text=FROG)
    assert store.search("my pet", namespace=ALICE)[0].id == rec.id
    assert embeddings_module._MODELS, "the embedding model was loaded under the guard"
    assert attempts == []


# ---------------------------------------------------------------------------------------- 5. persistence
def test_reopen_finds_everything(store: AdapterStore, adapters: dict[str, LoraAdapter]) -> None:
    recs = [
        store.put(adapters[FROG], namespace=ALICE, text=FROG, turn_range=(2, 3)),
        store.put(adapters[LIMA], namespace=ALICE, text=LIMA, name="job"),
        store.put(adapters[TEA], namespace=BOB, text=TEA, adapter_id="profile", kind="profile"),
    ]
    path, fingerprint = store.path, store.base_fingerprint
    del store
    reopened = AdapterStore(path, base_fingerprint=fingerprint)
    assert reopened.last_reconcile.clean
    assert reopened.count() == 3 and reopened.namespaces() == [ALICE, BOB]
    assert [r.id for r in reopened.list(namespace=ALICE)] == [recs[0].id, recs[1].id]
    assert reopened.get_record(recs[0].id, namespace=ALICE) == recs[0]
    assert reopened.search("where do i work", namespace=ALICE, k=1)[0].id == recs[1].id
    for rec, text in zip(recs, (FROG, LIMA, TEA), strict=True):
        assert _same_tensors(reopened.get(rec.id, namespace=rec.namespace), adapters[text])
    # A plain Chroma client rebuilds our embedding function from the collection's config.
    client = chromadb.PersistentClient(
        path=str(reopened.path / "chroma"), settings=Settings(anonymized_telemetry=False)
    )
    col = client.get_collection("agenthn_adapters")
    assert isinstance(col.configuration["embedding_function"], MiniLMEmbeddingFunction)
    res = col.query(query_texts=["green tea"], n_results=1, where={"namespace": "users/bob"})
    assert res["ids"] == [["users/bob::profile"]]


# ---------------------------------------------------------------------------------------- 6. crashes
def test_crash_after_files_before_index_is_rolled_forward(
    store: AdapterStore, adapters: dict[str, LoraAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = store.put(adapters[LIMA], namespace=ALICE, text=LIMA)
    store.put(adapters[LIMA], namespace=ALICE, text=LIMA, adapter_id="profile", kind="profile")
    _crash_in(monkeypatch, ChromaIndex, "upsert")  # files durable, index entry not written
    with pytest.raises(_SimulatedCrash):
        store.put(adapters[FROG], namespace=ALICE, text=FROG, adapter_id="frog-1")
    with pytest.raises(_SimulatedCrash):
        store.put(adapters[TEA], namespace=ALICE, text=TEA, adapter_id="profile", kind="profile")
    monkeypatch.undo()
    # Durable but not indexed: readable by id, not yet searchable.
    assert store.count(namespace=ALICE) == 2 and store.exists("frog-1", namespace=ALICE)
    assert _version_dirs(store, ALICE, "profile") == ["v00000001", "v00000002"]

    reopened = AdapterStore(store.path, base_fingerprint=store.base_fingerprint)
    report = reopened.last_reconcile
    assert (report.reindexed, report.superseded_removed, report.quarantined) == (2, 1, 0)
    assert reopened.count(namespace=ALICE) == 3
    assert reopened.search("what pet do i have", namespace=ALICE, k=1)[0].id == "frog-1"
    assert _same_tensors(reopened.get("frog-1", namespace=ALICE), adapters[FROG])
    assert reopened.get_record("profile", namespace=ALICE).text == TEA  # the newer version won
    assert _same_tensors(reopened.get("profile", namespace=ALICE), adapters[TEA])
    assert _version_dirs(reopened, ALICE, "profile") == ["v00000002"]
    assert reopened.exists(kept.id, namespace=ALICE)
    assert AdapterStore(store.path, base_fingerprint=store.base_fingerprint).last_reconcile.clean


def test_crash_while_writing_files_leaves_only_a_temp_dir(
    store: AdapterStore, adapters: dict[str, LoraAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    old = store.put(adapters[LIMA], namespace=ALICE, text=LIMA, adapter_id="profile")
    # adapter files in tmp/, record.json not yet written
    _crash_in(monkeypatch, files_module, "write_file_durable", lambda path, data: path.name == "record.json")
    with pytest.raises(_SimulatedCrash):
        store.put(adapters[FROG], namespace=ALICE, text=FROG, adapter_id="profile")
    with pytest.raises(_SimulatedCrash):
        store.put(adapters[FROG], namespace=BOB, text=FROG)
    monkeypatch.undo()
    leftovers = list((store.path / "tmp").iterdir())
    assert len(leftovers) == 2 and all((d / "adapter.safetensors").exists() for d in leftovers)
    # The old version was never unreadable.
    assert store.get_record("profile", namespace=ALICE) == old

    reopened = AdapterStore(store.path, base_fingerprint=store.base_fingerprint)
    assert reopened.last_reconcile.removed_temp == 2 and reopened.last_reconcile.reindexed == 0
    assert not list((reopened.path / "tmp").iterdir())
    assert reopened.namespaces() == [ALICE] and reopened.count() == 1
    assert reopened.get_record("profile", namespace=ALICE) == old


def test_crash_points_between_steps(
    store: AdapterStore, adapters: dict[str, LoraAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Crash after the index upsert, before the old version is removed.
    store.put(adapters[LIMA], namespace=ALICE, text=LIMA, adapter_id="profile")
    _crash_in(monkeypatch, store.files, "remove_dir")  # indexed; the old version not yet removed
    with pytest.raises(_SimulatedCrash):
        store.put(adapters[TEA], namespace=ALICE, text=TEA, adapter_id="profile")
    monkeypatch.undo()
    # Crash in the middle of a delete and of a namespace delete: they must finish, not resurrect.
    gone = store.put(adapters[FROG], namespace=ALICE, text=FROG)
    store.put(adapters[FROG], namespace=BOB, text=FROG)
    _crash_in(monkeypatch, store.index, "forget")  # marked for deletion; index entry and files still there
    with pytest.raises(_SimulatedCrash):
        store.delete(gone.id, namespace=ALICE)
    with pytest.raises(_SimulatedCrash):
        store.delete_namespace(BOB)
    monkeypatch.undo()
    assert not store.exists(gone.id, namespace=ALICE) and store.namespaces() == [ALICE]

    reopened = AdapterStore(store.path, base_fingerprint=store.base_fingerprint)
    report = reopened.last_reconcile
    assert (report.superseded_removed, report.completed_deletes, report.dropped_index_entries) == (1, 2, 2)
    assert report.reindexed == 0
    assert reopened.count() == 1 and [r.text for r in reopened.list(namespace=ALICE)] == [TEA]
    assert reopened.namespaces() == [ALICE] and not reopened.exists(gone.id, namespace=ALICE)
    assert _version_dirs(reopened, ALICE, "profile") == ["v00000002"]


def test_failed_index_write_rolls_back(
    store: AdapterStore, adapters: dict[str, LoraAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    old = store.put(adapters[LIMA], namespace=ALICE, text=LIMA, adapter_id="profile")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("index unavailable")

    monkeypatch.setattr(store.collection, "upsert", broken)
    with pytest.raises(RuntimeError):
        store.put(adapters[FROG], namespace=ALICE, text=FROG, adapter_id="profile")
    with pytest.raises(RuntimeError):
        store.put(adapters[FROG], namespace=BOB, text=FROG)
    monkeypatch.undo()
    # An exception (unlike a crash) leaves no trace: the old version is still the current one.
    assert store.get_record("profile", namespace=ALICE) == old
    assert _version_dirs(store, ALICE, "profile") == ["v00000001"]
    assert store.namespaces() == [ALICE] and not list((store.path / "tmp").iterdir())
    assert store.reconcile().clean


def test_missing_files_and_broken_dirs_are_reconciled(store: AdapterStore, adapters: dict[str, LoraAdapter]) -> None:
    lost = store.put(adapters[FROG], namespace=ALICE, text=FROG)
    kept = store.put(adapters[LIMA], namespace=ALICE, text=LIMA)
    adapters_dir = store.path / "adapters/users/alice/_adapters"
    shutil.rmtree(adapters_dir / lost.id)  # files vanished: the index entry must go
    half = adapters_dir / "half-written" / "v00000001"
    half.mkdir(parents=True)
    (half / "adapter.json").write_text("{}")  # incomplete: no weights, no record
    report = store.reconcile()
    assert (report.dropped_index_entries, report.quarantined, report.reindexed) == (1, 1, 0)
    assert store.count() == 1 and store.exists(kept.id, namespace=ALICE)
    assert not (adapters_dir / "half-written").exists()
    assert len(list((store.path / "quarantine").glob("*/v00000001/adapter.json"))) == 1
    assert store.reconcile().clean


def test_no_crash_hooks_in_production_code() -> None:
    """Crash points are injected by the tests (monkeypatching, SIGKILL), never shipped."""
    package = ROOT / "agenthn_langgraph"
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted(package.rglob("*.py"))
        if "os._exit" in path.read_text() or "CRASH_AT" in path.read_text()
    ]
    assert offenders == []
    assert not any(hasattr(m, "_crash_point") for m in (files_module, chroma_index))


_WRITER = """
import sys, threading
from agenthn_langgraph.lora.adapter import LoraAdapter
from agenthn_langgraph.store import AdapterStore

path, adapter_path = sys.argv[1], sys.argv[2]
adapter = LoraAdapter.load(adapter_path)
store = AdapterStore(path, base_fingerprint=adapter.metadata.base_fingerprint)
print("ready", flush=True)

def writer(user):
    # Three threads: while one embeds, another writes files, so a kill often lands mid-write.
    for i in range(100000):
        aid = "profile" if i % 4 == 0 else f"m{i}"
        text = f"memory {i} of user {user} about topic {i % 7}"
        store.put(adapter, namespace=("users", f"u{user}"), text=text, adapter_id=aid)
        print(f"done {user} {aid} {i}", flush=True)

for user in range(3):
    threading.Thread(target=writer, args=(user,), daemon=True).start()
threading.Event().wait()
"""


def test_sigkill_during_writes(tmp_path: Path, adapters: dict[str, LoraAdapter], model: Any) -> None:
    adapters[FROG].save(tmp_path / "frog")
    path = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), str(tmp_path / "frog")],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            cwd=ROOT,
            text=True,
        )
    acknowledged: dict[tuple[tuple[str, ...], str], str] = {}
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while len(acknowledged) < 15:
            assert time.monotonic() < deadline, "writer too slow"
            line = proc.stdout.readline()
            assert line, f"writer died: {(tmp_path / 'stderr.txt').read_text()[-2000:]}"
            if line.startswith("done"):
                _, user, aid, i = line.split()
                acknowledged[(("users", f"u{user}"), aid)] = f"memory {i} of user {user} about topic {int(i) % 7}"
        # Kill while a put is writing its files (a temp dir exists), or a few ms later: before,
        # during or after the rename into place and the index upsert.
        poll_until = time.monotonic() + 5
        while time.monotonic() < poll_until and not any(os.scandir(path / "tmp")):
            pass
        time.sleep(random.uniform(0.0, 0.02))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    store = AdapterStore.for_model(model, path)
    index = store.collection.get(include=["metadatas"])
    indexed = set(index["ids"])
    assert indexed == _all_adapter_dirs(store)  # every dir indexed, every entry backed by files
    assert store.count() == len(indexed) >= len(acknowledged)
    for meta in index["metadatas"]:
        ns = tuple(meta["namespace"].split("/"))
        assert _same_tensors(store.get(meta["adapter_id"], namespace=ns), adapters[FROG])
        assert store.get_record(meta["adapter_id"], namespace=ns).text.startswith("memory ")
    for (ns, aid), text in acknowledged.items():  # every acknowledged put is durable
        assert store.exists(aid, namespace=ns)
        if aid != "profile":  # a profile may have been replaced again after its acknowledgement
            assert store.get_record(aid, namespace=ns).text == text
    assert not list((path / "tmp").iterdir())
    assert store.reconcile().clean


# ---------------------------------------------------------------------------------------- 7. server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chroma_server_client(tmp_path: Path, adapters: dict[str, LoraAdapter], model: Any) -> None:
    chroma_cli = Path(sys.executable).parent / "chroma"
    if not chroma_cli.exists():
        pytest.skip(f"the chroma CLI is not installed next to {sys.executable}")
    port = _free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 -- closed in finally, after the server
    server = subprocess.Popen(
        [str(chroma_cli), "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        settings = Settings(anonymized_telemetry=False)
        deadline = time.monotonic() + 60
        while True:
            try:
                chromadb.HttpClient(host="127.0.0.1", port=port, settings=settings).heartbeat()
                break
            except Exception:
                assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "chroma server did not start"
                time.sleep(0.1)
        client = chromadb.HttpClient(host="127.0.0.1", port=port, settings=settings)
        store = AdapterStore.for_model(model, tmp_path / "files", client=client)
        frog = store.put(adapters[FROG], namespace=ALICE, text=FROG, adapter_id="profile")
        store.put(adapters[LIMA], namespace=BOB, text=LIMA, adapter_id="profile")
        store.put(adapters[LIMA], namespace=BOB, text=LIMA, adapter_id="bob-only-id")
        assert [h.id for h in store.search("teacher in lima", namespace=ALICE)] == ["profile"]
        assert store.search("teacher in lima", namespace=ALICE)[0].text == FROG
        assert store.search("teacher in lima", namespace=BOB, k=1)[0].text == LIMA
        with pytest.raises(NamespaceError):
            store.get("bob-only-id", namespace=ALICE)
        assert _same_tensors(store.get("profile", namespace=ALICE), adapters[FROG])
        assert store.delete_namespace(BOB) == 2 and store.count() == 1
        # The server's log is purged through the API; its database file is not ours to vacuum.
        assert store.last_purge is not None
        assert (store.last_purge.log_entries_left, store.last_purge.vacuumed) == (None, False)

        # A second client process would see the same index; a store for another base is refused.
        again = AdapterStore.for_model(
            model, tmp_path / "files", client=chromadb.HttpClient(host="127.0.0.1", port=port, settings=settings)
        )
        assert again.last_reconcile.clean and again.get_record("profile", namespace=ALICE) == frog
        with pytest.raises(StoreMismatchError):
            AdapterStore(tmp_path / "other-files", base_fingerprint="another-base", client=client)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


# ---------------------------------------------------------------------------------------- 8. forgetting
def _files_holding(root: Path, needles: list[bytes]) -> dict[str, int]:
    """``{file: occurrences}`` of any needle in the raw bytes of every file under ``root``."""
    out: dict[str, int] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            n = sum(data.count(needle) for needle in needles)
            if n:
                out[str(path.relative_to(root))] = n
    return out


def _files_holding_vector(root: Path, vector: np.ndarray) -> list[str]:
    """Files under ``root`` holding ``vector`` as float32 (or a rescaled copy, as HNSW stores it).

    Layout-agnostic: every 4-byte phase of every file is read as float32; a window whose first 4
    values match is confirmed by cosine similarity over the whole vector.
    """
    e = vector.astype(np.float64) / np.linalg.norm(vector)
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for phase in range(4):
            count = (len(data) - phase) // 4
            if count < len(e):
                continue
            a = np.frombuffer(data, dtype="<f4", count=count, offset=phase)
            n = count - len(e) + 1
            with np.errstate(invalid="ignore", over="ignore"):
                candidates = np.ones(n, dtype=bool)
                for j in range(4):
                    candidates &= np.abs(a[j : j + n] - e[j]) < 1e-4
                hit = any(
                    np.isfinite(w := a[k : k + len(e)].astype(np.float64)).all()
                    and float(w @ e) / (np.linalg.norm(w) + 1e-30) > 0.999
                    for k in np.flatnonzero(candidates)
                )
            if hit:
                found.append(str(path.relative_to(root)))
                break
    return found


def test_delete_namespace_leaves_no_trace_on_disk(tmp_path: Path, adapters: dict[str, LoraAdapter], model: Any) -> None:
    """Forgetting a user removes their texts, ids and vectors from every file under the store, Chroma's included."""
    store = AdapterStore.for_model(model, tmp_path / "store")
    users = [f"user{n:02d}" for n in range(8)]  # every put embeds its text: few users keep this fast
    forgotten, kept = users[::2], users[1::2]

    def ns(user: str) -> tuple[str, str]:
        return ("tenants", f"{user}-nsmark")  # the namespace itself is a marker: ids and metadata hold it

    def secret(user: str, i: int) -> str:
        return f"codeword-{user}-{i}-zqv"

    for user in users:
        # Only forgotten users' texts hold non-ASCII: the emoji's trigrams can only come from them.
        tail = " \U0001f9ca" if user in forgotten else ""
        store.put(adapters[FROG], namespace=ns(user), text=f"memory: my code word is {secret(user, 0)}{tail}")
        for i in (1, 2) if user in forgotten else (2,):  # a replaced profile: the old version must go too
            text = f"profile: {secret(user, i)}{tail}"
            store.put(adapters[LIMA], namespace=ns(user), text=text, adapter_id="profile", kind="profile")
    index = store.collection.get(include=["embeddings"])
    vectors = dict(zip(index["ids"], (np.asarray(e, dtype=np.float32) for e in index["embeddings"]), strict=True))
    # One forgotten adapter is corrupt and quarantined: its quarantined copy must be forgotten too.
    victim = store.path / "adapters/tenants" / ns(forgotten[0])[1] / "_adapters/profile/v00000002/adapter.safetensors"
    victim.write_bytes(victim.read_bytes()[:-1] + bytes([victim.read_bytes()[-1] ^ 1]))
    assert store.reconcile(verify=True).quarantined == 1

    markers = [m.encode() for u in forgotten for m in [ns(u)[1], *(secret(u, i) for i in range(3))]]
    kept_markers = [m.encode() for u in kept for m in [ns(u)[1], secret(u, 0), secret(u, 2)]]
    sqlite_file = store.path / "chroma" / "chroma.sqlite3"
    emoji = "\U0001f9ca".encode()
    before = _files_holding(store.path, markers)
    assert sum(before.values()) > 0 and sqlite_file.read_bytes().count(emoji) > 0  # the scanner sees them

    for user in forgotten[:2]:  # the default: each delete purges (the quarantined one is not counted)
        assert store.delete_namespace(ns(user)) == (1 if user == forgotten[0] else 2)
    for user in forgotten[2:]:  # batched: no purge per delete, one after
        assert store.delete_namespace(ns(user), purge=False) == 2
    report = store.purge()

    assert _files_holding(store.path, markers) == {}
    assert sqlite_file.read_bytes().count(emoji) == 0  # no trigram left in the full-text index either
    assert (report.log_entries_left, report.fts_optimized, report.vacuumed) == (0, True, True)
    forgotten_keys = {f"tenants/{ns(u)[1]}" for u in forgotten}
    gone = [v for doc_id, v in vectors.items() if doc_id.split("::")[0] in forgotten_keys]
    live = [v for doc_id, v in vectors.items() if doc_id.split("::")[0] not in forgotten_keys]
    assert len(gone) == len(live) == 8
    assert [f for v in gone for f in _files_holding_vector(store.path, v)] == []
    assert all(_files_holding_vector(store.path / "chroma", v) for v in live)  # the detector finds vectors
    assert not list((store.path / "quarantine").iterdir())

    # Everyone else is untouched, now and after reopening.
    assert sum(_files_holding(store.path, kept_markers).values()) > 0
    for reopened in (store, AdapterStore.for_model(model, store.path)):
        assert reopened.namespaces() == [ns(u) for u in kept] and reopened.count() == 2 * len(kept)
        for user in kept:
            hit = reopened.search(f"code word {secret(user, 0)}", namespace=ns(user), kind="segment", k=1)[0]
            assert hit.text.endswith(secret(user, 0))
            assert reopened.get_record("profile", namespace=ns(user)).text == f"profile: {secret(user, 2)}"
            assert _same_tensors(reopened.get("profile", namespace=ns(user)), adapters[LIMA])
        assert reopened.search("code word", namespace=ns(forgotten[0])) == []


def test_single_delete_purges_too(store: AdapterStore, adapters: dict[str, LoraAdapter]) -> None:
    keep = store.put(adapters[FROG], namespace=ALICE, text="i keep the word plumkettle")
    gone = store.put(adapters[FROG], namespace=ALICE, text="forget the word zorbquaff")
    store.delete(gone.id, namespace=ALICE)
    assert _files_holding(store.path, [b"zorbquaff", gone.id.encode()]) == {}
    assert _files_holding(store.path, [b"plumkettle"]) != {}
    assert store.get_record(keep.id, namespace=ALICE).text.endswith("plumkettle")


def test_purge_says_when_chroma_kept_its_log(
    store: AdapterStore, adapters: dict[str, LoraAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put(adapters[FROG], namespace=ALICE, text=FROG)
    # Without its throw-away writes, nothing moves Chroma's sync point past the last real record.
    monkeypatch.setattr(store.collection, "upsert", lambda **kwargs: None)
    monkeypatch.setattr(store.collection, "delete", lambda **kwargs: None)
    with pytest.raises(PurgeIncompleteError, match="log"):
        store.purge()
    assert store.last_purge is not None and (store.last_purge.log_entries_left or 0) >= 1
    assert isinstance(PurgeIncompleteError("x"), RuntimeError)
    monkeypatch.undo()
    assert store.purge().log_entries_left == 0


def test_purge_cut_short_by_a_crash_is_finished_on_open(
    store: AdapterStore, adapters: dict[str, LoraAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put(adapters[FROG], namespace=ALICE, text=FROG)
    store.put(adapters[LIMA], namespace=BOB, text="forget the word quibblefrost")
    # The crash lands after purge() wrote its throw-away entries, before it deleted them.
    _crash_in(monkeypatch, store.collection, "delete", lambda **kw: kw.get("ids") == list(chroma_index.PURGE_IDS))
    with pytest.raises(_SimulatedCrash):
        store.delete_namespace(BOB)
    monkeypatch.undo()
    assert store.collection.count() == 3  # alice's entry and the two throw-away ones
    reopened = AdapterStore(store.path, base_fingerprint=store.base_fingerprint)
    assert reopened.collection.count() == reopened.count() == 1
    assert reopened.last_purge is not None and reopened.last_purge.log_entries_left == 0
    assert _files_holding(store.path, [b"quibblefrost", b"users/bob"]) == {}


def test_store_made_before_purging_existed_is_migrated(
    tmp_path: Path, adapters: dict[str, LoraAdapter], model: Any
) -> None:
    """A collection created with Chroma's default sync_threshold (1000) is lowered on open, so purging works."""
    path = tmp_path / "old"
    old = chromadb.PersistentClient(path=str(path / "chroma"), settings=Settings(anonymized_telemetry=False))
    ef = MiniLMEmbeddingFunction()
    old.create_collection(
        "agenthn_adapters",
        embedding_function=ef,
        metadata={
            "agenthn_base_fingerprint": model.fingerprint,
            "agenthn_embedding": ef.name(),
            "agenthn_store_format": 1,
        },
        configuration={"hnsw": {"space": "cosine"}},
    )
    assert old.get_collection("agenthn_adapters").configuration["hnsw"]["sync_threshold"] == 1000
    store = AdapterStore.for_model(model, path)
    assert store.collection.configuration["hnsw"]["sync_threshold"] == 2
    store.put(adapters[FROG], namespace=ALICE, text="keep qwertzapple")
    store.put(adapters[FROG], namespace=BOB, text="forget yxcvbanana")
    store.delete_namespace(BOB)
    assert store.last_purge is not None and store.last_purge.log_entries_left == 0
    assert _files_holding(path, [b"yxcvbanana", b"users/bob"]) == {}


# ---------------------------------------------------------------------------------------- 9. cache
def _count_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Count LoraAdapter.load (disk reads) and LoraAdapter.validate (norm checks) from now on."""
    calls: dict[str, list[Any]] = {"load": [], "validate": []}
    real_load, real_validate = LoraAdapter.load.__func__, LoraAdapter.validate  # type: ignore[attr-defined]

    def load(cls: type[LoraAdapter], path: Any, **kwargs: Any) -> LoraAdapter:
        calls["load"].append(Path(path))
        return real_load(cls, path, **kwargs)

    def validate(self: LoraAdapter, **kwargs: Any) -> None:
        calls["validate"].append(self)
        real_validate(self, **kwargs)

    monkeypatch.setattr(LoraAdapter, "load", classmethod(load))
    monkeypatch.setattr(LoraAdapter, "validate", validate)
    return calls


def test_get_reads_each_version_once_and_follows_replace_and_delete(
    store: AdapterStore, adapters: dict[str, LoraAdapter], model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put(adapters[FROG], namespace=ALICE, text=FROG, adapter_id="profile")
    store.put(adapters[TEA], namespace=BOB, text=TEA, adapter_id="profile")
    calls = _count_calls(monkeypatch)
    first = store.get("profile", namespace=ALICE)
    assert all(store.get("profile", namespace=ALICE) is first for _ in range(10))
    assert (len(calls["load"]), len(calls["validate"])) == (1, 1)
    assert _same_tensors(store.get("profile", namespace=BOB), adapters[TEA])  # same id, other namespace
    assert len(calls["load"]) == 2 and store.cache_info()["entries"] == 2

    # Replace: the next get reads the new version, once.
    store.put(adapters[LIMA], namespace=ALICE, text=LIMA, adapter_id="profile")
    assert _same_tensors(store.get("profile", namespace=ALICE), adapters[LIMA])
    assert _same_tensors(store.get("profile", namespace=ALICE), adapters[LIMA])
    assert len(calls["load"]) == 3 and calls["load"][-1].name == "v00000002"

    # Delete: gone from the cache too.
    store.delete("profile", namespace=ALICE, purge=False)
    with pytest.raises(NamespaceError):  # not alice's any more (bob still has one by that id)
        store.get("profile", namespace=ALICE)
    assert store.cache_info()["entries"] == 1

    # Another store object (or process) deletes and re-puts the id: the version name v00000001
    # comes back, but the cached object for it is not served.
    assert _same_tensors(store.get("profile", namespace=BOB), adapters[TEA])
    other = AdapterStore.for_model(model, store.path)
    other.delete("profile", namespace=BOB, purge=False)
    other.put(adapters[FROG], namespace=BOB, text=FROG, adapter_id="profile")
    assert _version_dirs(store, BOB, "profile") == ["v00000001"]
    assert _same_tensors(store.get("profile", namespace=BOB), adapters[FROG])
    assert store.cache_info()["hits"] >= 11


def test_cache_is_bounded_lru(
    tmp_path: Path, adapters: dict[str, LoraAdapter], model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = AdapterStore.for_model(model, tmp_path / "s", cache_size=2)
    for name in "abc":
        store.put(adapters[FROG], namespace=ALICE, text=f"{FROG} {name}", adapter_id=name)
    calls = _count_calls(monkeypatch)
    for name in "ababcba":  # c evicts a (least recently used); b stays
        store.get(name, namespace=ALICE)
    assert [p.parent.name for p in calls["load"]] == ["a", "b", "c", "a"]
    assert store.cache_info()["entries"] == 2
    by_bytes = AdapterStore.for_model(model, tmp_path / "s", cache_bytes=adapters[FROG].nbytes)
    by_bytes.get("a", namespace=ALICE)
    by_bytes.get("b", namespace=ALICE)
    assert by_bytes.cache_info()["entries"] == 1 and by_bytes.cache_info()["bytes"] == adapters[FROG].nbytes
    off = AdapterStore.for_model(model, tmp_path / "s", cache_size=0)
    off.get("a", namespace=ALICE)
    off.get("a", namespace=ALICE)
    assert off.cache_info()["entries"] == 0
    with pytest.raises(ValueError):
        AdapterStore.for_model(model, tmp_path / "s", cache_size=-1)


def test_cache_under_concurrent_gets_and_replaces(store: AdapterStore, adapters: dict[str, LoraAdapter]) -> None:
    store.put(adapters[FROG], namespace=ALICE, text=FROG, adapter_id="profile")
    versions = [adapters[LIMA], adapters[TEA], adapters[FROG]]

    def reader(_: int) -> list[LoraAdapter]:
        return [store.get("profile", namespace=ALICE) for _ in range(25)]

    with ThreadPoolExecutor(4) as pool:
        reads = [pool.submit(reader, i) for i in range(3)]
        for ad in versions:
            store.put(ad, namespace=ALICE, text=FROG, adapter_id="profile")
        results = [a for r in reads for a in r.result()]
    # Every read saw one complete version; after the last replace, reads see the last one.
    assert all(any(_same_tensors(got, ad) for ad in versions) for got in results)
    assert _same_tensors(store.get("profile", namespace=ALICE), versions[-1])
    assert store.get("profile", namespace=ALICE) is store.get("profile", namespace=ALICE)


# ---------------------------------------------------------------------------------------- 10. orphans
def test_remove_orphans_keeps_what_the_caller_names(store: AdapterStore, adapters: dict[str, LoraAdapter]) -> None:
    live = store.put(adapters[FROG], namespace=ALICE, text=FROG, kind="segment")
    orphan = store.put(adapters[LIMA], namespace=ALICE, text=LIMA, kind="segment")
    profile = store.put(adapters[TEA], namespace=ALICE, text=TEA, kind="profile", adapter_id="profile")
    bobs = store.put(adapters[LIMA], namespace=BOB, text=LIMA, kind="segment")
    assert store.remove_orphans(ALICE, [live.id], kind="segment") == [orphan.id]
    assert store.exists(live.id, namespace=ALICE) and not store.exists(orphan.id, namespace=ALICE)
    assert store.exists(profile.id, namespace=ALICE) and store.exists(bobs.id, namespace=BOB)  # other kinds, namespaces
    assert store.remove_orphans(ALICE, [live.id], kind="segment") == []
    assert store.remove_orphans(ALICE, []) == sorted([live.id, profile.id])  # every kind
    assert store.count() == 1 and _files_holding(store.path, [LIMA.encode()]) != {}  # bob's copy stays
    with pytest.raises(TypeError):
        store.remove_orphans(BOB, bobs.id)  # type: ignore[arg-type]
