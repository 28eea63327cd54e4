"""The command-line entry points, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

REQUIRED = {
    "n_docs",
    "chance",
    "no_memory",
    "in_context",
    "adapter",
    "composed",
    "prompt_tokens_in_context",
    "prompt_tokens_adapter",
    "internalize_ms_median",
    "adapter_bytes",
    "composed_by_n",
    "by_n_facts",
    "exact_first_words",
}


def _agenthn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agenthn_langgraph.cli", *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_demo_answers_from_the_adapter():
    proc = _agenthn("demo", "--only", "engine")
    assert proc.returncode == 0, proc.stderr
    assert "internalized in" in proc.stdout and "prompt tokens" in proc.stdout
    adapter_line = next(line for line in proc.stdout.splitlines() if line.startswith("correct:"))
    adapter_hits = int(adapter_line.split("adapter ")[1].split("/")[0])
    no_memory_hits = int(adapter_line.split("no memory ")[1].split("/")[0])
    assert adapter_hits >= 3 and no_memory_hits <= 1, proc.stdout


@pytest.mark.slow
def test_eval_recall_json_has_the_documented_keys():
    proc = _agenthn(
        "eval", "recall", "--n-docs", "12", "--seed", "99", "--json",
        "--baselines", "finetune", "--finetune-docs", "3", "--finetune-steps", "2,40",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(report) >= REQUIRED
    finetune = report["finetune"]
    assert (finetune["n_docs"], finetune["n_questions"], set(finetune["by_steps"])) == (3, 12, {"2", "40"}), finetune
    assert finetune["speedup"] > 1, finetune  # a fit of 40 steps takes longer than one forward pass
    assert report["n_docs"] == 12 and report["n_questions"] == 48
    assert set(report["composed_by_n"]) == {"2", "4", "8"} and set(report["by_n_facts"]) >= {"1", "2", "4", "8", "12"}
    # the shipped adapter beats the base alone by a wide margin even on 48 questions
    assert report["adapter"] >= report["no_memory"] + 0.5, report


def test_eval_recall_can_skip_its_extra_rows():
    # the headline rows alone, for large models on a CPU
    proc = _agenthn(
        "eval", "recall", "--n-docs", "4", "--json", "--compose", "2", "--docs-per-n-facts", "0", "--heldout-docs", "0"
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(report["composed_by_n"]) == {"2"} and report["composed"] == report["composed_by_n"]["2"], report
    assert report["by_n_facts"] == {} and report["heldout_phrasing"] == {}, report
    assert _agenthn("eval", "recall", "--compose", "0").returncode == 2  # not a count of adapters


def test_eval_recall_of_a_tiny_checkpoint_directory_needs_language_tiny():
    """A retrained tiny hypernetwork is evaluated before it is installed: --base/--hypernet plus --language tiny."""
    from agenthn_langgraph.tiny_default import CHECKPOINT_DIR

    args = ("eval", "recall", "--base", str(CHECKPOINT_DIR / "base"), "--hypernet", str(CHECKPOINT_DIR / "hypernet"))
    rows = ("--n-docs", "4", "--json", "--compose", "2", "--docs-per-n-facts", "0", "--heldout-docs", "0")
    proc = _agenthn(*args, "--language", "tiny", *rows)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["n_docs"] == 4
    unknown = _agenthn(*args, *rows)  # a directory engine has no registered language
    assert unknown.returncode != 0 and "no registered language" in unknown.stderr, unknown.stderr


def test_eval_binding_prints_one_row_per_target_module():
    proc = _agenthn("eval", "binding", "--n-docs", "30", "--pairs", "20", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(report["same_attribute"]) == len(report["same_subject"]) == 4, report  # the tiny base's 4 layers
    assert report["n_subjects"] >= 2
    assert report["n_paired"] == 20 and 0 <= report["paired_in_context"] <= 1
    assert _agenthn("eval", "binding", "--base", "no/such/dir").returncode != 0


@pytest.mark.slow
def test_eval_memory_json_and_graphs(tmp_path):
    proc = _agenthn(
        "eval", "memory", "--turns", "16,24", "--seeds", "1", "--threads", "1", "--follow-up-docs", "4",
        "--plot", str(tmp_path / "memory.png"), "--json",
        "--cartridge-budget-s", "0",  # the cartridges row: tests/test_memory_baselines.py
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    conditions = {
        "weight_memory", "text_rag", "text_rag_k3", "markdown_notes", "cartridges", "compose_all", "latest_only",
        "vanilla", "no_memory",
    }  # fmt: skip
    assert set(report["recall"]) == set(report["recall_ci"]) == set(report["prompt_tokens_median"]) == conditions
    assert set(report["recall"]["weight_memory"]) == {"16", "24"} and report["questions"] == {"16": 6, "24": 6}
    for key in ("retrieval_top1_hit", "normal_reply_rate", "thread_tokens_median", "latest_value_rate"):
        assert key in report
    lo, hi = report["recall_ci"]["weight_memory"]["24"]
    assert lo <= report["recall"]["weight_memory"]["24"] <= hi
    # weights carry what text RAG puts in the prompt: fewer tokens at question time, by a margin
    assert report["prompt_tokens_median"]["weight_memory"]["24"] < report["prompt_tokens_median"]["text_rag"]["24"]
    assert set(report["follow_up"]) == {"n", "first", "second", "fresh"}
    assert (tmp_path / "memory.png").stat().st_size > 10_000
    drawings = _agenthn("graphs")
    assert drawings.returncode == 0, drawings.stderr
    assert drawings.stdout.count("```mermaid") == 4 and "compact --> recall_memory" in drawings.stdout


@pytest.mark.parametrize("turns", ["16,-4", "16,x", ",", "0"])
def test_eval_memory_refuses_bad_lengths(turns):
    proc = _agenthn("eval", "memory", "--turns", turns)
    assert proc.returncode == 2 and "argument --turns" in proc.stderr and "positive integer" in proc.stderr


@pytest.mark.slow
def test_english_pipeline_end_to_end_on_a_random_qwen2(tmp_path):
    """data english -> train hypernet -> eval recall, on a tiny random Qwen2 with a real BPE tokenizer."""
    from agenthn_langgraph.testing.random_models import build_random_checkpoint

    base = build_random_checkpoint("qwen2", tmp_path / "qwen2")
    data, held_out = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    for path, n, seed in ((data, 400, 1), (held_out, 24, 2)):
        made = _agenthn("data", "english", "--n", str(n), "--seed", str(seed), "--facts", "1-4", "--out", str(path))
        assert made.returncode == 0, made.stderr
        assert len(path.read_text().splitlines()) == n
    out = tmp_path / "run"
    trained = _agenthn(
        "train",
        "hypernet",
        "--base",
        str(base),
        "--data",
        str(data),
        "--out",
        str(out),
        "--steps",
        "20",
        "--eval-every",
        "10",
        "--width",
        "32",
        "--mixer-layers",
        "1",
        "--rank",
        "4",
        "--window",
        "192",
        "--system",
        "Answer briefly.",
        "--quiet",
    )
    assert trained.returncode == 0, trained.stderr
    record = json.loads((out / "training.json").read_text())
    assert record["n_train"] + record["n_val"] == 400 and record["config"]["steps"] == 20
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 2
    evaluated = _agenthn(
        "eval",
        "recall",
        "--base",
        str(base),
        "--hypernet",
        str(out / "hypernet"),
        "--data",
        str(held_out),
        "--n-docs",
        "8",
        "--json",
    )
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert set(report) >= REQUIRED and report["language"] == "eval.jsonl" and report["n_docs"] == 8
    assert report["n_questions"] >= 8 and report["prompt_tokens_adapter"] < report["prompt_tokens_in_context"]


def test_bad_arguments_are_refused_with_clear_errors(tmp_path):
    bad = _agenthn("data", "english", "--n", "-3", "--seed", "1", "--out", str(tmp_path / "x.jsonl"))
    assert bad.returncode == 2 and "must be >= 0" in bad.stderr
    missing = _agenthn("eval", "recall", "--base", str(tmp_path / "nope"), "--hypernet", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no base model" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "broken.jsonl").write_text('{"context": "x", "qa": []}\n')
    broken = _agenthn("eval", "recall", "--data", str(tmp_path / "broken.jsonl"))
    assert broken.returncode == 2 and "broken.jsonl:1" in broken.stderr
