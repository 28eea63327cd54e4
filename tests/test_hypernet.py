"""The hypernetwork and internalize(): architectures, zero init, chunking, bad input, training."""

from __future__ import annotations

import pytest
import torch

from agenthn_langgraph.errors import CheckpointError, EmptyTextError, TextTooLongError
from agenthn_langgraph.hypernet.model import Hypernetwork
from agenthn_langgraph.hypernet.train import HypernetTrainConfig, train_hypernet
from agenthn_langgraph.tiny_default.language import Corpus

from .conftest import make_engine

TEXT = "zorblax is a product . the price of zorblax is 40 . zorblax is made by acme ."


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma"])
def test_internalize_on_each_architecture(arch, tokenizer):
    engine = make_engine(arch, tokenizer)
    ad = engine.internalize(TEXT)
    cfg = engine.base.config
    assert len(ad.weights) == cfg.num_hidden_layers  # every layer's down_proj
    for name, (a, b) in ad.weights.items():
        module = engine.base.get_submodule(name)
        assert a.shape == (4, module.in_features) and b.shape == (module.out_features, 4)
    assert ad.metadata.base_fingerprint == engine.fingerprint and ad.metadata.n_chunks == 1
    prompt = "what is the price of zorblax ?"
    assert not torch.allclose(engine.next_token_logits([prompt], [[ad]]), engine.next_token_logits([prompt]), atol=1e-4)


def test_generated_lora_is_zero_at_initialisation(tokenizer):
    engine = make_engine("llama", tokenizer, nonzero=False)
    ad = engine.internalize(TEXT)
    assert all(float(b.abs().max()) == 0.0 for _, b in ad.weights.values())
    prompt = "what is the price of zorblax ?"
    torch.testing.assert_close(engine.next_token_logits([prompt], [[ad]]), engine.next_token_logits([prompt]))


def test_long_text_is_chunked_and_rank_concatenated(tokenizer):
    engine = make_engine("llama", tokenizer, window=32)
    long_text = " ".join(Corpus(3).sample(6, genre="product").text for _ in range(4))
    ad = engine.internalize(long_text)
    n_tokens = len(tokenizer(long_text, add_special_tokens=False)["input_ids"])
    assert ad.metadata.n_chunks >= n_tokens // 31 > 1
    assert ad.rank == 4 * ad.metadata.n_chunks


def test_bad_text_inputs(llama_engine):
    with pytest.raises(EmptyTextError, match="empty"):
        llama_engine.internalize("")
    with pytest.raises(EmptyTextError):
        llama_engine.internalize("  \n\t ")
    with pytest.raises(TypeError, match="str"):
        llama_engine.internalize(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        llama_engine.internalize(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        llama_engine.internalize_many("a single string")
    huge = "the price of zorblax is 40 . " * 5000
    with pytest.raises(TextTooLongError, match="max_chunks"):
        llama_engine.internalize(huge)


def test_hypernet_checkpoint_roundtrip_and_refusals(tmp_path, llama_engine, tokenizer):
    path = llama_engine.hypernet.save(tmp_path / "hn")
    loaded = Hypernetwork.load(path)
    for k, v in llama_engine.hypernet.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    with pytest.raises(CheckpointError):
        Hypernetwork.load(tmp_path / "missing")
    (path / "hypernet.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        Hypernetwork.load(path)
    # a hypernetwork trained for one base is refused by another
    from agenthn_langgraph.engine import WeightMemoryModel

    other = make_engine("llama", tokenizer)
    with torch.no_grad():
        other.base.lm_head.weight.add_(1.0)  # tied: changes the fingerprint
    with pytest.raises(CheckpointError, match="another base"):
        WeightMemoryModel(other.base, tokenizer, llama_engine.hypernet)


def test_training_is_deterministic_and_resumable(tmp_path, tokenizer):
    cfg = HypernetTrainConfig(
        steps=2, groups=2, width=32, mixer_layers=1, rank=4, window=256, checkpoint_every=10, max_facts=3
    )

    def run(out, max_steps=None):
        engine = make_engine("llama", tokenizer, nonzero=False)
        train_hypernet(engine, cfg, out, max_steps_this_run=max_steps)
        return engine.hypernet.state_dict()

    a = run(tmp_path / "a")
    b = run(tmp_path / "b")
    run(tmp_path / "c", max_steps=1)  # interrupted after one step ...
    c = run(tmp_path / "c")  # ... and resumed from its checkpoint
    init = make_engine("llama", tokenizer, nonzero=False).hypernet.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
        torch.testing.assert_close(a[k], c[k])
    assert any(not torch.equal(a[k], init[k]) for k in a)  # training changed the weights
