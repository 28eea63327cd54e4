"""``agenthn eval memory``: long threads, weight memory against text memory, side by side.

Each thread plants ``n_facts`` random facts about the user in its first 20 user turns, restates
``n_updates`` of them with a new value in its second half, and grows with small talk to ``T``
turns. The thread is run by :func:`~agenthn_langgraph.prebuilt.create_memory_agent` (real
compaction into a real store, real LangGraph checkpoints); then every fact is asked, each
question on its own fork of the thread's last checkpoint, under every condition:

* ``weight_memory`` -- the agent itself: the recalled segment's adapter, the recent turns in context;
* ``text_rag``     -- the same segment the agent recalled, its turns put back in the prompt as text;
* ``text_rag_k3``  -- the retriever's top 3 segments as text;
* ``compose_all``  -- every segment adapter composed (rank-concatenated), no retrieval;
* ``latest_only``  -- the newest segment adapter only;
* ``vanilla``      -- no memory store: the newest turns of the whole thread that fit the window;
* ``no_memory``    -- the question alone.

Reported per condition and thread length: recall (the latest value in the reply's first
sentence) with a Wilson 95% interval, ``latest_value_rate`` on restated facts, median prompt
tokens and milliseconds per question; for the agent, ``retrieval_top1_hit`` (the recalled segment
holds the fact's latest statement, over facts no longer in context) and ``normal_reply_rate``
(small-talk replies, once memory exists, that are the model's normal reply and no remembered
value). ``follow_up`` asks a product document's second question after its first in one
conversation, against the same question asked fresh.
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
from ..prebuilt import create_memory_agent
from ..prebuilt.agents import DEFAULT_AGENT_KEEP_TURNS, DEFAULT_AGENT_MAX_TURNS
from ..store import AdapterStore
from .recall import normalize, recalled, wilson_interval

DEFAULT_MEMORY_EVAL_SEED = 424242
DEFAULT_TURNS = (16, 64, 256, 1024)
CONDITIONS = ("weight_memory", "text_rag", "text_rag_k3", "compose_all", "latest_only", "vanilla", "no_memory")
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
    recall: dict[str, dict[str, float]] = field(default_factory=dict)  # condition -> T -> recall
    recall_ci: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    latest_value_rate: dict[str, dict[str, float]] = field(default_factory=dict)
    prompt_tokens_median: dict[str, dict[str, float]] = field(default_factory=dict)
    ms_per_question_median: dict[str, dict[str, float]] = field(default_factory=dict)
    retrieval_top1_hit: dict[str, float] = field(default_factory=dict)
    retrieval_questions: dict[str, int] = field(default_factory=dict)
    normal_reply_rate: dict[str, float] = field(default_factory=dict)
    thread_tokens_median: dict[str, float] = field(default_factory=dict)
    segments_median: dict[str, float] = field(default_factory=dict)
    ms_per_turn_median: dict[str, float] = field(default_factory=dict)
    questions: dict[str, int] = field(default_factory=dict)
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
            cells = [
                f"{self.recall[c][t]:.3f} ({self.recall_ci[c][t][0]:.2f}-{self.recall_ci[c][t][1]:.2f}), "
                f"{self.prompt_tokens_median[c][t]:.0f} tok"
                for t in ts
            ]
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
        ]
        f = self.follow_up
        if f:
            lines += [
                "",
                f"product follow-up ({f['n']:.0f} documents): second question asked fresh {f['fresh']:.3f}, "
                f"asked after the first in one conversation {f['second']:.3f} (first question {f['first']:.3f})",
            ]
        lines.append(f"wall time {self.wall_s:.0f} s")
        return "\n".join(lines)

    def plot(self, path: str) -> str:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ts = [str(t) for t in self.turns]
        x = [self.thread_tokens_median[t] for t in ts]
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
        for c in CONDITIONS:
            style = dict(lw=2.5) if c == "weight_memory" else dict(lw=1.2, alpha=0.85)
            a.errorbar(
                x,
                [self.recall[c][t] for t in ts],
                yerr=[  # clamped: at 0 or 1 rounding can put the interval's edge a hair inside
                    [max(self.recall[c][t] - self.recall_ci[c][t][0], 0.0) for t in ts],
                    [max(self.recall_ci[c][t][1] - self.recall[c][t], 0.0) for t in ts],
                ],
                marker="o",
                capsize=2,
                label=c,
                **style,
            )
            b.plot(x, [max(self.prompt_tokens_median[c][t], 1) for t in ts], marker="o", label=c, **style)
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
        self.ms: list[float] = []


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
) -> None:
    saver = InMemorySaver()
    agent = create_memory_agent(
        llm, store, max_turns=max_turns, keep_turns=keep_turns, grow_segments=grow_segments, checkpointer=saver
    )
    cfg: dict[str, Any] = {"configurable": {"thread_id": tid}}
    replies: list[str] = []
    out: dict[str, Any] = {}
    for text in thread.said:
        had_memory = bool(out.get("memory_segments"))
        t0 = time.perf_counter()
        out = agent.invoke({"messages": [("user", text)]}, cfg)
        stats["ms_turn"].append((time.perf_counter() - t0) * 1000)
        reply = str(out["messages"][-1].content)
        replies.append(reply)
        if had_memory and text in talk:
            stats["normal"].append(_is_normal(reply, talk[text]))
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
    for q in thread.questions:
        # weight_memory: the agent on its own fork of the final checkpoint
        t0 = time.perf_counter()
        fork = agent.invoke({"messages": [("user", q.text)]}, final.config)
        ms = (time.perf_counter() - t0) * 1000
        reply = fork["messages"][-1]
        _score(cells["weight_memory"], q, str(reply.content), int(reply.usage_metadata["input_tokens"]), ms)
        used = [r["id"] for r in (fork.get("active_adapters") or {}).get("segments", [])]
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
        _score(cells["compose_all"], q, *_ask(llm, msgs, store, [composed] if composed else []))
        _score(cells["latest_only"], q, *_ask(llm, msgs, store, all_adapters[-1:]))
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


def _score(cell: _Cell, q: Question, reply: str, tokens: int, ms: float) -> None:
    cell.hits.append(recalled(reply, q.answer))
    if q.old_answer is not None:
        cell.latest.append(recalled(reply, q.answer))
    cell.tokens.append(tokens)
    cell.ms.append(ms)


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
    progress: bool = True,
) -> MemoryReport:
    """Run every condition on the same threads; see the module docstring."""
    llm = llm or LocalHypernetChatModel(max_tokens=8)
    language = language_of(llm.engine)
    talk = _small_talk_replies(language)  # small-talk line -> its normal reply
    start = time.perf_counter()
    cells = {c: {t: _Cell() for t in turns} for c in CONDITIONS}
    stats: dict[str, dict[str, list[Any]]] = {
        str(t): {"ms_turn": [], "normal": [], "thread_tokens": [], "segments": [], "top1": []} for t in turns
    }
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
                    )
                    bar.update(t)
    bar.close()
    follow = follow_up(llm, language, n_docs=follow_up_docs, seed=seeds[0]) if follow_up_docs else {}
    ts = [str(t) for t in turns]

    def per(c: str, f: Any) -> dict[str, Any]:
        return {str(t): f(cells[c][t]) for t in turns}

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
        recall={c: per(c, lambda x: sum(x.hits) / len(x.hits)) for c in CONDITIONS},
        recall_ci={c: per(c, lambda x: list(wilson_interval(sum(x.hits), len(x.hits)))) for c in CONDITIONS},
        latest_value_rate={c: per(c, lambda x: sum(x.latest) / max(len(x.latest), 1)) for c in CONDITIONS},
        prompt_tokens_median={c: per(c, lambda x: float(statistics.median(x.tokens))) for c in CONDITIONS},
        ms_per_question_median={c: per(c, lambda x: float(statistics.median(x.ms))) for c in CONDITIONS},
        retrieval_top1_hit={k: sum(stats[k]["top1"]) / max(len(stats[k]["top1"]), 1) for k in ts},
        retrieval_questions={k: len(stats[k]["top1"]) for k in ts},
        normal_reply_rate={k: sum(stats[k]["normal"]) / max(len(stats[k]["normal"]), 1) for k in ts},
        thread_tokens_median={k: float(statistics.median(stats[k]["thread_tokens"])) for k in ts},
        segments_median={k: float(statistics.median(stats[k]["segments"])) for k in ts},
        ms_per_turn_median={k: float(statistics.median(stats[k]["ms_turn"])) for k in ts},
        questions={str(t): len(cells["weight_memory"][t].hits) for t in turns},
        follow_up=follow,
        wall_s=time.perf_counter() - start,
    )
