"""The Cartridges baseline (Eyuboglu et al., 2025): a trained KV prefix per thread, in plain torch.

A *cartridge* is the keys and values of ``n_tokens`` virtual tokens in every layer of the base,
put before the prompt as a KV cache. It is trained per thread by distillation ("self-study"):

* **teacher**: the frozen base with a chunk of the thread's evicted turns in its prompt (the
  turns as messages, as ``text_rag`` gives them back), asked a question about the user;
* **student**: the same base with the cartridge and the question alone;
* **loss**: KL(teacher || student) on each token of the teacher's greedy answer (and its end of turn).

The questions are the model's :class:`~agenthn_langgraph.data.language.Language`'s questions
about a user (every phrasing of every user attribute it can draw); the teacher's answers are its
own reading of the chunk, never a gold answer. A thread longer than the window is read in chunks
of whole turns; a question is kept for a chunk where the teacher answers it confidently (first
answer token p >= ``min_confidence``), newest chunk first, so a restated value wins as it does
for weight memory. The cartridge is initialised with the base's own keys and values of the first
``n_tokens`` tokens of the evicted turns (the paper's initialisation) and trained with Adam.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from langchain_core.messages import BaseMessage, HumanMessage
from transformers import DynamicCache

from ..chat_model import LocalHypernetChatModel, to_chat_dicts
from ..data.language import Language
from ..errors import AgenthnError, EmptyConversationError
from ..options import check_int_option, check_real_option

DEFAULT_CARTRIDGE_TOKENS = 96
DEFAULT_CARTRIDGE_EPOCHS = 60
DEFAULT_CARTRIDGE_LR = 2e-2
DEFAULT_MIN_CONFIDENCE = 0.5


class CartridgeOverBudgetError(AgenthnError, TimeoutError):
    """Training a cartridge took longer than its time budget (the benchmark reports it as skipped)."""


def kv_bytes_per_token(model: LocalHypernetChatModel) -> int:
    """Bytes one token adds to the base's KV cache: layers x (K + V) x KV heads x head dim x dtype."""
    cfg = model.engine.base.config
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    dtype_bytes = next(model.engine.base.parameters()).element_size()
    return int(cfg.num_hidden_layers * 2 * heads * head_dim * dtype_bytes)


def self_study_questions(language: Language, *, seed: int = 0, draws: int = 200, limit: int = 64) -> list[str]:
    """The questions the language asks about a user (at most ``limit``, sorted, drawn with ``seed``)."""
    rng = random.Random(seed)
    found: set[str] = set()
    for _ in range(draws):
        for n in (64, 32, 16, 8, 4, 2, 1):  # as many facts as the language holds
            try:
                facts = language.user_facts(rng, n)
                break
            except ValueError:
                continue
        found.update(f.question for f in facts)
    questions = sorted(found)
    return sorted(random.Random(seed).sample(questions, limit)) if len(questions) > limit else questions


@dataclass
class Cartridge:
    """A trained prefix: per layer keys and values ``[kv_heads, n_tokens, head_dim]``."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    train_s: float
    n_pairs: int  # (chunk, question) pairs it was distilled on
    final_loss: float

    @property
    def n_tokens(self) -> int:
        return int(self.keys[0].shape[1])

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    def cache(self, batch: int = 1) -> DynamicCache:
        """A fresh KV cache holding the prefix for ``batch`` rows (gradients flow into the prefix)."""
        return DynamicCache(
            ddp_cache_data=[
                (k.unsqueeze(0).expand(batch, -1, -1, -1), v.unsqueeze(0).expand(batch, -1, -1, -1))
                for k, v in zip(self.keys, self.values, strict=True)
            ]
        )


def _forward(
    model: LocalHypernetChatModel, ids: torch.Tensor, mask: torch.Tensor, prefix: Cartridge | None, past: object = None
) -> tuple[torch.Tensor, object]:
    """One forward pass with rows left- or right-padded by ``mask``; positions count from the
    row's first real token, after the prefix's ``n_tokens`` when there is one."""
    n = prefix.n_tokens if prefix is not None else 0
    if past is None and prefix is not None:
        past = prefix.cache(ids.shape[0])
    full = mask if prefix is None else torch.cat([mask.new_ones(mask.shape[0], n), mask], 1)
    positions = ((mask.cumsum(-1) - 1).clamp(min=0) + n)[:, -ids.shape[1] :]
    out = model.engine.base(
        input_ids=ids, attention_mask=full, position_ids=positions, past_key_values=past, use_cache=True
    )
    return out.logits, out.past_key_values


def _left_pad(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + list(r) for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


@torch.no_grad()
def greedy(
    model: LocalHypernetChatModel, prompts: Sequence[Sequence[int]], max_new: int, prefix: Cartridge | None = None
) -> tuple[list[list[int]], list[torch.Tensor]]:
    """Greedy answers (through the first end id, included) and, per row, the next-token
    probabilities at each answer position ``[len(answer), vocab]``."""
    engine = model.engine
    ids, mask = _left_pad(prompts, engine.tokenizer.pad_token_id or 0)
    answers: list[list[int]] = [[] for _ in prompts]
    probs: list[list[torch.Tensor]] = [[] for _ in prompts]
    done = [False] * len(prompts)
    past = None
    window = getattr(engine.base.config, "max_position_embeddings", None) or 10**9
    steps = min(max_new, window - ids.shape[1] - (prefix.n_tokens if prefix else 0))
    for _ in range(max(steps, 0)):
        logits, past = _forward(model, ids, mask, prefix, past)
        p = logits[:, -1].float().softmax(-1)
        nxt = p.argmax(-1)
        for i, token in enumerate(nxt.tolist()):
            if not done[i]:
                answers[i].append(token)
                probs[i].append(p[i])
                done[i] = token in engine.end_ids
        if all(done):
            break
        ids, mask = nxt[:, None], torch.cat([mask, mask.new_ones(mask.shape[0], 1)], 1)
    return answers, [torch.stack(p) for p in probs]


@torch.no_grad()
def _context_cache(model: LocalHypernetChatModel, prompts: Sequence[Sequence[int]]) -> Cartridge:
    """The keys and values of the prompts' common prefix (the chunk), one row; each prompt keeps
    at least its last token. Reading it once equals reading it in every prompt."""
    shared = min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        shared = next((i for i in range(shared) if p[i] != prompts[0][i]), shared)
    out = model.engine.base(input_ids=torch.tensor([list(prompts[0][:shared])]), use_cache=True)
    layers = out.past_key_values.layers
    return Cartridge([layer.keys[0] for layer in layers], [layer.values[0] for layer in layers], 0.0, 0, float("nan"))


def _chunks(
    model: LocalHypernetChatModel, turns: Sequence[Sequence[BaseMessage]], budget: int
) -> list[list[BaseMessage]]:
    """Consecutive whole turns whose messages fit ``budget`` tokens (a turn longer than that alone)."""
    chunks: list[list[BaseMessage]] = []
    current: list[BaseMessage] = []
    for turn in turns:
        trial = [*current, *turn]
        if current and model.get_num_tokens_from_messages(trial) > budget:
            chunks.append(current)
            trial = list(turn)
        current = trial
    if current:
        chunks.append(current)
    return chunks


def train_cartridge(
    model: LocalHypernetChatModel,
    turns: Sequence[Sequence[BaseMessage]],
    questions: Sequence[str],
    *,
    n_tokens: int = DEFAULT_CARTRIDGE_TOKENS,
    epochs: int = DEFAULT_CARTRIDGE_EPOCHS,
    lr: float = DEFAULT_CARTRIDGE_LR,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    batch: int = 64,
    seed: int = 0,
    budget_s: float | None = None,
) -> Cartridge:
    """Distil the evicted ``turns`` (each a list of messages) into a cartridge; see the module docstring.

    ``budget_s``: give up with :class:`CartridgeOverBudgetError` once training has taken longer
    (checked between teacher batches and between epochs).
    """
    n_tokens = check_int_option("n_tokens", n_tokens)
    epochs = check_int_option("epochs", epochs)
    lr = check_real_option("lr", lr, minimum=1e-12)
    min_confidence = check_real_option("min_confidence", min_confidence, maximum=1.0)
    if not turns:
        raise EmptyConversationError("a cartridge needs at least one evicted turn")
    if not questions:
        raise EmptyConversationError("a cartridge needs at least one self-study question")
    if budget_s is not None:
        budget_s = check_real_option("budget_s", budget_s)
    start = time.perf_counter()

    def check_budget() -> None:
        if budget_s is not None and time.perf_counter() - start > budget_s:
            raise CartridgeOverBudgetError(f"cartridge training passed its {budget_s:g} s budget")

    engine = model.engine
    window = getattr(engine.base.config, "max_position_embeddings", None) or 4096
    longest_q = max(model.get_num_tokens_from_messages([HumanMessage(q)]) for q in questions)
    max_new = model.max_tokens or 8
    chunks = _chunks(model, turns, window - longest_q - max_new - 4)

    # teacher: newest chunk first; a question is taken from the newest chunk it answers confidently
    pairs: list[tuple[list[int], list[int], torch.Tensor]] = []  # (question ids, answer ids, teacher probs)
    student_ids = {q: engine.encode(engine.render(to_chat_dicts([HumanMessage(q)]))) for q in questions}
    open_questions = list(questions)
    for chunk in reversed(chunks):
        if not open_questions:
            break
        prompts = [engine.encode(engine.render(to_chat_dicts([*chunk, HumanMessage(q)]))) for q in open_questions]
        context = _context_cache(model, prompts)  # the chunk, read once for every question
        answered: list[str] = []
        for at in range(0, len(prompts), batch):
            check_budget()
            answers, probs = greedy(model, [p[context.n_tokens :] for p in prompts[at : at + batch]], max_new, context)
            for q, ans, p in zip(open_questions[at : at + batch], answers, probs, strict=True):
                if ans and float(p[0].max()) >= min_confidence:
                    pairs.append((student_ids[q], ans, p))
                    answered.append(q)
        open_questions = [q for q in open_questions if q not in answered]

    # initialise with the base's own keys and values of the first n_tokens tokens of the turns
    text_ids = engine.encode(engine.render(to_chat_dicts([m for t in turns for m in t]), add_generation_prompt=False))
    init = (text_ids * (n_tokens // max(len(text_ids), 1) + 1))[:n_tokens]
    with torch.no_grad():
        out = engine.base(input_ids=torch.tensor([init]), use_cache=True)
    layers = out.past_key_values.layers
    keys = [torch.nn.Parameter(layer.keys[0].detach().clone()) for layer in layers]
    values = [torch.nn.Parameter(layer.values[0].detach().clone()) for layer in layers]
    cartridge = Cartridge(keys, values, 0.0, len(pairs), float("nan"))
    if pairs:
        optimizer = torch.optim.Adam([*keys, *values], lr=lr)
        order = random.Random(seed)
        pad = engine.tokenizer.pad_token_id or 0
        for _ in range(epochs):
            check_budget()
            shuffled = list(pairs)
            order.shuffle(shuffled)
            for at in range(0, len(shuffled), batch):
                part = shuffled[at : at + batch]
                # right-padded: question then the teacher's answer but its last token
                rows = [q + a[:-1] for q, a, _ in part]
                width = max(len(r) for r in rows)
                ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
                mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
                logits, _ = _forward(model, ids, mask, cartridge)
                loss = logits.new_zeros(())
                n_positions = 0
                for i, (q, a, teacher) in enumerate(part):
                    student = logits[i, len(q) - 1 : len(q) - 1 + len(a)].float().log_softmax(-1)
                    loss = loss + torch.nn.functional.kl_div(student, teacher, reduction="sum")
                    n_positions += len(a)
                loss = loss / n_positions
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                cartridge.final_loss = float(loss.detach())
    cartridge.keys = [k.detach() for k in keys]
    cartridge.values = [v.detach() for v in values]
    cartridge.train_s = time.perf_counter() - start
    return cartridge


def answer(model: LocalHypernetChatModel, cartridge: Cartridge, messages: Sequence[BaseMessage]) -> tuple[str, int]:
    """The greedy reply with the cartridge before the prompt; (text, prompt tokens incl. the virtual ones)."""
    engine = model.engine
    ids = engine.encode(engine.render(to_chat_dicts(messages)))
    answers, _ = greedy(model, [ids], model.max_tokens or 8, cartridge)
    tokens = [t for t in answers[0] if t not in engine.end_ids]
    text = engine.tokenizer.decode(tokens, skip_special_tokens=True).strip()
    return text, len(ids) + cartridge.n_tokens
