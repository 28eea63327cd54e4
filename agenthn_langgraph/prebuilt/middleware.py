"""Add weight memory to an existing ``langchain.agents.create_agent`` agent in one line.

    agent = create_agent(model, tools, middleware=[WeightMemoryMiddleware(model, adapter_store)])

``before_model`` compacts old turns into segment adapters (evicting them) and recalls the
segments relevant to the latest question; ``wrap_model_call`` applies them to that model call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, NotRequired

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse
from langchain_core.language_models import BaseLanguageModel
from langgraph.config import get_config
from langgraph.graph import add_messages
from langgraph.runtime import Runtime

from ..chat_model import LocalHypernetChatModel
from ..nodes.compact import DEFAULT_SEGMENT_NAMESPACE, CompactNode, MemoryRecallNode, TokenCounter
from ..nodes.state import AdapterRef, add_ids, add_int, all_adapter_refs, merge_active_adapters
from ._common import resolve_model, resolve_store
from .agents import DEFAULT_AGENT_KEEP_TURNS, DEFAULT_AGENT_MAX_TURNS


class WeightMemoryAgentState(AgentState):
    active_adapters: NotRequired[Annotated[dict[str, list[AdapterRef]], merge_active_adapters]]
    memory_segments: NotRequired[Annotated[list[str], add_ids]]
    compacted_turns: NotRequired[Annotated[int, add_int]]


class WeightMemoryMiddleware(AgentMiddleware[WeightMemoryAgentState]):
    """Long-horizon weight memory for any ``create_agent`` agent whose model is a LocalHypernetChatModel.

    Takes :func:`~agenthn_langgraph.prebuilt.create_memory_agent`'s memory options, with its
    defaults (compaction past 2 turns, growing segments of one statement each, relevance-gated
    recall).
    """

    state_schema = WeightMemoryAgentState

    def __init__(
        self,
        model: LocalHypernetChatModel | None = None,
        adapter_store: Any = None,
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
    ) -> None:
        super().__init__()
        self.model = resolve_model(model)
        self.adapter_store = resolve_store(self.model, adapter_store)
        if max_tokens is None and max_turns is None and keep_turns is None:  # as create_memory_agent
            max_turns, keep_turns = DEFAULT_AGENT_MAX_TURNS, DEFAULT_AGENT_KEEP_TURNS
        self.compact = CompactNode(
            self.model,
            self.adapter_store,
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
        self.recall = MemoryRecallNode(self.adapter_store, model=self.model, top_k=top_k, namespace=namespace)

    def before_model(self, state: WeightMemoryAgentState, runtime: Runtime) -> dict[str, Any] | None:
        return self._before_with_config(dict(state), get_config())

    async def abefore_model(self, state: WeightMemoryAgentState, runtime: Runtime) -> dict[str, Any] | None:
        return await asyncio.to_thread(self._before_with_config, dict(state), get_config())

    def _before_with_config(self, state: dict[str, Any], config: Any) -> dict[str, Any]:
        update = self.compact._compact(state, config)
        if update:  # recall sees the state as the compaction leaves it (the graph's nodes run in turn)
            state = {
                **state,
                "messages": add_messages(state["messages"], update["messages"]),
                "memory_segments": add_ids(state.get("memory_segments"), update["memory_segments"]),
            }
        return {**update, **self.recall._recall(state, config)}

    def _with_adapters(self, request: ModelRequest) -> ModelRequest:
        refs = all_adapter_refs(request.state or {})
        settings = {**(request.model_settings or {}), "adapters": refs, "adapter_store": self.adapter_store}
        return request.override(model_settings=settings)

    def wrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]) -> ModelResponse:
        return handler(self._with_adapters(request))

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse:
        return await handler(self._with_adapters(request))
