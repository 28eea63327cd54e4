"""``langgraph dev`` (what LangGraph Studio talks to) serves the four graphs of ``langgraph.json``.

One in-memory dev server is started for the module, offline on loopback, with the adapter store in
a temporary directory; the tests use the same HTTP endpoints Studio does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
LANGGRAPH = Path(sys.executable).with_name("langgraph")
START_DEADLINE_S = 120.0
STOP_GRACE_S = 15.0

EXPECTED_NODES = {
    "memory_agent": {"compact", "recall_memory", "agent"},
    "personalized_agent": {"update_profile", "agent"},
    "skill_agent": {"recall_skill", "agent"},
    "self_improvement": {"attempt", "grade", "reflect"},
}

pytestmark = pytest.mark.skipif(not LANGGRAPH.exists(), reason="langgraph-cli is not installed next to python")


@dataclass
class Studio:
    client: httpx.Client
    log: Path

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError as e:
            return f"(no log: {e})"
        return "\n".join(lines[-n:])

    def run_wait(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /runs/wait (a stateless run); a graph error comes back as HTTP 200 with ``__error__``."""
        r = self.client.post("/runs/wait", json=body)
        assert r.status_code == 200, f"{r.status_code} {r.text}\n--- server log ---\n{self.log_tail()}"
        out = r.json()
        assert isinstance(out, dict) and "__error__" not in out, f"{out}\n--- server log ---\n{self.log_tail()}"
        return out


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):  # start_new_session: the group id is the server's pid
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_GRACE_S)


@contextlib.contextmanager
def serve(tmp: Path, **env_extra: str) -> Iterator[Studio]:
    """``langgraph dev`` on a free loopback port, the adapter store in ``tmp``; stopped on exit."""
    log_path = tmp / "langgraph_dev.log"
    port = _free_port()
    env = {
        **os.environ,
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "1",
        "HF_HUB_OFFLINE": "1",
        "AGENTHN_STORE_DIR": str(tmp / "store"),
        **env_extra,
    }
    # the in-memory runtime keeps its state in ./.langgraph_api of the working directory (the repo):
    # remove it afterwards if this test is what made it
    runtime_dir = REPO / ".langgraph_api"
    made_runtime_dir = not runtime_dir.exists()
    cmd = [str(LANGGRAPH), "dev", "--host", "127.0.0.1", "--port", str(port), "--no-browser", "--no-reload"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=httpx.Timeout(300.0, connect=5.0))
    studio = Studio(client, log_path)
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"langgraph dev exited with {proc.returncode}\n--- server log ---\n{studio.log_tail()}")
            try:
                if client.get("/ok", timeout=5.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"langgraph dev not ready in {START_DEADLINE_S:.0f} s\n--- server log ---\n{studio.log_tail()}"
                )
            time.sleep(0.5)
        yield studio
    finally:
        client.close()
        _stop(proc)
        if made_runtime_dir:
            shutil.rmtree(runtime_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    with serve(tmp_path_factory.mktemp("studio")) as running:
        yield running


@pytest.fixture(scope="module")
def assistants(studio: Studio) -> dict[str, str]:
    """graph_id -> assistant_id of the assistants the server made from langgraph.json."""
    r = studio.client.post("/assistants/search", json={"limit": 20})
    assert r.status_code == 200, r.text
    found = r.json()
    assert isinstance(found, list), found
    return {a["graph_id"]: a["assistant_id"] for a in found}


def test_all_graphs_are_listed(assistants: dict[str, str]):
    assert set(EXPECTED_NODES) <= set(assistants), sorted(assistants)


@pytest.mark.parametrize("graph_id", sorted(EXPECTED_NODES))
def test_graph_drawing_has_the_nodes(studio: Studio, assistants: dict[str, str], graph_id: str):
    r = studio.client.get(f"/assistants/{assistants[graph_id]}/graph")
    assert r.status_code == 200, f"{r.status_code} {r.text}\n--- server log ---\n{studio.log_tail()}"
    drawing = r.json()
    nodes = {n["id"] for n in drawing["nodes"]}
    assert EXPECTED_NODES[graph_id] | {"__start__", "__end__"} <= nodes, drawing
    for edge in drawing["edges"]:
        assert {edge["source"], edge["target"]} <= nodes, edge
    assert any(e["source"] == "__start__" for e in drawing["edges"]), drawing


def _last_message(out: dict[str, Any]) -> dict[str, Any]:
    messages = out.get("messages")
    assert messages, out
    return messages[-1]


def test_memory_agent_stateless_run_replies(studio: Studio):
    out = studio.run_wait(
        {"assistant_id": "memory_agent", "input": {"messages": [{"role": "user", "content": "hello , how are you ?"}]}}
    )
    last = _last_message(out)
    assert last["type"] == "ai", last
    assert isinstance(last["content"], str) and last["content"].strip(), last


LIMA = {"messages": [{"role": "user", "content": "i live in lima ."}]}


def _profile_namespaces(out: dict[str, Any]) -> list[list[str]]:
    return [a["namespace"] for a in out.get("active_adapters", {}).get("profile", [])]


def test_personalized_agent_takes_user_id_from_the_run_context(studio: Studio):
    out = studio.run_wait({"assistant_id": "personalized_agent", "input": LIMA, "context": {"user_id": "ann"}})
    assert out["profile"] == {"city": "i live in lima ."}, out
    assert _profile_namespaces(out) == [["profiles", "ann"]], out
    assert _last_message(out)["type"] == "ai", out


def test_personalized_agent_takes_user_id_from_configurable(studio: Studio):
    # same user as above: a new (stateless) session starts from ann's stored profile
    out = studio.run_wait(
        {"assistant_id": "personalized_agent", "input": LIMA, "config": {"configurable": {"user_id": "ann"}}}
    )
    assert out["profile"] == {"city": "i live in lima ."}, out
    assert _profile_namespaces(out) == [["profiles", "ann"]], out


def test_personalized_agent_serves_a_second_user(studio: Studio):
    for user in ("carol", "dave"):  # whichever users came before, dave is not the first
        out = studio.run_wait({"assistant_id": "personalized_agent", "input": LIMA, "context": {"user_id": user}})
        assert out["profile"] == {"city": "i live in lima ."}, out
        assert _profile_namespaces(out) == [["profiles", user]], out


# ---------------------------------------------------------------------------------------- the store API
# langgraph.json's "store" is graphs/store.py:store, the AdapterStore the graphs write to: the
# server's own store endpoints list and write adapters.
def test_graph_adapters_are_listed_through_the_server_store_api(studio: Studio):
    studio.run_wait({"assistant_id": "personalized_agent", "input": LIMA, "context": {"user_id": "erin"}})
    r = studio.client.post("/store/items/search", json={"namespace_prefix": ["profiles", "erin"], "limit": 10})
    assert r.status_code == 200, f"{r.status_code} {r.text}\n--- server log ---\n{studio.log_tail()}"
    items = r.json()["items"]
    assert [(i["namespace"], i["value"]["kind"]) for i in items] == [(["profiles", "erin"], "profile")], items
    assert items[0]["value"]["text"], items  # the profile's source text, never tensors
    assert "adapter" not in items[0]["value"], items
    r = studio.client.post("/store/namespaces", json={"prefix": ["profiles"], "limit": 100})
    assert r.status_code == 200, r.text
    assert ["profiles", "erin"] in r.json()["namespaces"], r.json()


def test_the_server_store_api_writes_adapters(studio: Studio):
    body = {"namespace": ["users", "fay"], "key": "pet", "value": {"text": "<user> my pet is a frog . <end>"}}
    r = studio.client.put("/store/items", json=body)
    assert r.status_code in (200, 204), f"{r.status_code} {r.text}\n--- server log ---\n{studio.log_tail()}"
    r = studio.client.get("/store/items", params={"namespace": "users.fay", "key": "pet"})
    assert r.status_code == 200, f"{r.status_code} {r.text}"
    assert r.json()["value"]["kind"] == "document", r.json()  # internalized by the store's model
    r = studio.client.post(
        "/store/items/search", json={"namespace_prefix": ["users", "fay"], "query": "what pet do i have ?"}
    )
    assert r.status_code == 200, r.text
    assert [i["key"] for i in r.json()["items"]] == ["pet"], r.json()
    r = studio.client.request("DELETE", "/store/items", json={"namespace": ["users", "fay"], "key": "pet"})
    assert r.status_code in (200, 204), r.text
    r = studio.client.get("/store/items", params={"namespace": "users.fay", "key": "pet"})
    assert r.status_code == 200 and r.json() is None, f"{r.status_code} {r.text}"  # the server's "not found"
