"""``agenthn eval self-improve``: the prebuilt self-improvement graph, round by round, over seeds.

Per seed, study material about fictional subjects is drawn in the model's
:class:`~agenthn_langgraph.data.language.Language` (``sheets`` reference sheets of ``facts``
random values each, every subject new: held out from anything the hypernetwork saw), with one
question per fact. :func:`~agenthn_langgraph.prebuilt.create_self_improvement_graph` runs on it
(attempt with no notes, grade, reflect, rewrite the notes, re-internalize, attempt again, up to
``rounds`` reflections; it stops early at a perfect score or when a round brings no gain).

Reported, pooled over seeds with Wilson 95% intervals, for rounds 0..R:

* ``attempted``: the accuracy of the adapter the round attempted with (rounds after the graph
  stopped: none, their count is shown);
* ``kept``: the accuracy of the best adapter the graph holds after that round (``best_adapter``;
  after a stop, the final one): what the agent would answer with. Never worse than an earlier
  round by construction; the report checks it, and re-asks every question with the final
  ``best_adapter`` loaded from the store, which must score the graph's ``best_score``.

Also: prompt tokens per question (the question alone, the notes in weights) against the best
notes put in the prompt as text, and that condition's accuracy (``notes_in_context``).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage

from ..chat_model import LocalHypernetChatModel
from ..errors import InvalidArgumentError
from ..models.registry import language_of
from ..nodes.reflect import DEFAULT_NOTES_NAMESPACE
from ..options import check_int_option
from ..prebuilt import create_self_improvement_graph
from ..store import AdapterStore
from .recall import recalled, wilson_interval
from .skills import draw_sheets

DEFAULT_SELF_IMPROVE_SEED = 777


def _grader(_question: str, expected: str, predicted: str) -> bool:
    """The benchmarks' judge: the value in the reply's first sentence."""
    return recalled(predicted, expected)


@dataclass
class SelfImproveReport:
    model: str
    language: str
    seeds: list[int]
    rounds: int
    sheets: int
    facts_per_sheet: int
    questions_per_seed: int
    attempted: list[float | None] = field(default_factory=list)  # round -> accuracy (None: no seed got there)
    attempted_ci: list[list[float] | None] = field(default_factory=list)
    attempted_seeds: list[int] = field(default_factory=list)  # round -> seeds whose graph attempted it
    kept: list[float] = field(default_factory=list)  # round -> accuracy of the best adapter held after it
    kept_ci: list[list[float]] = field(default_factory=list)
    by_seed: dict[str, dict[str, Any]] = field(default_factory=dict)  # scores, stop reason, kept per round
    never_worse: bool = True  # kept never below an earlier round, in every seed
    best_reasked: bool = True  # the stored best adapter, asked again, scores the graph's best_score
    notes_in_context: float = 0.0
    notes_in_context_ci: list[float] = field(default_factory=list)
    prompt_tokens_adapter_median: float = 0.0
    prompt_tokens_notes_in_context_median: float = 0.0
    notes_adapters_made: int = 0
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def gain(self) -> float:
        """Final round's kept accuracy minus round 0's."""
        return self.kept[-1] - self.kept[0]

    def table(self) -> str:
        n = self.questions_per_seed * len(self.seeds)
        lines = [
            f"{self.model} ({self.language}): seeds {self.seeds}, {self.sheets} sheets of {self.facts_per_sheet} "
            f"facts per seed ({self.questions_per_seed} questions, {n} pooled); up to {self.rounds} reflections; "
            "accuracy (Wilson 95% interval)",
            "",
            "| round | kept (best adapter so far) | attempted this round | seeds attempting | "
            + " | ".join(f"seed {s} kept" for s in self.seeds)
            + " |",
            "|---|---|---|---|" + "---|" * len(self.seeds),
        ]
        for r in range(self.rounds + 1):
            att, ci = self.attempted[r], self.attempted_ci[r]
            cell = f"{att:.3f} ({ci[0]:.2f}-{ci[1]:.2f})" if att is not None and ci else "-"
            lines.append(
                f"| {r} | {self.kept[r]:.3f} ({self.kept_ci[r][0]:.2f}-{self.kept_ci[r][1]:.2f}) | {cell} | "
                f"{self.attempted_seeds[r]} | "
                + " | ".join(f"{self.by_seed[str(s)]['kept'][r]:.3f}" for s in self.seeds)
                + " |"
            )
        lo, hi = self.notes_in_context_ci
        lines += [
            "",
            f"final - round 0: {self.gain():+.3f}; never worse than an earlier round: {self.never_worse}; "
            f"stored best adapter re-asked scores best_score: {self.best_reasked}",
            f"best notes in the prompt as text instead: {self.notes_in_context:.3f} ({lo:.2f}-{hi:.2f}); prompt tokens "
            f"(median) {self.prompt_tokens_adapter_median:.0f} with the notes adapter, "
            f"{self.prompt_tokens_notes_in_context_median:.0f} with the notes in context",
            "stops: "
            + ", ".join(f"seed {s}: {self.by_seed[str(s)]['stop']} ({self.by_seed[str(s)]['ran']})" for s in self.seeds)
            + f"; {self.notes_adapters_made} notes adapters made",
            f"wall time {self.wall_s:.0f} s",
        ]
        return "\n".join(lines)

    def plot(self, path: str) -> str:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        rs = list(range(self.rounds + 1))
        ax.errorbar(
            rs,
            self.kept,
            yerr=[
                [max(k - ci[0], 0.0) for k, ci in zip(self.kept, self.kept_ci, strict=True)],
                [max(ci[1] - k, 0.0) for k, ci in zip(self.kept, self.kept_ci, strict=True)],
            ],
            marker="o",
            capsize=3,
            lw=2.5,
            label="kept (best so far), pooled",
        )
        for s in self.seeds:
            ax.plot(rs, self.by_seed[str(s)]["kept"], lw=0.8, alpha=0.6, label=f"seed {s}")
        ax.axhline(self.notes_in_context, ls="--", color="grey", lw=1, label="best notes in context")
        ax.set_ylim(0, 1.02)
        ax.set_xticks(rs)
        ax.set_xlabel("round (reflections)")
        ax.set_ylabel("accuracy (Wilson 95%)")
        ax.legend(fontsize=7)
        ax.set_title(f"{self.model}: self-improvement", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def evaluate_self_improve(
    llm: LocalHypernetChatModel | None = None,
    *,
    seeds: Sequence[int] = (DEFAULT_SELF_IMPROVE_SEED,),
    rounds: int = 3,
    sheets: int = 3,
    facts: int = 4,
    progress: bool = True,
) -> SelfImproveReport:
    """Run the graph per seed and score each round; see the module docstring."""
    from tqdm.auto import tqdm

    check_int_option("rounds", rounds)
    check_int_option("sheets", sheets)
    check_int_option("facts", facts)
    if not seeds:
        raise InvalidArgumentError("evaluate_self_improve needs at least one seed")
    llm = llm or LocalHypernetChatModel(max_tokens=8)
    language = language_of(llm.engine)
    start = time.perf_counter()
    attempted: list[list[bool]] = [[] for _ in range(rounds + 1)]
    attempted_seeds = [0] * (rounds + 1)
    kept: list[list[bool]] = [[] for _ in range(rounds + 1)]
    by_seed: dict[str, dict[str, Any]] = {}
    in_context: list[bool] = []
    tokens_adapter: list[int] = []
    tokens_context: list[int] = []
    never_worse = best_reasked = True
    made = 0
    with tempfile.TemporaryDirectory(prefix="agenthn-eval-self-improve-") as tmp:
        store = AdapterStore.for_model(llm.engine, tmp)
        graph = create_self_improvement_graph(llm, store, max_rounds=rounds, grader=_grader)
        for seed in tqdm(seeds, desc="eval self-improve (seeds)", disable=not progress):
            drawn = draw_sheets(language, seed, sheets, facts)
            material = "\n\n".join(s.context for s in drawn)
            questions = [{"question": p.question, "answer": p.answer} for s in drawn for p in s.qa]
            cfg = {"configurable": {"thread_id": f"seed-{seed}"}}
            per_round: list[list[bool]] = []  # the graph's graded attempts, round by round
            final: dict[str, Any] = {}
            for mode, chunk in graph.stream(
                {"study_material": material, "questions": questions}, cfg, stream_mode=["updates", "values"]
            ):
                if mode == "values":
                    final = chunk
                elif "grade" in chunk:
                    per_round.append([bool(a["correct"]) for a in chunk["grade"]["attempts"]])
            scores = [sum(r) / len(r) for r in per_round]
            held = _kept(per_round, rounds)
            for r, hits in enumerate(per_round):
                attempted[r] += hits
                attempted_seeds[r] += 1
            for r in range(rounds + 1):
                kept[r] += held[r]
            kept_scores = [sum(h) / len(h) for h in held]
            never_worse &= all(kept_scores[r] >= max(kept_scores[:r], default=0.0) for r in range(rounds + 1))
            never_worse &= final["best_score"] == max(scores)
            # the stored best adapter, loaded again, answers as the graph graded it
            best = [final["best_adapter"]] if final.get("best_adapter") else []
            replies = llm.batch([q["question"] for q in questions], adapters=best, adapter_store=store, max_tokens=4)
            reasked = [recalled(r.text, q["answer"]) for r, q in zip(replies, questions, strict=True)]
            best_reasked &= abs(sum(reasked) / len(reasked) - final["best_score"]) < 1e-9
            notes = "\n".join(final.get("best_notes") or [])
            for q in questions:
                prompt = [SystemMessage(notes), HumanMessage(q["question"])] if notes else [HumanMessage(q["question"])]
                in_context.append(recalled(llm.invoke(prompt).text, q["answer"]))
                tokens_context.append(llm.get_num_tokens_from_messages(prompt))
                tokens_adapter.append(llm.get_num_tokens_from_messages([HumanMessage(q["question"])]))
            made += len(store.list(namespace=_namespace(seed), kind="notes"))
            by_seed[str(seed)] = {
                "scores": scores,
                "kept": kept_scores,
                "best_score": final["best_score"],
                "stop": final.get("stop_reason") or _stop(scores, rounds),
                "ran": f"{len(scores) - 1} reflections",
            }
    pooled = [len(k) for k in kept]
    return SelfImproveReport(
        model=llm.engine.name,
        language=language.name,
        seeds=list(seeds),
        rounds=rounds,
        sheets=sheets,
        facts_per_sheet=facts,
        questions_per_seed=sheets * facts,
        attempted=[sum(a) / len(a) if a else None for a in attempted],
        attempted_ci=[list(wilson_interval(sum(a), len(a))) if a else None for a in attempted],
        attempted_seeds=attempted_seeds,
        kept=[sum(k) / n for k, n in zip(kept, pooled, strict=True)],
        kept_ci=[list(wilson_interval(sum(k), n)) for k, n in zip(kept, pooled, strict=True)],
        by_seed=by_seed,
        never_worse=never_worse,
        best_reasked=best_reasked,
        notes_in_context=sum(in_context) / len(in_context),
        notes_in_context_ci=list(wilson_interval(sum(in_context), len(in_context))),
        prompt_tokens_adapter_median=float(statistics.median(tokens_adapter)),
        prompt_tokens_notes_in_context_median=float(statistics.median(tokens_context)),
        notes_adapters_made=made,
        wall_s=time.perf_counter() - start,
    )


def _kept(per_round: list[list[bool]], rounds: int) -> list[list[bool]]:
    """Round by round, the graded attempts of the best round so far (the first best on ties, as
    the grade node keeps it); after the graph stopped, the final best."""
    out: list[list[bool]] = []
    best: list[bool] = []
    for r in range(rounds + 1):
        if r < len(per_round) and (not out or sum(per_round[r]) > sum(best)):
            best = per_round[r]
        out.append(best)
    return out


def _stop(scores: list[float], rounds: int) -> str:
    if scores and scores[-1] >= 1.0:
        return "perfect score"
    if len(scores) - 1 >= rounds:
        return "max rounds"
    return "no gain"


def _namespace(seed: int) -> tuple[str, ...]:
    return tuple(p.replace("{thread_id}", f"seed-{seed}") for p in DEFAULT_NOTES_NAMESPACE)
