"""The self-improvement graph: attempt -> grade -> reflect -> re-internalize -> retry."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import All, Checkpointer

from ..chat_model import LocalHypernetChatModel
from ..nodes.reflect import (
    DEFAULT_NOTES_NAMESPACE,
    AttemptNode,
    GradeNode,
    Grader,
    ReflectNode,
    Reflector,
    SelfImproveState,
    exact_match_grader,
    start_run,
)
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


def create_self_improvement_graph(
    model: LocalHypernetChatModel | None = None,
    adapter_store: AdapterStore | str | os.PathLike[str] | None = None,
    *,
    max_rounds: int = 3,
    grader: Grader = exact_match_grader,
    reflector: Reflector | None = None,
    namespace: str | Sequence[str] = DEFAULT_NOTES_NAMESPACE,
    state_schema: type[Any] | None = None,
    context_schema: type[Any] | None = AgentContext,
    checkpointer: Checkpointer = None,
    store: BaseStore | None = None,
    interrupt_before: All | list[str] | None = None,
    interrupt_after: All | list[str] | None = None,
    debug: bool = False,
    name: str | None = "self_improvement",
) -> CompiledStateGraph:
    """Improve at a set of practice questions by rewriting and re-internalizing notes.

    Round 0 attempts with no notes. Each round reflects on the failures, rewrites the notes,
    internalizes them into a fresh adapter and attempts again. The loop stops after
    ``max_rounds`` reflections, at a perfect score, or when a round brings no gain; the state's
    ``best_adapter`` / ``best_notes`` / ``best_score`` are the best seen, so stopping never loses a
    better earlier round.

    Input: ``{"study_material": str, "questions": [{"question": ..., "answer": ...}, ...]}``. Each
    input starts a new run (the ``start`` node resets the loop's keys), also on a thread that ran
    before; notes adapters get run-unique ids, so an earlier run's ``best_adapter`` stays valid.

    ``adapter_store`` is where the notes adapters go; the keyword-only langgraph options
    (``state_schema`` ... ``name``) are passed to ``StateGraph`` / ``compile`` as in langgraph's
    ``create_react_agent``.
    """
    if max_rounds < 1:
        raise ValueError("max_rounds must be >= 1")
    store = check_langgraph_store(store, adapter_store)
    model = resolve_model(model)
    adapter_store = resolve_store(model, adapter_store)

    def next_step(state: dict[str, Any]) -> str:
        scores = state.get("scores") or []
        if scores and scores[-1] >= 1.0:
            return END
        if int(state.get("round") or 0) >= max_rounds:
            return END
        if len(scores) >= 2 and scores[-1] <= max(scores[:-1]):  # this round brought no gain
            return END
        return "reflect"

    def after_reflect(state: dict[str, Any]) -> str:
        return END if state.get("stop_reason") else "attempt"

    graph = StateGraph(check_state_schema(state_schema, SelfImproveState), context_schema=context_schema)
    graph.add_node(AttemptNode(model, adapter_store))
    graph.add_node(GradeNode(grader))
    graph.add_node(ReflectNode(model, adapter_store, reflector=reflector, namespace=namespace))
    graph.add_node("start", start_run)
    graph.add_edge(START, "start")
    graph.add_edge("start", "attempt")
    graph.add_edge("attempt", "grade")
    graph.add_conditional_edges("grade", next_step, ["reflect", END])
    graph.add_conditional_edges("reflect", after_reflect, ["attempt", END])
    return compile_graph(
        graph,
        checkpointer=checkpointer,
        store=store,
        interrupt_before=interrupt_before,
        interrupt_after=interrupt_after,
        debug=debug,
        name=name,
    )
