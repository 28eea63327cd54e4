"""``agenthn eval memory``: long threads, weight memory against text memory, side by side.

Each thread plants ``n_facts`` random facts about the user in its first 20 user turns, restates
``n_updates`` of them with a new value in its second half, and grows with small talk to ``T``
turns. The thread is run by :func:`~agenthn_langgraph.prebuilt.create_memory_agent` (real
compaction into a real store, real LangGraph checkpoints); then every fact is asked, each
question on its own fork of the thread's last checkpoint, under every condition:

* ``weight_memory`` -- the agent itself: the recalled segment's adapter, the recent turns in context;
* ``text_rag``     -- the same segment the agent recalled, its turns put back in the prompt as text;
* ``text_rag_k3``  -- the retriever's top 3 segments as text;
* ``markdown_notes`` -- the agent's own notes file: after each compaction the user's statements in
  the evicted turns are written into it (a restatement rewrites its line), and the whole file goes
  into the prompt (:mod:`.notes`);
* ``cartridges``   -- a KV prefix of ``cartridge_tokens`` virtual tokens trained per thread by
  distillation on the thread's evicted turns (:mod:`.cartridges`); its training seconds are
  reported per thread length, and lengths whose first thread passes ``cartridge_budget_s`` are
  skipped (with every longer one);
* ``compose_all``  -- every segment adapter composed (rank-concatenated), no retrieval;
* ``latest_only``  -- the newest segment adapter only;
* ``vanilla``      -- no memory store: the newest turns of the whole thread that fit the window;
* ``no_memory``    -- the question alone.

Reported per condition and thread length: recall (the latest value in the reply's first
sentence) with a Wilson 95% interval, ``latest_value_rate`` on restated facts, and what a question
costs (medians): prompt tokens (a cartridge's virtual tokens included), KV-cache bytes at query
time (prompt tokens x the base's bytes per token), adapter bytes and milliseconds; for the agent,
``retrieval_top1_hit`` (the recalled segment holds the fact's latest statement, over facts no
longer in context) and ``normal_reply_rate`` (small-talk turns, once memory exists, that got no
segment adapter, or whose reply is still the language's written reply or the model's own reply
to the same prompt without adapters). ``follow_up`` asks a product document's second
question after its first in one conversation, against the same question asked fresh.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from tqdm.auto import tqdm

from ..chat_model import LocalHypernetChatModel
from ..data.facts import Fact
from ..data.language import Language
from ..lora.adapter import LoraAdapter
from ..memory import SegmentRetriever
from ..models.registry import language_of
from ..nodes.compact import split_turns
from ..options import check_int_option, check_real_option
from ..prebuilt import create_memory_agent
from ..prebuilt.agents import DEFAULT_AGENT_KEEP_TURNS, DEFAULT_AGENT_MAX_TURNS
from ..store import AdapterStore
from .cartridges import (
    DEFAULT_CARTRIDGE_EPOCHS,
    DEFAULT_CARTRIDGE_TOKENS,
    Cartridge,
    CartridgeOverBudgetError,
    kv_bytes_per_token,
    self_study_questions,
    train_cartridge,
)
from .cartridges import answer as cartridge_answer
from .notes import MarkdownNotes
from .recall import normalize, recalled, wilson_interval

DEFAULT_MEMORY_EVAL_SEED = 424242
DEFAULT_TURNS = (16, 64, 256, 1024)
CONDITIONS = (
    "weight_memory",
    "text_rag",
    "text_rag_k3",
    "markdown_notes",
    "cartridges",
    "compose_all",
    "latest_only",
    "vanilla",
    "no_memory",
)
DEFAULT_CARTRIDGE_BUDGET_S = 300.0
TEXT_ROWS = ("text_rag", "text_rag_k3", "markdown_notes", "vanilla")  # the text in the prompt
FACT_WINDOW = 20  # facts are planted in the first 20 user turns


@dataclass
class Question:
    text: str
    answer: str  # the latest value
    key: str
    stated_at: int  # turn of the latest statement
    old_answer: str | None = None  # the value it replaced, for restated facts


@dataclass
class Thread:
    said: list[str]  # user turns in order
    questions: list[Question]


def _restatement(language: Language, rng: random.Random, fact: Fact) -> Fact:
    """Another statement of ``fact``'s key with a different value."""
    for _ in range(64):
        for n in (64, 32, 16, 8, 4, 1):
            try:
                pool = language.user_facts(rng, n)
                break
            except ValueError:
                continue
        for f in pool:
            if f.key == fact.key and normalize(f.answer) != normalize(fact.answer):
                return f
    raise ValueError(f"could not draw a new value for {fact.key!r}")


def draw_thread(language: Language, rng: random.Random, turns: int, n_facts: int, n_updates: int) -> Thread:
    """Facts in the first 20 turns, restatements in the second half, small talk elsewhere."""
    if n_facts + n_updates > turns:
        raise ValueError(f"{turns} turns cannot hold {n_facts} facts and {n_updates} restatements")
    facts = language.user_facts(rng, n_facts)
    early = sorted(rng.sample(range(min(FACT_WINDOW, turns - n_updates)), n_facts))
    said: list[str | None] = [None] * turns
    latest: dict[str, tuple[Fact, int, str | None]] = {}
    for f, at in zip(facts, early, strict=True):
        said[at] = f.statement
        latest[f.key] = (f, at, None)
    free = [t for t in range(max(turns // 2, early[-1] + 1), turns) if said[t] is None]
    for f, at in zip(rng.sample(facts, n_updates), sorted(rng.sample(free, n_updates)), strict=True):
        new = _restatement(language, rng, f)
        said[at] = new.statement
        latest[f.key] = (new, at, f.answer)
    text = [s if s is not None else language.small_talk(rng)[0] for s in said]
    questions = [Question(f.question, f.answer, key, at, old) for key, (f, at, old) in latest.items()]
    return Thread(text, questions)


@dataclass
class MemoryReport:
    model: str
    seeds: list[int]
    threads_per_seed: int
    turns: list[int]
    n_facts: int
    n_updates: int
    max_turns: int
    keep_turns: int
    grow_segments: bool
    cartridge_tokens: int = DEFAULT_CARTRIDGE_TOKENS
    cartridge_epochs: int = DEFAULT_CARTRIDGE_EPOCHS
    cartridge_budget_s: float = DEFAULT_CARTRIDGE_BUDGET_S
    kv_bytes_per_token: int = 0
    # condition -> T -> value; None where a condition did not run (cartridges over their budget)
    recall: dict[str, dict[str, float | None]] = field(default_factory=dict)
    recall_ci: dict[str, dict[str, list[float] | None]] = field(default_factory=dict)
    latest_value_rate: dict[str, dict[str, float | None]] = field(default_factory=dict)
    prompt_tokens_median: dict[str, dict[str, float | None]] = field(default_factory=dict)
    kv_bytes_median: dict[str, dict[str, float | None]] = field(default_factory=dict)
    adapter_bytes_median: dict[str, dict[str, float | None]] = field(default_factory=dict)
    ms_per_question_median: dict[str, dict[str, float | None]] = field(default_factory=dict)
    cartridge_train_s: dict[str, list[float]] = field(default_factory=dict)  # T -> seconds per trained thread
    cartridge_pairs: dict[str, list[int]] = field(default_factory=dict)  # T -> distillation pairs per thread
    cartridge_skipped: dict[str, int] = field(default_factory=dict)  # T -> threads not trained (over budget)
    retrieval_top1_hit: dict[str, float] = field(default_factory=dict)
    retrieval_questions: dict[str, int] = field(default_factory=dict)
    normal_reply_rate: dict[str, float] = field(default_factory=dict)
    thread_tokens_median: dict[str, float] = field(default_factory=dict)
    segments_median: dict[str, float] = field(default_factory=dict)
    ms_per_turn_median: dict[str, float] = field(default_factory=dict)
    questions: dict[str, int] = field(default_factory=dict)
    questions_by_condition: dict[str, dict[str, int]] = field(default_factory=dict)  # fewer where skipped
    follow_up: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        ts = [str(t) for t in self.turns]
        lines = [
            f"{self.model}: seeds {self.seeds}, {self.threads_per_seed} threads per seed and length, "
            f"{self.n_facts} facts ({self.n_updates} restated) per thread; agent max_turns={self.max_turns}, "
            f"keep_turns={self.keep_turns}, grow_segments={self.grow_segments}; recall (Wilson 95% interval), "
            "median prompt tokens",
            "",
            "| condition | " + " | ".join(f"T={t}" for t in ts) + " |",
            "|---|" + "---|" * len(ts),
        ]
        for c in CONDITIONS:
            cells = [self._recall_cell(c, t) for t in ts]
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
        lines += [
            "",
            f"cost per question (medians): prompt tokens / KV cache at query time (KiB, "
            f"{self.kv_bytes_per_token} bytes a token) / adapter applied (KiB) / ms",
            "",
            "| condition | " + " | ".join(f"T={t}" for t in ts) + " |",
            "|---|" + "---|" * len(ts),
        ]
        for c in CONDITIONS:
            cells = [self._cost_cell(c, t) for t in ts]
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "| per thread length | " + " | ".join(f"T={t}" for t in ts) + " |",
            "|---|" + "---|" * len(ts),
            "| thread tokens (median) | " + " | ".join(f"{self.thread_tokens_median[t]:.0f}" for t in ts) + " |",
            "| segments (median) | " + " | ".join(f"{self.segments_median[t]:.0f}" for t in ts) + " |",
            "| questions per condition | " + " | ".join(str(self.questions[t]) for t in ts) + " |",
            "| retrieval_top1_hit | "
            + " | ".join(f"{self.retrieval_top1_hit[t]:.3f} (n={self.retrieval_questions[t]})" for t in ts)
            + " |",
            "| latest_value_rate, weight_memory | "
            + " | ".join(f"{self.latest_value_rate['weight_memory'][t]:.3f}" for t in ts)
            + " |",
            "| latest_value_rate, text_rag | "
            + " | ".join(f"{self.latest_value_rate['text_rag'][t]:.3f}" for t in ts)
            + " |",
            "| normal_reply_rate | " + " | ".join(f"{self.normal_reply_rate[t]:.3f}" for t in ts) + " |",
            "| ms / question, weight_memory | "
            + " | ".join(f"{self.ms_per_question_median['weight_memory'][t]:.0f}" for t in ts)
            + " |",
            "| ms / turn, agent | " + " | ".join(f"{self.ms_per_turn_median[t]:.0f}" for t in ts) + " |",
            f"| cartridge train s ({self.cartridge_tokens} tokens, {self.cartridge_epochs} epochs; median, range) | "
            + " | ".join(self._train_cell(t) for t in ts)
            + " |",
            "| cartridge distillation pairs (median) | "
            + " | ".join(
                f"{statistics.median(self.cartridge_pairs[t]):.0f}" if self.cartridge_pairs.get(t) else "-" for t in ts
            )
            + " |",
        ]
        f = self.follow_up
        if f:
            lines += [
                "",
                f"product follow-up ({f['n']:.0f} documents): second question asked fresh {f['fresh']:.3f}, "
                f"asked after the first in one conversation {f['second']:.3f} (first question {f['first']:.3f})",
            ]
        lines.append(
            "target (weight_memory within 0.05 of the best text row at <= 1/4 of its prompt tokens): "
            + ", ".join(
                f"T={t}: {v['best_text_row']} ahead by {v['gap']:+.3f}, tokens x{v['token_ratio']:.2f}, "
                + ("met" if v["met"] else "MISSED")
                for t, v in self.targets().items()
            )
        )
        lines.append(f"wall time {self.wall_s:.0f} s")
        return "\n".join(lines)

    def targets(self) -> dict[str, dict[str, Any]]:
        """Per length: weight_memory's recall within 0.05 of the best text row, at <= 1/4 of its tokens."""
        out: dict[str, dict[str, Any]] = {}
        for t in (str(t) for t in self.turns):
            rows = [c for c in TEXT_ROWS if self.recall[c][t] is not None]
            best = max(rows, key=lambda c: (self.recall[c][t], -(self.prompt_tokens_median[c][t] or 0)))
            mine, theirs = self.recall["weight_memory"][t], self.recall[best][t]
            ratio = (self.prompt_tokens_median["weight_memory"][t] or 0) / (self.prompt_tokens_median[best][t] or 1)
            out[t] = {
                "best_text_row": best,
                "gap": (theirs or 0) - (mine or 0),
                "token_ratio": ratio,
                "met": (mine or 0) >= (theirs or 0) - 0.05 and ratio <= 0.25,
            }
        return out

    def _recall_cell(self, c: str, t: str) -> str:
        r, ci, tok = self.recall[c][t], self.recall_ci[c][t], self.prompt_tokens_median[c][t]
        if r is None or ci is None or tok is None:
            return f"skipped (over {self.cartridge_budget_s:g} s budget)"
        return f"{r:.3f} ({ci[0]:.2f}-{ci[1]:.2f}), {tok:.0f} tok"

    def _cost_cell(self, c: str, t: str) -> str:
        tok, kv = self.prompt_tokens_median[c][t], self.kv_bytes_median[c][t]
        adapter, ms = self.adapter_bytes_median[c][t], self.ms_per_question_median[c][t]
        if tok is None or kv is None or adapter is None or ms is None:
            return "skipped"
        return f"{tok:.0f} / {kv / 1024:.0f} / {adapter / 1024:.0f} / {ms:.0f}"

    def _train_cell(self, t: str) -> str:
        secs, skipped = self.cartridge_train_s.get(t) or [], self.cartridge_skipped.get(t, 0)
        cell = f"{statistics.median(secs):.1f} ({min(secs):.1f}-{max(secs):.1f})" if secs else "-"
        return cell + (f", {skipped} skipped" if skipped else "")

    def plot(self, path: str) -> str:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ts = [str(t) for t in self.turns]
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
        for c in CONDITIONS:
            style = dict(lw=2.5) if c == "weight_memory" else dict(lw=1.2, alpha=0.85)
            ran = [t for t in ts if self.recall[c][t] is not None]  # cartridges skip lengths over budget
            if not ran:
                continue
            xs = [self.thread_tokens_median[t] for t in ran]
            r = [float(self.recall[c][t]) for t in ran]  # type: ignore[arg-type]
            ci = [self.recall_ci[c][t] or [v, v] for t, v in zip(ran, r, strict=True)]
            a.errorbar(
                xs,
                r,
                yerr=[  # clamped: at 0 or 1 rounding can put the interval's edge a hair inside
                    [max(v - lo_hi[0], 0.0) for v, lo_hi in zip(r, ci, strict=True)],
                    [max(lo_hi[1] - v, 0.0) for v, lo_hi in zip(r, ci, strict=True)],
                ],
                marker="o",
                capsize=2,
                label=c,
                **style,
            )
            b.plot(xs, [max(float(self.prompt_tokens_median[c][t] or 1), 1) for t in ran], marker="o", label=c, **style)
        for ax in (a, b):
            ax.set_xscale("log")
            ax.set_xlabel("thread length (tokens, median)")
        a.set_ylim(0, 1.02)
        a.set_ylabel("recall (Wilson 95%)")
        a.set_title("facts stated early, asked at the end")
        b.set_yscale("log")
        b.set_ylabel("prompt tokens at question time")
        b.set_title("what each answer costs")
        b.legend(fontsize=7, loc="upper left")
        fig.suptitle(f"{self.model}: seeds {self.seeds}, {self.threads_per_seed} threads each", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


class _Cell:
    """What one (condition, T) accumulates."""

    def __init__(self) -> None:
        self.hits: list[bool] = []
        self.latest: list[bool] = []
        self.tokens: list[int] = []
        self.adapter_bytes: list[int] = []
        self.ms: list[float] = []


@dataclass
class CartridgeOptions:
    """How the ``cartridges`` row trains, and which thread lengths it has given up on."""

    n_tokens: int = DEFAULT_CARTRIDGE_TOKENS
    epochs: int = DEFAULT_CARTRIDGE_EPOCHS
    budget_s: float = DEFAULT_CARTRIDGE_BUDGET_S
    questions: list[str] = field(default_factory=list)  # the self-study questions
    over_budget_at: int | None = None  # the shortest thread length whose training passed the budget

    def skips(self, turns: int) -> bool:
        return self.over_budget_at is not None and turns >= self.over_budget_at


def _turn_messages(said: Sequence[str], replies: Sequence[str], first: int, last: int) -> list[BaseMessage]:
    out: list[BaseMessage] = []
    for t in range(first, last + 1):
        out += [HumanMessage(said[t]), AIMessage(replies[t])]
    return out


def _window(llm: LocalHypernetChatModel, messages: list[BaseMessage], question: str) -> list[BaseMessage]:
    """The newest whole turns that fit the base's window with the question and the answer."""
    window = getattr(llm.engine.base.config, "max_position_embeddings", None) or 10**9
    budget = window - llm.max_tokens - 1
    _, turns = split_turns(messages)
    kept: list[BaseMessage] = []
    for turn in reversed(turns):
        trial = [*turn, *kept]
        if llm.get_num_tokens_from_messages([*trial, HumanMessage(question)]) > budget:
            break
        kept = trial
    return [*kept, HumanMessage(question)]


def _ask(
    llm: LocalHypernetChatModel, messages: list[BaseMessage], store: AdapterStore, adapters: list[Any] | None = None
) -> tuple[str, int, float]:
    t0 = time.perf_counter()
    reply = llm.invoke(messages, adapters=adapters or [], adapter_store=store)
    return str(reply.content), int(reply.usage_metadata["input_tokens"]), (time.perf_counter() - t0) * 1000


def _run_thread(
    llm: LocalHypernetChatModel,
    talk: dict[str, str],
    thread: Thread,
    tid: str,
    store: AdapterStore,
    cells: dict[str, _Cell],
    stats: dict[str, list[float]],
    *,
    max_turns: int,
    keep_turns: int,
    grow_segments: bool,
    cartridge: CartridgeOptions,
) -> None:
    saver = InMemorySaver()
    agent = create_memory_agent(
        llm, store, max_turns=max_turns, keep_turns=keep_turns, grow_segments=grow_segments, checkpointer=saver
    )
    cfg: dict[str, Any] = {"configurable": {"thread_id": tid}}
    replies: list[str] = []
    out: dict[str, Any] = {}
    notes = MarkdownNotes(llm)  # the markdown_notes agent's file, written after each compaction
    noted = 0
    for text in thread.said:
        had_memory = bool(out.get("memory_segments"))
        t0 = time.perf_counter()
        out = agent.invoke({"messages": [("user", text)]}, cfg)
        stats["ms_turn"].append((time.perf_counter() - t0) * 1000)
        reply = str(out["messages"][-1].content)
        replies.append(reply)
        if had_memory and text in talk:
            applied = bool((out.get("active_adapters") or {}).get("segments"))
            # normal: no segment was applied, or the reply is what the model says without one
            # (the language's written reply, or the base's own: a chat model has its own words)
            normal = not applied or _is_normal(reply, talk[text])
            if applied and not normal:
                base_reply = str(llm.invoke(list(out["messages"][:-1])).content)
                normal = _is_normal(reply, base_reply)
            stats["normal"].append(normal)
        compacted_now = int(out.get("compacted_turns") or 0)
        if compacted_now > noted:  # a compaction evicted turns noted..compacted_now-1: write them down
            notes.write(_turn_messages(thread.said, replies, noted, compacted_now - 1))
            noted = compacted_now
    history = _turn_messages(thread.said, replies, 0, len(replies) - 1)
    stats["thread_tokens"].append(llm.get_num_tokens_from_messages(history))
    final = agent.get_state(cfg)
    kept = list(final.values["messages"])
    segments = list(final.values.get("memory_segments") or [])
    stats["segments"].append(len(segments))
    namespace = ("memories", tid)
    records = {r.id: r for r in store.list(namespace=namespace, kind="segment")}
    retriever = SegmentRetriever(store, llm)  # the agent's retriever, with the agent's defaults
    all_adapters = [store.get(s, namespace=namespace) for s in segments]
    composed = LoraAdapter.compose(all_adapters) if all_adapters else None
    evicted = int(final.values.get("compacted_turns") or 0)
    trained = _train_thread_cartridge(llm, thread, replies, evicted, len(thread.said), cartridge, stats)
    for q in thread.questions:
        # weight_memory: the agent on its own fork of the final checkpoint
        t0 = time.perf_counter()
        fork = agent.invoke({"messages": [("user", q.text)]}, final.config)
        ms = (time.perf_counter() - t0) * 1000
        reply = fork["messages"][-1]
        used = [r["id"] for r in (fork.get("active_adapters") or {}).get("segments", [])]
        applied = sum(store.get(i, namespace=namespace).nbytes for i in used)
        _score(cells["weight_memory"], q, str(reply.content), int(reply.usage_metadata["input_tokens"]), ms, applied)
        compacted = int(fork.get("compacted_turns") or 0)
        if q.stated_at < compacted:  # the statement left the context: only memory can hold it
            hit = False
            if used:
                rec = records.get(used[0]) or store.get_record(used[0], namespace=namespace)
                hit = rec.turn_start is not None and rec.turn_start <= q.stated_at <= (rec.turn_end or -1)
            stats["top1"].append(hit)
        # text_rag: the same segment, as text before the same recent turns
        rag = [records.get(i) or store.get_record(i, namespace=namespace) for i in used]
        _score_text(llm, store, cells["text_rag"], q, thread, replies, rag, kept)
        top3 = retriever.retrieve(q.text, namespace=namespace, k=3)
        rag3 = [records.get(h.segment_id) or store.get_record(h.segment_id, namespace=namespace) for h in top3]
        _score_text(llm, store, cells["text_rag_k3"], q, thread, replies, rag3, kept)
        msgs = [*kept, HumanMessage(q.text)]
        _score(cells["markdown_notes"], q, *_ask(llm, [*notes.messages(), *msgs], store))
        if trained is not None:
            t0 = time.perf_counter()
            text, tokens = cartridge_answer(llm, trained, msgs)
            _score(cells["cartridges"], q, text, tokens, (time.perf_counter() - t0) * 1000)
        _score(
            cells["compose_all"],
            q,
            *_ask(llm, msgs, store, [composed] if composed else []),
            composed.nbytes if composed else 0,
        )
        _score(
            cells["latest_only"],
            q,
            *_ask(llm, msgs, store, all_adapters[-1:]),
            sum(a.nbytes for a in all_adapters[-1:]),
        )
        _score(cells["vanilla"], q, *_ask(llm, _window(llm, history, q.text), store))
        _score(cells["no_memory"], q, *_ask(llm, [HumanMessage(q.text)], store))


def _score_text(
    llm: LocalHypernetChatModel,
    store: AdapterStore,
    cell: _Cell,
    q: Question,
    thread: Thread,
    replies: list[str],
    records: list[Any],
    kept: list[BaseMessage],
) -> None:
    text: list[BaseMessage] = []
    for rec in sorted(records, key=lambda r: r.turn_start or 0):
        text += _turn_messages(thread.said, replies, int(rec.turn_start), int(rec.turn_end))
    _score(cell, q, *_ask(llm, [*text, *kept, HumanMessage(q.text)], store))


def _score(cell: _Cell, q: Question, reply: str, tokens: int, ms: float, adapter_bytes: int = 0) -> None:
    cell.hits.append(recalled(reply, q.answer))
    if q.old_answer is not None:
        cell.latest.append(recalled(reply, q.answer))
    cell.tokens.append(tokens)
    cell.adapter_bytes.append(adapter_bytes)
    cell.ms.append(ms)


def _train_thread_cartridge(
    llm: LocalHypernetChatModel,
    thread: Thread,
    replies: list[str],
    evicted: int,
    length: int,
    options: CartridgeOptions,
    stats: dict[str, list[Any]],
) -> Cartridge | None:
    """The thread's cartridge, distilled from its evicted turns; ``None`` when over budget."""
    if options.skips(length) or evicted == 0:
        stats["cartridge_skipped"].append(1)
        return None
    _, turns = split_turns(_turn_messages(thread.said, replies, 0, evicted - 1))
    try:
        trained = train_cartridge(
            llm, turns, options.questions, n_tokens=options.n_tokens, epochs=options.epochs, budget_s=options.budget_s
        )
    except CartridgeOverBudgetError:
        # this length and every longer one: their threads hold at least as many evicted turns
        options.over_budget_at = min(length, options.over_budget_at or length)
        stats["cartridge_skipped"].append(1)
        return None
    stats["cartridge_train_s"].append(trained.train_s)
    stats["cartridge_pairs"].append(trained.n_pairs)
    return trained


def _small_talk_replies(language: Language) -> dict[str, str]:
    """Every small-talk line the language draws and its normal reply."""
    rng = random.Random(0)
    return dict(language.small_talk(rng) for _ in range(2000))


def _is_normal(reply: str, expected: str) -> bool:
    """The reply is (a prefix of) the normal reply, or the normal reply is a prefix of it."""
    got, want = normalize(reply), normalize(expected)
    return bool(got) and (want.startswith(got) or got.startswith(want))


def follow_up(llm: LocalHypernetChatModel, language: Language, *, n_docs: int, seed: int) -> dict[str, float]:
    """A product document's second question, asked after its first in one conversation vs fresh."""
    docs = [d for d in language.examples(n_docs, seed, n_facts=(2, 8), genres=["product"]) if len(d.qa) >= 2]
    hits = {"first": 0, "second": 0, "fresh": 0}
    for d in docs:
        adapter = llm.engine.internalize(d.context)
        q1, q2 = d.qa[0], d.qa[1]
        a1 = llm.invoke([HumanMessage(q1.question)], adapters=[adapter])
        a2 = llm.invoke([HumanMessage(q1.question), a1, HumanMessage(q2.question)], adapters=[adapter])
        fresh = llm.invoke([HumanMessage(q2.question)], adapters=[adapter])
        hits["first"] += recalled(str(a1.content), q1.answer)
        hits["second"] += recalled(str(a2.content), q2.answer)
        hits["fresh"] += recalled(str(fresh.content), q2.answer)
    n = max(len(docs), 1)
    return {"n": float(len(docs)), **{k: v / n for k, v in hits.items()}}


def evaluate_memory(
    llm: LocalHypernetChatModel | None = None,
    *,
    turns: Sequence[int] = DEFAULT_TURNS,
    seeds: Sequence[int] = (DEFAULT_MEMORY_EVAL_SEED,),
    threads: int = 4,
    n_facts: int = 6,
    n_updates: int = 2,
    max_turns: int = DEFAULT_AGENT_MAX_TURNS,
    keep_turns: int = DEFAULT_AGENT_KEEP_TURNS,
    grow_segments: bool = True,
    follow_up_docs: int = 100,
    cartridge_tokens: int = DEFAULT_CARTRIDGE_TOKENS,
    cartridge_epochs: int = DEFAULT_CARTRIDGE_EPOCHS,
    cartridge_budget_s: float = DEFAULT_CARTRIDGE_BUDGET_S,
    progress: bool = True,
) -> MemoryReport:
    """Run every condition on the same threads; see the module docstring.

    ``cartridge_budget_s``: seconds one thread's cartridge may train; the first thread length whose
    training passes it is skipped from then on, with every longer length (``0``: no cartridges).
    """
    check_int_option("cartridge_tokens", cartridge_tokens)
    check_int_option("cartridge_epochs", cartridge_epochs)
    check_real_option("cartridge_budget_s", cartridge_budget_s)
    llm = llm or LocalHypernetChatModel(max_tokens=8)
    language = language_of(llm.engine)
    talk = _small_talk_replies(language)  # small-talk line -> its normal reply
    start = time.perf_counter()
    cells = {c: {t: _Cell() for t in turns} for c in CONDITIONS}
    stats: dict[str, dict[str, list[Any]]] = {
        str(t): {
            "ms_turn": [],
            "normal": [],
            "thread_tokens": [],
            "segments": [],
            "top1": [],
            "cartridge_train_s": [],
            "cartridge_pairs": [],
            "cartridge_skipped": [],
        }
        for t in turns
    }
    cartridge = CartridgeOptions(
        cartridge_tokens,
        cartridge_epochs,
        cartridge_budget_s,
        self_study_questions(language),
        over_budget_at=0 if cartridge_budget_s == 0 else None,
    )
    bar = tqdm(total=len(seeds) * threads * sum(turns), desc="eval memory (turns)", disable=not progress)
    with tempfile.TemporaryDirectory(prefix="agenthn-eval-memory-") as tmp:
        store = AdapterStore.for_model(llm.engine, tmp)
        for seed in seeds:
            for t in turns:
                rng = random.Random(f"{seed}-{t}")
                for i in range(threads):
                    thread = draw_thread(language, rng, t, n_facts, n_updates)
                    by_condition = {c: cells[c][t] for c in CONDITIONS}
                    _run_thread(
                        llm,
                        talk,
                        thread,
                        f"s{seed}-T{t}-{i}",
                        store,
                        by_condition,
                        stats[str(t)],
                        max_turns=max_turns,
                        keep_turns=keep_turns,
                        grow_segments=grow_segments,
                        cartridge=cartridge,
                    )
                    bar.update(t)
    bar.close()
    follow = follow_up(llm, language, n_docs=follow_up_docs, seed=seeds[0]) if follow_up_docs else {}
    ts = [str(t) for t in turns]

    def per(c: str, f: Any) -> dict[str, Any]:  # None where the condition never ran (cartridges over budget)
        return {str(t): f(cells[c][t]) if cells[c][t].hits else None for t in turns}

    per_token = kv_bytes_per_token(llm)

    return MemoryReport(
        model=llm.engine.name,
        seeds=list(seeds),
        threads_per_seed=threads,
        turns=list(turns),
        n_facts=n_facts,
        n_updates=n_updates,
        max_turns=max_turns,
        keep_turns=keep_turns,
        grow_segments=grow_segments,
        cartridge_tokens=cartridge_tokens,
        cartridge_epochs=cartridge_epochs,
        cartridge_budget_s=cartridge_budget_s,
        kv_bytes_per_token=per_token,
        recall={c: per(c, lambda x: sum(x.hits) / len(x.hits)) for c in CONDITIONS},
        recall_ci={c: per(c, lambda x: list(wilson_interval(sum(x.hits), len(x.hits)))) for c in CONDITIONS},
        latest_value_rate={c: per(c, lambda x: sum(x.latest) / max(len(x.latest), 1)) for c in CONDITIONS},
        prompt_tokens_median={c: per(c, lambda x: float(statistics.median(x.tokens))) for c in CONDITIONS},
        kv_bytes_median={c: per(c, lambda x: float(statistics.median(x.tokens)) * per_token) for c in CONDITIONS},
        adapter_bytes_median={c: per(c, lambda x: float(statistics.median(x.adapter_bytes))) for c in CONDITIONS},
        ms_per_question_median={c: per(c, lambda x: float(statistics.median(x.ms))) for c in CONDITIONS},
        retrieval_top1_hit={k: sum(stats[k]["top1"]) / max(len(stats[k]["top1"]), 1) for k in ts},
        retrieval_questions={k: len(stats[k]["top1"]) for k in ts},
        normal_reply_rate={k: sum(stats[k]["normal"]) / max(len(stats[k]["normal"]), 1) for k in ts},
        thread_tokens_median={k: float(statistics.median(stats[k]["thread_tokens"])) for k in ts},
        segments_median={k: float(statistics.median(stats[k]["segments"])) for k in ts},
        ms_per_turn_median={k: float(statistics.median(stats[k]["ms_turn"])) for k in ts},
        questions={str(t): len(cells["weight_memory"][t].hits) for t in turns},
        questions_by_condition={c: {str(t): len(cells[c][t].hits) for t in turns} for c in CONDITIONS},
        cartridge_train_s={k: stats[k]["cartridge_train_s"] for k in ts},
        cartridge_pairs={k: stats[k]["cartridge_pairs"] for k in ts},
        cartridge_skipped={k: len(stats[k]["cartridge_skipped"]) for k in ts},
        follow_up=follow,
        wall_s=time.perf_counter() - start,
    )
