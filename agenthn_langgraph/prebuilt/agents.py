"""Factories for the memory, personalized and skill agents.

Each returns a compiled LangGraph graph and takes langgraph's own options as its
``create_react_agent`` does (keyword-only): ``state_schema``, ``context_schema``, ``checkpointer``,
``store`` (langgraph's ``BaseStore``), ``interrupt_before``, ``interrupt_after``, ``debug``,
``name``. The adapter store is ``adapter_store`` (an AdapterStore or a directory path). Pass no
checkpointer to serve the graph with ``langgraph dev`` (the server brings its own).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NotRequired

from langchain_core.language_models import BaseLanguageModel
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import All, Checkpointer

from ..chat_model import LocalHypernetChatModel
from ..nodes.agent import CallModelNode
from ..nodes.compact import DEFAULT_SEGMENT_NAMESPACE, CompactNode, MemoryRecallNode, TokenCounter
from ..nodes.profile import DEFAULT_PROFILE_NAMESPACE, ProfileExtractor, ProfileUpdateNode
from ..nodes.skill import SkillLibrary, SkillRecallNode
from ..nodes.state import WeightMemoryState
from ._common import (
    AgentContext,
    check_langgraph_store,
    check_state_schema,
    compile_graph,
    resolve_model,
    resolve_store,
)

if TYPE_CHECKING:
    from ..store import AdapterStore

# The memory agent compacts every turn past one and grows segments to 8 turns: the prompt holds
# the previous turn and the question, and what left it is in weights (docs/memory-benchmark.md).
DEFAULT_AGENT_MAX_TURNS = 2
DEFAULT_AGENT_KEEP_TURNS = 1


class PersonalizedState(WeightMemoryState):
    profile: NotRequired[dict[str, str]]
    profile_pending: NotRequired[dict[str, list[dict[str, Any]]]]
    """Edits not yet internalized, per user: ``{namespace as JSON: [edit, ...]}``."""
    profile_pending_edits: NotRequired[int]


class SkillState(WeightMemoryState):
    skill: NotRequired[str | None]


def create_memory_agent(
    model: LocalHypernetChatModel | None = None,
    adapter_store: AdapterStore | str | os.PathLike[str] | None = None,
    *,
    max_tokens: int | None = None,
    keep_tokens: int | None = None,
    token_counter: TokenCounter | BaseLanguageModel | None = None,
    max_turns: int | None = None,
    keep_turns: int | None = None,
    max_segment_turns: int = 8,
    grow_segments: bool = True,
    max_segment_statements: int | None = 1,
    top_k: int = 1,
    namespace: str | Sequence[str] = DEFAULT_SEGMENT_NAMESPACE,
    system_prompt: str | None = None,
    state_schema: type[Any] | None = None,
    context_schema: type[Any] | None = AgentContext,
    checkpointer: Checkpointer = None,
    store: BaseStore | None = None,
    interrupt_before: All | list[str] | None = None,
    interrupt_after: All | list[str] | None = None,
    debug: bool = False,
    name: str | None = "memory_agent",
) -> CompiledStateGraph:
    """A chat agent with long-horizon weight memory: ``compact -> recall_memory -> agent``.

    Once a thread holds more than ``max_tokens`` tokens (by ``token_counter``, default the model's
    own tokenizer) or more than ``max_turns`` turns (with neither: ``max_turns=2, keep_turns=1``),
    the oldest turns are internalized and evicted down to ``keep_tokens`` / ``keep_turns`` (see
    :class:`~agenthn_langgraph.nodes.CompactNode`). With ``grow_segments`` (the default) evicted
    turns join the newest segment adapter until it holds ``max_segment_turns`` turns or would hold
    a second statement of a value (``max_segment_statements``), so the prompt stays a turn or two
    long while segments stay whole. Before each answer the segment whose stored statement answers
    the question is applied to the model call, and none for small
    talk (see :class:`~agenthn_langgraph.nodes.MemoryRecallNode`).

    Example:
        >>> import tempfile
        >>> from langgraph.checkpoint.memory import InMemorySaver
        >>> agent = create_memory_agent(adapter_store=tempfile.mkdtemp(), max_turns=2, keep_turns=1,
        ...                             checkpointer=InMemorySaver())
        >>> cfg = {"configurable": {"thread_id": "t1"}}
        >>> for text in ["my pet is a frog .", "i live in lima .", "hello , how are you ?"]:
        ...     _ = agent.invoke({"messages": [("user", text)]}, cfg)
        >>> out = agent.invoke({"messages": [("user", "what pet do i have ?")]}, cfg)
        >>> out["messages"][-1].content.split()[0], len(out["memory_segments"])  # a segment per statement
        ('frog', 2)
    """
    store = check_langgraph_store(store, adapter_store)
    model = resolve_model(model)
    adapter_store = resolve_store(model, adapter_store)
    if max_tokens is None and max_turns is None and keep_turns is None:
        max_turns, keep_turns = DEFAULT_AGENT_MAX_TURNS, DEFAULT_AGENT_KEEP_TURNS
    graph = StateGraph(check_state_schema(state_schema, WeightMemoryState), context_schema=context_schema)
    graph.add_node(
        CompactNode(
            model,
            adapter_store,
            max_tokens=max_tokens,
            keep_tokens=keep_tokens,
            token_counter=token_counter,
            max_turns=max_turns,
            keep_turns=keep_turns,
            max_segment_turns=max_segment_turns,
            grow_segments=grow_segments,
            max_segment_statements=max_segment_statements,
            namespace=namespace,
        )
    )
    graph.add_node(MemoryRecallNode(adapter_store, model=model, top_k=top_k, namespace=namespace))
    graph.add_node(CallModelNode(model, adapter_store, system_prompt=system_prompt))
    graph.add_edge(START, "compact")
    graph.add_edge("compact", "recall_memory")
    graph.add_edge("recall_memory", "agent")
    graph.add_edge("agent", END)
    return compile_graph(
        graph,
        checkpointer=checkpointer,
        store=store,
        interrupt_before=interrupt_before,
        interrupt_after=interrupt_after,
        debug=debug,
        name=name,
    )


def create_personalized_agent(
    model: LocalHypernetChatModel | None = None,
    adapter_store: AdapterStore | str | os.PathLike[str] | None = None,
    *,
    extractor: ProfileExtractor | None = None,
    internalize_every: int = 3,
    namespace: str | Sequence[str] = DEFAULT_PROFILE_NAMESPACE,
    system_prompt: str | None = None,
    state_schema: type[Any] | None = None,
    context_schema: type[Any] | None = AgentContext,
    checkpointer: Checkpointer = None,
    store: BaseStore | None = None,
    interrupt_before: All | list[str] | None = None,
    interrupt_after: All | list[str] | None = None,
    debug: bool = False,
    name: str | None = "personalized_agent",
) -> CompiledStateGraph:
    """An agent with a per-user profile adapter: ``update_profile -> agent``.

    Run it with ``context=AgentContext(user_id=...)`` (or ``configurable.user_id``). The profile
    adapter persists in the store and is applied in the user's later sessions, from any thread.
    """
    store = check_langgraph_store(store, adapter_store)
    model = resolve_model(model)
    adapter_store = resolve_store(model, adapter_store)
    graph = StateGraph(check_state_schema(state_schema, PersonalizedState), context_schema=context_schema)
    graph.add_node(
        ProfileUpdateNode(
            model, adapter_store, extractor=extractor, internalize_every=internalize_every, namespace=namespace
        )
    )
    graph.add_node(CallModelNode(model, adapter_store, system_prompt=system_prompt))
    graph.add_edge(START, "update_profile")
    graph.add_edge("update_profile", "agent")
    graph.add_edge("agent", END)
    return compile_graph(
        graph,
        checkpointer=checkpointer,
        store=store,
        interrupt_before=interrupt_before,
        interrupt_after=interrupt_after,
        debug=debug,
        name=name,
    )


def create_skill_agent(
    model: LocalHypernetChatModel | None = None,
    adapter_store: AdapterStore | str | os.PathLike[str] | None = None,
    *,
    skills: Mapping[str, str] | None = None,
    min_score: float | None = 0.2,
    nudge: str | None = None,
    system_prompt: str | None = None,
    state_schema: type[Any] | None = None,
    context_schema: type[Any] | None = AgentContext,
    checkpointer: Checkpointer = None,
    store: BaseStore | None = None,
    interrupt_before: All | list[str] | None = None,
    interrupt_after: All | list[str] | None = None,
    debug: bool = False,
    name: str | None = "skill_agent",
) -> CompiledStateGraph:
    """An agent that applies the matching skill adapter per question: ``recall_skill -> agent``.

    ``skills`` (name -> reference document) are internalized once into the store's skill library;
    ones already there with the same text are reused.
    """
    store = check_langgraph_store(store, adapter_store)
    model = resolve_model(model)
    adapter_store = resolve_store(model, adapter_store)
    library = SkillLibrary(model, adapter_store)
    for skill_name, document in (skills or {}).items():
        library.add(skill_name, document)
    graph = StateGraph(check_state_schema(state_schema, SkillState), context_schema=context_schema)
    graph.add_node(SkillRecallNode(library, min_score=min_score, nudge=nudge))
    graph.add_node(CallModelNode(model, adapter_store, system_prompt=system_prompt))
    graph.add_edge(START, "recall_skill")
    graph.add_edge("recall_skill", "agent")
    graph.add_edge("agent", END)
    return compile_graph(
        graph,
        checkpointer=checkpointer,
        store=store,
        interrupt_before=interrupt_before,
        interrupt_after=interrupt_after,
        debug=debug,
        name=name,
    )
