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
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.qa import QAExample
from ..engine import WeightMemoryModel
from ..errors import CheckpointError
from ..lora.inject import InjectionPlan
from ..training import CosineSchedule, load_checkpoint, return_freed_memory, save_checkpoint, step_seed
from .batching import Batch, ExamplePool, make_batch
from .config import ChatFormat, HypernetConfig
from .feature_cache import FeatureCache
from .features import CachedFeatures, LiveFeatures, answer_logits
from .model import Hypernetwork, Pieces, _gather, read_checkpoint
from .profile import NO_PROFILER, StepProfile, StepProfiler


@dataclass
class HypernetTrainConfig:
    steps: int = 1500
    targets: int = 8  # target texts per step
    questions_per_text: int = 4
    distractors: tuple[int, ...] = (0, 1, 2, 4, 8)  # unrelated texts composed with a target (drawn per target)
    same_genre: float = 0.75  # share of distractors drawn from the target's own genre
    in_batch_distractors: int | None = None  # None: fresh distractor texts per target; M: the step's own texts + M
    soft_and_hard: Literal["both", "alternate", "hard"] = "both"
    """Per question: its soft (all-token) and its hard (selected) adapter, one of the two
    alternately, or the hard one only ("hard": pieces are computed for kept tokens only, far
    cheaper on a large base; the gates still learn through their straight-through factor)."""
    lr: float = 1e-3
    warmup: int = 100
    kl_weight: float = 1.0  # 0: gold answers only, and no teacher pass (for a base that reads poorly)
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
    read_layers: tuple[int, ...] | None = None  # hidden states the hypernetwork reads (None: all)
    chat: ChatFormat = field(default_factory=ChatFormat)
    eval_every: int = 100
    eval_batches: int = 8
    checkpoint_every: int = 100

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["distractors"] = list(self.distractors)
        d["read_layers"] = None if self.read_layers is None else list(self.read_layers)
        return d


def build_hypernet(model: WeightMemoryModel, cfg: HypernetTrainConfig) -> Hypernetwork:
    base_cfg = model.base.config
    read = cfg.read_layers
    if read is not None and (not read or max(read) > base_cfg.num_hidden_layers):
        raise ValueError(f"read_layers {read} must be hidden-state indices 0..{base_cfg.num_hidden_layers}")
    return Hypernetwork(
        HypernetConfig(
            base_hidden_size=base_cfg.hidden_size,
            n_states=base_cfg.num_hidden_layers + 1 if read is None else len(read),
            read_layers=None if read is None else tuple(read),
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
def student_plan(soft: Pieces | None, hard: Pieces, b: Batch, kinds: Sequence[str], n_targets: int) -> InjectionPlan:
    """One shared plan for every student row: each row's ranks picked by a row mask.

    Row ``i`` asks question ``i % Q``; a ``"soft"`` row gets its own text's all-token pieces, a
    ``"hard"`` row the selected pieces of its own text rank-concatenated with its distractors' (as
    retrieval composes them at run time). Ranks are concatenated once for the batch and masked per
    row, instead of copying every row's own stack (rows x ranks x d_in floats per module).
    Soft pieces are taken from the first ``n_targets`` texts only: no row needs a distractor's.
    """
    weights = {}
    for name, (a_h, b_h) in hard.items():  # [N, k, d_in], [N, d_out, k]
        a_parts, b_parts = [a_h.reshape(-1, a_h.shape[-1])], [b_h.permute(1, 0, 2).reshape(b_h.shape[1], -1)]
        if soft is not None:
            a_s, b_s = soft[name][0][:n_targets], soft[name][1][:n_targets]  # [n, T, d_in], [n, d_out, T]
            a_parts.insert(0, a_s.reshape(-1, a_s.shape[-1]))
            b_parts.insert(0, b_s.permute(1, 0, 2).reshape(b_s.shape[1], -1))
        weights[name] = (torch.cat(a_parts), torch.cat(b_parts, 1))
    any_hard = next(iter(hard.values()))[0]
    t = 0 if soft is None else next(iter(soft.values()))[0].shape[1]
    k = any_hard.shape[1]
    offset = n_targets * t
    mask = any_hard.new_zeros(len(kinds), offset + any_hard.shape[0] * k)
    q = len(b.compose)
    for i, kind in enumerate(kinds):
        texts = b.compose[i % q]
        if kind == "soft":
            mask[i, texts[0] * t : (texts[0] + 1) * t] = 1.0
        else:
            for j in texts:
                mask[i, offset + j * k : offset + (j + 1) * k] = 1.0
    return InjectionPlan(weights, mask)


def distill_loss(
    logp: torch.Tensor, teacher_logp: torch.Tensor | None, targets: torch.Tensor, cfg: HypernetTrainConfig
) -> torch.Tensor:
    """KL(teacher || student) + CE(gold) from the student's log-probabilities, per answer token,
    averaged (CE alone without a teacher)."""
    loss = cfg.ce_weight * F.nll_loss(logp, targets)
    if teacher_logp is not None:
        loss = loss + cfg.kl_weight * (teacher_logp.exp() * (teacher_logp - logp)).sum(-1).mean()
    return loss


def value_slots(value_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The answer-span positions of each text, padded: (positions [N, V] with -1 for none, and
    slot [N, T]: each position's index into the flattened [N * V] slots, -1 off the spans)."""
    counts = value_mask.sum(1).long()
    v = max(int(counts.max()), 1)
    positions = torch.full((value_mask.shape[0], v), -1, dtype=torch.long, device=value_mask.device)
    slot = torch.full(value_mask.shape, -1, dtype=torch.long, device=value_mask.device)
    for r in range(value_mask.shape[0]):
        where = torch.nonzero(value_mask[r]).flatten()
        positions[r, : len(where)] = where
        slot[r, where] = r * v + torch.arange(len(where), device=where.device)
    return positions, slot


def key_infonce(
    keys: torch.Tensor, valid: torch.Tensor, queries: torch.Tensor, target_slot: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Each answer token's query should pick the key of the context token it copies, among all
    answer-span keys of the step (other texts' included: they are the interference to beat).

    keys [N, V, d_in] at the answer-span slots (:func:`value_slots`), valid [N, V], queries [A, d_in],
    target_slot [A] (the copied token's slot, -1 when the token copies nothing).
    """
    has = target_slot >= 0
    if not has.any():
        return keys.new_zeros(())
    cand = valid.flatten().bool()
    col = torch.cumsum(cand.long(), 0) - 1  # candidate index of each slot
    scores = F.normalize(queries[has], dim=-1) @ keys.reshape(-1, keys.shape[-1])[cand].T / temperature
    return F.cross_entropy(scores, col[target_slot[has]])


@dataclass
class StepOutput:
    loss: torch.Tensor
    metrics: dict[str, float]


Features = LiveFeatures | CachedFeatures


def forward_step(
    hypernet: Hypernetwork, b: Batch, cfg: HypernetTrainConfig, features: Features, prof: Any = NO_PROFILER
) -> StepOutput:
    """Every loss of one batch (``b`` already on the model's device).

    ``features`` supplies what the frozen base computes (live, or from a feature cache); ``prof``
    times the phases (:mod:`.profile`).
    """
    base = features.model.base
    with torch.no_grad():
        with prof.phase("text_reads"):
            text = features.texts(b)
        with prof.phase("teacher"):
            teacher_logp = features.teacher(b) if cfg.kl_weight > 0 else None
    with prof.phase("hypernetwork"):
        positions, slot = value_slots(b.value_mask)
        if cfg.soft_and_hard == "hard":  # pieces for the kept tokens and the answer spans only
            z = hypernet.encode(text.states, b.text_mask)
            hard, ranks, value_keys = hypernet.select_pieces(
                z, b.text_mask, text.inputs, text.token_out, also_at=positions
            )
            gates = dict(zip(hypernet.config.targets, hypernet.gates(z, b.text_mask.to(z.dtype)), strict=True))
            soft = None
        else:  # every token's piece: the soft adapter needs them all
            full = {n: text.inputs.full(n) for n in hypernet.config.targets}
            pieces = hypernet(text.states, b.text_mask, full, text.token_out)
            del full
            hard, ranks = (
                pieces.gated(cfg.gate_threshold, cfg.rank, cfg.max_rank)
                if cfg.selection == "gated"
                else (pieces.top_r(cfg.rank), torch.full((b.n_texts,), cfg.rank))
            )
            value_keys = {
                n: _gather(a, positions.clamp(min=0)) * (positions >= 0).unsqueeze(-1) for n, a in pieces.a.items()
            }
            gates, soft = pieces.gate, pieces.soft()
        # student rows: every question with its soft and its hard adapter ("both"), or one of the two
        q = len(b.compose)
        kinds = {
            "both": ["soft"] * q + ["hard"] * q,
            "alternate": ["soft", "hard"] * (q // 2) + ["hard"] * (q % 2),
            "hard": ["hard"] * q,
        }[cfg.soft_and_hard]
        order = torch.arange(len(kinds), device=b.student_ids.device) % q
        plan = student_plan(soft, hard, b, kinds, n_targets=b.n_targets)
        a_q = b.student_pos[:, 0]  # answer tokens: (question, position)
        rows_of = [torch.nonzero(order == qi).flatten() for qi in range(q)]
        pos_rows = torch.cat([rows_of[int(qi)] for qi in a_q])  # every student row of each answer token's question
        per_token = torch.tensor([len(rows_of[int(qi)]) for qi in a_q], device=a_q.device)
        tok_idx = torch.repeat_interleave(torch.arange(len(a_q), device=a_q.device), per_token)
        cols = (b.student_pos if cfg.chat.adapter_on_prompt else b.chunk_pos)[tok_idx, 1]
    hidden, queries = features.student(b, plan, order, pos_rows, cols, prof)
    with prof.phase("student_answer"):
        logits = answer_logits(base, hidden)
    with prof.phase("losses"):
        targets = b.targets[tok_idx]
        logp = F.log_softmax(logits.float(), -1)
        loss = distill_loss(logp, None if teacher_logp is None else teacher_logp[tok_idx], targets, cfg)
        metrics: dict[str, float] = {}
        with torch.no_grad():  # per kind of adapter, from the same log-probabilities
            hit = logp.argmax(-1) == targets
            token_ce = -logp.gather(1, targets.unsqueeze(1)).squeeze(1)
            row_kind = torch.tensor([kinds[int(r)] == "soft" for r in pos_rows], device=logp.device)
            for kind, sel in (("soft", row_kind), ("hard", ~row_kind)):
                if sel.any():
                    metrics[f"acc_{kind}"] = hit[sel].float().mean().item()
                    metrics[f"ce_{kind}"] = token_ce[sel].mean().item()
        if teacher_logp is not None:
            metrics["acc_teacher"] = (teacher_logp.argmax(-1) == b.targets).float().mean().item()
        metrics["rank"] = ranks.float().mean().item()
        metrics["questions"] = float(q)
        text_mask = b.text_mask.float()
        target_slot = torch.where(b.copy_pos[:, 0] >= 0, slot[b.copy_pos[:, 0], b.copy_pos[:, 1]], -1)
        for name, gate in gates.items():
            bce = F.binary_cross_entropy(gate.clamp(1e-6, 1 - 1e-6), b.value_mask, reduction="none")
            loss = (
                loss + cfg.gate_aux * (bce * text_mask).sum() / text_mask.sum()
            )  # each module's gates decide its pieces
            loss = loss + cfg.key_aux * key_infonce(
                value_keys[name], positions >= 0, queries[name], target_slot, cfg.key_temperature
            ) / len(gates)
    return StepOutput(loss, metrics)


# ---------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def estimate_loss(
    hypernet: Hypernetwork, batches: Sequence[Batch], cfg: HypernetTrainConfig, features: Features
) -> dict[str, float]:
    """Mean loss and metrics over fixed validation batches (the hypernetwork in eval mode)."""
    hypernet.eval()
    totals: dict[str, float] = {}
    for b in batches:
        out = forward_step(hypernet, b.to(features.model.device), cfg, features)
        for k, v in {"loss": out.loss.item(), **out.metrics}.items():
            totals[k] = totals.get(k, 0.0) + v / len(batches)
    hypernet.train()
    return totals


# ---------------------------------------------------------------------------------------- the loop
def warm_start(hypernet: Hypernetwork, init_from: str | Path, *, base_changed: bool = False) -> None:
    """Copy an earlier checkpoint's weights into ``hypernet``: same base, targets and shapes, or a
    :class:`CheckpointError` saying which differs (its own config's training record is kept).

    ``base_changed=True`` accepts a checkpoint made for another base of the same shape (the same
    target modules with the same widths), such as the base before a fine-tune: its hidden states
    moved, so the run must re-learn, but from a far better start than random.
    """
    config, state = read_checkpoint(init_from)
    mine = hypernet.config
    if config.kind != mine.kind or (config.base_fingerprint != mine.base_fingerprint and not base_changed):
        raise CheckpointError(
            f"{init_from}: a {config.kind} hypernetwork for another base model cannot warm-start this one"
            + ("" if config.kind != mine.kind else " (a fine-tuned base of the same shape: pass base_changed)")
        )
    if config.base_hidden_size != mine.base_hidden_size or config.n_states != mine.n_states:
        raise CheckpointError(f"{init_from}: made for a base of another width or depth")
    if dict(config.targets) != dict(mine.targets):
        raise CheckpointError(f"{init_from}: its target modules differ from this run's (--layers/--targets)")
    try:
        hypernet.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as e:
        raise CheckpointError(
            f"{init_from}: its weights do not fit this run's shape (width, layers, window): {e}"
        ) from e


@dataclass
class TrainingRun:
    """Everything a run's steps share: the hypernetwork and its optimizer, the data, the features."""

    model: WeightMemoryModel
    cfg: HypernetTrainConfig
    hypernet: Hypernetwork
    opt: torch.optim.Optimizer
    schedule: CosineSchedule
    train_pool: ExamplePool
    val_batches: list[Batch]
    features: Features
    val_features: Features

    def batch(self, step: int) -> Batch:
        """Step ``step``'s batch: a pure function of the seed and the step (resuming replays it)."""
        rng = random.Random(step_seed(self.cfg.seed, step, stream=1))
        return _batch_for(self.model, self.cfg, self.train_pool, rng, self.cfg.distractors).to(self.model.device)

    def step(self, step: int, prof: Any = NO_PROFILER) -> StepOutput:
        """One optimizer step (the schedule's learning rate for ``step``)."""
        self.schedule.apply(self.opt, step)
        with prof.phase("batch"):
            b = self.batch(step)
        with _autocast(self.model.device):
            out = forward_step(self.hypernet, b, self.cfg, self.features, prof)
        with prof.phase("backward"):
            self.opt.zero_grad(set_to_none=True)
            out.loss.backward()
        with prof.phase("optimizer"):
            torch.nn.utils.clip_grad_norm_(self.hypernet.parameters(), 1.0)
            self.opt.step()
        return out

    def validate(self) -> dict[str, float]:
        with _autocast(self.model.device):
            return estimate_loss(self.hypernet, self.val_batches, self.cfg, self.val_features)


def _autocast(device: torch.device) -> Any:
    """bf16 autocast on CUDA; on a CPU the frozen base's own dtype decides (see ``base_dtype``)."""
    return (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )


def _batch_for(
    model: WeightMemoryModel,
    cfg: HypernetTrainConfig,
    pool: ExamplePool,
    rng: random.Random,
    distractors: Sequence[int],
) -> Batch:
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    return make_batch(
        pool,
        rng,
        targets=cfg.targets,
        questions_per_text=cfg.questions_per_text,
        distractors=distractors,
        same_genre=cfg.same_genre,
        pad_id=pad,
        in_batch=cfg.in_batch_distractors,
        teacher=cfg.kl_weight > 0,
    )


def prepare_run(
    model: WeightMemoryModel,
    train: Sequence[QAExample],
    val: Sequence[QAExample],
    cfg: HypernetTrainConfig,
    *,
    init_from: str | Path | None = None,
    init_base_changed: bool = False,
    feature_cache: str | os.PathLike[str] | None = None,
    feature_cache_max_bytes: int | None = None,
    progress: bool = True,
) -> TrainingRun:
    """Build a run's hypernetwork, optimizer, pools, fixed validation batches and feature sources.

    ``feature_cache``: a root directory for the datasets' frozen-base features (each split's cache
    is built on first use, resumed if a build was cut off, reused afterwards; :mod:`.feature_cache`).
    ``None``: the base runs live every step.
    """
    if not train or not val:
        raise ValueError("train and val must both hold examples")
    device = model.device
    torch.manual_seed(cfg.seed)
    hypernet = build_hypernet(model, cfg).to(device)
    if init_from is not None:
        warm_start(hypernet, init_from, base_changed=init_base_changed)
    model.prompts.chat = cfg.chat  # prompts are built as the checkpoint will say they were
    copy = [p for n, p in hypernet.named_parameters() if n.endswith("copy_scale")]
    rest = [p for n, p in hypernet.named_parameters() if not n.endswith("copy_scale")]
    opt = torch.optim.AdamW(
        [{"params": rest}, {"params": copy, "lr_scale": cfg.copy_lr_scale}],
        lr=cfg.lr,
        weight_decay=0.0,
        betas=(0.9, 0.98),
    )
    train_pool = ExamplePool(train, model.prompts, window=cfg.window)
    val_pool = ExamplePool(val, model.prompts, window=cfg.window)
    # fixed validation batches: the same questions and distractors at every evaluation
    val_rng = random.Random(step_seed(cfg.seed, 0, stream=2))
    val_batches = [
        _batch_for(model, cfg, val_pool, val_rng, (cfg.distractors[i % len(cfg.distractors)],))
        for i in range(cfg.eval_batches)
    ]
    features: Features
    val_features: Features
    if feature_cache is None:
        features = val_features = LiveFeatures(model, hypernet.config)
    else:
        root = Path(feature_cache)
        caches = [
            FeatureCache.open_or_build(
                model, hypernet.config, examples, root, max_bytes=feature_cache_max_bytes, progress=progress
            )
            for examples in (val, train)
        ]
        val_features, features = (CachedFeatures(model, hypernet.config, c) for c in caches)
    return TrainingRun(
        model=model,
        cfg=cfg,
        hypernet=hypernet,
        opt=opt,
        schedule=CosineSchedule(cfg.lr, cfg.warmup, cfg.steps, floor=0.05),
        train_pool=train_pool,
        val_batches=val_batches,
        features=features,
        val_features=val_features,
    )


def profile_training(run: TrainingRun, steps: int, *, warmup_steps: int = 1) -> StepProfile:
    """Run ``warmup_steps + steps`` optimizer steps from step 0, timing every phase (nothing is saved).

    The hypernetwork trains during them, as it would in a run; the report is the median step
    after the warm-up (first-call allocations and lazy caches excluded).
    """
    prof = StepProfiler()
    run.hypernet.train()
    for step in range(warmup_steps + steps):
        prof.start_step()
        out = run.step(step, prof)
        prof.end_step(questions=int(out.metrics.get("questions", 0)))
        if run.model.device.type == "cpu":
            return_freed_memory()
    return prof.report(skip=warmup_steps, config=run.cfg.to_dict())


def train_hypernet(
    model: WeightMemoryModel,
    train: Sequence[QAExample],
    val: Sequence[QAExample],
    cfg: HypernetTrainConfig,
    out_dir: str | Path,
    *,
    max_steps_this_run: int | None = None,
    init_from: str | Path | None = None,
    init_base_changed: bool = False,
    feature_cache: str | os.PathLike[str] | None = None,
    feature_cache_max_bytes: int | None = None,
    progress: bool = True,
) -> Path:
    """Meta-train a hypernetwork for ``model``'s base on QA examples; returns the best checkpoint dir.

    ``out_dir`` gets ``ckpt.pt`` (resume state), ``hypernet/`` (the best by validation loss, in the
    shipped safetensors + JSON format) and ``train_log.jsonl`` (one line per evaluation, with the
    questions trained so far and the process's CPU seconds). ``max_steps_this_run`` stops early
    (checkpointing first), e.g. to fit a time budget.
    ``init_from``: a hypernetwork checkpoint of the same base and shape to start from (a new
    schedule and optimizer: fine-tuning an earlier run on harder data); ``ckpt.pt`` in ``out_dir``
    still wins, so an interrupted warm-started run resumes where it stopped. ``init_base_changed``
    lets ``init_from`` come from another base of the same shape (:func:`warm_start`).
    ``feature_cache``: see :func:`prepare_run`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, best_dir, log_path = out_dir / "ckpt.pt", out_dir / "hypernet", out_dir / "train_log.jsonl"
    resuming = ckpt_path.exists()
    run = prepare_run(
        model,
        train,
        val,
        cfg,
        init_from=None if resuming else init_from,
        init_base_changed=init_base_changed,
        feature_cache=feature_cache,
        feature_cache_max_bytes=feature_cache_max_bytes,
        progress=progress,
    )
    hypernet, device = run.hypernet, model.device
    start, state = 0, {"best_val": float("inf"), "seconds": 0.0, "cpu_seconds": 0.0, "questions": 0}
    if resuming:
        start, saved = load_checkpoint(ckpt_path, model=hypernet, optimizer=run.opt, map_location=device)
        state.update(saved)
    stop = cfg.steps if max_steps_this_run is None else min(cfg.steps, start + max_steps_this_run)
    t0, c0 = time.time() - float(state["seconds"]), time.process_time() - float(state["cpu_seconds"])
    hypernet.train()
    bar = tqdm(range(start, stop), desc="hypernet", initial=start, total=cfg.steps, disable=not progress)
    ema: dict[str, float] = {}
    for step in bar:
        out = run.step(step)
        state["questions"] = int(state["questions"]) + int(out.metrics.pop("questions", 0))
        for k, v in {"loss": out.loss.item(), **out.metrics}.items():
            ema[k] = v if k not in ema else 0.95 * ema[k] + 0.05 * v
        bar.set_postfix({k: f"{v:.3f}" for k, v in ema.items()})
        if device.type == "cpu" and (step + 1) % 10 == 0:
            return_freed_memory()
        last = step + 1 == stop
        state["seconds"], state["cpu_seconds"] = time.time() - t0, time.process_time() - c0
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            val_metrics = run.validate()
            improved = val_metrics["loss"] < float(state["best_val"])
            if improved:
                state["best_val"] = val_metrics["loss"]
                hypernet.save(best_dir)
            record = {
                "step": step + 1,
                "questions": state["questions"],
                "seconds": round(time.time() - t0, 1),
                "cpu_seconds": round(time.process_time() - c0, 1),
                "best": improved,
                "val": val_metrics,
                "train_ema": dict(ema),
            }
            with log_path.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
        if (step + 1) % cfg.checkpoint_every == 0 or last:
            save_checkpoint(ckpt_path, model=hypernet, optimizer=run.opt, step=step + 1, extra=state)
    if not best_dir.exists():  # stopped before the first evaluation: keep what there is
        hypernet.save(best_dir)
    return best_dir
