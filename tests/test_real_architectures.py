"""Real architectures, real tokenizers, real chat templates: the engine and trainer are not tiny-only.

The matrix (see ``random_checkpoints`` in conftest): tiny random Llama, Qwen2 and Gemma2 models
built from their configs, each with a byte-level BPE tokenizer trained on generated English (no
``<unk>``) and its family's published chat template. Gemma's template rejects a system role;
Llama's and Gemma's turns end with a token that is not the tokenizer's EOS (only in
``generation_config.eos_token_id``).
"""

from __future__ import annotations

import json
import time

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from agenthn_langgraph.data import QAExample, QAPair
from agenthn_langgraph.data.english import generate_english
from agenthn_langgraph.engine import WeightMemoryModel
from agenthn_langgraph.errors import CheckpointError, ModelNotFoundError
from agenthn_langgraph.hypernet.batching import tokenize_example
from agenthn_langgraph.hypernet.config import ChatFormat, HypernetConfig
from agenthn_langgraph.hypernet.model import Hypernetwork
from agenthn_langgraph.hypernet.train import HypernetTrainConfig, train_hypernet
from agenthn_langgraph.testing.random_models import FAMILIES, english_corpus, train_bpe_tokenizer

from .live_memory import LivePeak

ARCHS = ["llama", "qwen2", "gemma2"]
SISTER = QAExample(
    context="User: My sister lives in Salt Lake City.\nAssistant: Nice!",
    qa=[QAPair(question="Where does my sister live?", answer="Salt Lake City", key="user/sister_city")],
)


@pytest.mark.parametrize("arch", ARCHS)
def test_prompts_follow_each_family_template(arch, random_checkpoints):
    engine = WeightMemoryModel.from_pretrained(random_checkpoints[arch], device="cpu")
    end_of_turn = engine.tokenizer.convert_tokens_to_ids(FAMILIES[arch].end_of_turn)
    assert end_of_turn in engine.end_ids  # from generation_config, not only the tokenizer's EOS
    # a system message reaches every template: folded into the first user turn where there is no system role
    text = engine.render([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert "Be brief." in text and text.index("Be brief.") < text.index("Hi")
    if arch == "gemma2":
        assert "system" not in text
    # the answer is the assistant's tokens through the end of turn, and each of its tokens is found in the text
    tok = tokenize_example(SISTER, engine.prompts)
    qa = tok.qa[0]
    assert qa.answer[-1] == end_of_turn and engine.tokenizer.decode(qa.answer[:-1]).strip() == "Salt Lake City"
    assert len(qa.answer) > 3  # several sub-word tokens
    assert all(p >= 0 for p in qa.copies[:-1]) and qa.copies[-1] == -1
    copied = engine.tokenizer.decode([tok.context[p] for p in qa.copies[:-1]])
    assert copied.replace(" ", "") == "SaltLakeCity"
    teacher = engine.prompts.teacher_ids(SISTER.context, qa.question)
    assert len(teacher) > len(qa.student) + len(tok.context) // 2  # the text is in the teacher's prompt
    assert engine.tokenizer.decode(teacher).count("Salt Lake City") == 1


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_multi_token_answer_is_decoded_whole_and_stops_at_the_end_of_turn(arch, random_checkpoints, tmp_path):
    """A hypernetwork fitted to one text: its adapter makes the random base say the whole
    multi-token answer and end the turn with the template's end-of-turn id."""
    base = random_checkpoints[arch]
    cfg = HypernetTrainConfig(
        steps=60,
        targets=1,
        questions_per_text=1,
        distractors=(0,),
        width=32,
        mixer_layers=1,
        rank=4,
        window=64,
        eval_every=20,
        eval_batches=1,
        warmup=5,
        lr=3e-3,
        kl_weight=0.0,
    )
    best = train_hypernet(
        WeightMemoryModel.from_pretrained(base, device="cpu"), [SISTER], [SISTER], cfg, tmp_path, progress=False
    )
    engine = WeightMemoryModel.from_pretrained(base, best, device="cpu")
    adapter = engine.internalize(SISTER.context)
    events = list(engine.stream("Where does my sister live?", adapters=[adapter], max_new_tokens=20))
    assert "".join(e.text for e in events) == "Salt Lake City"
    assert events[-1].finish_reason == "stop" and events[-1].output_tokens < 20
    assert engine.generate("Where does my sister live?", adapters=[adapter], max_new_tokens=20) == "Salt Lake City"
    assert engine.generate("Where does my sister live?", max_new_tokens=20) != "Salt Lake City"


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_trainer_lowers_validation_loss_on_generated_english(arch, random_checkpoints, tmp_path):
    train = generate_english(300, seed=1, n_facts=(1, 4))
    val = generate_english(24, seed=2, n_facts=(1, 4))
    cfg = HypernetTrainConfig(
        steps=40,
        targets=4,
        questions_per_text=2,
        distractors=(0, 2),
        width=32,
        mixer_layers=1,
        rank=4,
        window=192,
        eval_every=10,
        eval_batches=2,
        warmup=5,
        lr=2e-3,
        chat=ChatFormat(system="Answer briefly."),
    )
    engine = WeightMemoryModel.from_pretrained(random_checkpoints[arch], device="cpu")
    best = train_hypernet(engine, train, val, cfg, tmp_path, progress=False)
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    losses = [r["val"]["loss"] for r in log]
    # measured over seeds 0-2 on all three architectures: the last evaluation (step 40) is 0.14-0.54
    # below the first (step 10; the loss is ~18, most of it KL to a random teacher); required: 0.07
    assert losses[-1] < losses[0] - 0.07, losses
    loaded = Hypernetwork.load(best)
    assert loaded.config.chat.system == "Answer briefly." and loaded.config.selection == "gated"
    assert set(loaded.config.targets) == set(engine.injector.target_modules)


def test_other_target_modules_and_unknown_ones(random_checkpoints):
    engine = WeightMemoryModel.from_pretrained(
        random_checkpoints["qwen2"], device="cpu", targets=["mlp.down_proj", "self_attn.o_proj"]
    )
    assert len(engine.injector.target_modules) == 2 * engine.base.config.num_hidden_layers
    with pytest.raises(ValueError, match="no target module"):
        WeightMemoryModel.from_pretrained(random_checkpoints["qwen2"], device="cpu", targets=["mlp.nope"])


def test_missing_paths_fail_fast_and_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="no base model") as err:
        WeightMemoryModel.from_pretrained(tmp_path / "nope")
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, CheckpointError)
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE"):
        WeightMemoryModel.from_pretrained("some-org/some-model")  # a hub id: never downloaded offline
    assert time.perf_counter() - t0 < 2.0  # no network retries


@pytest.mark.parametrize("layers", [4, 12])
def test_internalize_memory_does_not_grow_with_depth(layers):
    """Bound: internalize's live tensors stay under 4 x tokens x intermediate x 4 bytes -- one MLP's
    activations with slack -- at any depth. Keeping every layer's down_proj input would alone take
    layers x tokens x intermediate x 4 bytes (and its pieces as much again): 4x-12x the bound here."""
    tok = train_bpe_tokenizer("llama", english_corpus(60), 512)
    d, inter = 64, 4096
    base = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=d,
            intermediate_size=inter,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    ).eval()
    shapes = {f"model.layers.{i}.mlp.down_proj": (inter, d) for i in range(layers)}
    probe = WeightMemoryModel(base, tok)
    hn = Hypernetwork(
        HypernetConfig(
            base_hidden_size=d,
            n_states=layers + 1,
            targets=shapes,
            width=32,
            mixer_layers=1,
            rank=8,
            window=1024,
            base_fingerprint=probe.fingerprint,
            selection="top_r",  # random gates would keep most tokens: measure the overhead, not the adapter
        )
    )
    engine = WeightMemoryModel(base, tok, hn)
    engine.recorder.stream_above_bytes = 0  # what a long text on a big model does: always stream here
    text = tok.decode(engine.encode(" ".join(english_corpus(30)))[:600])
    n_tokens = len(engine.prompts.context_ids(text))
    with LivePeak(preexisting=[*base.parameters(), *hn.parameters()]) as mem:
        adapter = engine.internalize(text)
    bound = 4 * n_tokens * inter * 4 + 2 * adapter.nbytes
    print(f"\nlayers={layers} tokens={n_tokens} peak={mem.peak / 2**20:.1f} MiB bound={bound / 2**20:.1f} MiB")
    assert adapter.rank == 8 and mem.peak < bound, (mem.peak / 2**20, bound / 2**20)
    assert layers * n_tokens * inter * 4 >= bound or layers == 4  # the old way's inputs alone would not fit


def _nonzero_hypernet(engine: WeightMemoryModel, chat: ChatFormat, seed: int = 0) -> Hypernetwork:
    """A hypernetwork with random (non-zero) value heads, so its adapters change the outputs."""
    from agenthn_langgraph.hypernet.train import build_hypernet

    torch.manual_seed(seed)
    hn = build_hypernet(engine, HypernetTrainConfig(width=32, mixer_layers=1, rank=4, window=192, chat=chat))
    with torch.no_grad():
        for name, p in hn.named_parameters():
            if "to_b" in name or "to_a" in name:
                p.normal_(0, 0.5)
    return hn


@pytest.mark.parametrize("arch", ARCHS)
def test_answer_only_student_over_a_kv_cache_equals_the_masked_full_pass(arch, random_checkpoints):
    """The cheap training path (prompt once into a KV cache, only the answer with the adapter) gives
    the same logits, to float precision, as the whole sequence with the adapter masked to the
    answer, for every family (Gemma2's sliding window and soft-capping included)."""
    import random

    from agenthn_langgraph.hypernet.batching import ExamplePool, make_batch
    from agenthn_langgraph.hypernet.features import read_texts, student_answer_only, student_full
    from agenthn_langgraph.hypernet.train import student_plan, value_slots

    engine = WeightMemoryModel.from_pretrained(random_checkpoints[arch], device="cpu")
    chat = ChatFormat(system="Answer briefly.", adapter_on_prompt=False)
    engine.prompts.chat = chat
    hn = _nonzero_hypernet(engine, chat)
    pool = ExamplePool(generate_english(40, seed=3, n_facts=(1, 4)), engine.prompts, window=192)
    b = make_batch(
        pool, random.Random(0), targets=4, questions_per_text=2, distractors=(2,), same_genre=0.5, pad_id=0, in_batch=2
    )
    with torch.no_grad():
        states, captured = read_texts(engine, b.text_ids, b.text_mask)
        z = hn.encode(states, b.text_mask)
        hard, _, _ = hn.select_pieces(z, b.text_mask, captured.__getitem__, None, also_at=value_slots(b.value_mask)[0])
        q = len(b.compose)
        order = torch.arange(q)
        plan = student_plan(None, hard, b, ["hard"] * q, n_targets=b.n_targets)
        rows = b.student_pos[:, 0]
        masked = torch.zeros(q, b.student_ids.shape[1])
        masked[b.student_pos[:, 0], b.student_pos[:, 1]] = 1.0
        full, q_full = student_full(engine, b, plan.at_positions(masked), order, rows, b.student_pos[:, 1])
        cached, q_cached = student_answer_only(engine, b, plan, order, rows, b.chunk_pos[:, 1])
        plain, _ = student_full(
            engine, b, plan.at_positions(torch.zeros_like(masked)), order, rows, b.student_pos[:, 1]
        )
    assert torch.allclose(full, cached, atol=1e-4), (full - cached).abs().max()
    assert (full - plain).abs().max() > 1e-2  # the adapter does act on the answer
    for name in q_full:
        assert torch.allclose(q_full[name], q_cached[name], atol=1e-4)


def test_layers_to_transform_and_answer_only_generation(random_checkpoints, tmp_path):
    """A hypernetwork for some layers only loads back onto exactly those layers; one trained for
    the answer only leaves the prompt's KV cache as the base's (generation equals a prompt pass on
    the base, then the adapter from the last prompt token on)."""
    engine = WeightMemoryModel.from_pretrained(random_checkpoints["llama"], device="cpu", layers=[1])
    assert engine.injector.target_modules == ["model.layers.1.mlp.down_proj"]
    chat = ChatFormat(system="Answer briefly.", adapter_on_prompt=False)
    _nonzero_hypernet(engine, chat).save(tmp_path / "hn")
    loaded = WeightMemoryModel.from_pretrained(random_checkpoints["llama"], tmp_path / "hn", device="cpu")
    assert loaded.injector.target_modules == ["model.layers.1.mlp.down_proj"]
    assert loaded.chat_format.adapter_on_prompt is False
    adapter = loaded.internalize(SISTER.context)
    assert set(adapter.weights) == {"model.layers.1.mlp.down_proj"}
    ids = loaded.encode(loaded.render("Where does my sister live?"))
    with_adapter = loaded.generate_ids([ids], [[adapter]], max_new_tokens=6)
    # by hand: the base over the prompt but its last token, then the adapter on everything after
    base, injector = loaded.base, loaded.injector
    with torch.no_grad():
        cache = base(input_ids=torch.tensor([ids[:-1]]), use_cache=True).past_key_values
        token, out = ids[-1], []
        plan = injector.plan_for([adapter])
        for step in range(6):
            with injector.use_plan(plan):
                res = base(
                    input_ids=torch.tensor([[token]]),
                    past_key_values=cache,
                    position_ids=torch.tensor([[len(ids) - 1 + step]]),
                    use_cache=True,
                )
            cache, token = res.past_key_values, int(res.logits[0, -1].argmax())
            if token in loaded.end_ids:
                break
            out.append(token)
    assert with_adapter == [loaded.tokenizer.decode(out, skip_special_tokens=True).strip()]
    assert with_adapter != loaded.generate_ids([ids], max_new_tokens=6)  # the adapter changes the answer
    # next_token_logits applies it at the last position only, as generation does
    logits = loaded.next_token_logits(["Where does my sister live?"], [[adapter]])
    with torch.no_grad():
        last = base(input_ids=torch.tensor([ids[:-1]]), use_cache=True).past_key_values
        with injector.use_plan(plan):
            ref = base(input_ids=torch.tensor([ids[-1:]]), past_key_values=last, use_cache=True).logits[0, -1]
    assert torch.allclose(logits[0], ref, atol=1e-4)
