"""Meta-training of the hypernetwork by distillation (nanoGPT-style: one loop, read top to bottom).

Per step:

1. draw groups of 3 texts whose facts have disjoint keys (segments of one user's memory, or
   documents about different products);
2. **teacher**: the frozen base with the text in context, then every question of that text;
   its next-token distribution at each answer is the target;
3. **student**: the same frozen base with *no text*, only ``<user> question <assistant>``, plus
   the adapter the hypernetwork generated from the text, rank-concatenated with the adapters of
   0-2 other texts of the group (so retrieval-time composition keeps working);
4. loss = KL(teacher || student) + CE(answer), for both the soft all-token delta and the hard
   top-r delta the product ships, plus a small L1 on the gates (keeps top-r lossless).

Only the hypernetwork learns. Deterministic for a seed; resumable from ``hypernet_ckpt.pt``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..engine import WeightMemoryModel, pad_sequences
from ..lora.inject import InjectionPlan
from ..tiny_default.base import WordEncoder, step_seed
from ..tiny_default.language import Corpus, Sample
from .model import HypernetConfig, Hypernetwork, token_unembeddings


@dataclass
class HypernetTrainConfig:
    steps: int = 1500
    groups: int = 6  # groups of `texts_per_group` texts per step
    texts_per_group: int = 3
    min_facts: int = 1
    max_facts: int = 6
    lr: float = 1e-3
    warmup: int = 100
    kl_weight: float = 1.0
    ce_weight: float = 1.0
    gate_l1: float = 0.0  # >0 kills the gates early: Adam rescales the penalty while B is still zero
    gate_aux: float = 1.0  # BCE: gates should rank the text's answer tokens first
    key_aux: float = 1.0  # InfoNCE: an answer token's key should match its own question's activation
    key_temperature: float = 0.1
    copy_lr: float = 3e-2  # the per-module copy-prior scalars learn faster than the rest
    seed: int = 0
    width: int = 256
    mixer_layers: int = 2
    rank: int = 8
    window: int = 256
    checkpoint_every: int = 100


@dataclass
class Batch:
    text_ids: torch.Tensor  # [N, T] "<bos> text"
    text_mask: torch.Tensor
    teacher_ids: torch.Tensor  # [N, S] "<bos> text <user> q <assistant> v <end> ..."
    teacher_mask: torch.Tensor
    teacher_pos: list[tuple[int, int]]  # per question: (text row, position predicting the answer)
    student_ids: torch.Tensor  # [Q, U] "<bos> <user> q <assistant>"
    student_mask: torch.Tensor
    answers: torch.Tensor  # [Q]
    compose: list[list[int]]  # per question: text rows whose adapters the student gets
    answer_pos: torch.Tensor  # [Q, T] 1 where the question's answer token stands in its text
    value_mask: torch.Tensor  # [N, T] 1 on every answer token of each text


def make_batch(corpus: Corpus, encode: WordEncoder, cfg: HypernetTrainConfig) -> Batch:
    rng = corpus.rng
    texts: list[Sample] = []
    group_of: list[int] = []
    for g in range(cfg.groups):
        genre = rng.choice(["profile", "preference", "product", None])  # None: genres mixed
        for s in corpus.group(cfg.texts_per_group, rng.randint(cfg.min_facts, cfg.max_facts), genre=genre):
            texts.append(s)
            group_of.append(g)
    text_seqs, teacher_seqs, teacher_pos, student_seqs, answers, compose = [], [], [], [], [], []
    owner: list[int] = []
    for i, s in enumerate(texts):
        ids = encode(f"<bos> {s.text}")
        text_seqs.append(ids)
        seq = list(ids)
        mates = [j for j, g in enumerate(group_of) if g == group_of[i] and j != i]
        for f in rng.sample(s.facts, len(s.facts)):
            q = f.question(rng)
            seq += encode(f"<user> {q} <assistant>")
            teacher_pos.append((i, len(seq) - 1))
            answer = encode(f.value)[0]
            seq += [answer, encode("<end>")[0]]
            student_seqs.append(encode(f"<bos> <user> {q} <assistant>"))
            answers.append(answer)
            owner.append(i)
            compose.append([i] + rng.sample(mates, rng.randint(0, len(mates))))
        teacher_seqs.append(seq)
    text_ids, text_mask = pad_sequences(text_seqs, encode.pad)
    teacher_ids, teacher_mask = pad_sequences(teacher_seqs, encode.pad)
    student_ids, student_mask = pad_sequences(student_seqs, encode.pad)
    answers_t = torch.tensor(answers)
    answer_pos = (text_ids[owner] == answers_t[:, None]).float() * text_mask[owner]
    value_mask = answer_pos.new_zeros(text_ids.shape).index_add_(0, torch.tensor(owner), answer_pos).clamp(max=1)
    return Batch(
        text_ids,
        text_mask,
        teacher_ids,
        teacher_mask,
        teacher_pos,
        student_ids,
        student_mask,
        answers_t,
        compose,
        answer_pos,
        value_mask,
    )


def key_infonce(
    keys: torch.Tensor,
    queries: torch.Tensor,
    answer_pos: torch.Tensor,
    value_mask: torch.Tensor,
    owner: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Each question's activation should pick its own answer token's key among all answer keys.

    keys [N, T, d_in] (unit), queries [Q, d_in] (the module's input at the question's last
    position), answer_pos [Q, T], value_mask [N, T], owner [Q] (the question's text row).
    """
    n, t, _ = keys.shape
    cand = value_mask.flatten().bool()  # [N*T] candidate pieces: every answer token in the batch
    scores = F.normalize(queries, dim=-1) @ keys.reshape(n * t, -1)[cand].T / temperature  # [Q, P]
    positive = torch.zeros(queries.shape[0], n, t, device=keys.device)
    positive[torch.arange(queries.shape[0]), owner] = answer_pos
    positive = positive.reshape(queries.shape[0], n * t)[:, cand]
    logp = scores.log_softmax(-1)
    return -(torch.logsumexp(logp.masked_fill(positive == 0, -1e9), -1)).mean()


def _per_row_plan(pieces: dict[str, tuple[torch.Tensor, torch.Tensor]], compose: list[list[int]]) -> InjectionPlan:
    """Per question, rank-concatenate the blocks (A [N, r, d_in], B [N, d_out, r]) of its texts.

    Rows with fewer texts are padded with an all-zero block, which adds nothing.
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
    student_logits: torch.Tensor, teacher_logp: torch.Tensor, answers: torch.Tensor, cfg: HypernetTrainConfig
) -> torch.Tensor:
    logp = F.log_softmax(student_logits.float(), -1)
    kl = (teacher_logp.exp() * (teacher_logp - logp)).sum(-1).mean()
    ce = F.nll_loss(logp, answers)
    return cfg.kl_weight * kl + cfg.ce_weight * ce


def build_hypernet(model: WeightMemoryModel, cfg: HypernetTrainConfig) -> Hypernetwork:
    base_cfg = model.base.config
    hcfg = HypernetConfig(
        base_hidden_size=base_cfg.hidden_size,
        n_states=base_cfg.num_hidden_layers + 1,
        targets=model.injector.module_shapes(),
        width=cfg.width,
        mixer_layers=cfg.mixer_layers,
        rank=cfg.rank,
        window=cfg.window,
        base_fingerprint=model.fingerprint,
        extra={"train": asdict(cfg)},
    )
    return Hypernetwork(hcfg)


def train_hypernet(
    model: WeightMemoryModel, cfg: HypernetTrainConfig, out_dir: Path, *, max_steps_this_run: int | None = None
) -> Path:
    """Meta-train a hypernetwork for ``model``'s base; returns the checkpoint directory.

    Resumes from ``out_dir/hypernet_ckpt.pt`` when present; each step's batch is a pure function
    of ``(seed, step)``, so an interrupted and resumed run equals an uninterrupted one.
    ``max_steps_this_run`` stops early (checkpointing first), e.g. to fit a time budget.
    """
    device = model.device
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    hypernet = build_hypernet(model, cfg).to(device)
    model.hypernet = hypernet
    copy = [p for n, p in hypernet.named_parameters() if n.endswith("copy_scale")]
    rest = [p for n, p in hypernet.named_parameters() if not n.endswith("copy_scale")]
    opt = torch.optim.AdamW(
        [{"params": rest, "base_lr": cfg.lr}, {"params": copy, "base_lr": cfg.copy_lr}],
        lr=cfg.lr,
        weight_decay=0.0,
        betas=(0.9, 0.98),
    )
    ckpt_path = out_dir / "hypernet_ckpt.pt"
    start = 0
    if ckpt_path.exists():  # our own checkpoint: tensors and plain types only
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        hypernet.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = int(state["step"])
    encode = WordEncoder(model.tokenizer)
    base = model.base

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))

    t0 = time.time()
    hypernet.train()
    stop = cfg.steps if max_steps_this_run is None else min(cfg.steps, start + max_steps_this_run)
    bar = tqdm(range(start, stop), desc="hypernet", initial=start, total=cfg.steps)
    ema = {"acc_hard": 0.0, "acc_teacher": 0.0}
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step) * g["base_lr"] / cfg.lr
        b = make_batch(Corpus(step_seed(cfg.seed, step, stream=1)), encode, cfg)
        with torch.no_grad():
            # one pass serves both: the teacher sequence starts with "<bos> text", and causal
            # attention makes its hidden states over the text those of the text alone
            with model.injector.capture_inputs() as captured:
                out = base(
                    input_ids=b.teacher_ids.to(device),
                    attention_mask=b.teacher_mask.to(device),
                    output_hidden_states=True,
                )
            width = b.text_ids.shape[1]
            states = [h[:, :width] for h in out.hidden_states]
            module_inputs = {n: x[:, :width] for n, x in captured.items()}
            t_logits = out.logits
            rows = torch.tensor([r for r, _ in b.teacher_pos], device=device)
            pos = torch.tensor([p for _, p in b.teacher_pos], device=device)
            teacher_logp = F.log_softmax(t_logits[rows, pos].float(), -1)
            last = (b.student_mask.sum(-1) - 1).to(device)
            s_ids, s_mask = b.student_ids.to(device), b.student_mask.to(device)
            with model.injector.capture_inputs() as q_captured:  # what each module sees for the question
                base(input_ids=s_ids, attention_mask=s_mask)
            q_rows = torch.arange(len(last), device=device)
            queries = {n: x[q_rows, last].float() for n, x in q_captured.items()}
            token_out = token_unembeddings(base, b.text_ids.to(device))
        pieces = hypernet(states, b.text_mask.to(device), module_inputs, token_out)
        answers = b.answers.to(device)
        loss = torch.zeros((), device=device)
        metrics = {}
        # soft: every token's piece of the question's own text; hard: the shipped top-r adapters,
        # composed with the group mates' adapters
        own = [[c[0]] for c in b.compose]
        for kind, blocks, compose in (("soft", pieces.soft(), own), ("hard", pieces.top_r(cfg.rank), b.compose)):
            plan = _per_row_plan(blocks, compose)
            with model.injector.use_plan(plan):
                logits = base(input_ids=s_ids, attention_mask=s_mask).logits
            s_logits = logits[torch.arange(len(last), device=device), last]
            loss = loss + distill_loss(s_logits, teacher_logp, answers, cfg)
            metrics[kind] = (s_logits.argmax(-1) == answers).float().mean().item()
        gate_mean = torch.stack([g.sum() / b.text_mask.sum() for g in pieces.gate.values()]).mean()
        loss = loss + cfg.gate_l1 * gate_mean
        # auxiliary supervision from the QA pairs: which tokens are answers, and to which question
        text_mask = b.text_mask.to(device).float()
        value_mask = b.value_mask.to(device)
        owner = torch.tensor([c[0] for c in b.compose], device=device)
        for name, gate in pieces.gate.items():
            bce = F.binary_cross_entropy(gate.clamp(1e-6, 1 - 1e-6), value_mask, reduction="none")
            loss = loss + cfg.gate_aux * (bce * text_mask).sum() / text_mask.sum()
            loss = loss + cfg.key_aux * key_infonce(
                pieces.a[name], queries[name], b.answer_pos.to(device), value_mask, owner, cfg.key_temperature
            ) / len(pieces.gate)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hypernet.parameters(), 1.0)
        opt.step()
        ema["acc_hard"] = 0.95 * ema["acc_hard"] + 0.05 * metrics["hard"]
        ema["acc_teacher"] = 0.95 * ema["acc_teacher"] + 0.05 * (
            (teacher_logp.argmax(-1) == answers).float().mean().item()
        )
        bar.set_postfix(
            loss=f"{loss.item():.3f}",
            hard=f"{ema['acc_hard']:.3f}",
            soft=f"{metrics['soft']:.2f}",
            teacher=f"{ema['acc_teacher']:.3f}",
            gate=f"{gate_mean.item():.2f}",
        )
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 in (cfg.steps, stop):
            torch.save({"model": hypernet.state_dict(), "opt": opt.state_dict(), "step": step + 1}, ckpt_path)
    hypernet.eval()
    final = hypernet.save(out_dir / "hypernet")
    (out_dir / "hypernet_train_seconds.txt").write_text(f"{time.time() - t0:.1f}\n")
    return final
