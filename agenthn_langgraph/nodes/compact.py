"""Long-horizon memory: compact the oldest turns into adapters, and recall them per question.

``CompactNode`` is where memory is compacted. When more than ``max_turns`` turns are un-compacted,
the oldest ones are rendered with the model's chat template, internalized into one *segment*
adapter (one hypernetwork forward pass), stored and indexed, and evicted from ``messages`` with
``RemoveMessage``. Cuts fall only on turn boundaries (a turn starts at a human message), so an AI
tool call is never separated from its ``ToolMessage`` results, and the newest human message always
stays. Leading system messages are never evicted.

``MemoryRecallNode`` runs before the model answers: it searches the store for the segments most
relevant to the latest question and puts their ids in ``active_adapters["segments"]``; the model
node applies them to that call. The prompt stays a few turns long however long the thread grows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, RemoveMessage, SystemMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda

from ..chat_model import LocalHypernetChatModel, to_chat_dicts
from ..errors import AdapterNormError, TextTooLongError
from .state import NamespaceTemplate, latest_human_text, messages_of, ref, run_context

DEFAULT_SEGMENT_NAMESPACE = ("memories", "{thread_id}")


def split_turns(messages: Sequence[BaseMessage]) -> tuple[list[BaseMessage], list[list[BaseMessage]]]:
    """(leading system messages, turns); a turn is a human message and everything up to the next one."""
    head: list[BaseMessage] = []
    turns: list[list[BaseMessage]] = []
    for m in messages:
        if isinstance(m, HumanMessage):
            turns.append([m])
        elif turns:
            turns[-1].append(m)
        elif isinstance(m, SystemMessage):
            head.append(m)
        else:  # AI/tool messages before any human message belong to a turn of their own
            turns.append([m])
    return head, turns


def render_segment(model: LocalHypernetChatModel, messages: Sequence[BaseMessage]) -> str:
    """The segment as the model's chat template writes it (without the leading BOS token)."""
    text = model.engine.render(to_chat_dicts(messages), add_generation_prompt=False)
    bos = model.engine.tokenizer.bos_token
    if bos and text.startswith(bos):
        text = text[len(bos) :]
    return text.strip()


class CompactNode(RunnableLambda):
    """Internalize the oldest turns into a segment adapter and evict them from ``messages``.

    Args:
        model: the chat model whose hypernetwork writes the adapters.
        store: an :class:`~agenthn_langgraph.store.AdapterStore`.
        max_turns: compact once more than this many turns are un-compacted (>= 1).
        keep_turns: turns left in context after compacting (1 <= keep_turns <= max_turns).
        max_segment_turns: at most this many turns go into one segment adapter.
        namespace: where segments are stored; default ``("memories", "{thread_id}")``.

    Writes ``messages`` (``RemoveMessage`` for each evicted one), ``memory_segments`` and
    ``compacted_turns``. Nothing happens (``{}``) while the thread is short.

    Example:
        >>> from agenthn_langgraph.store import AdapterStore
        >>> import tempfile
        >>> llm = LocalHypernetChatModel()
        >>> node = CompactNode(llm, AdapterStore.for_model(llm.engine, tempfile.mkdtemp()), max_turns=1, keep_turns=1)
        >>> state = {"messages": [HumanMessage("my pet is a frog .", id="1"), HumanMessage("hi", id="2")]}
        >>> update = node.invoke(state, config={"configurable": {"thread_id": "t1"}})
        >>> [m.id for m in update["messages"]], update["compacted_turns"]
        (['1'], 1)
    """

    def __init__(
        self,
        model: LocalHypernetChatModel,
        store: Any,
        *,
        max_turns: int = 6,
        keep_turns: int = 2,
        max_segment_turns: int = 8,
        namespace: str | Sequence[str] = DEFAULT_SEGMENT_NAMESPACE,
        name: str = "compact",
    ) -> None:
        if not 1 <= keep_turns <= max_turns:
            raise ValueError(f"need 1 <= keep_turns <= max_turns, got keep_turns={keep_turns}, max_turns={max_turns}")
        if max_segment_turns < 1:
            raise ValueError("max_segment_turns must be >= 1")
        self.model, self.store = model, store
        self.max_turns, self.keep_turns, self.max_segment_turns = max_turns, keep_turns, max_segment_turns
        self.namespace = NamespaceTemplate(namespace)
        super().__init__(self._compact, afunc=self._acompact, name=name)

    def _compact(self, state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        messages = messages_of(state)
        _, turns = split_turns(messages)
        if len(turns) <= self.max_turns:
            return {}
        namespace = self.namespace.format(config, run_context())
        old = turns[: len(turns) - self.keep_turns]
        evicted = [m for turn in old for m in turn]
        if any(m.id is None for m in evicted):  # checked before anything is written
            raise ValueError("messages to evict have no id; build state through add_messages")
        first_turn = int(state.get("compacted_turns") or 0)
        segment_ids: list[str] = []
        for start in range(0, len(old), self.max_segment_turns):
            group = old[start : start + self.max_segment_turns]
            segment_ids += self._store_segments(group, first_turn + start, namespace)
        return {
            "messages": [RemoveMessage(id=m.id) for m in evicted],
            "memory_segments": segment_ids,
            "compacted_turns": len(old),
        }

    def _store_segments(self, group: list[list[BaseMessage]], first_turn: int, namespace: tuple[str, ...]) -> list[str]:
        """One segment adapter for ``group``. A group the hypernetwork cannot take whole (too many
        chunks, or so many that their summed delta is refused as too large) is split by turn; a
        single such turn keeps the longest head that works (``extra.truncated``). One huge message
        can therefore never make a thread un-compactable."""
        text = render_segment(self.model, [m for turn in group for m in turn])
        turn_range = (first_turn, first_turn + len(group) - 1)
        extra: dict[str, Any] = {}
        try:
            adapter = self.model.internalize(text, kind="segment", extra={"turn_start": turn_range[0]})
        except (TextTooLongError, AdapterNormError):
            if len(group) > 1:
                return [
                    i for k, turn in enumerate(group) for i in self._store_segments([turn], first_turn + k, namespace)
                ]
            adapter, text = self._internalize_head(text, turn_range[0])
            extra = {"truncated": True}
        record = self.store.put(
            adapter, namespace=namespace, text=text, kind="segment", turn_range=turn_range, extra=extra or None
        )
        return [record.id]

    def _internalize_head(self, text: str, turn_start: int) -> tuple[Any, str]:
        engine = self.model.engine
        ids = engine.encode(text)
        budget = min(len(ids), engine.max_chunks * (engine.hypernet.config.window // 2))
        while True:
            head = engine.tokenizer.decode(ids[:budget])
            try:
                return self.model.internalize(head, kind="segment", extra={"turn_start": turn_start}), head
            except (TextTooLongError, AdapterNormError):
                if budget <= engine.hypernet.config.window // 2:
                    raise
                budget //= 2

    async def _acompact(self, state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        return await asyncio.to_thread(self._compact, state, config)


class MemoryRecallNode(RunnableLambda):
    """Before the model answers: put the ``top_k`` segments relevant to the latest question in
    ``active_adapters["segments"]`` (an empty list when nothing is stored or relevant).

    Args:
        store: the :class:`~agenthn_langgraph.store.AdapterStore` the segments are in.
        top_k: at most this many segment adapters are composed into one call. Default 1: the tiny
            default answers 8/10 early facts of a 10-fact thread with one recalled segment and 4/10
            with two composed (``examples/long_memory.py``); a larger hypernetwork composes better.
        min_score: ignore segments less similar than this (cosine similarity of MiniLM embeddings).
        namespace: must match the ``CompactNode``'s.
    """

    def __init__(
        self,
        store: Any,
        *,
        top_k: int = 1,
        min_score: float | None = None,
        namespace: str | Sequence[str] = DEFAULT_SEGMENT_NAMESPACE,
        name: str = "recall_memory",
    ) -> None:
        if top_k < 1:
            raise ValueError("top_k must be >= 1")
        self.store, self.top_k, self.min_score = store, top_k, min_score
        self.namespace = NamespaceTemplate(namespace)
        super().__init__(self._recall, afunc=self._arecall, name=name)

    def _recall(self, state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        query = latest_human_text(messages_of(state))
        if not query:
            return {"active_adapters": {"segments": []}}
        namespace = self.namespace.format(config, run_context())
        hits = self.store.search(query, namespace=namespace, k=self.top_k, kind="segment", min_score=self.min_score)
        return {"active_adapters": {"segments": [ref(h.id, namespace) for h in hits]}}

    async def _arecall(self, state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        return await asyncio.to_thread(self._recall, state, config)
