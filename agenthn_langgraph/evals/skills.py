"""``agenthn eval skills``: reference sheets internalized into skill adapters, on held-out tasks.

Per seed, ``sheets`` reference sheets are drawn in the model's
:class:`~agenthn_langgraph.data.language.Language` (its document genres: ``product`` sheets for the
tiny default, ``product`` and ``procedure`` sheets in English), each about its own subject with
``facts`` random values. Every fact is a task, asked as a question whose text never appears in
the sheet (checked). The sheets go into one :class:`~agenthn_langgraph.nodes.SkillLibrary`
through :func:`~agenthn_langgraph.prebuilt.create_skill_agent`; each task is run under:

* ``base``             -- the model alone, the question as the prompt;
* ``in_context``       -- the sheet the skill library matches for the question, in the prompt as
  the hypernetwork's teacher reads a text (the chat format's context), then the question;
* ``internalized``     -- the skill agent (``recall_skill -> agent``) with the skill node's nudge
  (:data:`~agenthn_langgraph.nodes.skill.DEFAULT_NUDGE`, a system instruction for that call);
* ``internalized_no_nudge`` -- the same agent without it.

Reported: accuracy (the value in the reply's first sentence) with a Wilson 95% interval, prompt
tokens (median), ms per task, how often the library matched the task's own sheet, and per seed.

What the tiny default can show: its little language has no arithmetic and no output formats, so
its sheets are lookup rules (``the price of zorblax is 40 .``) and its tasks ask them in another
phrasing (``how much does zorblax cost ?``); a sheet holds one subject, because the tiny base
cannot tell two subjects apart in one context (``agenthn eval binding``).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..chat_model import LocalHypernetChatModel
from ..data.language import Language
from ..data.qa import QAExample
from ..errors import InvalidArgumentError
from ..models.registry import language_of
from ..nodes.skill import DEFAULT_NUDGE, SkillLibrary
from ..options import check_int_option
from ..prebuilt import create_skill_agent
from ..store import AdapterStore
from .recall import normalize, recalled, wilson_interval

DEFAULT_SKILLS_SEED = 515151
SKILL_CONDITIONS = ("base", "in_context", "internalized", "internalized_no_nudge")
REFERENCE_GENRES = ("product", "procedure")  # genres of documents (the others are chats with a user)


def subject_of(sheet: QAExample) -> str:
    """A sheet's subject, from its fact keys (``"<subject>/<attribute>"``)."""
    return sheet.qa[0].key.split("/")[0] if sheet.qa and sheet.qa[0].key else sheet.id


def draw_sheets(language: Language, seed: int, n_sheets: int, n_facts: int) -> list[QAExample]:
    """``n_sheets`` reference sheets with pairwise different subjects, ``n_facts`` facts each.

    Raises ``InvalidArgumentError`` when the language has no document genre, holds fewer facts per
    sheet, or cannot draw that many subjects.
    """
    genres = [g for g in language.genres if g in REFERENCE_GENRES]
    if not genres:
        raise InvalidArgumentError(f"the language {language.name!r} has no reference-document genre {REFERENCE_GENRES}")
    most = min(language.max_facts(g) for g in genres)
    if n_facts > most:
        raise InvalidArgumentError(f"a {language.name!r} sheet holds at most {most} facts, asked for {n_facts}")
    sheets: list[QAExample] = []
    seen: set[str] = set()
    for attempt in range(8):
        for sheet in language.examples(4 * n_sheets, seed * 1_000 + attempt, n_facts=n_facts, genres=genres):
            if subject_of(sheet) not in seen:
                seen.add(subject_of(sheet))
                sheets.append(sheet)
            if len(sheets) == n_sheets:
                return sheets
    raise InvalidArgumentError(f"could not draw {n_sheets} sheets about different subjects; ask for fewer")


def check_held_out(sheet: QAExample) -> None:
    """A task's question text must not appear in its sheet (the sheet holds rules, not tasks)."""
    text = f" {normalize(sheet.context)} "
    for pair in sheet.qa:
        if f" {normalize(pair.question)} " in text:
            raise ValueError(f"task {pair.question!r} appears in its own sheet")


@dataclass
class SkillsReport:
    model: str
    language: str
    seeds: list[int]
    sheets_per_seed: int
    facts_per_sheet: int
    n_tasks: int
    nudge: str
    accuracy: dict[str, float] = field(default_factory=dict)
    accuracy_ci: dict[str, list[float]] = field(default_factory=dict)
    prompt_tokens_median: dict[str, float] = field(default_factory=dict)
    ms_per_task_median: dict[str, float] = field(default_factory=dict)
    by_seed: dict[str, dict[str, float]] = field(default_factory=dict)  # seed -> condition -> accuracy
    skill_matched: float = 0.0  # the library matched the task's own sheet
    sheet_tokens_median: float = 0.0
    internalize_ms_median: float = 0.0
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def targets(self) -> dict[str, bool]:
        """The issue's bar: internalized >= in context, both >= base + 0.30, at <= 1/10 of its tokens."""
        a, tok = self.accuracy, self.prompt_tokens_median
        out = {}
        for row in ("internalized", "internalized_no_nudge"):
            out[f"{row} >= in_context"] = a[row] >= a["in_context"]
            out[f"{row} >= base + 0.30"] = a[row] >= a["base"] + 0.30
            out[f"{row} tokens <= in_context / 10"] = tok[row] <= tok["in_context"] / 10
        out["in_context >= base + 0.30"] = a["in_context"] >= a["base"] + 0.30
        return out

    def table(self) -> str:
        lines = [
            f"{self.model} ({self.language}): seeds {self.seeds}, {self.sheets_per_seed} sheets per seed of "
            f"{self.facts_per_sheet} facts (median {self.sheet_tokens_median:.0f} tokens), {self.n_tasks} held-out "
            f"tasks; accuracy (Wilson 95% interval); the library matched the task's sheet {self.skill_matched:.3f}",
            "",
            "| condition | accuracy | prompt tokens (median) | tokens / in_context | ms / task | "
            + " | ".join(f"seed {s}" for s in self.seeds)
            + " |",
            "|---|---|---|---|---|" + "---|" * len(self.seeds),
        ]
        for c in SKILL_CONDITIONS:
            lo, hi = self.accuracy_ci[c]
            tok = self.prompt_tokens_median[c]
            lines.append(
                f"| {c} | {self.accuracy[c]:.3f} ({lo:.2f}-{hi:.2f}) | {tok:.0f} | "
                f"{tok / self.prompt_tokens_median['in_context']:.3f} | {self.ms_per_task_median[c]:.0f} | "
                + " | ".join(f"{self.by_seed[str(s)][c]:.3f}" for s in self.seeds)
                + " |"
            )
        lines += [
            "",
            f"nudge: {self.nudge!r}; a sheet internalized and stored in {self.internalize_ms_median:.0f} ms (median)",
            "targets: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in self.targets().items()),
            f"wall time {self.wall_s:.0f} s",
        ]
        return "\n".join(lines)

    def plot(self, path: str) -> str:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
        xs = list(range(len(SKILL_CONDITIONS)))
        acc = [self.accuracy[c] for c in SKILL_CONDITIONS]
        err = [
            [max(self.accuracy[c] - self.accuracy_ci[c][0], 0.0) for c in SKILL_CONDITIONS],
            [max(self.accuracy_ci[c][1] - self.accuracy[c], 0.0) for c in SKILL_CONDITIONS],
        ]
        a.bar(xs, acc, yerr=err, capsize=3, color=["#999", "#c77", "#58a", "#8ac"])
        a.set_ylim(0, 1.02)
        a.set_ylabel("accuracy (Wilson 95%)")
        a.set_title(f"{self.n_tasks} held-out tasks")
        b.bar(xs, [self.prompt_tokens_median[c] for c in SKILL_CONDITIONS], color=["#999", "#c77", "#58a", "#8ac"])
        b.set_ylabel("prompt tokens (median)")
        b.set_title("what each answer costs")
        for ax in (a, b):
            ax.set_xticks(xs, [c.replace("_", "\n") for c in SKILL_CONDITIONS], fontsize=8)
        fig.suptitle(f"{self.model}: seeds {self.seeds}", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def evaluate_skills(
    llm: LocalHypernetChatModel | None = None,
    *,
    seeds: Sequence[int] = (DEFAULT_SKILLS_SEED,),
    sheets: int = 8,
    facts: int | None = None,
    nudge: str = DEFAULT_NUDGE,
    progress: bool = True,
) -> SkillsReport:
    """Run every condition on the same held-out tasks; see the module docstring.

    ``facts``: facts per sheet (default: as many as the language's document genres hold).
    """
    from tqdm.auto import tqdm

    check_int_option("sheets", sheets)
    llm = llm or LocalHypernetChatModel(max_tokens=8)
    language = language_of(llm.engine)
    genres = [g for g in language.genres if g in REFERENCE_GENRES]
    n_facts = check_int_option("facts", facts) if facts is not None else min(language.max_facts(g) for g in genres)
    if not seeds:
        raise InvalidArgumentError("evaluate_skills needs at least one seed")
    engine = llm.engine
    start = time.perf_counter()
    hits: dict[str, list[bool]] = {c: [] for c in SKILL_CONDITIONS}
    tokens: dict[str, list[int]] = {c: [] for c in SKILL_CONDITIONS}
    ms: dict[str, list[float]] = {c: [] for c in SKILL_CONDITIONS}
    by_seed: dict[str, dict[str, float]] = {}
    matched: list[bool] = []
    sheet_tokens: list[int] = []
    internalize_ms: list[float] = []
    bar = tqdm(total=len(seeds) * sheets * n_facts, desc="eval skills (tasks)", disable=not progress)
    with tempfile.TemporaryDirectory(prefix="agenthn-eval-skills-") as tmp:
        for seed in seeds:
            drawn = draw_sheets(language, seed, sheets, n_facts)
            for sheet in drawn:
                check_held_out(sheet)
            named = {f"{subject_of(s)} sheet": s for s in drawn}
            store = AdapterStore.for_model(engine, f"{tmp}/seed-{seed}")
            library = SkillLibrary(llm, store)
            for name, sheet in named.items():  # internalized once: the agents below find them stored
                t0 = time.perf_counter()
                library.add(name, sheet.context)
                internalize_ms.append((time.perf_counter() - t0) * 1000)
            # the default nudge is English: on the tiny default 3 of its words are outside the
            # language and read as <unk>, as before unknown words were refused by default
            nudged_llm = llm.model_copy(update={"allow_unknown": True})
            nudged = create_skill_agent(nudged_llm, store, skills={k: s.context for k, s in named.items()}, nudge=nudge)
            plain = create_skill_agent(llm, store, skills={k: s.context for k, s in named.items()})
            seed_hits: dict[str, list[bool]] = {c: [] for c in SKILL_CONDITIONS}
            for name, sheet in named.items():
                sheet_tokens.append(len(engine.encode(sheet.context)))
                for pair in sheet.qa:
                    record = library.match(pair.question, min_score=0.2)
                    matched.append(record is not None and record.name == name)
                    shown = named[record.name].context if record is not None else ""
                    ids = engine.prompts.teacher_ids(shown, pair.question) if shown else None
                    runs: dict[str, tuple[str, int, float]] = {
                        "base": _invoke(llm, pair.question),
                        "in_context": _generate(llm, ids) if ids else _invoke(llm, pair.question),
                        "internalized": _agent(nudged, pair.question),
                        "internalized_no_nudge": _agent(plain, pair.question),
                    }
                    for c, (reply, n_tokens, elapsed) in runs.items():
                        ok = recalled(reply, pair.answer)
                        hits[c].append(ok)
                        seed_hits[c].append(ok)
                        tokens[c].append(n_tokens)
                        ms[c].append(elapsed)
                    bar.update(1)
            by_seed[str(seed)] = {c: sum(v) / len(v) for c, v in seed_hits.items()}
    bar.close()
    n = len(hits["base"])
    return SkillsReport(
        model=engine.name,
        language=language.name,
        seeds=list(seeds),
        sheets_per_seed=sheets,
        facts_per_sheet=n_facts,
        n_tasks=n,
        nudge=nudge,
        accuracy={c: sum(v) / n for c, v in hits.items()},
        accuracy_ci={c: list(wilson_interval(sum(v), n)) for c, v in hits.items()},
        prompt_tokens_median={c: float(statistics.median(v)) for c, v in tokens.items()},
        ms_per_task_median={c: float(statistics.median(v)) for c, v in ms.items()},
        by_seed=by_seed,
        skill_matched=sum(matched) / len(matched),
        sheet_tokens_median=float(statistics.median(sheet_tokens)),
        internalize_ms_median=float(statistics.median(internalize_ms)),
        wall_s=time.perf_counter() - start,
    )


def _invoke(llm: LocalHypernetChatModel, question: str) -> tuple[str, int, float]:
    t0 = time.perf_counter()
    reply = llm.invoke(question)
    return str(reply.content), int(reply.usage_metadata["input_tokens"]), (time.perf_counter() - t0) * 1000


def _generate(llm: LocalHypernetChatModel, ids: list[int]) -> tuple[str, int, float]:
    t0 = time.perf_counter()
    reply = llm.engine.generate_ids([ids], max_new_tokens=llm.max_tokens or 8)[0]
    return reply, len(ids), (time.perf_counter() - t0) * 1000


def _agent(agent: Any, question: str) -> tuple[str, int, float]:
    t0 = time.perf_counter()
    reply = agent.invoke({"messages": [("user", question)]})["messages"][-1]
    return str(reply.content), int(reply.usage_metadata["input_tokens"]), (time.perf_counter() - t0) * 1000
