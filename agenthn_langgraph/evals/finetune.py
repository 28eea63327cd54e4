"""The fine-tuning baseline: a LoRA fitted to each text by gradient descent, beside one-pass internalize.

What the hypernetwork replaces. Per text, a LoRA of the same rank and target modules as the
hypernetwork's adapters is fitted by Adam on the language-modelling loss of the text alone (the
same tokens the hypernetwork reads: ``[BOS] + text``). Nothing else is available at that moment:
when a text is internalized, the questions that will be asked about it are unknown. Recall is
measured on the text's questions after ``checkpoints`` steps, with the seconds spent fitting so far,
so the report can say how long fine-tuning takes to reach the recall one forward pass gets.

    >>> from agenthn_langgraph import load_default
    >>> model = load_default()
    >>> fits = list(fit_lora(model, "<user> my pet is a frog . <assistant> nice ! <end>", rank=8, checkpoints=(2,)))
    >>> [(step, adapter.rank) for step, _, adapter in fits]
    [(2, 8)]
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.qa import QAExample
from ..engine import WeightMemoryModel
from ..errors import InvalidArgumentError
from ..lora.adapter import AdapterMetadata, LoraAdapter, text_sha256
from ..lora.inject import InjectionPlan

DEFAULT_CHECKPOINTS = (5, 10, 20, 40, 80)
DEFAULT_LR = 3e-3


def fit_lora(
    model: WeightMemoryModel,
    text: str,
    *,
    rank: int,
    checkpoints: Sequence[int] = DEFAULT_CHECKPOINTS,
    lr: float = DEFAULT_LR,
    seed: int = 0,
) -> Iterator[tuple[int, float, LoraAdapter]]:
    """Fit a rank-``rank`` LoRA on ``text``'s LM loss; yield ``(steps, seconds so far, adapter)`` at each checkpoint.

    A is drawn at random (``seed``), B starts at zero, as in LoRA's paper, so step 0 is the base.
    Only the LoRA learns; the base's parameters stay frozen.
    """
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise InvalidArgumentError(f"rank must be a positive int, got {rank!r}")
    if not checkpoints or any(not isinstance(s, int) or s < 1 for s in checkpoints):
        raise InvalidArgumentError(f"checkpoints must be positive step counts, got {list(checkpoints)!r}")
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise InvalidArgumentError(f"lr must be a positive finite number, got {lr!r}")
    device = model.device
    ids = torch.tensor([model.prompts.context_ids(text)], device=device)
    if ids.shape[1] < 2:
        raise InvalidArgumentError("the text has fewer than two tokens: nothing to fit")
    gen = torch.Generator().manual_seed(seed)
    params: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, (d_in, d_out) in model.injector.module_shapes().items():
        a = (torch.randn(rank, d_in, generator=gen) / math.sqrt(d_in)).to(device).requires_grad_()
        b = torch.zeros(d_out, rank, device=device, requires_grad=True)
        params[name] = (a, b)
    opt = torch.optim.Adam([t for pair in params.values() for t in pair], lr=lr)
    wanted = sorted(set(checkpoints))
    fitting = 0.0  # seconds spent fitting, not copying adapters out at the checkpoints
    for step in range(1, wanted[-1] + 1):
        t0 = time.perf_counter()
        with model.injector.use_plan(InjectionPlan(params)):
            logits = model.base(input_ids=ids).logits
        loss = F.cross_entropy(logits[0, :-1].float(), ids[0, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        fitting += time.perf_counter() - t0
        if step in wanted:
            meta = AdapterMetadata(
                base_fingerprint=model.fingerprint,
                source_sha256=text_sha256(text),
                extra={"finetune_steps": step, "finetune_lr": float(lr)},
            )
            weights = {n: (a.detach().clone(), b.detach().clone()) for n, (a, b) in params.items()}
            yield step, fitting, LoraAdapter(weights, metadata=meta)


def evaluate_finetune(
    model: WeightMemoryModel,
    docs: Sequence[QAExample],
    *,
    internalize_ms_median: float,
    checkpoints: Sequence[int] = DEFAULT_CHECKPOINTS,
    lr: float = DEFAULT_LR,
    batch: int = 64,
    max_new_tokens: int = 16,
    seed: int = 0,
    progress: bool = False,
) -> FinetuneReport:
    """Fit a LoRA per text (rank: the hypernetwork's median on these texts) and compare recall and time."""
    from .recall import recalled

    if not docs:
        raise InvalidArgumentError("the fine-tuning baseline needs at least one text")
    hyper = model.internalize_many([d.context for d in docs])
    rank = max(1, math.ceil(statistics.median(a.rank for a in hyper)))
    questions = [(i, p) for i, d in enumerate(docs) for p in d.qa]
    prompts = [model.prompts.student_ids(p.question) for _, p in questions]

    def recall_with(adapters: Sequence[LoraAdapter], *, fitted: bool) -> float:
        replies: list[str] = []
        for s in range(0, len(prompts), batch):
            rows = [[adapters[i]] for i, _ in questions[s : s + batch]]
            # a LoRA fitted on whole sequences acts on the prompt too, as it was fitted
            replies += model.generate_ids(
                prompts[s : s + batch], rows, max_new_tokens=max_new_tokens, adapter_on_prompt=True if fitted else None
            )
        return sum(recalled(r, p.answer) for r, (_, p) in zip(replies, questions, strict=True)) / len(questions)

    fitted: dict[int, list[LoraAdapter]] = {s: [] for s in sorted(set(checkpoints))}
    seconds: dict[int, list[float]] = {s: [] for s in fitted}
    for k, d in enumerate(tqdm(docs, desc="fine-tune", disable=not progress)):
        for step, secs, adapter in fit_lora(model, d.context, rank=rank, checkpoints=checkpoints, lr=lr, seed=seed + k):
            fitted[step].append(adapter)
            seconds[step].append(secs)
    report = FinetuneReport(
        n_docs=len(docs),
        n_questions=len(questions),
        rank=rank,
        lr=float(lr),
        hypernet_adapter=recall_with(hyper, fitted=False),
        internalize_ms_median=internalize_ms_median,
    )
    for step, adapters in fitted.items():
        report.by_steps[str(step)] = {
            "recall": recall_with(adapters, fitted=True),
            "seconds_per_text": statistics.median(seconds[step]),
        }
    one_pass = internalize_ms_median / 1000
    for step, vals in report.by_steps.items():
        if vals["recall"] >= report.hypernet_adapter:
            report.steps_to_match, report.seconds_to_match = int(step), vals["seconds_per_text"]
            report.speedup = vals["seconds_per_text"] / one_pass
            return report
    # never matched: the longest fit tried is a lower bound on the time it would take
    longest = report.by_steps[str(max(fitted))]["seconds_per_text"]
    report.speedup, report.speedup_is_lower_bound = longest / one_pass, True
    return report


@dataclass
class FinetuneReport:
    """Fine-tuning vs one-pass internalize on the same texts and questions."""

    n_docs: int
    n_questions: int
    rank: int
    lr: float
    hypernet_adapter: float  # recall of the hypernetwork's adapters on these texts
    internalize_ms_median: float
    by_steps: dict[str, dict[str, float]] = field(default_factory=dict)  # steps -> recall, seconds_per_text
    steps_to_match: int | None = None  # first checkpoint whose recall >= hypernet_adapter
    seconds_to_match: float | None = None  # median fitting seconds per text there
    speedup: float | None = None  # seconds_to_match / internalize seconds; a lower bound when never matched
    speedup_is_lower_bound: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def table(self) -> str:
        lines = [
            f"fine-tuning baseline: rank-{self.rank} LoRA per text, Adam lr {self.lr:g}, LM loss on the text alone "
            f"({self.n_docs} texts, {self.n_questions} questions)",
            "",
            f"| {'method':<28} | {'recall':>7} | {'seconds per text':>16} |",
            f"|{'-' * 30}|{'-' * 9}|{'-' * 18}|",
            f"| {'internalize (one pass)':<28} | {self.hypernet_adapter:>7.3f} "
            f"| {self.internalize_ms_median / 1000:>16.4f} |",
        ]
        for steps, vals in self.by_steps.items():
            lines.append(
                f"| {'fine-tune, ' + steps + ' steps':<28} | {vals['recall']:>7.3f} "
                f"| {vals['seconds_per_text']:>16.3f} |"
            )
        if self.speedup is not None:
            bound = ">= " if self.speedup_is_lower_bound else ""
            reach = (
                f"after {self.steps_to_match} steps ({self.seconds_to_match:.2f} s per text)"
                if self.steps_to_match is not None
                else "never, within the steps tried"
            )
            lines += [
                "",
                f"fine-tuning reaches internalize's recall {reach}: internalize is {bound}{self.speedup:.0f}x faster",
            ]
        return "\n".join(lines)
