"""Factories for the memory, personalized and skill agents.

Each returns a compiled LangGraph graph (``checkpointer=`` / ``store=`` as usual). Pass no
checkpointer to serve the graph with ``langgraph dev`` (the server brings its own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NotRequired

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from ..chat_model import LocalHypernetChatModel
from ..nodes.agent import CallModelNode
from ..nodes.compact import DEFAULT_SEGMENT_NAMESPACE, CompactNode, MemoryRecallNode
from ..nodes.profile import DEFAULT_PROFILE_NAMESPACE, ProfileExtractor, ProfileUpdateNode
from ..nodes.skill import SkillLibrary, SkillRecallNode
from ..nodes.state import WeightMemoryState
from ._common import AgentContext, resolve_model, resolve_store


class PersonalizedState(WeightMemoryState):
    profile: NotRequired[dict[str, str]]
    profile_pending: NotRequired[list[dict[str, Any]]]
    profile_pending_edits: NotRequired[int]


class SkillState(WeightMemoryState):
    skill: NotRequired[str | None]


def create_memory_agent(
    model: LocalHypernetChatModel | None = None,
    store: Any = None,
    *,
    max_turns: int = 6,
    keep_turns: int = 2,
    top_k: int = 1,
    namespace: str | Sequence[str] = DEFAULT_SEGMENT_NAMESPACE,
    system_prompt: str | None = None,
    checkpointer: Checkpointer = None,
    name: str = "memory_agent",
) -> CompiledStateGraph:
    """A chat agent with long-horizon weight memory: ``compact -> recall_memory -> agent``.

    Once a thread holds more than ``max_turns`` turns, the oldest are internalized into segment
    adapters and evicted; before each answer the ``top_k`` segments relevant to the question are
    applied to the model call.

    Example:
        >>> import tempfile
        >>> from langgraph.checkpoint.memory import InMemorySaver
        >>> agent = create_memory_agent(store=tempfile.mkdtemp(), max_turns=2, keep_turns=1,
        ...                             checkpointer=InMemorySaver())
        >>> cfg = {"configurable": {"thread_id": "t1"}}
        >>> for text in ["my pet is a frog .", "i live in lima .", "hello , how are you ?"]:
        ...     _ = agent.invoke({"messages": [("user", text)]}, cfg)
        >>> out = agent.invoke({"messages": [("user", "what pet do i have ?")]}, cfg)
        >>> out["messages"][-1].content.split()[0], len(out["memory_segments"])
        ('frog', 1)
    """
    model = resolve_model(model)
    store = resolve_store(model, store)
    graph = StateGraph(WeightMemoryState, context_schema=AgentContext)
    graph.add_node(CompactNode(model, store, max_turns=max_turns, keep_turns=keep_turns, namespace=namespace))
    graph.add_node(MemoryRecallNode(store, top_k=top_k, namespace=namespace))
    graph.add_node(CallModelNode(model, store, system_prompt=system_prompt))
    graph.add_edge(START, "compact")
    graph.add_edge("compact", "recall_memory")
    graph.add_edge("recall_memory", "agent")
    graph.add_edge("agent", END)
    return graph.compile(checkpointer=checkpointer, name=name)


def create_personalized_agent(
    model: LocalHypernetChatModel | None = None,
    store: Any = None,
    *,
    extractor: ProfileExtractor | None = None,
    internalize_every: int = 3,
    namespace: str | Sequence[str] = DEFAULT_PROFILE_NAMESPACE,
    system_prompt: str | None = None,
    checkpointer: Checkpointer = None,
    name: str = "personalized_agent",
) -> CompiledStateGraph:
    """An agent with a per-user profile adapter: ``update_profile -> agent``.

    Run it with ``context=AgentContext(user_id=...)`` (or ``configurable.user_id``). The profile
    adapter persists in the store and is applied in the user's later sessions, from any thread.
    """
    model = resolve_model(model)
    store = resolve_store(model, store)
    graph = StateGraph(PersonalizedState, context_schema=AgentContext)
    graph.add_node(
        ProfileUpdateNode(model, store, extractor=extractor, internalize_every=internalize_every, namespace=namespace)
    )
    graph.add_node(CallModelNode(model, store, system_prompt=system_prompt))
    graph.add_edge(START, "update_profile")
    graph.add_edge("update_profile", "agent")
    graph.add_edge("agent", END)
    return graph.compile(checkpointer=checkpointer, name=name)


def create_skill_agent(
    model: LocalHypernetChatModel | None = None,
    store: Any = None,
    *,
    skills: Mapping[str, str] | None = None,
    min_score: float | None = 0.2,
    nudge: str | None = None,
    system_prompt: str | None = None,
    checkpointer: Checkpointer = None,
    name: str = "skill_agent",
) -> CompiledStateGraph:
    """An agent that applies the matching skill adapter per question: ``recall_skill -> agent``.

    ``skills`` (name -> reference document) are internalized once into the store's skill library;
    ones already there with the same text are reused.
    """
    model = resolve_model(model)
    store = resolve_store(model, store)
    library = SkillLibrary(model, store)
    for skill_name, document in (skills or {}).items():
        library.add(skill_name, document)
    graph = StateGraph(SkillState, context_schema=AgentContext)
    graph.add_node(SkillRecallNode(library, min_score=min_score, nudge=nudge))
    graph.add_node(CallModelNode(model, store, system_prompt=system_prompt))
    graph.add_edge(START, "recall_skill")
    graph.add_edge("recall_skill", "agent")
    graph.add_edge("agent", END)
    return graph.compile(checkpointer=checkpointer, name=name)
