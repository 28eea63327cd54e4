"""Long-horizon memory: compact the oldest turns into adapters, and recall them per question.

``CompactNode`` is where memory is compacted. When the un-compacted messages hold more than
``max_tokens`` tokens (counted by ``token_counter``, by default the model's own tokenizer and chat
template, as langchain's ``trim_messages`` and langmem's ``SummarizationNode`` budget them), or more
than ``max_turns`` turns, the oldest turns are rendered with the model's chat template,
internalized into one *segment* adapter (one hypernetwork forward pass), stored and indexed, and
evicted from ``messages`` with ``RemoveMessage``. Cuts fall only on turn boundaries (a turn starts
at a human message), so an AI tool call is never separated from its ``ToolMessage`` results, and
the newest turn, with the newest human message, always stays, even when it alone is over budget.
Leading system messages are never evicted.

``MemoryRecallNode`` runs before the model answers: it searches the store for the segments most
relevant to the latest question and puts their ids in ``active_adapters["segments"]``; the model
node applies them to that call. The prompt stays a few turns long however long the thread grows.

Compaction is idempotent. A segment's id is derived from its namespace, turn range and rendered
text (:func:`segment_id`), never drawn at random, so a retried or replayed node writes the same id
(found, not written again). And a crash after a segment's files are durable but before the thread's
state is saved is survived without duplicates: the next run finds that stored segment (same first
turn, same content, hence same id) and adopts it instead of compacting those turns a second time.
Segments no state refers to any more (e.g. after a thread was rewound and went on differently) are
removed explicitly with :meth:`CompactNode.remove_orphans`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseLanguageModel
from langchain_core.messages import BaseMessage, HumanMessage, RemoveMessage, SystemMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda

from ..chat_model import LocalHypernetChatModel, to_chat_dicts
from ..errors import (
    AdapterNormError,
    AdapterNotFoundError,
    ArgumentTypeError,
    InvalidArgumentError,
    TextTooLongError,
)
from ..memory.retrieval import (
    ENTRIES_KEY,
    MemoryEntry,
    SegmentRetriever,
    dump_entries,
    entries_for_turns,
    load_entries,
)
from ..options import check_int_option
from .state import NamespaceTemplate, latest_human_text, message_text, messages_of, ref, removed_id, run_context

DEFAULT_SEGMENT_NAMESPACE = ("memories", "{thread_id}")
DEFAULT_MAX_TURNS = 6
DEFAULT_KEEP_TURNS = 2

TokenCounter = Callable[[Sequence[BaseMessage]], int]
"""Tokens in a list of messages (``trim_messages``' ``token_counter`` shape)."""


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


def segment_id(namespace: Sequence[str], turn_range: tuple[int, int], text: str) -> str:
    """The id of the segment adapter of turns ``turn_range`` (inclusive) rendered as ``text``.

    Deterministic, so the same compaction always names the same segment: ``seg-<first>-<last>-``
    then 128 bits of sha256 over the namespace, the range and the text's own sha256. The
    namespace is hashed in too, so two threads that happen to start with the same words do not
    share ids (an id found in another namespace would read as that namespace's adapter).

    >>> segment_id(("memories", "t1"), (0, 1), "hi") == segment_id(["memories", "t1"], (0, 1), "hi")
    True
    >>> segment_id(("memories", "t1"), (0, 1), "hi") != segment_id(("memories", "t2"), (0, 1), "hi")
    True
    """
    first, last = turn_range
    text_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
    key = json.dumps([list(namespace), first, last, text_hash], separators=(",", ":"))
    return f"seg-{first}-{last}-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]}"


_SPEAKERS = {"user": "User", "assistant": "Assistant", "system": "System", "tool": "Tool"}


def render_segment(model: LocalHypernetChatModel, messages: Sequence[BaseMessage]) -> str:
    """The segment as the hypernetwork was trained to read conversations: the model's chat template
    (without the leading BOS token), or a ``User: ...`` transcript (``ChatFormat.memory_format``)."""
    chat = to_chat_dicts(messages)
    if model.engine.chat_format.memory_format == "transcript":
        return "\n".join(f"{_SPEAKERS.get(m['role'], m['role'].title())}: {m['content'] or ''}".strip() for m in chat)
    text = model.engine.render(chat, add_generation_prompt=False)
    bos = model.engine.tokenizer.bos_token
    if bos and text.startswith(bos):
        text = text[len(bos) :]
    return text.strip()


def _user_turns(turns: Sequence[Sequence[BaseMessage]], first_turn: int) -> list[tuple[int, str]]:
    """(turn number, the user's message) for each turn that starts with one."""
    return [
        (first_turn + k, message_text(m))
        for k, turn in enumerate(turns)
        for m in turn[:1]
        if isinstance(m, HumanMessage)
    ]


def _entries_in(stating: Mapping[int, MemoryEntry], first_turn: int, n_turns: int) -> list[MemoryEntry]:
    """The entries of turns ``first_turn`` .. ``first_turn + n_turns - 1``, in turn order."""
    return [stating[t] for t in range(first_turn, first_turn + n_turns) if t in stating]


class CompactNode(RunnableLambda):
    """Internalize the oldest turns into a segment adapter and evict them from ``messages``.

    Compaction triggers on a token budget, a turn count, or either (whichever is passed; with
    neither, ``max_turns=6, keep_turns=2``). Once triggered, the fewest oldest turns are evicted
    that bring what stays within both targets (``keep_tokens`` and ``keep_turns``), but never the
    newest turn: a newest human message over budget on its own stays, and nothing is compacted
    while it is the only turn.

    Args:
        model: the chat model whose hypernetwork writes the adapters.
        store: an :class:`~agenthn_langgraph.store.AdapterStore`.
        max_tokens: compact once the messages (leading system messages included) hold more than
            this many tokens (an int >= 1).
        keep_tokens: tokens left after compacting, at most (1 <= keep_tokens <= max_tokens;
            default ``max_tokens // 2``, so a thread is not compacted again on the very next turn).
        token_counter: counts a list of messages, as in langchain's ``trim_messages``: a callable
            ``(messages) -> int`` or a language model (its ``get_num_tokens_from_messages``).
            Default: ``model``'s own tokenizer and chat template.
        max_turns: compact once more than this many turns are un-compacted (>= 1).
        keep_turns: turns left in context after compacting (1 <= keep_turns <= max_turns; default 2).
        max_segment_turns: at most this many turns go into one segment adapter.
        grow_segments: evicted turns are appended to the thread's newest segment (re-internalized
            with them, one hypernetwork pass) until it holds ``max_segment_turns`` turns, instead
            of each compaction making its own segment. With ``max_turns=2, keep_turns=1`` the
            prompt holds one earlier turn however long the thread, and segments still hold 8.
        max_segment_statements: a segment holds at most this many user messages that state a
            value (by the hypernetwork's gate; without one, e.g. D2L, no message counts); the next
            one starts a new segment. With 1, a fact
            restated later never shares an adapter with its old value, so the newest can win.
        namespace: where segments are stored; default ``("memories", "{thread_id}")``.

    A budget that is not an int (``"7"``, ``7.5``, ``nan``) raises :class:`ArgumentTypeError` (a
    ``TypeError``); zero or negative, or ``keep_*`` above ``max_*``, :class:`InvalidArgumentError`
    (a ``ValueError``), as does ``keep_tokens`` / ``keep_turns`` without its ``max_*``.

    Writes ``messages`` (``RemoveMessage`` for each evicted one), ``memory_segments`` and
    ``compacted_turns``. Nothing happens (``{}``) while the thread is short. Running it again on
    the same state (a retry, a replay, a crash before the state was saved) stores nothing twice:
    see :func:`segment_id`.

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
        max_tokens: int | None = None,
        keep_tokens: int | None = None,
        token_counter: TokenCounter | BaseLanguageModel | None = None,
        max_turns: int | None = None,
        keep_turns: int | None = None,
        max_segment_turns: int = 8,
        grow_segments: bool = False,
        max_segment_statements: int | None = None,
        namespace: str | Sequence[str] = DEFAULT_SEGMENT_NAMESPACE,
        name: str = "compact",
    ) -> None:
        if max_tokens is None and max_turns is None:
            max_turns = DEFAULT_MAX_TURNS
        if max_turns is not None:
            max_turns = check_int_option("max_turns", max_turns)
            # the default target is clamped to a smaller max_turns; a keep_turns given is checked
            keep_turns = min(DEFAULT_KEEP_TURNS, max_turns) if keep_turns is None else keep_turns
            keep_turns = check_int_option("keep_turns", keep_turns)
            if keep_turns > max_turns:
                raise InvalidArgumentError(
                    f"need 1 <= keep_turns <= max_turns, got keep_turns={keep_turns}, max_turns={max_turns}"
                )
        elif keep_turns is not None:
            raise InvalidArgumentError("keep_turns is the target of max_turns; pass max_turns too")
        if max_tokens is not None:
            max_tokens = check_int_option("max_tokens", max_tokens)
            keep_tokens = check_int_option(
                "keep_tokens", max(1, max_tokens // 2) if keep_tokens is None else keep_tokens
            )
            if keep_tokens > max_tokens:
                raise InvalidArgumentError(
                    f"need 1 <= keep_tokens <= max_tokens, got keep_tokens={keep_tokens}, max_tokens={max_tokens}"
                )
        elif keep_tokens is not None:
            raise InvalidArgumentError("keep_tokens is the target of max_tokens; pass max_tokens too")
        if token_counter is not None and not (callable(token_counter) or isinstance(token_counter, BaseLanguageModel)):
            kind = type(token_counter).__name__
            raise ArgumentTypeError(
                f"token_counter must be a callable (messages) -> int or a language model, got {kind}"
            )
        max_segment_turns = check_int_option("max_segment_turns", max_segment_turns)
        self.model, self.store = model, store
        if not isinstance(grow_segments, bool):
            raise ArgumentTypeError(f"grow_segments must be a bool, got {type(grow_segments).__name__}")
        self.max_turns, self.keep_turns, self.max_segment_turns = max_turns, keep_turns, max_segment_turns
        self.grow_segments = grow_segments
        self.max_segment_statements = (
            None
            if max_segment_statements is None
            else check_int_option("max_segment_statements", max_segment_statements)
        )
        self.max_tokens, self.keep_tokens = max_tokens, keep_tokens
        self.token_counter = token_counter
        self.namespace = NamespaceTemplate(namespace)
        super().__init__(self._compact, afunc=self._acompact, name=name)

    def count_tokens(self, messages: Sequence[BaseMessage]) -> int:
        """Tokens in ``messages`` by ``token_counter`` (default: the model's tokenizer and chat template)."""
        counter = self.token_counter
        if counter is None:
            n = self.model.get_num_tokens_from_messages(list(messages))
        elif isinstance(counter, BaseLanguageModel):
            n = counter.get_num_tokens_from_messages(list(messages))
        else:
            n = counter(list(messages))
        if isinstance(n, bool) or not isinstance(n, int):
            raise ArgumentTypeError(f"token_counter must return an int, got {type(n).__name__} {n!r}")
        return n

    def turns_to_compact(self, head: Sequence[BaseMessage], turns: Sequence[Sequence[BaseMessage]]) -> int:
        """How many of the oldest ``turns`` to compact now (0: none); never the newest turn."""
        n = len(turns)
        if n <= 1:
            return 0
        over_turns = self.max_turns is not None and n > self.max_turns
        over_tokens = (
            self.max_tokens is not None and self.count_tokens([*head, *(m for t in turns for m in t)]) > self.max_tokens
        )
        if not (over_turns or over_tokens):
            return 0
        evict = 0
        if self.max_turns is not None and self.keep_turns is not None:
            evict = max(evict, n - self.keep_turns)
        if self.keep_tokens is not None:
            while (
                evict < n - 1 and self.count_tokens([*head, *(m for t in turns[evict:] for m in t)]) > self.keep_tokens
            ):
                evict += 1
        return min(evict, n - 1)

    def _compact(self, state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        messages = messages_of(state)
        head, turns = split_turns(messages)
        n_old = self.turns_to_compact(head, turns)
        if n_old == 0:
            return {}
        namespace = self.namespace.format(config, run_context())
        old = turns[:n_old]
        evicted = [m for turn in old for m in turn]
        if any(m.id is None for m in evicted):  # checked before anything is written
            raise ValueError("messages to evict have no id; build state through add_messages")
        first_turn = int(state.get("compacted_turns") or 0)
        stored = self._stored_ranges(namespace, first_turn)
        segment_ids: list[str] = []
        start = 0
        # What the user stated in each evicted turn (one batched pass): the segments' index entries,
        # and max_segment_statements cuts a segment before a turn that would exceed it.
        stating = {e.turn: e for e in entries_for_turns(self.model, _user_turns(old, first_turn))}
        if self.grow_segments:
            grown = self._grow_newest(list(state.get("memory_segments") or []), old, first_turn, namespace, stating)
            if grown is not None:
                replaced, new_id, start = grown
                segment_ids += [removed_id(replaced), new_id]
        while start < len(old):
            adopted = self._adopt_stored(stored, old[start:], first_turn + start, namespace)
            if adopted is not None:
                # An earlier run stored these turns but its state was never saved (a crash).
                segment_ids.append(adopted[0])
                start += adopted[1]
                continue
            n = self._fitting(first_turn + start, len(old) - start, 0, self.max_segment_turns, stating)
            group = old[start : start + max(n, 1)]
            segment_ids += self._store_segments(group, first_turn + start, namespace, stating)
            start += len(group)
        return {
            "messages": [RemoveMessage(id=m.id) for m in evicted],
            "memory_segments": segment_ids,
            "compacted_turns": len(old),
        }

    def _fitting(
        self, first: int, available: int, statements: int, room: int, stating: Mapping[int, MemoryEntry]
    ) -> int:
        """How many turns from turn ``first`` on fit a segment holding ``statements`` statements and
        ``room`` more turns: stop before the turn that would exceed ``max_segment_statements``."""
        n = 0
        while n < min(available, room):
            entry = stating.get(first + n)
            statements += bool(entry and entry.values)  # without a gate (D2L) nothing counts
            if self.max_segment_statements is not None and statements > self.max_segment_statements:
                break
            n += 1
        return n

    def _grow_newest(
        self,
        segments: list[str],
        old: list[list[BaseMessage]],
        first_turn: int,
        namespace: tuple[str, ...],
        stating: Mapping[int, MemoryEntry],
    ) -> tuple[str, str, int] | None:
        """Append the oldest of ``old`` to the thread's newest segment while it has room:
        (replaced id, new id, turns taken), or None (no newest segment, full, or not adjacent).

        The grown segment is a new adapter of the old text plus the new turns (one hypernetwork
        pass), with its own id (:func:`segment_id` of the longer range and text), so a replay
        finds it; the replaced version is deleted (the grown one holds all it held).
        """
        if not segments:
            return None
        try:
            rec = self.store.get_record(segments[-1], namespace=namespace)
        except AdapterNotFoundError:
            return self._adopt_grown(segments[-1], old, first_turn, namespace)
        if rec.turn_start is None or rec.turn_end != first_turn - 1 or (rec.extra or {}).get("truncated"):
            return None
        room = self.max_segment_turns - (rec.turn_end - rec.turn_start + 1)
        n = self._fitting(first_turn, len(old), sum(bool(e.values) for e in load_entries(rec)), room, stating)
        if n == 0:
            return None
        take = old[:n]
        text = f"{rec.text}\n{render_segment(self.model, [m for turn in take for m in turn])}"
        turn_range = (rec.turn_start, first_turn + len(take) - 1)
        new_id = segment_id(namespace, turn_range, text)
        if not self.store.exists(new_id, namespace=namespace):
            try:
                adapter = self.model.internalize(text, kind="segment", extra={"turn_start": turn_range[0]})
            except (TextTooLongError, AdapterNormError):
                return None  # the newest segment is as long as it can be: start another one
            entries = load_entries(rec) + _entries_in(stating, first_turn, len(take))
            self.store.put(
                adapter,
                namespace=namespace,
                text=text,
                kind="segment",
                adapter_id=new_id,
                turn_range=turn_range,
                extra={ENTRIES_KEY: dump_entries(entries)},
            )
        # The grown version holds everything the replaced one did: drop the replaced one now, or a
        # long thread would keep a version per turn. (Should this run's state never be saved, the
        # replay finds its newest segment gone and adopts the grown one: _adopt_grown.) No purge:
        # nothing is forgotten (the grown version holds the same text), and purging Chroma's log
        # on every turn costs a VACUUM per turn.
        self.store.delete(rec.id, namespace=namespace, purge=False)
        return rec.id, new_id, len(take)

    def _adopt_grown(
        self, missing: str, old: list[list[BaseMessage]], first_turn: int, namespace: tuple[str, ...]
    ) -> tuple[str, str, int] | None:
        """The state's newest segment ``missing`` was replaced by a grown version whose state was
        never saved (a crash between the two): find that version, (missing id, its id, turns it took).

        It starts where ``missing`` started (the id says: ``seg-<first>-<last>-``), ends inside the
        turns being evicted now, and its text ends with exactly those turns, rendered.
        """
        start = int(missing.split("-")[1]) if missing.startswith("seg-") else None
        for rec in self.store.list(namespace=namespace, kind="segment"):
            if (
                rec.turn_start != start
                or rec.turn_end is None
                or not first_turn <= rec.turn_end < first_turn + len(old)
            ):
                continue
            n = rec.turn_end - first_turn + 1
            if rec.text.endswith(render_segment(self.model, [m for turn in old[:n] for m in turn])):
                return missing, rec.id, n
        return None

    def _store_segments(
        self,
        group: list[list[BaseMessage]],
        first_turn: int,
        namespace: tuple[str, ...],
        stating: Mapping[int, MemoryEntry],
    ) -> list[str]:
        """One segment adapter for ``group``. A group the hypernetwork cannot take whole (too many
        chunks, or so many that their summed delta is refused as too large) is split by turn; a
        single such turn keeps the longest head that works (``extra.truncated``). One huge message
        can therefore never make a thread un-compactable."""
        text = render_segment(self.model, [m for turn in group for m in turn])
        turn_range = (first_turn, first_turn + len(group) - 1)
        # The id comes from the full rendered turns, also when only a head of them is internalized
        # below, so a replay recognises the segment before doing any of that work again.
        seg_id = segment_id(namespace, turn_range, text)
        if self.store.exists(seg_id, namespace=namespace):
            return [seg_id]
        # Indexed by what the user stated in these turns (memory/retrieval.py), never by the
        # rendered turns alone.
        extra: dict[str, Any] = {ENTRIES_KEY: dump_entries(_entries_in(stating, first_turn, len(group)))}
        try:
            adapter = self.model.internalize(text, kind="segment", extra={"turn_start": turn_range[0]})
        except (TextTooLongError, AdapterNormError):
            if len(group) > 1:
                return [
                    i
                    for k, turn in enumerate(group)
                    for i in self._store_segments([turn], first_turn + k, namespace, stating)
                ]
            adapter, text = self._internalize_head(text, turn_range[0])
            extra["truncated"] = True
        record = self.store.put(
            adapter,
            namespace=namespace,
            text=text,
            kind="segment",
            adapter_id=seg_id,
            turn_range=turn_range,
            extra=extra,
        )
        return [record.id]

    def _stored_ranges(self, namespace: tuple[str, ...], first_turn: int) -> dict[int, list[tuple[int, str]]]:
        """Stored segments that start at or after ``first_turn``: ``{first: [(last, id), ...]}``, longest first.

        Only these can be left over from a run whose state was lost; earlier ones are in the state.
        """
        out: dict[int, list[tuple[int, str]]] = {}
        for rec in self.store.list(namespace=namespace, kind="segment"):
            if rec.turn_start is not None and rec.turn_end is not None and rec.turn_start >= first_turn:
                out.setdefault(rec.turn_start, []).append((rec.turn_end, rec.id))
        for ranges in out.values():
            ranges.sort(reverse=True)
        return out

    def _adopt_stored(
        self,
        stored: dict[int, list[tuple[int, str]]],
        turns: list[list[BaseMessage]],
        first_turn: int,
        namespace: tuple[str, ...],
    ) -> tuple[str, int] | None:
        """(id, number of turns) of a stored segment holding exactly the next turns, if there is one.

        A segment counts only if its id is the one these very turns would get: same range, same
        rendered content. A segment of a thread that was rewound and went on differently does not.
        """
        for last, stored_id in stored.get(first_turn, []):
            n = last - first_turn + 1
            if n > len(turns):
                continue
            text = render_segment(self.model, [m for turn in turns[:n] for m in turn])
            if segment_id(namespace, (first_turn, last), text) == stored_id:
                return stored_id, n
        return None

    def remove_orphans(self, state: dict[str, Any], config: RunnableConfig | None = None) -> list[str]:
        """Delete this thread's stored segments that ``state["memory_segments"]`` does not list.

        For the thread's owner, who knows the state is final (e.g. after rewinding a thread to an
        earlier checkpoint and continuing differently); not while a compaction of the same thread
        may be running. Returns the removed ids.
        """
        namespace = self.namespace.format(config, run_context())
        keep = list(state.get("memory_segments") or [])
        return list(self.store.remove_orphans(namespace, keep, kind="segment"))

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
    """Before the model answers: put the segments that answer the latest message in
    ``active_adapters["segments"]``, or an empty list so the model answers as the base would.

    Ranking is :class:`~agenthn_langgraph.memory.SegmentRetriever`'s: the user's statements are
    the index; candidates by dense + lexical similarity; the base, reading a candidate statement,
    must answer the message with its value with probability >= ``min_confidence``; the newest
    confident statement wins. A message that itself states a value recalls nothing, and neither
    does small talk: the adapter is applied only when memory has the answer.

    Args:
        store: the :class:`~agenthn_langgraph.store.AdapterStore` the segments are in.
        model: the chat model (its hypernetwork's gate and its base judge relevance). Without it,
            similarity alone ranks and ``min_score`` is the only bar.
        top_k: at most this many segment adapters are composed into one call (default 1: one
            confident segment answers a question; composing unrelated ones only adds noise).
        judge: ``"reader"`` or ``"similarity"``; ``None``: the model's registered judge
            (:class:`~agenthn_langgraph.memory.SegmentRetriever`).
        min_confidence: reader probability needed to apply a segment (default 0.5).
        min_score: similarity needed where the reader does not judge (``None``: the judge's default).
        candidates: statements re-ranked by the reader per message (default 8).
        namespace: must match the ``CompactNode``'s.
    """

    def __init__(
        self,
        store: Any,
        *,
        model: LocalHypernetChatModel | None = None,
        top_k: int = 1,
        judge: str | None = None,
        min_confidence: float = 0.5,
        min_score: float | None = None,
        candidates: int = 8,
        namespace: str | Sequence[str] = DEFAULT_SEGMENT_NAMESPACE,
        name: str = "recall_memory",
    ) -> None:
        self.top_k = check_int_option("top_k", top_k)
        self.store = store
        self.retriever = SegmentRetriever(
            store, model, judge=judge, candidates=candidates, min_confidence=min_confidence, min_score=min_score
        )
        self.namespace = NamespaceTemplate(namespace)
        super().__init__(self._recall, afunc=self._arecall, name=name)

    def _recall(self, state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        messages = messages_of(state)
        query = latest_human_text(messages)
        if not query:
            return {"active_adapters": {"segments": []}}
        namespace = self.namespace.format(config, run_context())
        said = [message_text(m) for m in messages if isinstance(m, HumanMessage)]
        listed = state.get("memory_segments")
        hits = self.retriever.retrieve(
            query,
            namespace=namespace,
            k=self.top_k,
            context=said[:-1],
            segments=None if listed is None else list(listed),
        )
        return {"active_adapters": {"segments": [ref(h.segment_id, namespace) for h in hits]}}

    async def _arecall(self, state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        return await asyncio.to_thread(self._recall, state, config)
