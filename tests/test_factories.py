"""The prebuilt factories take langgraph's own options, in langgraph's names (as ``create_react_agent``)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Annotated, TypedDict

import pytest
from langchain_core.messages import AIMessage, AnyMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import add_messages
from langgraph.store.memory import InMemoryStore

from agenthn_langgraph.chat_model import LocalHypernetChatModel
from agenthn_langgraph.errors import AgenthnError, InvalidArgumentError, StoreArgumentError
from agenthn_langgraph.nodes.reflect import SelfImproveState
from agenthn_langgraph.nodes.state import WeightMemoryState
from agenthn_langgraph.prebuilt import (
    WeightMemoryMiddleware,
    create_memory_agent,
    create_personalized_agent,
    create_self_improvement_graph,
    create_skill_agent,
)
from agenthn_langgraph.prebuilt.agents import PersonalizedState, SkillState
from agenthn_langgraph.store import AdapterStore

FACTORIES = {
    "memory": (create_memory_agent, WeightMemoryState, "compact"),
    "personalized": (create_personalized_agent, PersonalizedState, "update_profile"),
    "skill": (create_skill_agent, SkillState, "recall_skill"),
    "self_improvement": (create_self_improvement_graph, SelfImproveState, "attempt"),
}
LANGGRAPH_OPTIONS = (
    "state_schema",
    "context_schema",
    "checkpointer",
    "store",
    "interrupt_before",
    "interrupt_after",
    "debug",
    "name",
)


@pytest.fixture(scope="module")
def llm() -> LocalHypernetChatModel:
    return LocalHypernetChatModel(max_tokens=4)


@pytest.fixture()
def adapter_store(llm, tmp_path) -> AdapterStore:
    return AdapterStore.for_model(llm.engine, tmp_path / "adapters")


@dataclass
class MyContext:
    user_id: str | None = None
    locale: str = "en"


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_langgraph_options_are_keyword_only(kind):
    params = inspect.signature(FACTORIES[kind][0]).parameters
    assert list(params)[:2] == ["model", "adapter_store"]
    for option in LANGGRAPH_OPTIONS:
        assert params[option].kind is inspect.Parameter.KEYWORD_ONLY, option


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_langgraph_options_reach_state_graph_and_compile(kind, llm, adapter_store):
    factory, default_state, first_node = FACTORIES[kind]

    class MyState(default_state):
        note: str

    saver, lg_store = InMemorySaver(), InMemoryStore()
    graph = factory(
        llm,
        adapter_store=adapter_store,
        state_schema=MyState,
        context_schema=MyContext,
        checkpointer=saver,
        store=lg_store,
        interrupt_before=[first_node],
        interrupt_after=["agent" if kind != "self_improvement" else "grade"],
        debug=False,
        name=f"my_{kind}",
    )
    assert graph.builder.state_schema is MyState
    assert graph.builder.context_schema is MyContext
    assert graph.checkpointer is saver
    assert graph.store is lg_store
    assert graph.interrupt_before_nodes == [first_node]
    assert graph.interrupt_after_nodes == ["agent" if kind != "self_improvement" else "grade"]
    assert graph.name == f"my_{kind}"
    assert graph.debug is False


def test_interrupt_before_pauses_a_real_run_and_it_resumes(llm, adapter_store):
    lg_store = InMemoryStore()
    graph = create_memory_agent(
        llm, adapter_store=adapter_store, checkpointer=InMemorySaver(), store=lg_store, interrupt_before=["agent"]
    )
    cfg = {"configurable": {"thread_id": "t1"}}
    paused = graph.invoke({"messages": [("user", "hello !")]}, cfg)
    assert not any(isinstance(m, AIMessage) for m in paused["messages"])
    assert graph.get_state(cfg).next == ("agent",)
    done = graph.invoke(None, cfg)
    assert isinstance(done["messages"][-1], AIMessage)
    assert graph.get_state(cfg).next == ()


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_store_given_our_adapter_store_is_refused_with_a_pointer_to_adapter_store(kind, llm, adapter_store, tmp_path):
    factory = FACTORIES[kind][0]
    for old_meaning in (adapter_store, str(tmp_path / "adapters"), tmp_path / "adapters"):
        with pytest.raises(StoreArgumentError, match="adapter_store=") as err:
            factory(llm, store=old_meaning)
        assert isinstance(err.value, TypeError) and isinstance(err.value, AgenthnError)
    with pytest.raises(StoreArgumentError, match="BaseStore"):
        factory(llm, store={"not": "a store"})


class OnlyMessages(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def test_state_schema_missing_a_key_the_nodes_write_is_refused(llm, adapter_store):
    with pytest.raises(InvalidArgumentError, match="memory_segments"):
        create_memory_agent(llm, adapter_store=adapter_store, state_schema=OnlyMessages)


def test_middleware_takes_adapter_store(llm, adapter_store):
    middleware = WeightMemoryMiddleware(llm, adapter_store=adapter_store)
    assert middleware.adapter_store is adapter_store
