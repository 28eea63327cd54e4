"""The adapter store's index on a langgraph ``BaseStore`` with a vector index (``BaseStoreIndex``).

The backing store here is langgraph's own ``InMemoryStore`` with MiniLM embeddings: the same
``BaseStore`` API (namespaced items, ``search(query=, filter=)``) as the Postgres store of a
LangGraph server, which cannot run on this machine. Real tiny-model adapters, real files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

from agenthn_langgraph.errors import (
    AdapterNotFoundError,
    InvalidArgumentError,
    NamespaceError,
    StoreMismatchError,
)
from agenthn_langgraph.lora.adapter import LoraAdapter
from agenthn_langgraph.store import AdapterStore, BaseStoreIndex, MiniLMEmbeddingFunction
from agenthn_langgraph.store.index import AdapterIndex
from agenthn_langgraph.tiny_default import load_default

FROG = "<user> my pet is a frog . <assistant> nice ! <end>"
LIMA = "<user> i work as a teacher in lima . <assistant> cool ! <end>"
TEA = "<user> my favorite drink is green tea . <assistant> ok ! <end>"
USERS = ("users",)
ALICE = ("users", "alice")
DOTTED = ("users", "ann.lee")


@pytest.fixture(scope="module")
def model() -> Any:
    return load_default()


@pytest.fixture(scope="module")
def adapters(model: Any) -> dict[str, LoraAdapter]:
    return {text: model.internalize(text, kind="segment") for text in (FROG, LIMA, TEA)}


@pytest.fixture(scope="module")
def embed() -> MiniLMEmbeddingFunction:
    return MiniLMEmbeddingFunction()


def _backing(embed: MiniLMEmbeddingFunction) -> InMemoryStore:
    return InMemoryStore(index={"dims": 384, "embed": embed.embed_documents})


@pytest.fixture()
def backing(embed: MiniLMEmbeddingFunction) -> InMemoryStore:
    return _backing(embed)


@pytest.fixture()
def store(tmp_path: Path, model: Any, backing: InMemoryStore) -> AdapterStore:
    return AdapterStore.for_model(model, tmp_path / "store", index=backing)


def _fill(store: AdapterStore, adapters: dict[str, LoraAdapter]) -> dict[str, str]:
    """FROG in ("users",), LIMA and TEA in ("users", "alice"): a namespace and its sub-namespace."""
    return {
        FROG: store.put(adapters[FROG], namespace=USERS, text=FROG).id,
        LIMA: store.put(adapters[LIMA], namespace=ALICE, text=LIMA).id,
        TEA: store.put(adapters[TEA], namespace=ALICE, text=TEA).id,
    }


def _leaks(index: AdapterIndex) -> list[str]:
    """What a search of ("users",) returns from its sub-namespace ("users", "alice") (must be nothing)."""
    found = index.search(USERS, "what do i drink ?", k=10, kinds=None, name=None)
    return [r.text for r in found if r.namespace != USERS]


def test_put_search_get_through_a_langgraph_store(store: AdapterStore, adapters: dict[str, LoraAdapter], model: Any):
    ids = _fill(store, adapters)
    best = store.search("which animal do i own ?", namespace=USERS, k=1)
    assert [r.id for r in best] == [ids[FROG]] and best[0].score is not None
    found = store.search("what do i drink ?", namespace=ALICE, k=2)
    assert [r.id for r in found] == [ids[TEA], ids[LIMA]], found
    assert found[0].score > found[1].score
    assert {r.id for r in store.list(namespace=ALICE)} == {ids[LIMA], ids[TEA]}
    assert store.count(namespace=ALICE) == 2 and store.count() == 3
    answer = model.generate("what pet do i have ?", adapters=[store.get(ids[FROG], namespace=USERS)])
    assert answer.split()[0] == "frog", answer


def test_entries_are_items_of_the_backing_store(store: AdapterStore, backing: InMemoryStore, adapters):
    ids = _fill(store, adapters)
    item = backing.get(("agenthn_index", "users", "alice"), ids[TEA])
    assert item is not None and item.value["text"] == TEA and item.value["kind"] == "segment"
    assert "adapter" not in item.value  # tensors stay in the files


def test_a_search_never_returns_a_sub_namespace(store: AdapterStore, adapters: dict[str, LoraAdapter]):
    _fill(store, adapters)
    assert _leaks(store.index) == []
    assert [r.text for r in store.search("what do i drink ?", namespace=USERS, k=10)] == [FROG]
    assert [r.text for r in store.list(namespace=USERS)] == [FROG]


class _PrefixSearchIndex(BaseStoreIndex):
    """Deliberately broken: searches by namespace prefix, as a BaseStore does by itself."""

    def _filter(self, ns: Any, kind: str | None, name: str | None) -> dict[str, Any]:
        return {}

    def _records(self, items: Any, ns: Any) -> Any:
        return super()._records(items, None)


def test_the_sub_namespace_check_fails_against_a_prefix_search(tmp_path: Path, model: Any, embed, adapters):
    broken = AdapterStore.for_model(model, tmp_path / "broken", index=_PrefixSearchIndex(_backing(embed)))
    _fill(broken, adapters)
    assert set(_leaks(broken.index)) == {LIMA, TEA}


def test_another_namespace_is_refused_without_saying_whose(store: AdapterStore, adapters):
    ids = _fill(store, adapters)
    with pytest.raises(NamespaceError):
        store.get(ids[TEA], namespace=("users", "bob"))
    with pytest.raises(AdapterNotFoundError):
        store.get("nobody", namespace=ALICE)


def test_delete_and_delete_namespace(store: AdapterStore, backing: InMemoryStore, adapters):
    ids = _fill(store, adapters)
    store.delete(ids[TEA], namespace=ALICE)
    assert backing.get(("agenthn_index", "users", "alice"), ids[TEA]) is None
    assert [r.id for r in store.search("what do i drink ?", namespace=ALICE, k=5)] == [ids[LIMA]]
    assert store.delete_namespace(ALICE) == 1
    assert store.count(namespace=ALICE) == 0 and store.count() == 1
    assert store.last_purge is not None and store.last_purge.vacuumed is False  # nothing of Chroma's to clean


def test_a_namespace_part_with_a_dot(store: AdapterStore, adapters: dict[str, LoraAdapter]):
    # langgraph refuses "." in its namespace labels; ours allow it
    rec = store.put(adapters[FROG], namespace=DOTTED, text=FROG)
    assert [r.id for r in store.search("which animal do i own ?", namespace=DOTTED)] == [rec.id]
    assert store.search("which animal do i own ?", namespace=("users", "ann")) == []


def test_reopening_reconciles_with_the_files(tmp_path: Path, model: Any, backing: InMemoryStore, adapters):
    store = AdapterStore.for_model(model, tmp_path / "store", index=backing)
    ids = _fill(store, adapters)
    # an entry lost (as if the put crashed before indexing) and one whose files are gone
    backing.delete(("agenthn_index", "users", "alice"), ids[TEA])
    store.files.remove_dir(store.files.id_dir(USERS, ids[FROG]))
    reopened = AdapterStore.for_model(model, tmp_path / "store", index=backing)
    report = reopened.last_reconcile
    assert (report.reindexed, report.dropped_index_entries) == (1, 1), report
    assert {r.id for r in reopened.search("what do i drink ?", namespace=ALICE, k=5)} == {ids[TEA], ids[LIMA]}
    assert reopened.count() == 2 and reopened.reconcile().clean


def test_a_backing_store_built_for_another_base_is_refused(tmp_path: Path, backing: InMemoryStore, store):
    with pytest.raises(StoreMismatchError, match="base model"):
        AdapterStore(tmp_path / "other", base_fingerprint="f" * 64, index=backing)
    with pytest.raises(StoreMismatchError, match="embedding"):
        AdapterStore(
            tmp_path / "other2",
            base_fingerprint=store.base_fingerprint,
            index=BaseStoreIndex(backing, embedding_name="x"),
        )


def test_bad_backends_are_refused(tmp_path: Path, model: Any, backing: InMemoryStore, store: AdapterStore):
    with pytest.raises(InvalidArgumentError, match="vector index"):
        BaseStoreIndex(InMemoryStore())
    with pytest.raises(TypeError):
        AdapterStore.for_model(model, tmp_path / "x", index=object())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="Chroma"):
        AdapterStore.for_model(model, tmp_path / "y", index=backing, collection="another")
    with pytest.raises(InvalidArgumentError):
        AdapterStore.for_model(model, tmp_path / "z", index=store)
    assert isinstance(store, BaseStore)  # an AdapterStore is a BaseStore, yet never an index of another
    with pytest.raises(AttributeError, match="not Chroma"):
        _ = store.collection
