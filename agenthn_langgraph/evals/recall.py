"""``agenthn eval recall``: does a text internalized into an adapter answer questions about it?

Held-out texts of 4 random facts each (a seed disjoint from training's), every fact asked once,
in five conditions measured side by side on the same questions:

* ``no_memory``  -- base alone, prompt = question only (should sit at chance);
* ``in_context`` -- base with the text in the prompt (the teacher; the upper bound);
* ``adapter``    -- the text's adapter applied, prompt = question only;
* ``composed``   -- that adapter rank-concatenated with the adapters of 2 unrelated texts
  (texts whose facts share no key with it), prompt = question only;
* ``heldout_phrasing`` -- a separate split whose facts are stated with templates training
  never saw (adapter and in-context reported).

Recall is exact match of the greedy first answer token with the value (answers are one word).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm

from ..engine import WeightMemoryModel
from ..lora.adapter import LoraAdapter
from ..tiny_default.language import GENRES, Corpus, Fact, Sample, chance, render_prompt

DEFAULT_EVAL_SEED = 20261123  # training seeds its steps with step_seed(): (seed*1_000_003+stream)*10_000_019+step


@dataclass
class RecallReport:
    n_docs: int
    n_questions: int
    seed: int
    chance: float
    no_memory: float
    in_context: float
    adapter: float
    composed: float
    prompt_tokens_in_context: float
    prompt_tokens_adapter: float
    internalize_ms_median: float
    adapter_bytes: int
    adapter_rank: int
    composed_rank: int
    heldout_phrasing: dict[str, float] = field(default_factory=dict)
    by_genre: dict[str, dict[str, float]] = field(default_factory=dict)
    torch_threads: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def plot(self, path: str) -> str:
        """Write a bar chart of recall per condition (and per genre) to ``path`` (PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        conditions = ["no_memory", "in_context", "adapter", "composed"]
        labels = ["no memory", "text in context", "adapter\n(no text)", "adapter + 2\nunrelated"]
        fig, ax = plt.subplots(figsize=(7.5, 4))
        width = 0.2
        for k, genre in enumerate(self.by_genre):
            xs = [i + (k - 1) * width for i in range(len(conditions))]
            ax.bar(xs, [self.by_genre[genre][c] for c in conditions], width, label=genre, alpha=0.85)
        ax.scatter(range(len(conditions)), [getattr(self, c) for c in conditions], color="black", zorder=3, label="all")
        ax.axhline(self.chance, color="grey", linestyle=":", label=f"chance {self.chance:.3f}")
        ax.set_xticks(range(len(conditions)), labels)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("recall")
        ax.set_title(
            f"recall of 4-fact held-out texts (n={self.n_docs}, seed {self.seed}); "
            f"prompt {self.prompt_tokens_in_context:.0f} vs {self.prompt_tokens_adapter:.0f} tokens",
            fontsize=9,
        )
        ax.legend(fontsize=8, loc="upper left", ncol=2)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path

    def table(self) -> str:
        rows = [
            ("chance", self.chance, "-"),
            ("no_memory (base alone)", self.no_memory, f"{self.prompt_tokens_adapter:.1f}"),
            ("in_context (text in prompt)", self.in_context, f"{self.prompt_tokens_in_context:.1f}"),
            ("adapter (text -> LoRA, no text)", self.adapter, f"{self.prompt_tokens_adapter:.1f}"),
            ("composed (+2 unrelated adapters)", self.composed, f"{self.prompt_tokens_adapter:.1f}"),
        ]
        if self.heldout_phrasing:
            rows += [
                ("held-out phrasing: in_context", self.heldout_phrasing["in_context"], "-"),
                ("held-out phrasing: adapter", self.heldout_phrasing["adapter"], "-"),
            ]
        lines = [
            f"recall on {self.n_docs} held-out texts x 4 facts ({self.n_questions} questions), seed {self.seed}",
            "",
            f"| {'condition':<34} | {'recall':>7} | {'prompt tokens':>13} |",
            f"|{'-' * 36}|{'-' * 9}|{'-' * 15}|",
        ]
        lines += [f"| {name:<34} | {value:>7.3f} | {tokens:>13} |" for name, value, tokens in rows]
        lines += [
            "",
            f"| {'genre':<12} | "
            + " | ".join(f"{k:>10}" for k in ("no_memory", "in_context", "adapter", "composed"))
            + " |",
        ]
        for genre, vals in self.by_genre.items():
            lines.append(
                f"| {genre:<12} | "
                + " | ".join(f"{vals[k]:>10.3f}" for k in ("no_memory", "in_context", "adapter", "composed"))
                + " |"
            )
        lines += [
            "",
            f"internalize latency, median of {self.n_docs} single texts: {self.internalize_ms_median:.1f} ms "
            f"({self.torch_threads} torch threads)",
            f"adapter: rank {self.adapter_rank}, {self.adapter_bytes:,} bytes on disk; composed rank "
            f"{self.composed_rank}",
        ]
        return "\n".join(lines)


def draw_eval_set(n_docs: int, seed: int, *, heldout_phrasing: bool = False) -> list[list[Sample]]:
    """``n_docs`` groups [target, distractor, distractor]; targets cycle through the genres."""
    corpus = Corpus(seed, heldout_phrasing=heldout_phrasing)
    groups = []
    for i in range(n_docs):
        target = corpus.sample(4, genre=GENRES[i % len(GENRES)])
        used = set(target.keys)
        group = [target]
        for _ in range(2):
            genre = corpus.rng.choice(GENRES)
            try:
                d = corpus.sample(4, genre=genre, exclude_keys=used)
            except ValueError:
                d = corpus.sample(4, genre="product", exclude_keys=used)
            used |= d.keys
            group.append(d)
        groups.append(group)
    return groups


def _accuracy(
    model: WeightMemoryModel,
    prompts: list[str],
    answers: list[int],
    adapters: Sequence[Sequence[LoraAdapter]] | None,
    batch: int,
) -> list[bool]:
    hits: list[bool] = []
    for s in range(0, len(prompts), batch):
        rows = None if adapters is None else adapters[s : s + batch]
        logits = model.next_token_logits(prompts[s : s + batch], rows, raw=True)
        hits += (logits.argmax(-1).cpu() == torch.tensor(answers[s : s + batch])).tolist()
    return hits


def in_context_recall(model: WeightMemoryModel, *, n_docs: int, seed: int, batch: int = 128) -> float:
    """Recall of the base with the text in the prompt (the teacher), alone: cheap, so usable on
    large samples where a threshold sits close to the true value."""
    groups = draw_eval_set(n_docs, seed)
    rng = Corpus(seed + 1).rng
    vocab = model.tokenizer.get_vocab()
    questions = [(g[0], f, f.question(rng)) for g in groups for f in g[0].facts]
    hits = _accuracy(
        model,
        [render_prompt(q, s.text) for s, _, q in questions],
        [vocab[f.value] for _, f, _ in questions],
        None,
        batch,
    )
    return sum(hits) / len(hits)


def evaluate_recall(
    model: WeightMemoryModel,
    *,
    n_docs: int = 200,
    seed: int = DEFAULT_EVAL_SEED,
    heldout_docs: int | None = None,
    batch: int = 64,
    progress: bool = True,
) -> RecallReport:
    """Run the recall benchmark on ``model`` (see the module docstring)."""
    groups = draw_eval_set(n_docs, seed)
    vocab = model.tokenizer.get_vocab()
    q_rng = Corpus(seed + 1).rng

    # adapters: one batched pass for all texts; latency measured separately at batch size 1
    texts = [s.text for g in groups for s in g]
    adapters: list[LoraAdapter] = []
    for s in tqdm(range(0, len(texts), 32), desc="internalize", disable=not progress):
        adapters += model.internalize_many(texts[s : s + 32])
    by_text = {t: a for t, a in zip(texts, adapters, strict=True)}
    latencies = []
    for g in tqdm(groups, desc="latency", disable=not progress):
        t0 = time.perf_counter()
        model.internalize(g[0].text)
        latencies.append((time.perf_counter() - t0) * 1000)

    questions: list[tuple[Sample, Fact, str]] = [(g[0], f, f.question(q_rng)) for g in groups for f in g[0].facts]
    composed_for = {}
    for g in groups:
        parts = [by_text[s.text] for s in g]
        order = q_rng.sample(range(3), 3)  # the target's position in the stack varies
        composed_for[g[0].text] = LoraAdapter.compose([parts[i] for i in order])
    answers = [vocab[f.value] for _, f, _ in questions]
    bare = [render_prompt(q) for _, _, q in questions]
    in_ctx = [render_prompt(q, s.text) for s, _, q in questions]

    hits = {
        "no_memory": _accuracy(model, bare, answers, None, batch),
        "in_context": _accuracy(model, in_ctx, answers, None, batch),
        "adapter": _accuracy(model, bare, answers, [[by_text[s.text]] for s, _, _ in questions], batch),
        "composed": _accuracy(model, bare, answers, [[composed_for[s.text]] for s, _, _ in questions], batch),
    }
    mean = lambda xs: sum(xs) / max(len(xs), 1)  # noqa: E731
    by_genre: dict[str, dict[str, float]] = defaultdict(dict)
    for genre in GENRES:
        idx = [i for i, (s, _, _) in enumerate(questions) if s.genre == genre]
        for k, h in hits.items():
            by_genre[genre][k] = mean([h[i] for i in idx])

    heldout: dict[str, float] = {}
    n_held = n_docs // 2 if heldout_docs is None else heldout_docs
    if n_held:
        hgroups = draw_eval_set(n_held, seed + 2, heldout_phrasing=True)
        hq = [(g[0], f, f.question(q_rng)) for g in hgroups for f in g[0].facts]
        hadapters = model.internalize_many([g[0].text for g in hgroups])
        hby = {g[0].text: a for g, a in zip(hgroups, hadapters, strict=True)}
        hans = [vocab[f.value] for _, f, _ in hq]
        heldout = {
            "in_context": mean(_accuracy(model, [render_prompt(q, s.text) for s, _, q in hq], hans, None, batch)),
            "adapter": mean(
                _accuracy(model, [render_prompt(q) for _, _, q in hq], hans, [[hby[s.text]] for s, _, _ in hq], batch)
            ),
            "n_docs": float(n_held),
        }

    with tempfile.TemporaryDirectory() as tmp:
        adapter_bytes = LoraAdapter.bytes_on_disk(adapters[0].save(f"{tmp}/a"))
    count = lambda p: len(model.tokenizer(p, add_special_tokens=False)["input_ids"])  # noqa: E731
    return RecallReport(
        n_docs=n_docs,
        n_questions=len(questions),
        seed=seed,
        chance=chance([f for _, f, _ in questions]),
        no_memory=mean(hits["no_memory"]),
        in_context=mean(hits["in_context"]),
        adapter=mean(hits["adapter"]),
        composed=mean(hits["composed"]),
        prompt_tokens_in_context=statistics.mean(count(p) for p in in_ctx),
        prompt_tokens_adapter=statistics.mean(count(p) for p in bare),
        internalize_ms_median=statistics.median(latencies),
        adapter_bytes=adapter_bytes,
        adapter_rank=adapters[0].rank,
        composed_rank=next(iter(composed_for.values())).rank,
        heldout_phrasing=heldout,
        by_genre=dict(by_genre),
        torch_threads=torch.get_num_threads(),
    )
