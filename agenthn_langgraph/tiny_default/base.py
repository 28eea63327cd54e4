"""The tiny base LM of the embedded default: its tokenizer, its config and its training loop.

A Llama-architecture model (~3.5M parameters, fp32) trained from scratch on the little language
of :mod:`.language`. The goal is a competent *reader*: with a text in context it must answer
questions about it (>= 95%), because it is the hypernetwork's distillation teacher.

What makes key->value binding appear quickly on 2 CPU cores (learned from a first small try):
single-key facts within a text, answers upweighted in the loss, and a curriculum on the number of
facts per text (1 -> 2 -> 4 -> 1..6).
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from tqdm.auto import tqdm
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from ..training import CosineSchedule, load_checkpoint, save_checkpoint, step_seed
from .language import SPECIAL_TOKENS, Corpus, vocabulary
from .language import max_facts as language_max_facts

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}<assistant> {{ m['content'] }} <end> "
    "{% elif m['role'] == 'tool' %}<tool> {{ m['content'] }} <end> "
    "{% elif m['role'] == 'system' %}<system> {{ m['content'] }} <end> "
    "{% else %}<user> {{ m['content'] }} {% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer over :func:`vocabulary`; lower-cases and splits punctuation."""
    from tokenizers import normalizers

    vocab = {w: i for i, w in enumerate(vocabulary())}
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<end>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in {"<bos>", "<end>", "<unk>", "<pad>"}],
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 512
    return fast


def tiny_llama_config(vocab_size: int, *, hidden_size: int = 256, layers: int = 4) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=int(hidden_size * 2.6875),  # 688 for 256, Llama's 8/3 ratio rounded
        num_hidden_layers=layers,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=SPECIAL_TOKENS.index("<bos>"),
        eos_token_id=SPECIAL_TOKENS.index("<end>"),
        pad_token_id=SPECIAL_TOKENS.index("<pad>"),
    )


class WordEncoder:
    """Fast id lookup for the pre-spaced texts the corpus generates (equal to the tokenizer's)."""

    def __init__(self, tokenizer: PreTrainedTokenizerFast) -> None:
        self.vocab = tokenizer.get_vocab()
        self.unk = self.vocab["<unk>"]
        self.pad = tokenizer.pad_token_id

    def __call__(self, text: str) -> list[int]:
        return [self.vocab.get(w, self.unk) for w in text.lower().split()]


@dataclass
class BaseTrainConfig:
    steps: int = 3000
    batch_size: int = 32
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.05
    answer_weight: float = 4.0  # extra loss weight on answer tokens: they carry the binding signal
    no_context_fraction: float = 0.05  # QAs with no text teach the uniform prior over each pool
    max_facts: int = 16  # most facts per text at the end of the curriculum
    curriculum_offset: float = 0.0  # start the curriculum this far in (a warm start skips 1-2 facts)
    product_weight: float = 0.45  # share of product documents (prices and weights are the hard reads)
    # share of product rows whose context holds 2-3 documents about different products that share
    # attributes: a question must then carry *which product* to where the answer is due, which is
    # what composed product adapters need to be told apart (``agenthn eval binding``); with one
    # document per context the attribute alone finds the answer. Off by default: warm-started
    # from the v2 base, 1,000 steps (0.5 then 0.8 of product rows) left its two-product reading at
    # chance (about 0.5), so the shipped base never trained with it
    multi_product: float = 0.0
    seed: int = 0
    hidden_size: int = 256
    layers: int = 4
    checkpoint_every: int = 250


def max_facts_at(progress: float, most: int = 16) -> int:
    """Curriculum on facts per text: binding is learned on 1-2 facts, then scaled up."""
    for until, n in ((0.08, 1), (0.2, 2), (0.35, 4), (0.5, 8)):
        if progress < until:
            return min(n, most)
    return most


def fact_bucket(rng: random.Random, max_facts: int) -> tuple[int, int]:
    """One step's range of facts per text: rows of similar length waste little padding.

    Buckets (1), (1-2), (2-4), (3-6), (5-10), (9-16) up to ``max_facts``; the long ones are drawn
    less often, since each of their steps costs several short ones.
    """
    buckets = [(lo, min(hi, max_facts)) for lo, hi in ((1, 1), (1, 2), (2, 4), (3, 6), (5, 10), (9, 16))]
    buckets = [b for b in buckets if b[0] <= max_facts]
    weights = [1.0 / (1 + i * 0.15) for i in range(len(buckets))]
    return rng.choices(buckets, weights)[0]


def qa_batch(
    corpus: Corpus,
    encode: WordEncoder,
    batch_size: int,
    facts: tuple[int, int],
    no_context_fraction: float,
    product_weight: float = 1 / 3,
    *,
    multi_product: float = 0.0,
    max_questions: int = 10,
    max_tokens: int = 8192,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, loss weights): texts of ``facts`` facts, each followed by its questions.

    At most ``max_questions`` questions follow a text (all of them for shorter ones), and rows are
    dropped past ``max_tokens`` padded tokens, so a step of long texts costs about what a step of
    short ones does. A ``multi_product`` share of product rows holds 2-3 product documents with
    disjoint fact keys in one context (their ``facts`` spread over them), questions about any of them.
    """
    rows: list[tuple[list[int], list[float]]] = []
    rng = corpus.rng
    for _ in range(batch_size):
        genre = "product" if rng.random() < product_weight else rng.choice(("profile", "preference"))
        most = language_max_facts(genre)
        n_facts = rng.randint(min(facts[0], most), min(facts[1], most))
        if multi_product > 0 and genre == "product" and rng.random() < multi_product:
            docs = corpus.group(rng.choice((2, 3)), max(1, n_facts // 2), genre="product")
            text, stated = " ".join(d.text for d in docs), [f for d in docs for f in d.facts]
        else:
            sample = corpus.sample(n_facts, genre=genre)
            text, stated = sample.text, sample.facts
        no_ctx = rng.random() < no_context_fraction
        ids = encode("<bos>" if no_ctx else f"<bos> {text}")
        weights = [0.0 if no_ctx else 1.0] * len(ids)
        for f in rng.sample(stated, min(len(stated), max_questions)):
            q = encode(f"<user> {f.question(rng)} <assistant>")
            a = encode(f"{f.value} <end>")
            ids += q + a
            weights += [1.0] * len(q) + [2.0, 1.0]  # 2.0 marks the answer token (scaled below)
        if rows and (len(rows) + 1) * max(len(ids), *(len(r[0]) for r in rows)) > max_tokens:
            break
        rows.append((ids, weights))
    width = max(len(r[0]) for r in rows)
    input_ids = torch.full((len(rows), width), encode.pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    w = torch.zeros((len(rows), width))
    for i, (ids, weights) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        mask[i, : len(ids)] = 1
        w[i, : len(ids)] = torch.tensor(weights)
    return input_ids, mask, w


def lm_loss(
    model: LlamaForCausalLM, ids: torch.Tensor, mask: torch.Tensor, w: torch.Tensor, answer_weight: float
) -> tuple[torch.Tensor, float]:
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    targets = ids[:, 1:]
    weights = w[:, 1:]
    is_answer = (weights == 2.0).float()
    weights = torch.where(is_answer.bool(), torch.full_like(weights, answer_weight), weights)
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none"
    ).view_as(targets)
    loss = (nll * weights).sum() / weights.sum()
    acc = ((logits.argmax(-1) == targets).float() * is_answer).sum() / is_answer.sum().clamp(min=1)
    return loss, acc.item()


def warm_start(model: LlamaForCausalLM, init_from: str | Path) -> None:
    """Copy an earlier base's weights into ``model``; its vocabulary must be a prefix of ours.

    The language only ever appends words, so every old token keeps its id and embedding; new
    rows keep their random initialisation.
    """
    old = LlamaForCausalLM.from_pretrained(init_from)
    n_old = old.config.vocab_size
    if n_old > model.config.vocab_size:
        raise ValueError(f"{init_from} has a larger vocabulary ({n_old}) than this language")
    state = old.state_dict()
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb[:n_old] = state.pop("model.embed_tokens.weight")
        state.pop("lm_head.weight", None)  # tied to the embeddings
        missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"model.embed_tokens.weight", "lm_head.weight"}:
        raise ValueError(f"{init_from} does not fit this architecture: {missing} {unexpected}")


def train_base(
    cfg: BaseTrainConfig, out_dir: Path, *, device: str | None = None, init_from: str | Path | None = None
) -> Path:
    """Train the tiny base (from scratch, or from ``init_from``); resumable from ``out_dir/base_ckpt.pt``.

    Returns the directory holding the final HF model + tokenizer (``out_dir/base``).
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    tokenizer = build_tokenizer()
    encode = WordEncoder(tokenizer)
    model = LlamaForCausalLM(tiny_llama_config(len(tokenizer), hidden_size=cfg.hidden_size, layers=cfg.layers))
    if init_from is not None:
        warm_start(model, init_from)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    schedule = CosineSchedule(cfg.lr, cfg.warmup, cfg.steps, floor=0.1)
    ckpt_path = out_dir / "base_ckpt.pt"
    start = 0
    if ckpt_path.exists():
        start, _ = load_checkpoint(ckpt_path, model=model, optimizer=opt, map_location=device)

    model.train()
    t0 = time.time()
    bar = tqdm(range(start, cfg.steps), desc="base", initial=start, total=cfg.steps)
    ema_acc = 0.0
    for step in bar:
        schedule.apply(opt, step)
        progress = min(1.0, cfg.curriculum_offset + step / cfg.steps)
        corpus = Corpus(step_seed(cfg.seed, step))
        ids, mask, w = qa_batch(
            corpus,
            encode,
            cfg.batch_size,
            fact_bucket(corpus.rng, max_facts_at(progress, cfg.max_facts)),
            cfg.no_context_fraction,
            cfg.product_weight,
            multi_product=cfg.multi_product,
        )
        loss, acc = lm_loss(model, ids.to(device), mask.to(device), w.to(device), cfg.answer_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema_acc = 0.95 * ema_acc + 0.05 * acc
        bar.set_postfix(loss=f"{loss.item():.3f}", answer_acc=f"{ema_acc:.3f}")
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            save_checkpoint(ckpt_path, model=model, optimizer=opt, step=step + 1, extra={"config": asdict(cfg)})
    final = out_dir / "base"
    model.eval()
    model.save_pretrained(final, safe_serialization=True)
    tokenizer.save_pretrained(final)
    (out_dir / "base_train_seconds.txt").write_text(f"{time.time() - t0:.1f}\n")
    return final
