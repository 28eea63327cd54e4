"""`agenthn convert dtype`: a trained checkpoint halved to bf16 (how SmolLM2's is committed), with
its run's record, still making the same adapters up to bf16 rounding."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from agenthn_langgraph.cli import DEMO_TEXT, main
from agenthn_langgraph.engine import WeightMemoryModel
from agenthn_langgraph.tiny_default import CHECKPOINT_DIR


def test_a_bf16_copy_is_half_the_size_keeps_the_record_and_makes_the_same_adapters(tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(CHECKPOINT_DIR / "hypernet", run / "hypernet")
    (run / "runs.jsonl").write_text(
        json.dumps({"command": "agenthn train hypernet ...", "cpu_seconds_this_run": 1.5}) + "\n"
    )
    log = {
        "step": 5,
        "questions": 40,
        "seconds": 2.0,
        "cpu_seconds": 3.0,
        "best": True,
        "val": {"acc_hard": 0.5, "loss": 1.0},
    }
    (run / "train_log.jsonl").write_text(json.dumps(log) + "\n")
    out = tmp_path / "bf16"
    assert main(["convert", "dtype", str(run / "hypernet"), "--out", str(out), "--note", "ship test: 0.41"]) == 0

    def size(d: Path) -> int:
        return (d / "hypernet.safetensors").stat().st_size

    assert 0.45 < size(out) / size(run / "hypernet") < 0.55
    record = json.loads((out / "training.json").read_text())
    assert record["dtype"] == "bfloat16" and record["note"] == "ship test: 0.41"
    assert record["runs"][0]["cpu_seconds_this_run"] == 1.5 and record["log"][0]["val_acc_hard"] == 0.5

    full = WeightMemoryModel.from_pretrained(CHECKPOINT_DIR / "base", run / "hypernet")
    half = WeightMemoryModel.from_pretrained(CHECKPOINT_DIR / "base", out)
    a, b = full.internalize(DEMO_TEXT), half.internalize(DEMO_TEXT)
    assert a.weights.keys() == b.weights.keys()
    for name, (a_a, b_a) in a.weights.items():  # the low-rank update each adapter adds, compared
        delta_a, delta_b = b_a @ a_a, b.weights[name][1] @ b.weights[name][0]
        assert torch.linalg.norm(delta_a - delta_b) <= 0.02 * torch.linalg.norm(delta_a), name


def test_it_refuses_to_overwrite_its_source(tmp_path: Path):
    shutil.copytree(CHECKPOINT_DIR / "hypernet", tmp_path / "hypernet")
    with pytest.raises(ValueError, match="--out"):
        main(["convert", "dtype", str(tmp_path / "hypernet"), "--out", str(tmp_path / "hypernet")])
