"""Shared fixtures: small random models of several architectures, and the shipped default."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest
import torch
from transformers import (
    GemmaConfig,
    GemmaForCausalLM,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from agenthn_langgraph.engine import WeightMemoryModel
from agenthn_langgraph.hypernet.config import HypernetConfig
from agenthn_langgraph.hypernet.model import Hypernetwork
from agenthn_langgraph.tiny_default.base import build_tokenizer, tiny_llama_config

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer()


def _random_model(arch: str, vocab: int) -> torch.nn.Module:
    torch.manual_seed(0)
    common = dict(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    if arch == "llama":
        cfg = tiny_llama_config(vocab, hidden_size=64, layers=2)
        return LlamaForCausalLM(cfg).eval()
    if arch == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(**common)).eval()
    if arch == "gemma":
        return GemmaForCausalLM(GemmaConfig(**common, head_dim=16)).eval()
    raise ValueError(arch)


def make_engine(
    arch: str, tokenizer, *, nonzero: bool = True, window: int = 64, selection: str = "top_r"
) -> WeightMemoryModel:
    """A random base of ``arch`` with a random hypernetwork (B made nonzero so adapters matter).

    ``top_r`` by default, so every adapter has rank 4 whatever the random gates say.
    """
    base = _random_model(arch, len(tokenizer))
    engine = WeightMemoryModel(base, tokenizer)
    hcfg = HypernetConfig(
        base_hidden_size=base.config.hidden_size,
        n_states=base.config.num_hidden_layers + 1,
        targets=engine.injector.module_shapes(),
        width=32,
        mixer_layers=1,
        rank=4,
        window=window,
        base_fingerprint=engine.fingerprint,
        selection=selection,
    )
    torch.manual_seed(1)
    hn = Hypernetwork(hcfg)
    if nonzero:
        with torch.no_grad():
            for head in hn.heads.values():
                head.to_b.weight.normal_(std=0.003)
                head.to_gate.bias.fill_(2.0)
    return WeightMemoryModel(base, tokenizer, hn.eval())


@pytest.fixture(scope="session")
def llama_engine(tokenizer) -> WeightMemoryModel:
    return make_engine("llama", tokenizer)


@pytest.fixture(scope="session")
def random_checkpoints(tmp_path_factory) -> dict[str, str]:
    """Tiny random Llama, Qwen2 and Gemma2 checkpoints with trained byte-level BPE tokenizers and
    their families' real chat templates (Gemma's has no system role)."""
    from agenthn_langgraph.testing.random_models import ARCHITECTURES, build_random_checkpoint

    root = tmp_path_factory.mktemp("random-checkpoints")
    return {arch: str(build_random_checkpoint(arch, root / arch)) for arch in ARCHITECTURES}


@pytest.fixture(scope="session")
def default_model() -> WeightMemoryModel:
    from agenthn_langgraph import load_default

    return load_default()


class ProcessGlobalPlan:
    """A deliberately broken stand-in for an injector's plan ContextVar: one value for the whole
    process, as a naive "active adapter" attribute would be. The isolation tests swap it in to show
    that they catch a leaking injector (same ``get`` / ``set`` / ``reset`` API as a ContextVar)."""

    def __init__(self) -> None:
        self.value: object = None

    def get(self) -> object:
        return self.value

    def set(self, value: object) -> object:
        previous, self.value = self.value, value
        return previous

    def reset(self, token: object) -> None:
        self.value = token
