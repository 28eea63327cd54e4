"""Adapters served by vLLM, tested against a STAND-IN: ``agenthn_langgraph.testing.vllm_standin``.

vLLM cannot run on these CPU machines (its wheels are CUDA builds). The stand-in serves the same
endpoints on loopback, refuses what vLLM refuses when it loads a LoRA, and answers for real: it
loads each exported PEFT directory into the tiny default's Hugging Face base with ``peft`` and
generates greedily, the adapter on every token as vLLM applies it. So these tests show that the
client's flow works and that an exported adapter carries the memory; they do not show that real
vLLM accepts it (``examples/vllm_gpu_check.py`` runs the same flow against a real server).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file, save_file

from agenthn_langgraph.errors import AdapterRejectedError, InvalidArgumentError, ServerUnavailableError
from agenthn_langgraph.lora import LoraAdapter, export_peft
from agenthn_langgraph.serving import VLLMChatModel, adapter_name
from agenthn_langgraph.testing.vllm_standin import VLLMStandIn
from agenthn_langgraph.tiny_default import load_default

BASE_DIR = Path(__file__).resolve().parents[1] / "agenthn_langgraph" / "tiny_default" / "checkpoint" / "base"
SERVED = "agenthn-tiny"
FROG = "<user> my pet is a frog . <assistant> nice ! <end>"
LIMA = "<user> i live in lima . <assistant> cool ! <end>"
PET = [("user", "what pet do i have ?")]
CITY = [("user", "where do i live ?")]


@pytest.fixture(scope="module")
def engine() -> Any:
    return load_default()


@pytest.fixture(scope="module")
def memories(engine: Any) -> dict[str, LoraAdapter]:
    return {"frog": engine.internalize(FROG), "lima": engine.internalize(LIMA)}


@pytest.fixture(scope="module")
def server() -> Iterator[VLLMStandIn]:
    with VLLMStandIn(BASE_DIR, SERVED, max_lora_rank=16) as s:
        yield s


@pytest.fixture()
def llm(server: VLLMStandIn, tmp_path: Path) -> Iterator[VLLMChatModel]:
    model = VLLMChatModel(base_url=server.url, model=SERVED, adapter_dir=str(tmp_path), max_lora_rank=16, max_tokens=6)
    yield model
    model.close()


def _first(text: str) -> str:
    return text.split()[0] if text.split() else ""


def test_an_internalized_fact_is_answered_by_the_server(llm: VLLMChatModel, memories, server: VLLMStandIn):
    reply = llm.invoke(PET, adapters=[memories["frog"]])
    assert _first(reply.content) == "frog", reply.content
    assert reply.response_metadata["adapters_applied"] == 1
    assert reply.response_metadata["model"] == adapter_name(memories["frog"])
    assert _first(llm.invoke(PET).content) != "frog"  # the base alone does not know it


def test_a_repeated_adapter_is_loaded_once(llm: VLLMChatModel, memories, server: VLLMStandIn):
    before = server.loads
    for _ in range(3):
        assert _first(llm.invoke(CITY, adapters=[memories["lima"]]).content) == "lima"
    assert server.loads == before + 1
    assert llm.loaded_adapters() == [adapter_name(memories["lima"])]


def test_the_least_recently_used_adapter_is_unloaded(server: VLLMStandIn, memories, tmp_path: Path):
    llm = VLLMChatModel(base_url=server.url, model=SERVED, adapter_dir=str(tmp_path), max_loaded=1, max_tokens=6)
    try:
        llm.invoke(PET, adapters=[memories["frog"]])
        llm.invoke(CITY, adapters=[memories["lima"]])
        assert llm.loaded_adapters() == [adapter_name(memories["lima"])]
        assert adapter_name(memories["frog"]) not in server.loaded  # unloaded from the server too
        assert not (tmp_path / adapter_name(memories["frog"])).exists()  # and its files removed
    finally:
        llm.close()
    assert not any(n.startswith("agenthn-") for n in server.loaded)


def test_two_threads_with_different_adapters_each_get_their_own(llm: VLLMChatModel, memories):
    jobs = [(PET, "frog"), (CITY, "lima")] * 3
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda job: llm.invoke(job[0], adapters=[memories[job[1]]]).content, jobs))
    assert [_first(r) for r in replies] == [want for _, want in jobs], replies


def test_an_adapter_being_unloaded_is_loaded_again_only_after(
    server: VLLMStandIn, memories, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # max_loaded=1: asking for lima evicts frog. The unload request is delayed (injected here), and
    # frog is asked for again meanwhile: the call must wait for the unload rather than send a load
    # the server still holds (vLLM: "has already been loaded").
    real_unload = VLLMChatModel.unload_adapter

    def slow_unload(self: VLLMChatModel, name: str) -> None:
        time.sleep(0.3)
        real_unload(self, name)

    monkeypatch.setattr(VLLMChatModel, "unload_adapter", slow_unload)
    llm = VLLMChatModel(base_url=server.url, model=SERVED, adapter_dir=str(tmp_path), max_loaded=1, max_tokens=6)
    frog = adapter_name(memories["frog"])
    try:
        assert _first(llm.invoke(PET, adapters=[memories["frog"]]).content) == "frog"
        with ThreadPoolExecutor(1) as pool:
            lima = pool.submit(lambda: llm.invoke(CITY, adapters=[memories["lima"]]).content)
            deadline = time.monotonic() + 30
            while frog in llm.loaded_adapters() and time.monotonic() < deadline:  # the eviction has begun
                time.sleep(0.01)
            assert frog not in llm.loaded_adapters()
            again = llm.invoke(PET, adapters=[memories["frog"]]).content
            assert _first(lima.result()) == "lima"
        assert _first(again) == "frog", again
    finally:
        llm.close()
    assert not any(n.startswith("agenthn-") for n in server.loaded)


def test_a_composed_adapter_above_max_lora_rank_is_refused_before_the_server(llm: VLLMChatModel, memories, server):
    before = server.loads
    too_many = [memories["frog"], memories["lima"]] * 8
    assert LoraAdapter.compose(too_many).rank > llm.max_lora_rank
    with pytest.raises(AdapterRejectedError, match="max_lora_rank"):
        llm.invoke(PET, adapters=too_many)
    assert server.loads == before and llm.loaded_adapters() == []


# ---------------------------------------------------------------------------------------- refusals
def _export(adapter: LoraAdapter, path: Path, rank: int | None = None) -> Path:
    return export_peft(adapter, path, pad_rank_to=rank)


def test_the_server_refuses_a_rank_above_its_max(llm: VLLMChatModel, memories, tmp_path: Path):
    path = _export(memories["frog"], tmp_path / "big", rank=32)
    with pytest.raises(AdapterRejectedError, match="greater than max_lora_rank 16"):
        llm.load_adapter_dir("big", path)


def test_the_rank_check_fails_against_a_server_that_does_not_check(memories, tmp_path: Path):
    # shows the test above can fail: the same load against a stand-in with the rank check off succeeds
    with VLLMStandIn(BASE_DIR, SERVED, max_lora_rank=16, check_rank=False) as lax:
        llm = VLLMChatModel(base_url=lax.url, model=SERVED, adapter_dir=str(tmp_path / "a"))
        llm.load_adapter_dir("big", _export(memories["frog"], tmp_path / "big", rank=32))
        assert "big" in lax.loaded


def test_the_server_refuses_unknown_weight_names(llm: VLLMChatModel, memories, tmp_path: Path):
    path = _export(memories["frog"], tmp_path / "odd")
    tensors = load_file(str(path / "adapter_model.safetensors"))
    key = next(iter(tensors))
    tensors[key.replace("mlp.down_proj", "mlp.act_fn")] = tensors.pop(key)
    save_file(tensors, str(path / "adapter_model.safetensors"))
    with pytest.raises(AdapterRejectedError, match="expected target modules"):
        llm.load_adapter_dir("odd", path)


@pytest.mark.parametrize("field", ["r", "lora_alpha", "target_modules"])
def test_the_server_refuses_a_config_without_a_required_field(llm: VLLMChatModel, memories, tmp_path: Path, field):
    import json

    path = _export(memories["frog"], tmp_path / field)
    config = json.loads((path / "adapter_config.json").read_text())
    del config[field]
    (path / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(AdapterRejectedError, match=field):
        llm.load_adapter_dir(f"no-{field}", path)


def test_a_missing_directory_and_a_duplicate_name_are_refused(llm: VLLMChatModel, memories, tmp_path: Path):
    with pytest.raises(AdapterRejectedError, match="No adapter found"):
        llm.load_adapter_dir("nothing", tmp_path / "nothing")
    path = _export(memories["frog"], tmp_path / "twice")
    llm.load_adapter_dir("twice", path)
    with pytest.raises(AdapterRejectedError, match="already been loaded"):
        llm.load_adapter_dir("twice", path)
    llm.unload_adapter("twice")
    shutil.rmtree(path)


def test_bad_settings_and_an_unreachable_server_are_typed_errors(tmp_path: Path):
    with pytest.raises(InvalidArgumentError, match="max_lora_rank"):
        VLLMChatModel(base_url="http://127.0.0.1:9", model=SERVED, max_lora_rank=12)
    with pytest.raises(InvalidArgumentError, match="max_loaded"):
        VLLMChatModel(base_url="http://127.0.0.1:9", model=SERVED, max_loaded=0)
    down = VLLMChatModel(base_url="http://127.0.0.1:9", model=SERVED, adapter_dir=str(tmp_path), timeout=2.0)
    with pytest.raises(ServerUnavailableError):
        down.invoke(PET)


@pytest.mark.slow
def test_the_gpu_check_script_runs_its_flow_against_the_standin():
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "examples" / "vllm_gpu_check.py"
    proc = subprocess.run([sys.executable, str(script), "--standin"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| stand-in (not vLLM) | 4/4 | 0/4 |" in proc.stdout, proc.stdout
