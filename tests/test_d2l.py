"""Doc-to-LoRA checkpoints: conversion, parity with the reference implementation, and the agent on one.

The golden values in ``tests/fixtures/d2l_reference/golden.safetensors`` were made by running the
reference's own modules (``tests/fixtures/d2l_reference/make_fixture.py``; its README says how)
on a tiny random configuration; ``tiny_checkpoint.bin`` is the checkpoint it saved, pickled as the
reference saves its released ones.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from agenthn_langgraph.engine import WeightMemoryModel, base_fingerprint
from agenthn_langgraph.errors import CheckpointError, UntrustedCheckpointError
from agenthn_langgraph.hypernet.config import HypernetConfig
from agenthn_langgraph.hypernet.d2l import (
    KNOWN_CONTEXT_AFFIXES,
    D2LHypernetwork,
    context_ids,
    convert_d2l_checkpoint,
    split_chunks,
)
from agenthn_langgraph.hypernet.model import Hypernetwork

FIXTURE = Path(__file__).parent / "fixtures" / "d2l_reference"
CHECKPOINT = FIXTURE / "tiny_checkpoint.bin"


def _golden() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(FIXTURE / "golden.safetensors"), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a dict
        return tensors, f.metadata()


@pytest.fixture(scope="module")
def golden() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    return _golden()


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture's base: our tiny random gemma2 (3 layers) with the reference's gemma chat template."""
    from transformers import AutoTokenizer

    from agenthn_langgraph.testing.random_models import build_random_checkpoint

    out = build_random_checkpoint("gemma2", tmp_path_factory.mktemp("d2l") / "base", layers=3)
    tok = AutoTokenizer.from_pretrained(out)
    template = (FIXTURE / "chat_templates" / "gemma-2-2b-it.jinja").read_text()
    tok.chat_template = template.replace("    ", "").replace("\n", "")  # as the reference's get_tokenizer does
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def converted(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory, golden) -> Path:
    out = tmp_path_factory.mktemp("d2l") / "hypernet"
    with pytest.warns(UserWarning, match="source you trust"):
        convert_d2l_checkpoint(
            CHECKPOINT, tiny_base, out, trust_pickle=True, chunk_tokens=int(golden[1]["chunk_tokens"])
        )
    return out


@pytest.fixture(scope="module")
def engine(tiny_base: Path, converted: Path) -> WeightMemoryModel:
    return WeightMemoryModel.from_pretrained(tiny_base, hypernet=converted, device="cpu")


def test_fixture_is_small_and_base_is_the_one_it_was_made_on(engine: WeightMemoryModel, golden) -> None:
    assert (FIXTURE / "golden.safetensors").stat().st_size < 200_000
    assert base_fingerprint(engine.base) == golden[1]["base_fingerprint"]


def test_unpickling_needs_explicit_trust(tiny_base: Path, tmp_path: Path) -> None:
    with pytest.raises(UntrustedCheckpointError, match="--trust-pickle"):
        convert_d2l_checkpoint(CHECKPOINT, tiny_base, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_converter_refuses_foreign_globals(tiny_base: Path, tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    bad = tmp_path / "bad.bin"
    torch.save({"hypernet_config": Evil()}, bad, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CheckpointError, match="refused"):
            convert_d2l_checkpoint(bad, tiny_base, tmp_path / "out", trust_pickle=True)
    assert not (tmp_path / "pwned").exists()


def test_converted_directory_is_safetensors_and_json(converted: Path) -> None:
    assert sorted(p.name for p in converted.iterdir()) == ["hypernet.safetensors", "hypernet_config.json"]
    cfg = HypernetConfig.from_json((converted / "hypernet_config.json").read_text())
    assert cfg.kind == "d2l" and cfg.d2l is not None
    assert (cfg.d2l.rank, cfg.d2l.lora_alpha, cfg.n_states) == (4, 16.0, 3)  # alpha = 2 r^1.5
    assert list(cfg.targets) == [f"model.layers.{i}.mlp.down_proj" for i in range(3)]
    assert isinstance(Hypernetwork.load(converted), D2LHypernetwork)
    assert HypernetConfig.from_json(cfg.to_json()) == cfg


def test_old_configs_load_as_the_pieces_kind() -> None:
    root = Path(__file__).parents[1] / "agenthn_langgraph" / "tiny_default" / "checkpoint" / "hypernet"
    d = json.loads((root / "hypernet_config.json").read_text())
    d.pop("kind", None)
    assert HypernetConfig.from_json(json.dumps(d)).kind == "pieces"
    with pytest.raises(CheckpointError):
        HypernetConfig.from_json(json.dumps({**d, "kind": "d2l"}))  # d2l without its settings


def test_context_ids_and_chunks_match_the_reference(engine: WeightMemoryModel, golden) -> None:
    g, meta = golden
    hn = engine.hypernet
    docs = json.loads(meta["docs"])
    chunks = []
    for i, doc in enumerate(docs):
        ids = context_ids(engine.tokenizer, doc, hn.settings)
        assert ids == g[f"doc{i}.ids"].tolist()
        chunks += hn.chunk(engine.tokenizer, doc)
    rows = [row[m.bool()].tolist() for row, m in zip(g["ctx_ids"], g["ctx_mask"], strict=True)]
    assert chunks == rows
    assert [len(hn.chunk(engine.tokenizer, d)) for d in docs] == g["n_chunks"].tolist()


def test_split_chunks_rule() -> None:
    assert split_chunks(list(range(5)), None, [9], [8]) == [[0, 1, 2, 3, 4]]
    assert split_chunks(list(range(7)), 3, [9], [8]) == [[0, 1, 2, 8], [9, 3, 4, 5, 8], [9, 6]]


def test_generated_loras_match_the_reference(engine: WeightMemoryModel, golden) -> None:
    g, _ = golden
    hn = engine.hypernet
    with torch.no_grad():
        a, b = hn(hn.features(engine.base, g["ctx_ids"], g["ctx_mask"]), g["ctx_mask"])
    torch.testing.assert_close(a, g["chunks.down_proj.A"], atol=1e-5, rtol=0)
    torch.testing.assert_close(b, g["chunks.down_proj.B"], atol=1e-5, rtol=0)
    assert g["chunks.down_proj.B"].abs().max() > 0.01  # not the zero LoRA of an untrained init


def test_internalized_adapters_match_the_reference_combination(engine: WeightMemoryModel, golden) -> None:
    g, meta = golden
    docs = json.loads(meta["docs"])
    adapters = engine.internalize_many(docs)
    r = engine.hypernet.settings.rank
    for i, (adapter, n) in enumerate(zip(adapters, g["n_chunks"].tolist(), strict=True)):
        rank = (n + 1) * r
        assert adapter.rank == rank and adapter.metadata.n_chunks == n
        assert adapter.scaling == float(meta["lora_alpha"])
        ref_a, ref_b = g["combined.down_proj.A"][i], g["combined.down_proj.B"][i]
        assert not ref_a[:, rank:].any()  # the reference pads the batch to its largest rank
        for layer in range(3):
            a, b = adapter.weights[f"model.layers.{layer}.mlp.down_proj"]
            torch.testing.assert_close(a, ref_a[layer, :rank], atol=1e-5, rtol=0)
            torch.testing.assert_close(b, ref_b[layer, :rank].T, atol=1e-5, rtol=0)


def test_known_bases_use_the_reference_affixes() -> None:
    assert set(KNOWN_CONTEXT_AFFIXES) == {
        "google/gemma-2-2b-it",
        "mistralai/Mistral-7B-Instruct-v0.2",
        "Qwen/Qwen3-4B-Instruct-2507",
    }


def test_cli_convert_refuses_without_trust_then_converts(tiny_base: Path, tmp_path: Path, capsys) -> None:
    from agenthn_langgraph.cli import main

    out = tmp_path / "converted"
    args = ["convert", "d2l", str(CHECKPOINT), "--base", str(tiny_base), "--out", str(out)]
    assert main(args) == 2
    assert "--trust-pickle" in capsys.readouterr().err and not out.exists()
    assert main([*args, "--trust-pickle", "--chunk-tokens", "40"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "source you trust" in err
    assert HypernetConfig.from_json((out / "hypernet_config.json").read_text()).d2l.chunk_tokens == 40
    with pytest.raises(SystemExit):  # the parser refuses abbreviations (--trust for --trust-pickle)
        main([*args, "--trust"])


def test_memory_agent_runs_on_a_converted_checkpoint(tiny_base: Path, converted: Path, tmp_path: Path) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    from agenthn_langgraph import LocalHypernetChatModel, create_memory_agent

    llm = LocalHypernetChatModel.from_pretrained(str(tiny_base), hypernet=str(converted), device="cpu", max_tokens=4)
    engine = llm.engine
    assert isinstance(engine.hypernet, D2LHypernetwork)
    applied: list[list[int]] = []
    row_plan = engine._row_plan

    def spy(n_rows, adapters_per_row):
        applied.append([a.rank for row in (adapters_per_row or []) for a in row])
        return row_plan(n_rows, adapters_per_row)

    engine._row_plan = spy
    try:
        agent = create_memory_agent(
            llm, adapter_store=tmp_path / "adapters", max_turns=2, keep_turns=1, checkpointer=InMemorySaver()
        )
        cfg = {"configurable": {"thread_id": "t1"}}
        for text in ["my pet is a frog .", "i live in lima .", "i play golf .", "what pet do i have ?"]:
            out = agent.invoke({"messages": [("user", text)]}, cfg)
        assert isinstance(out["messages"][-1].content, str)
    finally:
        engine._row_plan = row_plan
    r = engine.hypernet.settings.rank
    segments = [rank for ranks in applied for rank in ranks]
    assert segments, "no adapter was applied to any model call"
    assert all(rank % r == 0 and rank >= 2 * r for rank in segments)  # chunks + the bias LoRA
