"""The command-line entry points, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys

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


def test_eval_recall_json_has_the_documented_keys():
    proc = _agenthn("eval", "recall", "--n-docs", "12", "--seed", "99", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(report) >= REQUIRED
    assert report["n_docs"] == 12 and 0.0 <= report["adapter"] <= 1.0


def test_eval_memory_json_and_graphs():
    proc = _agenthn("eval", "memory", "--threads", "1", "--turns", "8", "--facts", "4", "--seed", "7", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(report["recall"]) == {"weight_memory", "full_context", "window", "no_memory"}
    # compaction keeps the prompt far below the whole thread's
    assert report["prompt_tokens_max"]["weight_memory"] < report["prompt_tokens_median"]["full_context"]
    drawings = _agenthn("graphs")
    assert drawings.returncode == 0, drawings.stderr
    assert drawings.stdout.count("```mermaid") == 4 and "compact --> recall_memory" in drawings.stdout
