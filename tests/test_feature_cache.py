"""The feature cache: a training step on cached features equals the live step, and the cache on disk
survives being cut off, refuses what it was not built for, and respects its size bound.

Checkpoints: tiny random Llama, Qwen2 and Gemma2 models with four layers, of which the top two are
adapted, so the student's pass starts at a middle layer over a cached KV cache (the case the
shortcut must get right: masks, rotary positions, sliding windows, the shared prompt prefix).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from agenthn_langgraph.data.english import generate_english
from agenthn_langgraph.data.qa import write_jsonl
from agenthn_langgraph.engine import WeightMemoryModel
from agenthn_langgraph.errors import CheckpointError
from agenthn_langgraph.hypernet import feature_cache as fc
from agenthn_langgraph.hypernet.config import ChatFormat
from agenthn_langgraph.hypernet.features import LiveFeatures
from agenthn_langgraph.hypernet.train import HypernetTrainConfig, build_hypernet, forward_step, prepare_run
from agenthn_langgraph.testing.random_models import build_random_checkpoint

ARCHS = ["llama", "qwen2", "gemma2"]
CHAT = ChatFormat(system="Answer briefly.", adapter_on_prompt=False, answer_prefix=" ")
TRAIN = generate_english(60, seed=1, n_facts=(1, 4))
LOSS_BOUND = 1e-3  # cached vs live step; measured agreement 6e-5 on all three families
VAL = generate_english(12, seed=2, n_facts=(1, 4))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("four-layer")
    return {arch: build_random_checkpoint(arch, root / arch, layers=4) for arch in ARCHS}


def _config(**changes: object) -> HypernetTrainConfig:
    base = dict(steps=5, targets=4, questions_per_text=2, distractors=(0, 2), width=32, mixer_layers=1, rank=4,
                window=192, eval_batches=2, chat=CHAT, kl_weight=0.0, soft_and_hard="hard", in_batch_distractors=2,
                read_layers=(0, 2, 4))  # fmt: skip
    base.update(changes)
    return HypernetTrainConfig(**base)  # type: ignore[arg-type]


def _engine(path: Path, layers: list[int] | None = None) -> WeightMemoryModel:
    return WeightMemoryModel.from_pretrained(path, device="cpu", layers=[2, 3] if layers is None else layers)


@pytest.mark.parametrize("arch", ARCHS)
def test_a_step_on_cached_features_equals_the_live_step(arch: str, checkpoints: dict[str, Path], tmp_path: Path):
    engine = _engine(checkpoints[arch])
    cfg = _config()
    run = prepare_run(engine, TRAIN, VAL, cfg, feature_cache=tmp_path / "fc", progress=False)
    torch.manual_seed(0)
    with torch.no_grad():  # non-zero value heads, so the adapter changes what the student says
        for p in run.hypernet.parameters():
            if p.ndim > 1:
                p.normal_(0, 0.3)
    live = LiveFeatures(engine, run.hypernet.config)
    params = [p for p in run.hypernet.parameters() if p.requires_grad]
    for step in range(3):
        b = run.batch(step)
        out_live, out_cached = (
            forward_step(run.hypernet, b, cfg, live),
            forward_step(run.hypernet, b, cfg, run.features),
        )
        g_live = torch.autograd.grad(out_live.loss, params, allow_unused=True)
        g_cached = torch.autograd.grad(out_cached.loss, params, allow_unused=True)
        pairs = [(x, y) for x, y in zip(g_live, g_cached, strict=True) if x is not None]
        rel = torch.sqrt(sum(((x - y) ** 2).sum() for x, y in pairs) / sum((x**2).sum() for x, _ in pairs))
        # measured on the three families, steps 0-2: losses agree to 6e-5 and gradients to 0.6% (fp16 storage);
        # a cache read from the wrong layer or position is off by whole units
        assert abs(out_live.loss.item() - out_cached.loss.item()) < LOSS_BOUND, (out_live.loss, out_cached.loss)
        assert out_live.metrics["ce_hard"] == pytest.approx(out_cached.metrics["ce_hard"], abs=1e-3)
        assert rel < 0.02, rel


def test_the_student_shortcut_would_be_caught_starting_one_layer_late(checkpoints: dict[str, Path], tmp_path: Path):
    """The comparison above can fail: the same step with the student's pass started a layer too
    late (a wrong cache layout) misses its bound (measured: 0.0097 off, ten times the bound, on a
    random model whose loss is mostly the auxiliary terms)."""
    engine = _engine(checkpoints["llama"])
    cfg = _config()
    run = prepare_run(engine, TRAIN, VAL, cfg, feature_cache=tmp_path / "fc", progress=False)
    with torch.no_grad():
        for p in run.hypernet.parameters():
            if p.ndim > 1:
                p.normal_(0, 0.3)
    from agenthn_langgraph.hypernet.features import DecoderTop

    broken = DecoderTop(engine.base, 3)
    keep = run.features.top
    run.features.top = broken

    def skip_layer(keys, values):  # noqa: ANN001, ANN202 - the stand-in's signature
        return DecoderTop.cache(broken, keys[1:], values[1:])

    broken.cache = skip_layer  # type: ignore[method-assign]
    b = run.batch(0)
    wrong = forward_step(run.hypernet, b, cfg, run.features).loss.item()
    run.features.top = keep
    right = forward_step(run.hypernet, b, cfg, LiveFeatures(engine, run.hypernet.config)).loss.item()
    assert abs(wrong - right) > 5 * LOSS_BOUND, (wrong, right)


def _arrays(directory: Path) -> dict[str, np.ndarray]:
    return {p.stem: np.load(p) for p in sorted(directory.glob("*.npy"))}


def test_a_build_cut_off_resumes_to_the_same_cache(checkpoints: dict[str, Path], tmp_path: Path, monkeypatch):
    engine = _engine(checkpoints["qwen2"])
    config = build_hypernet(engine, _config()).config
    engine.prompts.chat = CHAT
    fresh = fc.FeatureCache.open_or_build(engine, config, TRAIN, tmp_path / "fresh", batch_tokens=256, progress=False)

    calls = {"n": 0}
    real = fc._Builder._question_batch

    def dies_after_two(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt("the machine went away")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(fc._Builder, "_question_batch", dies_after_two)
    monkeypatch.setattr(fc, "_SAVE_EVERY", 0.0)  # record progress after every batch
    with pytest.raises(KeyboardInterrupt):
        fc.FeatureCache.open_or_build(engine, config, TRAIN, tmp_path / "cut", batch_tokens=256, progress=False)
    (partial,) = (tmp_path / "cut").iterdir()
    manifest = json.loads((partial / fc.MANIFEST).read_text())
    assert manifest["texts_done"] > 0 and manifest["questions_done"] > 0 and not manifest["complete"]
    with pytest.raises(CheckpointError, match="did not finish"):
        fc.FeatureCache.open(partial)
    monkeypatch.setattr(fc._Builder, "_question_batch", real)
    resumed = fc.FeatureCache.open_or_build(engine, config, TRAIN, tmp_path / "cut", batch_tokens=256, progress=False)
    assert resumed.directory == partial and resumed.manifest["complete"]
    a, b = _arrays(fresh.directory), _arrays(partial)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_a_cache_refuses_other_layouts_and_data_get_their_own(checkpoints: dict[str, Path], tmp_path: Path):
    engine = _engine(checkpoints["llama"])
    engine.prompts.chat = CHAT
    config = build_hypernet(engine, _config()).config
    cache = fc.FeatureCache.open_or_build(engine, config, TRAIN, tmp_path, progress=False)
    other_reads = build_hypernet(engine, _config(read_layers=(0, 4))).config
    with pytest.raises(CheckpointError, match="another layout"):
        cache.check_matches(engine, other_reads)
    other_layers = _engine(checkpoints["llama"], layers=[1, 2, 3])
    with pytest.raises(CheckpointError, match="another layout"):
        cache.check_matches(other_layers, build_hypernet(other_layers, _config()).config)
    with pytest.raises(CheckpointError, match="another base"):
        cache.check_matches(_engine(checkpoints["qwen2"]), config)
    other_data = fc.FeatureCache.open_or_build(engine, config, TRAIN[:30], tmp_path, progress=False)
    assert other_data.directory != cache.directory and other_data.n_examples == 30


def test_the_size_bound_refuses_before_anything_is_written(checkpoints: dict[str, Path], tmp_path: Path):
    engine = _engine(checkpoints["llama"])
    engine.prompts.chat = CHAT
    config = build_hypernet(engine, _config()).config
    with pytest.raises(CheckpointError, match=r"GiB, above the bound"):
        fc.FeatureCache.open_or_build(engine, config, TRAIN, tmp_path / "fc", max_bytes=1000, progress=False)
    assert not (tmp_path / "fc").exists()


def test_recomputed_module_inputs_equal_recorded_ones(checkpoints: dict[str, Path]):
    engine = _engine(checkpoints["gemma2"])
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with engine.recorder.recording(n_tokens=10**9):  # small pass: inputs recorded directly
        engine.base(input_ids=ids)
        direct = {n: engine.recorder.get(n).clone() for n in engine.injector.target_modules}
    with engine.recorder.recording(n_tokens=None):  # streaming: the MLP's inputs, recomputed
        engine.base(input_ids=ids)
        for name, x in direct.items():
            assert torch.allclose(engine.recorder.input_from(name, engine.recorder.source(name)), x, atol=1e-6)
    engine.recorder.clear()


def test_profile_prints_phases_and_saves_nothing(checkpoints: dict[str, Path], tmp_path: Path):
    data = tmp_path / "data.jsonl"
    write_jsonl(TRAIN, data)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "agenthn_langgraph.cli", "train", "hypernet", "--base", str(checkpoints["llama"]),
           "--data", str(data), "--out", str(out), "--layers", "2-3", "--read-layers", "0,2,4", "--answer-only",
           "--kl-weight", "0", "--soft-and-hard", "hard", "--in-batch-distractors", "2", "--width", "32",
           "--mixer-layers", "1", "--batch-texts", "4", "--questions-per-text", "2", "--window", "192",
           "--val-fraction", "0.2", "--feature-cache", str(tmp_path / "fc"), "--profile", "2",
           "--profile-warmup", "1", "--json", "--quiet"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["steps"] == 2 and report["questions_per_step"] > 0
    assert {"text_reads", "hypernetwork", "student_answer", "backward", "optimizer"} <= set(report["cpu_s"])
    assert report["questions_per_cpu_second"] > 0 and report["peak_rss_bytes"] > 0
    assert report["config"]["feature_cache"] is True and report["config"]["read_layers"] == [0, 2, 4]
    assert not (out / "ckpt.pt").exists() and not (out / "hypernet").exists()
