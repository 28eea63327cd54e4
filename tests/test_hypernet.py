"""The hypernetwork and internalize(): architectures, zero init, chunking, bad input, training."""

from __future__ import annotations

import pytest
import torch

from agenthn_langgraph.errors import CheckpointError, EmptyTextError, OutOfVocabularyError, TextTooLongError
from agenthn_langgraph.hypernet.config import ChatFormat, HypernetConfig
from agenthn_langgraph.hypernet.model import Hypernetwork, token_unembeddings
from agenthn_langgraph.hypernet.train import HypernetTrainConfig, train_hypernet
from agenthn_langgraph.tiny_default.data import TinyLanguage
from agenthn_langgraph.tiny_default.language import Corpus
from agenthn_langgraph.training import load_checkpoint

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


def test_any_unknown_word_is_refused_by_name_unless_allowed(llama_engine):
    llama_engine.vocabulary_note = "Speak the little language."
    with pytest.raises(OutOfVocabularyError, match=r"'blorp'.*little language") as err:
        llama_engine.internalize("the price of zorblax is 40 . blorp !")  # one unknown word in nine
    assert isinstance(err.value, ValueError)
    with pytest.raises(OutOfVocabularyError, match=r"'sister', 'maria', 'barcelona'"):
        llama_engine.internalize("My sister Maria moved to Barcelona last spring")
    ad = llama_engine.internalize("the price of zorblax is 40 . blorp !", allow_unknown=True)
    assert ad.metadata.extra["unknown_token_fraction"] == pytest.approx(1 / 9, abs=1e-3)
    with pytest.raises(OutOfVocabularyError, match="'blorp'"):
        llama_engine.generate("what is blorp ?")
    assert isinstance(llama_engine.generate("what is blorp ?", allow_unknown=True), str)
    assert llama_engine.unknown_words("the price of zorblax is 40 .") == []


def _gate_bias(engine, value: float) -> None:
    with torch.no_grad():
        for head in engine.hypernet.heads.values():
            head.to_gate.weight.zero_()
            head.to_gate.bias.fill_(value)


def test_gated_selection_rank_follows_the_gates(tokenizer):
    engine = make_engine("llama", tokenizer, selection="gated")  # min rank 4
    n_tokens = len(tokenizer(TEXT, add_special_tokens=False)["input_ids"]) + 1  # + <bos>
    _gate_bias(engine, 3.0)  # every token's gate ~0.95: every piece is kept
    assert engine.internalize(TEXT).rank == n_tokens
    _gate_bias(engine, -3.0)  # no gate passes 0.5: the least rank
    assert engine.internalize(TEXT).rank == 4
    engine.hypernet.config.max_rank = 6
    _gate_bias(engine, 3.0)
    assert engine.internalize(TEXT).rank == 6


@pytest.mark.parametrize("stream", [True, False], ids=["recomputed-inputs", "recorded-inputs"])
@pytest.mark.parametrize("selection", ["top_r", "gated"])
def test_streamed_internalize_equals_the_full_training_forward(tokenizer, selection, stream):
    """generate() (one module at a time, selected tokens only) == forward() + select() (everything),
    whether the wide module inputs are recomputed from each MLP's input or recorded directly."""
    engine = make_engine("llama", tokenizer, selection=selection)
    engine.recorder.stream_above_bytes = 0 if stream else 2**40
    hn = engine.hypernet
    ids = torch.tensor([engine.prompts.context_ids(TEXT)])
    mask = torch.ones_like(ids)
    with engine.injector.capture_inputs() as captured:
        states = engine.base(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    with torch.no_grad():
        full = hn(states, mask, captured, token_unembeddings(engine.base, ids)).select(hn.config)
    streamed = engine.internalize(TEXT)
    for name, (a, b) in streamed.weights.items():
        torch.testing.assert_close(a, full[name][0][0, : a.shape[0]], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(b, full[name][1][0, :, : a.shape[0]], atol=1e-5, rtol=1e-5)


def test_training_pieces_and_answer_keys_equal_the_full_forward(tokenizer):
    """select_pieces() computes each kept piece and each asked key once per position (the two
    sets overlap); it must give what the everything-forward gives for a batch of texts of
    different lengths and ranks."""
    from agenthn_langgraph.hypernet.model import _gather

    engine = make_engine("llama", tokenizer, selection="gated")
    hn = engine.hypernet
    texts = [TEXT, "the price of zorblax is 40 ."]
    ids = [engine.prompts.context_ids(t) for t in texts]
    width = max(len(i) for i in ids)
    batch = torch.tensor([i + [0] * (width - len(i)) for i in ids])
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])
    also_at = torch.tensor([[3, 5, 6, -1], [2, 5, -1, -1]])  # answer positions, -1 for none
    with torch.no_grad():
        with engine.injector.capture_inputs() as captured:
            states = engine.base(input_ids=batch, attention_mask=mask, output_hidden_states=True).hidden_states
        token_out = token_unembeddings(engine.base, batch)
        pieces = hn(states, mask, captured, token_out)
        full, ranks = pieces.gated(hn.config.gate_threshold, hn.config.rank, hn.config.max_rank)
        z = hn.encode(states, mask)
        hard, ranks2, keys = hn.select_pieces(z, mask, captured.__getitem__, token_out, also_at=also_at)
    assert torch.equal(ranks, ranks2) and len(set(ranks.tolist())) > 1  # the texts keep different ranks
    for name in hn.config.targets:
        torch.testing.assert_close(hard[name][0], full[name][0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(hard[name][1], full[name][1], atol=1e-5, rtol=1e-5)
        want = _gather(pieces.a[name], also_at.clamp(min=0)) * (also_at >= 0).unsqueeze(-1)
        torch.testing.assert_close(keys[name], want, atol=1e-5, rtol=1e-5)


def test_v1_config_loads_as_top_r_with_a_prefix_context():
    cfg = HypernetConfig.from_json(
        '{"base_hidden_size": 8, "n_states": 2, "targets": {"m": [4, 8]}, "rank": 8, "window": 16}'
    )
    assert cfg.selection == "top_r" and cfg.chat == ChatFormat(context="prefix") and cfg.format_version == 1
    assert HypernetConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="adapter_tokens"):
        ChatFormat(adapter_tokens=0)


def _tiny_data():
    lang = TinyLanguage()
    return lang.examples(64, seed=1, n_facts=(1, 3)), lang.examples(8, seed=2, n_facts=(1, 3))


def _small_config(**overrides: object) -> HypernetTrainConfig:
    """A hypernetwork run small enough for a unit test (2 texts a step, width 32, one mixer layer)."""
    small = dict(
        targets=2,
        width=32,
        mixer_layers=1,
        rank=4,
        window=256,
        eval_batches=1,
        warmup=1,
        chat=ChatFormat(context="prefix"),
        distractors=(0, 2),
    )
    return HypernetTrainConfig(**{**small, **overrides})  # type: ignore[arg-type]


def test_training_is_deterministic_and_resumable(tmp_path, tokenizer):
    train, val = _tiny_data()
    cfg = _small_config(steps=2, eval_every=2, checkpoint_every=10)

    def run(out, max_steps=None):
        engine = make_engine("llama", tokenizer, nonzero=False)
        train_hypernet(engine, train, val, cfg, out, max_steps_this_run=max_steps, progress=False)
        probe = Hypernetwork.load(out / "hypernet")  # same architecture as trained
        load_checkpoint(out / "ckpt.pt", model=probe)
        return probe.state_dict()

    a = run(tmp_path / "a")
    b = run(tmp_path / "b")
    run(tmp_path / "c", max_steps=1)  # interrupted after one step ...
    c = run(tmp_path / "c")  # ... and resumed from its checkpoint
    torch.manual_seed(cfg.seed)
    from agenthn_langgraph.hypernet.train import build_hypernet

    init = build_hypernet(make_engine("llama", tokenizer, nonzero=False), cfg).state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
        torch.testing.assert_close(a[k], c[k])
    assert any(not torch.equal(a[k], init[k]) for k in a)  # training changed the weights
    best = Hypernetwork.load(tmp_path / "a" / "hypernet")  # the best-by-validation checkpoint, shipped format
    assert best.config.chat.context == "prefix" and best.config.selection == "gated"
    assert (tmp_path / "a" / "train_log.jsonl").read_text().count("\n") == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_training_can_warm_start_from_an_earlier_checkpoint(tmp_path, tokenizer, seed):
    """``init_from`` starts a new schedule from a checkpoint's weights; one of another shape or base is refused.

    One warm step at lr 1e-5 moves a weight by about 1e-5 (Adam), three steps at 1e-3 about 3e-3:
    the factor-10 bound leaves a margin of ~30x either way, whatever the seed."""
    from dataclasses import replace

    from agenthn_langgraph.hypernet.train import build_hypernet, warm_start

    train, val = _tiny_data()
    cfg = _small_config(steps=3, eval_every=3, seed=seed)
    engine = make_engine("llama", tokenizer, nonzero=False)
    first = Hypernetwork.load(train_hypernet(engine, train, val, cfg, tmp_path / "a", progress=False)).state_dict()
    torch.manual_seed(cfg.seed)
    fresh = build_hypernet(engine, cfg).state_dict()
    moved = max((first[k] - fresh[k]).abs().max().item() for k in first)
    assert moved > 0

    one_step = replace(cfg, steps=1, eval_every=1, lr=1e-5)
    out = train_hypernet(
        engine, train, val, one_step, tmp_path / "b", init_from=tmp_path / "a" / "hypernet", progress=False
    )
    warm = Hypernetwork.load(out).state_dict()
    drift = max((warm[k] - first[k]).abs().max().item() for k in first)
    assert drift < moved / 10  # it continued from the checkpoint, not from a fresh init

    wider = build_hypernet(engine, replace(cfg, width=48))
    with pytest.raises(CheckpointError, match="shape"):
        warm_start(wider, tmp_path / "a" / "hypernet")
    other_base = build_hypernet(engine, cfg)
    other_base.config.base_fingerprint = "another-base"
    with pytest.raises(CheckpointError, match="another base"):
        warm_start(other_base, tmp_path / "a" / "hypernet")
    warm_start(other_base, tmp_path / "a" / "hypernet", base_changed=True)  # a fine-tuned base: accepted
    assert all(torch.equal(v, first[k].float()) for k, v in other_base.state_dict().items())
    other_base.config.base_hidden_size += 1  # but never a base of another width
    with pytest.raises(CheckpointError, match="width"):
        warm_start(other_base, tmp_path / "a" / "hypernet", base_changed=True)
