"""Tiny random checkpoints of real architectures, with real tokenizers and chat templates.

Like peft's test matrix of tiny random models: a Llama, a Qwen2 and a Gemma2 built from their
configs (random weights, a few hundred thousand parameters), each with a byte-level BPE tokenizer
trained here on generated English (no ``<unk>``: every string is encodable) and its family's own
chat template and special tokens. Gemma's template rejects a system role, and the Llama and Gemma
checkpoints end turns with a token that is *not* the tokenizer's EOS (it is only in
``generation_config.eos_token_id``): the cases real checkpoints bring.

Nothing is downloaded. Command line::

    python -m agenthn_langgraph.testing.random_models --arch qwen2 --out /tmp/tiny-qwen2
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

# The families' published chat templates (Qwen2-Instruct, Llama-3-Instruct, Gemma-2-it).
QWEN2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)


@dataclass(frozen=True)
class Family:
    specials: tuple[str, ...]
    bos: str | None
    eos: str  # the tokenizer's EOS
    pad: str
    end_of_turn: str  # what the chat template ends a turn with
    template: str


FAMILIES = {
    "qwen2": Family(
        ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        None,
        "<|im_end|>",
        "<|endoftext|>",
        "<|im_end|>",
        QWEN2_TEMPLATE,
    ),
    "llama": Family(
        ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|pad|>"),
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|pad|>",
        "<|eot_id|>",
        LLAMA3_TEMPLATE,
    ),
    "gemma2": Family(
        ("<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"),
        "<bos>",
        "<eos>",
        "<pad>",
        "<end_of_turn>",
        GEMMA_TEMPLATE,
    ),
}
ARCHITECTURES = tuple(FAMILIES)


def english_corpus(n: int = 600, seed: int = 0) -> list[str]:
    """Generated English (contexts, questions, answers) to train a tokenizer on."""
    from ..data.english import generate_english

    out = []
    for ex in generate_english(n, seed, n_facts=(1, 8)):
        out.append(ex.context)
        out += [f"{p.question} {p.answer}." for p in ex.qa]
    return out


def train_bpe_tokenizer(arch: str, texts: Iterable[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with ``arch``'s special tokens and chat template."""
    fam = FAMILIES[arch]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(fam.specials), initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=fam.bos,
        eos_token=fam.eos,
        pad_token=fam.pad,
        additional_special_tokens=[s for s in fam.specials if s not in {fam.bos, fam.eos, fam.pad}],
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = fam.template
    fast.model_max_length = 512
    return fast


def random_model(
    arch: str,
    tokenizer: PreTrainedTokenizerFast,
    *,
    hidden_size: int = 64,
    intermediate_size: int = 128,
    layers: int = 2,
    seed: int = 0,
) -> PreTrainedModel:
    """A randomly initialised ``arch`` model sized for ``tokenizer``, with the family's end ids."""
    fam = FAMILIES[arch]
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in fam.specials}
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=ids.get(fam.bos) if fam.bos else None,
        eos_token_id=ids[fam.eos],
        pad_token_id=ids[fam.pad],
    )
    torch.manual_seed(seed)
    if arch == "llama":
        model: PreTrainedModel = LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=True))
    elif arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common, tie_word_embeddings=True))
    elif arch == "gemma2":
        model = Gemma2ForCausalLM(Gemma2Config(**common, head_dim=16, sliding_window=256))
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose from {list(FAMILIES)}")
    # every id that ends a turn, as real checkpoints declare them in generation_config.json
    end_ids = sorted({ids[fam.eos], ids[fam.end_of_turn]})
    model.generation_config = GenerationConfig(
        bos_token_id=common["bos_token_id"], eos_token_id=end_ids, pad_token_id=ids[fam.pad]
    )
    return model.eval()


def build_random_checkpoint(
    arch: str, out_dir: str | Path, *, vocab_size: int = 1024, seed: int = 0, **sizes: int
) -> Path:
    """Train a tokenizer, build a random ``arch`` model and save both to ``out_dir`` (HF format)."""
    out = Path(out_dir)
    tokenizer = train_bpe_tokenizer(arch, english_corpus(seed=seed), vocab_size)
    model = random_model(arch, tokenizer, seed=seed, **sizes)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Build a tiny random checkpoint of a real architecture (offline).")
    p.add_argument("--arch", choices=ARCHITECTURES, default="qwen2")
    p.add_argument("--out", required=True)
    p.add_argument("--vocab-size", type=int, default=1024)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--intermediate-size", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    path = build_random_checkpoint(
        a.arch,
        a.out,
        vocab_size=a.vocab_size,
        seed=a.seed,
        hidden_size=a.hidden_size,
        intermediate_size=a.intermediate_size,
        layers=a.layers,
    )
    print(f"wrote a random {a.arch} checkpoint to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
