"""``agenthn eval memory``: long threads, answered from compacted weight memory vs the alternatives.

Each thread states ``n_facts`` random facts about the user, mixed with small talk to ``turns``
turns, then asks about every fact (questions run in order in the same thread). Conditions,
side by side on the same threads:

* ``weight_memory`` -- :func:`~agenthn_langgraph.prebuilt.create_memory_agent`: old turns are
  compacted into segment adapters and evicted; the relevant segment is applied per question;
* ``full_context``  -- the whole thread stays in the prompt (what compaction replaces);
* ``window``        -- only the last ``keep_turns`` turns stay, older ones are dropped (trimming
  without memory, the usual way to bound a prompt);
* ``no_memory``     -- the base model asked each question alone.

Reported: recall (the value in the reply's first sentence, as ``agenthn eval recall`` judges),
the median and max prompt tokens at question time, and the median milliseconds per turn
(compaction included). The facts come from the model's language (its registry entry).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from langchain_core.messages import RemoveMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from tqdm.auto import tqdm

from ..chat_model import LocalHypernetChatModel
from ..data.language import Language
from ..models.registry import language_of
from ..nodes.agent import CallModelNode
from ..nodes.compact import split_turns
from ..nodes.state import WeightMemoryState
from ..prebuilt import create_memory_agent
from ..store import AdapterStore
from .recall import recalled

DEFAULT_MEMORY_EVAL_SEED = 424242
CONDITIONS = ("weight_memory", "full_context", "window", "no_memory")


@dataclass
class MemoryReport:
    threads: int
    turns: int
    n_facts: int
    seed: int
    keep_turns: int
    recall: dict[str, float] = field(default_factory=dict)
    prompt_tokens_median: dict[str, float] = field(default_factory=dict)
    prompt_tokens_max: dict[str, int] = field(default_factory=dict)
    ms_per_turn_median: dict[str, float] = field(default_factory=dict)
    segments_per_thread: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        rows = [
            f"threads {self.threads} x {self.turns} turns, {self.n_facts} facts each, seed {self.seed}",
            "| condition | recall | prompt tokens (median) | prompt tokens (max) | ms / turn (median) |",
            "|---|---|---|---|---|",
        ]
        for c in CONDITIONS:
            rows.append(
                f"| {c} | {self.recall[c]:.3f} | {self.prompt_tokens_median[c]:.0f} | "
                f"{self.prompt_tokens_max[c]} | {self.ms_per_turn_median[c]:.0f} |"
            )
        return "\n".join(rows)

    def plot(self, path: str) -> str:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
        a.bar(CONDITIONS, [self.recall[c] for c in CONDITIONS], color=["#2a7", "#68c", "#c96", "#999"])
        a.set_ylim(0, 1)
        a.set_title("recall of facts stated earlier in the thread")
        b.bar(CONDITIONS, [self.prompt_tokens_median[c] for c in CONDITIONS], color=["#2a7", "#68c", "#c96", "#999"])
        b.set_title("prompt tokens at question time (median)")
        for ax in (a, b):
            ax.tick_params(axis="x", labelrotation=20)
        fig.suptitle(f"{self.threads} threads x {self.turns} turns, seed {self.seed}")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def draw_thread(
    language: Language, rng: random.Random, turns: int, n_facts: int
) -> tuple[list[str], list[tuple[str, str]]]:
    """User turns (facts shuffled into small talk) and (question, answer) pairs."""
    facts = language.user_facts(rng, n_facts)
    talk = [language.small_talk(rng)[0] for _ in range(max(turns - n_facts, 0))]
    said = [f.statement for f in facts] + talk
    rng.shuffle(said)
    return said, [(f.question, f.answer) for f in facts]


def _window_graph(llm: LocalHypernetChatModel, keep_turns: int) -> Any:
    def trim(state: dict[str, Any]) -> dict[str, Any]:
        _, turns = split_turns(state["messages"])
        old = [m for t in turns[: max(len(turns) - keep_turns, 0)] for m in t]
        return {"messages": [RemoveMessage(id=m.id) for m in old]} if old else {}

    g = StateGraph(WeightMemoryState)
    g.add_node("trim", trim)
    g.add_node(CallModelNode(llm))
    g.add_edge(START, "trim")
    g.add_edge("trim", "agent")
    g.add_edge("agent", END)
    return g.compile(checkpointer=InMemorySaver())


def _full_graph(llm: LocalHypernetChatModel) -> Any:
    g = StateGraph(WeightMemoryState)
    g.add_node(CallModelNode(llm))
    g.add_edge(START, "agent")
    g.add_edge("agent", END)
    return g.compile(checkpointer=InMemorySaver())


def evaluate_memory(
    llm: LocalHypernetChatModel | None = None,
    *,
    threads: int = 6,
    turns: int = 16,
    n_facts: int = 8,
    seed: int = DEFAULT_MEMORY_EVAL_SEED,
    max_turns: int = 4,
    keep_turns: int = 1,
    progress: bool = True,
) -> MemoryReport:
    """Run every condition on the same ``threads`` threads; see the module docstring."""
    llm = llm or LocalHypernetChatModel(max_tokens=4)
    rng = random.Random(seed)
    language = language_of(llm.engine)
    drawn = [draw_thread(language, rng, turns, n_facts) for _ in range(threads)]
    hits = {c: 0 for c in CONDITIONS}
    tokens: dict[str, list[int]] = {c: [] for c in CONDITIONS}
    ms: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    segments = []
    bar = tqdm(total=threads * 3, desc="eval memory", disable=not progress)
    with tempfile.TemporaryDirectory(prefix="agenthn-eval-memory-") as tmp:
        store = AdapterStore.for_model(llm.engine, tmp)
        graphs = {
            "weight_memory": create_memory_agent(
                llm, store, max_turns=max_turns, keep_turns=keep_turns, checkpointer=InMemorySaver()
            ),
            "full_context": _full_graph(llm),
            "window": _window_graph(llm, keep_turns),
        }
        for i, (said, questions) in enumerate(drawn):
            for name, graph in graphs.items():
                cfg = {"configurable": {"thread_id": f"t{i}"}}
                for text in said:
                    t0 = time.perf_counter()
                    graph.invoke({"messages": [("user", text)]}, cfg)
                    ms[name].append((time.perf_counter() - t0) * 1000)
                for question, answer in questions:
                    out = graph.invoke({"messages": [("user", question)]}, cfg)
                    reply = out["messages"][-1]
                    hits[name] += recalled(reply.content, answer)
                    tokens[name].append(reply.usage_metadata["input_tokens"])
                if name == "weight_memory":
                    segments.append(len(out.get("memory_segments", [])))
                bar.update(1)
            for question, answer in questions:
                t0 = time.perf_counter()
                reply = llm.invoke(question)
                ms["no_memory"].append((time.perf_counter() - t0) * 1000)
                hits["no_memory"] += recalled(reply.content, answer)
                tokens["no_memory"].append(reply.usage_metadata["input_tokens"])
    bar.close()
    n_q = threads * n_facts
    return MemoryReport(
        threads=threads,
        turns=turns,
        n_facts=n_facts,
        seed=seed,
        keep_turns=keep_turns,
        recall={c: hits[c] / n_q for c in CONDITIONS},
        prompt_tokens_median={c: float(statistics.median(tokens[c])) for c in CONDITIONS},
        prompt_tokens_max={c: max(tokens[c]) for c in CONDITIONS},
        ms_per_turn_median={c: float(statistics.median(ms[c])) for c in CONDITIONS},
        segments_per_thread=float(statistics.mean(segments)),
    )
