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

import copy
import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

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
from .model import Hypernetwork, Pieces, _gather, read_checkpoint, token_unembeddings


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


def answer_logits(base: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The LM head on the answer positions only ([A, d] -> [A, vocab]): a vocabulary-wide product
    over every prompt position is most of a small model's forward. Gemma's final soft-capping kept."""
    logits = base.get_output_embeddings()(hidden)
    cap = getattr(base.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def distill_loss(
    logits: torch.Tensor, teacher_logp: torch.Tensor | None, targets: torch.Tensor, cfg: HypernetTrainConfig
) -> torch.Tensor:
    """KL(teacher || student) + CE(gold), per answer token, averaged (CE alone without a teacher)."""
    logp = F.log_softmax(logits.float(), -1)
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


@torch.no_grad()
def read_texts(
    model: WeightMemoryModel, ids: torch.Tensor, mask: torch.Tensor, *, group: int = 4
) -> tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
    """The frozen base over the step's texts: every layer's hidden states and each target module's
    input, [N, T, .] each, as one padded pass would give them.

    The texts run in groups of similar length, each padded only to its own longest: texts of a
    step differ in length by 2-3x, and a large base pays for every padding token.
    """
    order = torch.argsort(mask.sum(1), descending=True)
    states: list[list[torch.Tensor]] = []
    inputs: dict[str, list[torch.Tensor]] = {}
    t = ids.shape[1]

    def pad(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, 0, 0, t - x.shape[1]))

    for start in range(0, len(order), group):
        rows = order[start : start + group]
        width = int(mask[rows].sum(1).max())
        with model.injector.capture_inputs() as captured:  # the decoder alone: no logits over the texts
            out = model.base.base_model(
                input_ids=ids[rows, :width],
                attention_mask=mask[rows, :width],
                output_hidden_states=True,
                use_cache=False,
            )
        states.append([pad(h) for h in out.hidden_states])
        for name, x in captured.items():
            inputs.setdefault(name, []).append(pad(x))
    back = torch.argsort(order)
    hidden = tuple(torch.cat([g[i] for g in states])[back] for i in range(len(states[0])))
    return hidden, {n: torch.cat(xs)[back] for n, xs in inputs.items()}


@torch.no_grad()
def teacher_log_probs(base: torch.nn.Module, b: Batch) -> torch.Tensor:
    """The frozen base reading the text: log-probabilities at every answer token [A, vocab]."""
    hidden = base.base_model(input_ids=b.teacher_ids, attention_mask=b.teacher_mask, use_cache=False).last_hidden_state
    return F.log_softmax(answer_logits(base, hidden[b.teacher_pos[:, 0], b.teacher_pos[:, 1]]).float(), -1)


def student_full(
    model: WeightMemoryModel, b: Batch, plan: InjectionPlan, order: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Student rows (question ``order[i]`` each) over whole sequences, the adapter on every token.

    Returns the last hidden state at (``rows``, ``cols``) [A', d], and each target module's input
    on the plain base where each answer token is due [A, d_in] (the keys' InfoNCE targets).
    """
    base = model.base
    with torch.no_grad(), model.injector.capture_inputs() as captured:
        base.base_model(input_ids=b.student_ids, attention_mask=b.student_mask, use_cache=False)
    queries = {n: x[b.student_pos[:, 0], b.student_pos[:, 1]].float() for n, x in captured.items()}
    with model.injector.use_plan(plan):
        hidden = base.base_model(
            input_ids=b.student_ids[order], attention_mask=b.student_mask[order], use_cache=False
        ).last_hidden_state
    return hidden[rows, cols], queries


def student_answer_only(
    model: WeightMemoryModel, b: Batch, plan: InjectionPlan, order: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """As :func:`student_full` for an adapter that acts on the answer only (``cols`` index the chunk).

    The prompt runs once, without gradients, into a KV cache; only the answer chunk runs with the
    adapter, so the backward pass covers a few tokens per question instead of the whole prompt.
    """
    assert b.prompt_ids is not None and b.prompt_mask is not None and b.chunk_ids is not None
    assert b.chunk_mask is not None and b.chunk_pos is not None
    if int(b.prompt_mask.sum(1).min()) == 0:
        raise ValueError("a student prompt of one token leaves nothing to cache before the answer")
    base = model.base
    prompt_len = b.prompt_mask.sum(1, keepdim=True)
    chunk_positions = prompt_len + torch.arange(b.chunk_ids.shape[1], device=prompt_len.device)
    full_mask = torch.cat([b.prompt_mask, b.chunk_mask], 1)
    with torch.no_grad():
        cache = base.base_model(
            input_ids=b.prompt_ids,
            attention_mask=b.prompt_mask,
            position_ids=(b.prompt_mask.cumsum(1) - 1).clamp(min=0),
            use_cache=True,
        ).past_key_values
        plain = copy.deepcopy(cache)  # the base's own pass over the answer extends a copy
        with model.injector.capture_inputs() as captured:
            base.base_model(
                input_ids=b.chunk_ids, attention_mask=full_mask, position_ids=chunk_positions, past_key_values=plain
            )
        del plain
        queries = {n: x[b.chunk_pos[:, 0], b.chunk_pos[:, 1]].float() for n, x in captured.items()}
        if len(order) != len(b.compose) or bool((order != torch.arange(len(order), device=order.device)).any()):
            cache.reorder_cache(order)
    token_mask = b.chunk_mask[order].float()
    with model.injector.use_plan(plan.at_positions(token_mask)):
        hidden = base.base_model(
            input_ids=b.chunk_ids[order],
            attention_mask=full_mask[order],
            position_ids=chunk_positions[order],
            past_key_values=cache,
        ).last_hidden_state
    return hidden[rows, cols], queries


def forward_step(model: WeightMemoryModel, hypernet: Hypernetwork, b: Batch, cfg: HypernetTrainConfig) -> StepOutput:
    """Every loss of one batch (``b`` already on the model's device)."""
    base = model.base
    with torch.no_grad():
        text_states, captured = read_texts(model, b.text_ids, b.text_mask)
        token_out = token_unembeddings(base, b.text_ids)
        teacher_logp = teacher_log_probs(base, b) if cfg.kl_weight > 0 else None
    positions, slot = value_slots(b.value_mask)
    if cfg.soft_and_hard == "hard":  # pieces for the kept tokens and the answer spans only
        z = hypernet.encode(text_states, b.text_mask)
        hard, ranks, value_keys = hypernet.select_pieces(
            z, b.text_mask, captured.__getitem__, token_out, also_at=positions
        )
        gates = dict(zip(hypernet.config.targets, hypernet.gates(z, b.text_mask.to(z.dtype)), strict=True))
        soft = None
    else:  # every token's piece: the soft adapter needs them all
        pieces = hypernet(text_states, b.text_mask, captured, token_out)
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
    if cfg.chat.adapter_on_prompt:
        hidden, queries = student_full(model, b, plan, order, pos_rows, b.student_pos[tok_idx, 1])
    else:
        hidden, queries = student_answer_only(model, b, plan, order, pos_rows, b.chunk_pos[tok_idx, 1])
    logits = answer_logits(base, hidden)
    targets = b.targets[tok_idx]
    loss = distill_loss(logits, None if teacher_logp is None else teacher_logp[tok_idx], targets, cfg)
    row_kind = [kinds[int(r)] for r in pos_rows]
    metrics: dict[str, float] = {}
    for kind in ("soft", "hard"):
        sel = torch.tensor([k == kind for k in row_kind], device=logits.device)
        if sel.any():
            metrics[f"acc_{kind}"] = (logits[sel].argmax(-1) == targets[sel]).float().mean().item()
            metrics[f"ce_{kind}"] = F.cross_entropy(logits[sel].float(), targets[sel]).item()
    if teacher_logp is not None:
        metrics["acc_teacher"] = (teacher_logp.argmax(-1) == b.targets).float().mean().item()
    metrics["rank"] = ranks.float().mean().item()
    text_mask = b.text_mask.float()
    target_slot = torch.where(b.copy_pos[:, 0] >= 0, slot[b.copy_pos[:, 0], b.copy_pos[:, 1]], -1)
    for name, gate in gates.items():
        bce = F.binary_cross_entropy(gate.clamp(1e-6, 1 - 1e-6), b.value_mask, reduction="none")
        loss = loss + cfg.gate_aux * (bce * text_mask).sum() / text_mask.sum()  # each module's gates decide its pieces
        loss = loss + cfg.key_aux * key_infonce(
            value_keys[name], positions >= 0, queries[name], target_slot, cfg.key_temperature
        ) / len(gates)
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
    progress: bool = True,
) -> Path:
    """Meta-train a hypernetwork for ``model``'s base on QA examples; returns the best checkpoint dir.

    ``out_dir`` gets ``ckpt.pt`` (resume state), ``hypernet/`` (the best by validation loss, in the
    shipped safetensors + JSON format) and ``train_log.jsonl`` (one line per evaluation).
    ``max_steps_this_run`` stops early (checkpointing first), e.g. to fit a time budget.
    ``init_from``: a hypernetwork checkpoint of the same base and shape to start from (a new
    schedule and optimizer: fine-tuning an earlier run on harder data); ``ckpt.pt`` in ``out_dir``
    still wins, so an interrupted warm-started run resumes where it stopped. ``init_base_changed``
    lets ``init_from`` come from another base of the same shape (:func:`warm_start`).
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
            in_batch=cfg.in_batch_distractors,
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
