"""Meta-training of the hypernetwork by distillation, for any Hugging Face causal LM.

One loop, read top to bottom (nanoGPT's ``train.py`` is the model). The data are
:class:`~agenthn_langgraph.data.qa.QAExample` s -- a context and question-answer pairs in any
language -- and every prompt is built with the base's own tokenizer and chat template
(:mod:`agenthn_langgraph.prompting`). Per step:

1. draw target texts and their questions; compose each target with 0..8 *unrelated* texts
   (disjoint fact keys, mostly of its own genre) as retrieval will compose them at run time;
2. **teacher**: the frozen base with the text in the conversation, then the question and the gold
   answer; its next-token distribution at every answer token and at the end-of-turn token;
3. **student**: the same base with only the question, plus the generated adapter
   rank-concatenated with the distractors' adapters;
4. loss = KL(teacher || student) + CE(gold) over every answer token and the end of turn, for the
   soft all-token delta and for the hard selected delta the product ships; plus two auxiliary
   losses from the QA pairs: the gates should select answer tokens (BCE), and the key of the
   context token an answer token copies should match the question's activation (InfoNCE).

Only the hypernetwork learns. Every ``eval_every`` steps the validation split is evaluated
(:func:`estimate_loss`) and the best hypernetwork so far is saved; ``ckpt.pt`` resumes an
interrupted run exactly (each step's data is a pure function of seed and step). CUDA with bf16
autocast when present, fp32 on CPU.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.qa import QAExample
from ..engine import WeightMemoryModel
from ..lora.inject import InjectionPlan
from ..training import CosineSchedule, load_checkpoint, return_freed_memory, save_checkpoint, step_seed
from .batching import Batch, ExamplePool, make_batch
from .config import ChatFormat, HypernetConfig
from .model import Hypernetwork, Pieces, token_unembeddings


@dataclass
class HypernetTrainConfig:
    steps: int = 1500
    targets: int = 8  # target texts per step
    questions_per_text: int = 4
    distractors: tuple[int, ...] = (0, 1, 2, 4, 8)  # unrelated texts composed with a target (drawn per target)
    same_genre: float = 0.75  # share of distractors drawn from the target's own genre
    lr: float = 1e-3
    warmup: int = 100
    kl_weight: float = 1.0
    ce_weight: float = 1.0
    gate_aux: float = 1.0  # BCE: gates should select the text's answer tokens
    key_aux: float = 1.0  # InfoNCE: a copied token's key should match the activation that needs it
    key_temperature: float = 0.1
    copy_lr_scale: float = 30.0  # the per-module copy-prior scalars learn faster than the rest
    seed: int = 0
    width: int = 256
    mixer_layers: int = 2
    rank: int = 8  # the least rank of an adapter ("gated") or its rank ("top_r")
    max_rank: int | None = None
    selection: str = "gated"
    gate_threshold: float = 0.5
    window: int = 256
    chat: ChatFormat = field(default_factory=ChatFormat)
    eval_every: int = 100
    eval_batches: int = 8
    checkpoint_every: int = 100

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["distractors"] = list(self.distractors)
        return d


def build_hypernet(model: WeightMemoryModel, cfg: HypernetTrainConfig) -> Hypernetwork:
    base_cfg = model.base.config
    return Hypernetwork(
        HypernetConfig(
            base_hidden_size=base_cfg.hidden_size,
            n_states=base_cfg.num_hidden_layers + 1,
            targets=model.injector.module_shapes(),
            width=cfg.width,
            mixer_layers=cfg.mixer_layers,
            rank=cfg.rank,
            max_rank=cfg.max_rank,
            selection=cfg.selection,  # type: ignore[arg-type]
            gate_threshold=cfg.gate_threshold,
            window=cfg.window,
            base_fingerprint=model.fingerprint,
            chat=cfg.chat,
            extra={"train": cfg.to_dict()},
        )
    )


# ---------------------------------------------------------------------------------------- losses
def compose_per_row(pieces: Pieces, compose: list[list[int]]) -> InjectionPlan:
    """Per question, rank-concatenate the blocks (A [N, r, d_in], B [N, d_out, r]) of its texts.

    Rows with fewer texts are padded with all-zero blocks, which add nothing.
    """
    k = max(len(c) for c in compose)
    any_a = next(iter(pieces.values()))[0]
    n = any_a.shape[0]
    index = torch.tensor([c + [n] * (k - len(c)) for c in compose], device=any_a.device)  # [Q, k]
    weights = {}
    for name, (a, b) in pieces.items():
        a = torch.cat([a, a.new_zeros(1, *a.shape[1:])])[index]  # [Q, k, r, d_in]
        b = torch.cat([b, b.new_zeros(1, *b.shape[1:])])[index]  # [Q, k, d_out, r]
        q, _, r, d_in = a.shape
        weights[name] = (a.reshape(q, k * r, d_in), b.permute(0, 2, 1, 3).reshape(q, b.shape[2], k * r))
    return InjectionPlan(weights)


def distill_loss(
    logits: torch.Tensor, teacher_logp: torch.Tensor, targets: torch.Tensor, cfg: HypernetTrainConfig
) -> torch.Tensor:
    """KL(teacher || student) + CE(gold), per answer token, averaged."""
    logp = F.log_softmax(logits.float(), -1)
    kl = (teacher_logp.exp() * (teacher_logp - logp)).sum(-1).mean()
    return cfg.kl_weight * kl + cfg.ce_weight * F.nll_loss(logp, targets)


def key_infonce(
    keys: torch.Tensor, queries: torch.Tensor, copy_pos: torch.Tensor, value_mask: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Each answer token's query should pick the key of the context token it copies, among all
    answer-span keys of the step (other texts' included: they are the interference to beat).

    keys [N, T, d_in] (unit), queries [A, d_in], copy_pos [A, 2] (text row, position; -1 if none).
    """
    has = copy_pos[:, 0] >= 0
    if not has.any():
        return keys.new_zeros(())
    n, t, _ = keys.shape
    cand = value_mask.flatten().bool()
    flat = (copy_pos[has, 0] * t + copy_pos[has, 1]).long()
    col = torch.cumsum(cand.long(), 0) - 1  # candidate index of each flat position
    scores = F.normalize(queries[has], dim=-1) @ keys.reshape(n * t, -1)[cand].T / temperature
    return F.cross_entropy(scores, col[flat])


@dataclass
class StepOutput:
    loss: torch.Tensor
    metrics: dict[str, float]


def forward_step(model: WeightMemoryModel, hypernet: Hypernetwork, b: Batch, cfg: HypernetTrainConfig) -> StepOutput:
    """Every loss of one batch (``b`` already on the model's device)."""
    base = model.base
    with torch.no_grad():
        with model.injector.capture_inputs() as captured:
            text_out = base(input_ids=b.text_ids, attention_mask=b.text_mask, output_hidden_states=True)
        token_out = token_unembeddings(base, b.text_ids)
        t_logits = base(input_ids=b.teacher_ids, attention_mask=b.teacher_mask).logits
        teacher_logp = F.log_softmax(t_logits[b.teacher_pos[:, 0], b.teacher_pos[:, 1]].float(), -1)
        with model.injector.capture_inputs() as q_captured:  # what each module sees where an answer token is due
            base(input_ids=b.student_ids, attention_mask=b.student_mask)
        queries = {n: x[b.student_pos[:, 0], b.student_pos[:, 1]].float() for n, x in q_captured.items()}
    pieces = hypernet(text_out.hidden_states, b.text_mask, captured, token_out)
    loss = torch.zeros((), device=b.text_ids.device)
    metrics: dict[str, float] = {}
    own = [[c[0]] for c in b.compose]
    hard, ranks = (
        pieces.gated(cfg.gate_threshold, cfg.rank, cfg.max_rank)
        if cfg.selection == "gated"
        else (
            pieces.top_r(cfg.rank),
            torch.full((b.n_texts,), cfg.rank),
        )
    )
    for kind, blocks, compose in (("soft", pieces.soft(), own), ("hard", hard, b.compose)):
        with model.injector.use_plan(compose_per_row(blocks, compose)):
            logits = base(input_ids=b.student_ids, attention_mask=b.student_mask).logits
        s_logits = logits[b.student_pos[:, 0], b.student_pos[:, 1]]
        loss = loss + distill_loss(s_logits, teacher_logp, b.targets, cfg)
        metrics[f"acc_{kind}"] = (s_logits.argmax(-1) == b.targets).float().mean().item()
        metrics[f"ce_{kind}"] = F.cross_entropy(s_logits.float(), b.targets).item()
    metrics["acc_teacher"] = (teacher_logp.argmax(-1) == b.targets).float().mean().item()
    metrics["rank"] = ranks.float().mean().item()
    text_mask = b.text_mask.float()
    for name, gate in pieces.gate.items():
        bce = F.binary_cross_entropy(gate.clamp(1e-6, 1 - 1e-6), b.value_mask, reduction="none")
        loss = loss + cfg.gate_aux * (bce * text_mask).sum() / text_mask.sum()  # each module's gates decide its pieces
        loss = loss + cfg.key_aux * key_infonce(
            pieces.a[name], queries[name], b.copy_pos, b.value_mask, cfg.key_temperature
        ) / len(pieces.gate)
    return StepOutput(loss, metrics)


# ---------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def estimate_loss(
    model: WeightMemoryModel, hypernet: Hypernetwork, batches: Sequence[Batch], cfg: HypernetTrainConfig
) -> dict[str, float]:
    """Mean loss and metrics over fixed validation batches (the hypernetwork in eval mode)."""
    hypernet.eval()
    totals: dict[str, float] = {}
    for b in batches:
        out = forward_step(model, hypernet, b.to(model.device), cfg)
        for k, v in {"loss": out.loss.item(), **out.metrics}.items():
            totals[k] = totals.get(k, 0.0) + v / len(batches)
    hypernet.train()
    return totals


# ---------------------------------------------------------------------------------------- the loop
def train_hypernet(
    model: WeightMemoryModel,
    train: Sequence[QAExample],
    val: Sequence[QAExample],
    cfg: HypernetTrainConfig,
    out_dir: str | Path,
    *,
    max_steps_this_run: int | None = None,
    progress: bool = True,
) -> Path:
    """Meta-train a hypernetwork for ``model``'s base on QA examples; returns the best checkpoint dir.

    ``out_dir`` gets ``ckpt.pt`` (resume state), ``hypernet/`` (the best by validation loss, in the
    shipped safetensors + JSON format) and ``train_log.jsonl`` (one line per evaluation).
    ``max_steps_this_run`` stops early (checkpointing first), e.g. to fit a time budget.
    """
    if not train or not val:
        raise ValueError("train and val must both hold examples")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = model.device
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )
    torch.manual_seed(cfg.seed)
    hypernet = build_hypernet(model, cfg).to(device)
    model.prompts.chat = cfg.chat  # prompts are built as the checkpoint will say they were
    copy = [p for n, p in hypernet.named_parameters() if n.endswith("copy_scale")]
    rest = [p for n, p in hypernet.named_parameters() if not n.endswith("copy_scale")]
    opt = torch.optim.AdamW(
        [{"params": rest}, {"params": copy, "lr_scale": cfg.copy_lr_scale}],
        lr=cfg.lr,
        weight_decay=0.0,
        betas=(0.9, 0.98),
    )
    schedule = CosineSchedule(cfg.lr, cfg.warmup, cfg.steps, floor=0.05)
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    train_pool = ExamplePool(train, model.prompts, window=cfg.window)
    val_pool = ExamplePool(val, model.prompts, window=cfg.window)

    def batch_for(pool: ExamplePool, rng: random.Random, distractors: Sequence[int]) -> Batch:
        return make_batch(
            pool,
            rng,
            targets=cfg.targets,
            questions_per_text=cfg.questions_per_text,
            distractors=distractors,
            same_genre=cfg.same_genre,
            pad_id=pad,
        )

    # fixed validation batches: the same questions and distractors at every evaluation
    val_rng = random.Random(step_seed(cfg.seed, 0, stream=2))
    val_batches = [
        batch_for(val_pool, val_rng, (cfg.distractors[i % len(cfg.distractors)],)) for i in range(cfg.eval_batches)
    ]

    ckpt_path, best_dir, log_path = out_dir / "ckpt.pt", out_dir / "hypernet", out_dir / "train_log.jsonl"
    start, state = 0, {"best_val": float("inf"), "seconds": 0.0}
    if ckpt_path.exists():
        start, state = load_checkpoint(ckpt_path, model=hypernet, optimizer=opt, map_location=device)
    stop = cfg.steps if max_steps_this_run is None else min(cfg.steps, start + max_steps_this_run)
    t0 = time.time() - float(state["seconds"])
    hypernet.train()
    bar = tqdm(range(start, stop), desc="hypernet", initial=start, total=cfg.steps, disable=not progress)
    ema: dict[str, float] = {}
    for step in bar:
        schedule.apply(opt, step)
        b = batch_for(train_pool, random.Random(step_seed(cfg.seed, step, stream=1)), cfg.distractors).to(device)
        with autocast:
            out = forward_step(model, hypernet, b, cfg)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(hypernet.parameters(), 1.0)
        opt.step()
        for k, v in {"loss": out.loss.item(), **out.metrics}.items():
            ema[k] = v if k not in ema else 0.95 * ema[k] + 0.05 * v
        bar.set_postfix({k: f"{v:.3f}" for k, v in ema.items()})
        if device.type == "cpu" and (step + 1) % 10 == 0:
            return_freed_memory()
        last = step + 1 == stop
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            with autocast:
                val_metrics = estimate_loss(model, hypernet, val_batches, cfg)
            improved = val_metrics["loss"] < float(state["best_val"])
            if improved:
                state["best_val"] = val_metrics["loss"]
                hypernet.save(best_dir)
            record = {"step": step + 1, "seconds": round(time.time() - t0, 1), "best": improved, "val": val_metrics}
            record["train_ema"] = dict(ema)
            with log_path.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
        if (step + 1) % cfg.checkpoint_every == 0 or last:
            state["seconds"] = time.time() - t0
            save_checkpoint(ckpt_path, model=hypernet, optimizer=opt, step=step + 1, extra=state)
    if not best_dir.exists():  # stopped before the first evaluation: keep what there is
        hypernet.save(best_dir)
    return best_dir
