"""AdapterStore is langgraph's BaseStore: its ops, namespaces kept apart, and a real graph using it."""

from __future__ import annotations

import operator
from typing import Annotated

import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore, GetOp, ListNamespacesOp, MatchCondition, PutOp, SearchOp

from agenthn_langgraph.chat_model import LocalHypernetChatModel
from agenthn_langgraph.errors import AgenthnError, ArgumentTypeError, InvalidArgumentError
from agenthn_langgraph.lora.adapter import LoraAdapter
from agenthn_langgraph.nodes import CallModelNode, CompactNode, MemoryRecallNode, WeightMemoryState
from agenthn_langgraph.prebuilt import create_memory_agent
from agenthn_langgraph.store import AdapterStore

FROG = "<user> my pet is a frog . <assistant> nice ! <end>"
LIMA = "<user> i live in lima . <assistant> ok . <end>"
ANN, BOB = ("users", "ann"), ("users", "bob")


@pytest.fixture(scope="module")
def llm() -> LocalHypernetChatModel:
    return LocalHypernetChatModel(max_tokens=4)


@pytest.fixture()
def store(llm, tmp_path) -> AdapterStore:
    return AdapterStore.for_model(llm.engine, tmp_path / "store")


def test_put_get_search_delete_through_langgraphs_api(llm, store):
    assert isinstance(store, BaseStore)
    store.put(ANN, "pet", {"text": FROG, "kind": "profile", "extra": {"source": "chat"}})
    store.put(ANN, "city", {"text": LIMA, "kind": "profile"})
    store.put(BOB, "pet", {"text": "<user> my pet is a cat . <assistant> ok . <end>", "kind": "profile"})

    item = store.get(ANN, "pet")
    assert (item.namespace, item.key, item.value["text"], item.value["kind"]) == (ANN, "pet", FROG, "profile")
    assert item.value["extra"] == {"source": "chat"} and "adapter" not in item.value  # records, never tensors
    assert store.get(("users", "carl"), "pet") is None and store.get(ANN, "nope") is None

    # the store's own API on the same object: the adapter, which answers from its weights
    adapter = store.get("pet", namespace=ANN)
    assert isinstance(adapter, LoraAdapter)
    assert llm.invoke("what pet do i have ?", adapters=[adapter]).content.split()[0] == "frog"

    hits = store.search(ANN, query="what pet do i have ?", limit=2)
    assert [h.key for h in hits] == ["pet", "city"] and hits[0].score > hits[1].score
    assert {(h.namespace, h.key) for h in store.search(("users",), query="my pet", limit=10)} == {
        (ANN, "pet"),
        (ANN, "city"),
        (BOB, "pet"),
    }
    assert [h.key for h in store.search(ANN, query="my pet", limit=1, offset=1)] == ["city"]
    assert [h.key for h in store.search(ANN, filter={"kind": "profile", "extra": {"source": "chat"}})] == ["pet"]
    assert store.search(ANN, filter={"turn_start": {"$gte": 0}}) == []
    assert store.search(("users", "carl"), query="my pet") == []

    store.delete(ANN, "pet")
    assert store.get(ANN, "pet") is None and store.get(BOB, "pet") is not None
    store.delete(ANN, "pet")  # deleting what is not there is a no-op, as in langgraph's stores


def test_namespaces_are_listed_as_langgraph_lists_them(llm, store):
    for ns in (ANN, BOB, ("memories", "t1"), ("memories", "t2", "deep")):
        store.put(ns, "k1", {"text": FROG})
    assert store.list_namespaces() == sorted([ANN, BOB, ("memories", "t1"), ("memories", "t2", "deep")])
    assert store.list_namespaces(prefix=("users",)) == [ANN, BOB]
    assert store.list_namespaces(suffix=("ann",)) == [ANN]
    assert store.list_namespaces(prefix=("*", "t2")) == [("memories", "t2", "deep")]
    assert store.list_namespaces(max_depth=1) == [("memories",), ("users",)]
    assert store.list_namespaces(limit=1, offset=1) == [("memories", "t2", "deep")]
    ops = [ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("users",)),), limit=10)]
    assert store.batch(ops) == [[ANN, BOB]]


async def test_async_twins_and_batched_ops(llm, store):
    await store.aput(ANN, "pet", {"text": FROG})
    assert (await store.aget(ANN, "pet")).key == "pet"
    assert [h.key for h in await store.asearch(ANN, query="what pet do i have ?")] == ["pet"]
    results = await store.abatch(
        [GetOp(ANN, "pet"), PutOp(ANN, "city", {"text": LIMA}), SearchOp(ANN, None, 10, 0, None)]
    )
    assert results[0].key == "pet" and results[1] is None and sorted(i.key for i in results[2]) == ["city", "pet"]
    await store.adelete(ANN, "pet")
    assert await store.aget(ANN, "pet") is None
    # the store's own async API is still there
    assert isinstance(await store.aget("city", namespace=ANN), LoraAdapter)


def test_bad_puts_are_typed_errors(llm, store, tmp_path):
    for value, error in (
        ({"kind": "profile"}, ArgumentTypeError),  # no text
        ({"text": FROG, "colour": "red"}, InvalidArgumentError),  # a key the store would drop
        ("just text", ArgumentTypeError),
    ):
        with pytest.raises(error) as err:
            store.put(ANN, "k", value)
        assert isinstance(err.value, AgenthnError)
    with pytest.raises(InvalidArgumentError, match="index"):
        store.put(ANN, "k", {"text": FROG}, index=False)
    # without a model, a value needs its adapter; with one it is stored as given
    bare = AdapterStore(tmp_path / "bare", base_fingerprint=llm.engine.fingerprint)
    with pytest.raises(InvalidArgumentError, match="for_model"):
        bare.put(ANN, "k", {"text": FROG})
    bare.put(ANN, "k", {"text": FROG, "adapter": llm.internalize(FROG)})
    assert bare.get(ANN, "k").value["text"] == FROG


class InspectState(WeightMemoryState):
    seen: Annotated[list[str], operator.add]


def test_a_graph_compiled_with_the_adapter_store_reaches_it_through_get_store(llm, store):
    """Real LangGraph: CompactNode writes segments; another node finds them through ``get_store()``."""

    def inspect(state: InspectState) -> dict:
        lg_store = get_store()
        found = lg_store.search(("memories", "t1"), query="what pet do i have ?", limit=5)
        return {"seen": [f"{type(lg_store).__name__}:{item.key}" for item in found]}

    graph = StateGraph(InspectState)
    graph.add_node(CompactNode(llm, store, max_turns=1, keep_turns=1))
    graph.add_node("inspect", inspect)
    graph.add_node(MemoryRecallNode(store))
    graph.add_node(CallModelNode(llm, store))
    graph.add_edge(START, "compact")
    graph.add_edge("compact", "inspect")
    graph.add_edge("inspect", "recall_memory")
    graph.add_edge("recall_memory", "agent")
    graph.add_edge("agent", END)
    app = graph.compile(checkpointer=InMemorySaver(), store=store)
    cfg = {"configurable": {"thread_id": "t1"}}
    app.invoke({"messages": [("user", "my pet is a frog .")]}, cfg)
    out = app.invoke({"messages": [("user", "what pet do i have ?")]}, cfg)
    segment = out["memory_segments"][0]
    assert out["seen"] == [f"AdapterStore:{segment}"]
    assert isinstance(out["messages"][-1], AIMessage) and out["messages"][-1].content.split()[0] == "frog"
    assert [i.key for i in store.search(("memories", "t1"))] == [segment]


def test_a_factory_takes_the_adapter_store_as_langgraphs_store_too(llm, store, tmp_path):
    agent = create_memory_agent(llm, adapter_store=store, store=store, max_turns=1, checkpointer=InMemorySaver())
    assert agent.store is store
    cfg = {"configurable": {"thread_id": "t9"}}
    for text in ("my pet is a frog .", "hello !"):
        agent.invoke({"messages": [("user", text)]}, cfg)
    assert store.list_namespaces(prefix=("memories",)) == [("memories", "t9")]
    other = AdapterStore.for_model(llm.engine, tmp_path / "other")
    with pytest.raises(TypeError, match="adapter_store="):
        create_memory_agent(llm, adapter_store=other, store=store)
