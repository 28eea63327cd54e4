"""``agenthn eval recall``: does a text internalized into an adapter answer questions about it?

For any model and any :class:`~agenthn_langgraph.data.language.Language` (the tiny default's
little language, English): held-out texts (a seed disjoint from training's), every fact asked
once, conditions side by side on the same questions:

* ``no_memory``  -- the base alone, prompt = the question (should sit near chance);
* ``in_context`` -- the base with the text in the prompt (the teacher; the reference);
* ``adapter``    -- the text's adapter, prompt = the question only;
* ``composed_by_n`` -- that adapter rank-concatenated with N adapters of *unrelated* texts
  (no shared fact key), N = 2, 4, 8 (``composed`` is N = 2), the target's place in the stack random;
* ``by_n_facts`` -- adapter (and in-context) recall on texts of 1, 2, 4, 8, 12, 16 facts;
* ``heldout_phrasing`` -- texts whose facts use phrasings training never saw;
* ``finetune`` (``--baselines finetune``) -- a LoRA of the same rank fitted per text by gradient
  descent on the text alone, its recall and seconds per text after 5..80 steps, and how much
  faster one-pass internalize is than fine-tuning to the same recall (:mod:`.finetune`).

Answers are generated greedily and judged fairly for models that answer in sentences: a fact is
recalled when its normalised value (case, punctuation, articles) appears in the reply's first
sentence; ``exact_first_words`` (the reply starts with the value) is reported beside it.

A text whose adapter the engine refuses (:class:`~agenthn_langgraph.errors.AdapterNormError`: over
the norm limit, or not finite) does not stop the evaluation: its questions count as misses in every
adapter condition, so does a composed stack that would need it, and ``refused_adapters`` counts the
refusals (target texts, distractors, the facts-per-text and held-out-phrasing texts).
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
import string
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm

from ..data.language import Language
from ..data.qa import QAExample, QAPair
from ..engine import WeightMemoryModel
from ..errors import AdapterNormError
from ..lora.adapter import LoraAdapter

DEFAULT_EVAL_SEED = 20261123  # training seeds its steps with step_seed(): (seed*1_000_003+stream)*10_000_019+step
COMPOSE_NS = (2, 4, 8)
N_FACTS = (1, 2, 4, 8, 12, 16)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalize(text: str) -> str:
    """Lower case, no punctuation or articles, single spaces ("The Big Apple!" -> "big apple").

    >>> normalize("  The price is $129.50, Maria-Lopez! ")
    'price is 129 50 maria lopez'
    """
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def first_sentence(text: str) -> str:
    """Up to the first sentence end (., !, ? followed by a space or the end) or line break."""
    m = re.search(r"[.!?](\s|$)|\n", text.strip())
    return text.strip()[: m.start() + 1] if m else text.strip()


def recalled(reply: str, answer: str) -> bool:
    """The value, normalised, appears (as whole words) in the reply's first sentence."""
    value, said = normalize(answer), normalize(first_sentence(reply))
    return bool(value) and f" {value} " in f" {said} "


def exact_first_words(reply: str, answer: str) -> bool:
    """The reply starts with the value (normalised)."""
    value, said = normalize(answer), normalize(reply)
    return bool(value) and (said == value or said.startswith(value + " "))


@dataclass
class RecallReport:
    model: str
    language: str
    n_docs: int
    n_questions: int
    seed: int
    no_memory: float
    in_context: float
    adapter: float
    composed: float  # N = 2
    composed_by_n: dict[str, float]
    exact_first_words: dict[str, float]
    prompt_tokens_in_context: float
    prompt_tokens_adapter: float
    internalize_ms_median: float
    adapter_bytes: int | None  # None: every target's adapter was refused
    adapter_rank: float  # mean over the texts
    composed_rank: float  # mean, N = 2
    chance: float | None = None
    by_genre: dict[str, dict[str, float]] = field(default_factory=dict)
    by_n_facts: dict[str, dict[str, float]] = field(default_factory=dict)
    heldout_phrasing: dict[str, float] = field(default_factory=dict)
    torch_threads: int = 0
    finetune: dict[str, object] | None = None  # the fine-tuning baseline (FinetuneReport), when asked for
    adapter_on_whole_prompt: float | None = None
    """For a hypernetwork trained to act on the answer only: recall with the adapter on the whole
    prompt too, as PEFT and vLLM apply an exported adapter."""
    refused_adapters: dict[str, int] = field(default_factory=dict)
    """Texts whose adapter the engine refused (their questions count as misses), by role:
    ``targets``, ``distractors``, ``by_n_facts``, ``heldout_phrasing``."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def to_json(self) -> str:
        """Strict JSON: a value that does not exist (NaN, e.g. ``composed`` without N = 2) is ``null``."""
        return strict_json(self.to_dict())

    def table(self) -> str:
        rows = [
            ("no_memory (base alone)", self.no_memory, f"{self.prompt_tokens_adapter:.1f}"),
            ("in_context (text in prompt)", self.in_context, f"{self.prompt_tokens_in_context:.1f}"),
            ("adapter (text -> LoRA, no text)", self.adapter, f"{self.prompt_tokens_adapter:.1f}"),
        ]
        rows += [
            (f"composed (+{n} unrelated adapters)", v, f"{self.prompt_tokens_adapter:.1f}")
            for n, v in self.composed_by_n.items()
        ]
        if self.chance is not None:
            rows.insert(0, ("chance", self.chance, "-"))
        if self.adapter_on_whole_prompt is not None:
            rows.insert(3, ("adapter on the whole prompt (as vLLM)", self.adapter_on_whole_prompt, "-"))
        if self.heldout_phrasing:
            rows += [
                ("held-out phrasing: in_context", self.heldout_phrasing["in_context"], "-"),
                ("held-out phrasing: adapter", self.heldout_phrasing["adapter"], "-"),
            ]
        lines = [
            f"{self.model} ({self.language}): {self.n_docs} held-out texts, {self.n_questions} questions, "
            f"seed {self.seed}",
            "",
            f"| {'condition':<36} | {'recall':>7} | {'prompt tokens':>13} |",
            f"|{'-' * 38}|{'-' * 9}|{'-' * 15}|",
        ]
        lines += [f"| {name:<36} | {value:>7.3f} | {tokens:>13} |" for name, value, tokens in rows]
        cols = ["no_memory", "in_context", "adapter", *(f"composed_{n}" for n in self.composed_by_n)]
        lines += ["", f"| {'genre':<12} | " + " | ".join(f"{c:>10}" for c in cols) + " |"]
        for genre, vals in self.by_genre.items():
            lines.append(f"| {genre:<12} | " + " | ".join(f"{vals[c]:>10.3f}" for c in cols) + " |")
        if self.by_n_facts:
            lines += ["", f"| {'facts/text':<10} | {'texts':>5} | {'in_context':>10} | {'adapter':>8} | {'rank':>6} |"]
            for n, vals in self.by_n_facts.items():
                lines.append(
                    f"| {n:<10} | {vals['n_docs']:>5.0f} | {vals['in_context']:>10.3f} | {vals['adapter']:>8.3f} "
                    f"| {vals['rank']:>6.1f} |"
                )
        size = "no adapter" if self.adapter_bytes is None else f"{self.adapter_bytes:,} bytes on disk"
        lines += [
            "",
            "exact first words: " + ", ".join(f"{k} {v:.3f}" for k, v in self.exact_first_words.items()),
            f"internalize latency, median of {self.n_docs} single texts: {self.internalize_ms_median:.1f} ms "
            f"({self.torch_threads} torch threads)",
            f"adapter: mean rank {self.adapter_rank:.1f}, {size} (first text); "
            f"composed (N=2) mean rank {self.composed_rank:.1f}",
        ]
        if any(self.refused_adapters.values()):
            lines.append(
                "refused adapters (their questions count as misses): "
                + ", ".join(f"{k} {v}" for k, v in self.refused_adapters.items())
            )
        if self.finetune is not None:
            from .finetune import FinetuneReport

            lines += ["", FinetuneReport(**self.finetune).table()]  # type: ignore[arg-type]
        return "\n".join(lines)

    def plot(self, path: str) -> str:
        """Recall per condition (bars per genre) and adapter recall by facts per text (PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        conds = ["no_memory", "in_context", "adapter", *(f"composed_{n}" for n in self.composed_by_n)]
        labels = [
            "no memory",
            "text in\ncontext",
            "adapter\n(no text)",
            *(f"adapter +{n}\nunrelated" for n in self.composed_by_n),
        ]
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1.3]})
        width = 0.8 / max(len(self.by_genre), 1)
        for k, (genre, vals) in enumerate(self.by_genre.items()):
            xs = [i + (k - (len(self.by_genre) - 1) / 2) * width for i in range(len(conds))]
            ax.bar(xs, [vals[c] for c in conds], width, label=genre, alpha=0.85)
        overall = [self.no_memory, self.in_context, self.adapter, *self.composed_by_n.values()]
        ax.scatter(range(len(conds)), overall, color="black", zorder=3, label="all")
        ax.set_xticks(range(len(conds)), labels, fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("recall")
        ax.set_title(
            f"{self.model}: {self.n_docs} held-out texts (seed {self.seed}); prompt "
            f"{self.prompt_tokens_in_context:.0f} vs {self.prompt_tokens_adapter:.0f} tokens",
            fontsize=9,
        )
        ax.legend(fontsize=7, loc="upper left", ncol=3)
        if self.by_n_facts:
            ns = list(self.by_n_facts)
            bx.plot(ns, [self.by_n_facts[n]["adapter"] for n in ns], "o-", label="adapter")
            bx.plot(ns, [self.by_n_facts[n]["in_context"] for n in ns], "s--", label="in context")
            bx.set_ylim(0, 1.05)
            bx.set_xlabel("facts per text")
            bx.set_title("capacity", fontsize=9)
            bx.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


@dataclass
class _Question:
    target: int  # index of its text among the targets
    pair: QAPair
    genre: str | None


def draw_distractors(
    targets: Sequence[QAExample], pool: Sequence[QAExample], n: int, rng: random.Random
) -> list[list[QAExample]]:
    """Per target, ``n`` pool texts unrelated to it (no shared fact key), cycling through genres."""
    out = []
    for t in targets:
        chosen: list[QAExample] = []
        order = rng.sample(range(len(pool)), len(pool))
        for j in order:
            if len(chosen) == n:
                break
            if t.unrelated_to(pool[j]):
                chosen.append(pool[j])
        if len(chosen) < n:
            raise ValueError(f"the pool holds fewer than {n} texts unrelated to {t.stable_id()}")
        out.append(chosen)
    return out


class ReplyRunner:
    """Generates answers for many questions in batches, each row with its own adapters."""

    def __init__(
        self, model: WeightMemoryModel, batch: int, max_new_tokens: int, *, adapter_on_prompt: bool | None = None
    ) -> None:
        self.model, self.batch, self.max_new_tokens = model, batch, max_new_tokens
        self.adapter_on_prompt = adapter_on_prompt

    def replies(self, prompts: list[list[int]], adapters: Sequence[Sequence[LoraAdapter]] | None) -> list[str]:
        out: list[str] = []
        for s in range(0, len(prompts), self.batch):
            rows = None if adapters is None else adapters[s : s + self.batch]
            out += self.model.generate_ids(
                prompts[s : s + self.batch],
                rows,
                max_new_tokens=self.max_new_tokens,
                adapter_on_prompt=self.adapter_on_prompt,
            )
        return out

    def replies_or_none(
        self, prompts: list[list[int]], adapters: Sequence[Sequence[LoraAdapter] | None]
    ) -> list[str | None]:
        """As :meth:`replies`, one adapter list per row; a row whose list is ``None`` (a refused
        adapter) is not generated and gets ``None``, which :func:`_hit` counts as a miss."""
        keep = [i for i, row in enumerate(adapters) if row is not None]
        got = self.replies([prompts[i] for i in keep], [adapters[i] for i in keep]) if keep else []  # type: ignore[misc]
        out: list[str | None] = [None] * len(prompts)
        for i, reply in zip(keep, got, strict=True):
            out[i] = reply
        return out


def internalize_or_refuse(model: WeightMemoryModel, texts: Sequence[str]) -> list[LoraAdapter | None]:
    """One adapter per text, ``None`` where the engine refuses the text's adapter
    (:class:`~agenthn_langgraph.errors.AdapterNormError`). A batch holding a refused text is
    internalized again text by text, so only that text is lost."""
    try:
        return list(model.internalize_many(texts))
    except AdapterNormError:
        out: list[LoraAdapter | None] = []
        for text in texts:
            try:
                out.append(model.internalize(text))
            except AdapterNormError:
                out.append(None)
        return out


def evaluate_recall(
    model: WeightMemoryModel,
    language: Language,
    *,
    n_docs: int = 200,
    seed: int = DEFAULT_EVAL_SEED,
    n_facts: int = 4,
    compose_ns: Sequence[int] = COMPOSE_NS,
    facts_per_text: Sequence[int] = N_FACTS,
    docs_per_n_facts: int | None = None,
    heldout_docs: int | None = None,
    batch: int = 64,
    max_new_tokens: int | None = None,
    finetune_docs: int = 0,
    finetune_steps: Sequence[int] = (5, 10, 20, 40, 80),
    progress: bool = True,
) -> RecallReport:
    """Run the recall benchmark on ``model`` with ``language``'s held-out data (module docstring).

    ``finetune_docs`` > 0 adds the fine-tuning baseline (:mod:`.finetune`) on the first that many
    held-out texts, its recall after each of ``finetune_steps``.
    """
    prompts = model.prompts
    targets = language.examples(n_docs, seed, n_facts=n_facts)
    rng = random.Random(seed + 1)
    n_max = max(compose_ns, default=0)
    pool = language.examples(max(4 * n_docs, 64), seed + 3, n_facts=n_facts)
    distractors = draw_distractors(targets, pool, n_max, rng) if n_max else [[] for _ in targets]
    answer_len = max(len(prompts.answer_ids(p.question, p.answer)) for t in targets for p in t.qa)
    runner = ReplyRunner(model, batch, max_new_tokens or answer_len + 6)

    texts = list({t.context: None for t in targets} | {d.context: None for ds in distractors for d in ds})
    adapters: dict[str, LoraAdapter | None] = {}  # None: refused
    for s in tqdm(range(0, len(texts), 32), desc="internalize", disable=not progress):
        adapters.update(zip(texts[s : s + 32], internalize_or_refuse(model, texts[s : s + 32]), strict=True))
    target_texts = {t.context for t in targets}
    refused = {
        "targets": sum(adapters[t] is None for t in target_texts),
        "distractors": sum(adapters[t] is None for t in texts if t not in target_texts),
    }
    accepted = [t for t in targets if adapters[t.context] is not None]
    latencies = []
    for t in tqdm(accepted, desc="latency", disable=not progress):
        t0 = time.perf_counter()
        model.internalize(t.context)
        latencies.append((time.perf_counter() - t0) * 1000)

    questions = [_Question(i, p, t.genre) for i, t in enumerate(targets) for p in t.qa]
    bare = [prompts.student_ids(q.pair.question) for q in questions]
    in_ctx = [prompts.teacher_ids(targets[q.target].context, q.pair.question) for q in questions]
    own = [_row([adapters[targets[q.target].context]]) for q in questions]
    composed_for: dict[int, dict[int, LoraAdapter | None]] = defaultdict(dict)
    for i, t in enumerate(targets):
        for n in compose_ns:
            parts = [adapters[t.context]] + [adapters[d.context] for d in distractors[i][:n]]
            order = rng.sample(parts, len(parts))  # drawn either way: the other stacks keep their order
            # a stack that would need a refused adapter is not built: its target's questions are misses
            composed_for[n][i] = None if any(a is None for a in parts) else LoraAdapter.compose(order)  # type: ignore[arg-type]

    replies: dict[str, list[str | None]] = {
        "no_memory": list(runner.replies(bare, None)),
        "in_context": list(runner.replies(in_ctx, None)),
        "adapter": runner.replies_or_none(bare, own),
    }
    if not model.chat_format.adapter_on_prompt:
        replies["adapter_on_whole_prompt"] = ReplyRunner(
            model, batch, runner.max_new_tokens, adapter_on_prompt=True
        ).replies_or_none(bare, own)
    for n in tqdm(compose_ns, desc="composed", disable=not progress):
        replies[f"composed_{n}"] = runner.replies_or_none(bare, [_row([composed_for[n][q.target]]) for q in questions])
    hits = {k: [_hit(r, q.pair.answer) for r, q in zip(v, questions, strict=True)] for k, v in replies.items()}
    exact = {
        k: _mean([r is not None and exact_first_words(r, q.pair.answer) for r, q in zip(v, questions, strict=True)])
        for k, v in replies.items()
    }
    by_genre: dict[str, dict[str, float]] = {}
    for genre in dict.fromkeys(q.genre for q in questions):
        idx = [i for i, q in enumerate(questions) if q.genre == genre]
        by_genre[str(genre)] = {k: _mean([h[i] for i in idx]) for k, h in hits.items()}

    by_n: dict[str, dict[str, float]] = {}
    refused_by_n = 0
    per_n = docs_per_n_facts if docs_per_n_facts is not None else max(n_docs // 4, 1)
    for n in tqdm(facts_per_text, desc="facts per text", disable=not progress or not per_n):
        genres = [g for g in language.genres if language.max_facts(g) >= n]
        if not per_n or not genres:
            continue
        docs = language.examples(per_n, seed + 10 + n, n_facts=n, genres=genres)
        docs_adapters = internalize_or_refuse(model, [d.context for d in docs])
        refused_by_n += sum(a is None for a in docs_adapters)
        qs = [(d, p, a) for d, a in zip(docs, docs_adapters, strict=True) for p in d.qa]
        with_ad = runner.replies_or_none(
            [prompts.student_ids(p.question) for _, p, _ in qs], [_row([a]) for *_, a in qs]
        )
        ctx = runner.replies([prompts.teacher_ids(d.context, p.question) for d, p, _ in qs], None)
        by_n[str(n)] = {
            "n_docs": float(len(docs)),
            "adapter": _mean([_hit(r, p.answer) for r, (_, p, _) in zip(with_ad, qs, strict=True)]),
            "in_context": _mean([recalled(r, p.answer) for r, (_, p, _) in zip(ctx, qs, strict=True)]),
            "rank": _mean([a.rank for a in docs_adapters if a is not None]),
        }

    heldout: dict[str, float] = {}
    refused_heldout = 0
    n_held = n_docs // 2 if heldout_docs is None else heldout_docs
    if n_held:
        hdocs = language.examples(n_held, seed + 2, n_facts=n_facts, heldout_phrasing=True)
        hads = internalize_or_refuse(model, [d.context for d in hdocs])
        refused_heldout = sum(a is None for a in hads)
        hq = [(d, p, a) for d, a in zip(hdocs, hads, strict=True) for p in d.qa]
        h_ctx = runner.replies([prompts.teacher_ids(d.context, p.question) for d, p, _ in hq], None)
        h_ad = runner.replies_or_none([prompts.student_ids(p.question) for _, p, _ in hq], [_row([a]) for *_, a in hq])
        heldout = {
            "in_context": _mean([recalled(r, p.answer) for r, (_, p, _) in zip(h_ctx, hq, strict=True)]),
            "adapter": _mean([_hit(r, p.answer) for r, (_, p, _) in zip(h_ad, hq, strict=True)]),
            "n_docs": float(n_held),
        }

    latency_ms = statistics.median(latencies) if latencies else float("nan")
    finetune = None
    if finetune_docs and accepted:
        from .finetune import evaluate_finetune

        finetune = evaluate_finetune(
            model,
            accepted[:finetune_docs],  # the baseline compares with the hypernetwork's adapter: texts it made one for
            internalize_ms_median=latency_ms,
            checkpoints=finetune_steps,
            batch=batch,
            max_new_tokens=runner.max_new_tokens,
            seed=seed,
            progress=progress,
        ).to_dict()

    adapter_bytes = None
    if accepted:
        first = adapters[accepted[0].context]
        assert first is not None
        with tempfile.TemporaryDirectory() as tmp:
            adapter_bytes = LoraAdapter.bytes_on_disk(first.save(f"{tmp}/a"))
    chance_fn = getattr(language, "chance", None)
    composed = {str(n): _mean(hits[f"composed_{n}"]) for n in compose_ns}
    return RecallReport(
        model=model.name,
        language=language.name,
        n_docs=n_docs,
        n_questions=len(questions),
        seed=seed,
        no_memory=_mean(hits["no_memory"]),
        in_context=_mean(hits["in_context"]),
        adapter=_mean(hits["adapter"]),
        composed=composed.get("2", float("nan")),
        composed_by_n=composed,
        exact_first_words=exact,
        prompt_tokens_in_context=statistics.mean(len(p) for p in in_ctx),
        prompt_tokens_adapter=statistics.mean(len(p) for p in bare),
        internalize_ms_median=latency_ms,
        adapter_bytes=adapter_bytes,
        adapter_rank=_mean([a.rank for t in accepted if (a := adapters[t.context]) is not None]),
        composed_rank=_mean([c.rank for c in composed_for[2].values() if c is not None])
        if 2 in compose_ns
        else float("nan"),
        chance=chance_fn([q.pair for q in questions]) if chance_fn else None,
        by_genre=by_genre,
        by_n_facts=by_n,
        heldout_phrasing=heldout,
        torch_threads=torch.get_num_threads(),
        finetune=finetune,
        adapter_on_whole_prompt=_mean(hits["adapter_on_whole_prompt"]) if "adapter_on_whole_prompt" in hits else None,
        refused_adapters={**refused, "by_n_facts": refused_by_n, "heldout_phrasing": refused_heldout},
    )


def in_context_recall(
    model: WeightMemoryModel, language: Language, *, n_docs: int, seed: int, n_facts: int = 4, batch: int = 128
) -> float:
    """Recall of the base with the text in the prompt (the teacher), alone: cheap, so usable on
    large samples where a threshold sits close to the true value."""
    return reading_recall(model, language, n_docs=n_docs, seed=seed, n_facts=n_facts, batch=batch)["in_context"]


def reading_recall(
    model: WeightMemoryModel,
    language: Language,
    *,
    n_docs: int,
    seed: int,
    n_facts: int = 4,
    batch: int = 128,
    no_memory: bool = False,
) -> dict[str, float]:
    """The base's own reading: ``in_context`` recall (and ``no_memory``, the base without the text,
    when asked), with ``n_questions`` and a Wilson 95% interval for ``in_context``."""
    docs = language.examples(n_docs, seed, n_facts=n_facts)
    qs = [(d, p) for d in docs for p in d.qa]
    answer_len = max(len(model.prompts.answer_ids(p.question, p.answer)) for _, p in qs)
    runner = ReplyRunner(model, batch, answer_len + 6)
    replies = runner.replies([model.prompts.teacher_ids(d.context, p.question) for d, p in qs], None)
    hits = [recalled(r, p.answer) for r, (_, p) in zip(replies, qs, strict=True)]
    low, high = wilson_interval(sum(hits), len(hits))
    out = {"n_questions": float(len(qs)), "in_context": _mean(hits), "in_context_low": low, "in_context_high": high}
    if no_memory:
        bare = runner.replies([model.prompts.student_ids(p.question) for _, p in qs], None)
        out["no_memory"] = _mean([recalled(r, p.answer) for r, (_, p) in zip(bare, qs, strict=True)])
    return out


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if n <= 0:
        raise ValueError("n must be positive")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The interval always holds p; min/max only undo float rounding at p = 0 or 1.
    return max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p))


def _mean(xs: Sequence[float | bool]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _row(adapters: list[LoraAdapter | None]) -> list[LoraAdapter] | None:
    """A row's adapter list, or None when one of them was refused (the row is then a miss)."""
    return None if any(a is None for a in adapters) else adapters  # type: ignore[return-value]


def _hit(reply: str | None, answer: str) -> bool:
    """:func:`recalled`, with no reply (a refused adapter) a miss."""
    return reply is not None and recalled(reply, answer)


def _finite(value: object) -> object:
    """``value`` with every NaN or infinite float, at any depth, replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def strict_json(value: object) -> str:
    """JSON that any parser reads: a value that does not exist (NaN, infinity) is ``null``, never a
    bare ``NaN``.

    >>> strict_json({"composed": float("nan"), "by_n": {"2": 0.5, "4": float("inf")}})
    '{"composed": null, "by_n": {"2": 0.5, "4": null}}'
    """
    return json.dumps(_finite(value), allow_nan=False)
