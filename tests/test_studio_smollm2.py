"""``AGENTHN_MODEL=smollm2 langgraph dev`` (slow tier): the served graphs speak English on SmolLM2.

The same server the Studio tests start (``tests/test_studio.py``'s ``serve``), with the model set by
the environment variable the served graphs read: a thread through the memory agent whose fact has
left the prompt is answered from a segment adapter, and the personalized agent keeps an English
profile per user.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .test_studio import LANGGRAPH, Studio, serve

pytest.importorskip("agenthn_langgraph.models.smollm2")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not LANGGRAPH.exists(), reason="langgraph-cli is not installed next to python"),
]


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    with serve(tmp_path_factory.mktemp("studio-smollm2"), AGENTHN_MODEL="smollm2") as running:
        yield running


def test_memory_agent_thread_recalls_an_english_fact_from_weights(studio: Studio) -> None:
    r = studio.client.post("/threads", json={})
    assert r.status_code == 200, r.text
    thread = r.json()["thread_id"]
    out: dict = {}
    said = ("My dog is called Biscuit.", "It's raining again.", "Tell me a joke.", "I had a really long day.")
    for text in (*said, "Thanks for your help earlier.", "What is my dog called?"):  # the graph keeps 2-4 turns
        r = studio.client.post(
            f"/threads/{thread}/runs/wait",
            json={"assistant_id": "memory_agent", "input": {"messages": [{"role": "user", "content": text}]}},
        )
        assert r.status_code == 200, f"{r.status_code} {r.text}\n{studio.log_tail()}"
        out = r.json()
        assert "__error__" not in out, f"{out}\n{studio.log_tail()}"
    assert out["compacted_turns"] >= 2, out  # the statement left the prompt
    assert out["active_adapters"]["segments"], out  # a segment adapter was applied
    assert "Biscuit" in out["messages"][-1]["content"], out


def test_personalized_agent_keeps_an_english_profile(studio: Studio) -> None:
    said = {"messages": [{"role": "user", "content": "My sister is called Maria Lopez."}]}
    out = studio.run_wait({"assistant_id": "personalized_agent", "input": said, "context": {"user_id": "ann"}})
    assert list(out["profile"].values()) == ["My sister is called Maria Lopez."], out
    assert out["messages"][-1]["type"] == "ai", out
