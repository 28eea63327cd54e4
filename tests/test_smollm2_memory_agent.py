"""The memory agent on SmolLM2 (slow tier): English facts said among small talk leave the prompt,
live on as segment adapters, and answer later questions from weights; small talk gets no adapter.

Real everything: SmolLM2-135M-Instruct with its shipped hypernetwork, a real AdapterStore with its
Chroma index, real LangGraph checkpoints. Threads come from the English generator
(``draw_thread``: 4 facts in 12 turns, the rest small talk), one per seed, seeds 7001-7003 (never
used elsewhere); every question is asked on its own fork of the thread's last checkpoint, after its
statement was compacted out of the prompt.
"""

from __future__ import annotations

import random
import tempfile

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from agenthn_langgraph import LocalHypernetChatModel, create_memory_agent
from agenthn_langgraph.data.english import SMALL_TALK
from agenthn_langgraph.evals.memory import draw_thread
from agenthn_langgraph.evals.recall import recalled
from agenthn_langgraph.models.registry import language_of

pytest.importorskip("agenthn_langgraph.models.smollm2")
pytestmark = pytest.mark.slow

SEEDS = (7001, 7002, 7003)
# Measured on seeds 7001 / 7002 / 7003 (4 questions each): see the comment above each bound.
# Over seeds 7001-7006 (1 thread), questions whose statement had left the prompt answered: step-1,500
# checkpoint 3/4, 3/3, 3/3, 3/4, 2/3, 2/4 (16/21 = 0.76); step 3,000 (shipped) 3/4, 3/3, 3/3, 4/4,
# 2/3, 2/4 (17/21 = 0.81); the base alone 0/24; small talk after the first segment got an adapter
# 0/7, 0/6, 1/6, 0/7, 1/5, 1/8 (3/39) with both. A 10-question sample's standard error at 0.8 is
# ~0.13: the bound sits 2 of them under; the small-talk bound is 3x the measured rate.
HITS_BOUND = 0.5
TALK_ADAPTER_BOUND = 0.25
TALK = {user for user, _ in SMALL_TALK}


@pytest.fixture(scope="module")
def llm() -> LocalHypernetChatModel:
    return LocalHypernetChatModel(model="smollm2", max_tokens=16)


def run_thread(llm: LocalHypernetChatModel, seed: int) -> dict[str, list]:
    thread = draw_thread(language_of(llm.engine), random.Random(seed), 12, 4, 0)
    agent = create_memory_agent(llm, tempfile.mkdtemp(prefix="agenthn-test-"), checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": f"t{seed}"}}
    talk_adapters = []
    out: dict = {}
    for text in thread.said:
        had_memory = bool(out.get("memory_segments"))
        out = agent.invoke({"messages": [("user", text)]}, cfg)
        if had_memory and text in TALK:
            talk_adapters.append(bool(out["active_adapters"]["segments"]))
    final = agent.get_state(cfg)
    compacted = int(final.values["compacted_turns"])
    hits, base_hits, evicted = [], [], []
    for q in thread.questions:
        evicted.append(q.stated_at < compacted)
        fork = agent.invoke({"messages": [("user", q.text)]}, final.config)
        hits.append(recalled(str(fork["messages"][-1].content), q.answer))
        base_hits.append(recalled(str(llm.invoke(q.text).content), q.answer))
    return {"hits": hits, "base": base_hits, "evicted": evicted, "talk_adapters": talk_adapters}


@pytest.fixture(scope="module")
def runs(llm: LocalHypernetChatModel) -> list[dict[str, list]]:
    return [run_thread(llm, seed) for seed in SEEDS]


def test_facts_left_the_prompt_and_come_back_from_weights(runs: list[dict[str, list]]) -> None:
    # the questions whose statement was compacted out of the prompt (a fact said in the last turn
    # or two is still in it): 10 of 12 on these seeds
    hits = [h for r in runs for h, gone in zip(r["hits"], r["evicted"], strict=True) if gone]
    assert len(hits) >= 8, runs
    assert sum(hits) / len(hits) >= HITS_BOUND, runs
    base = [h for r in runs for h in r["base"]]
    assert sum(base) <= 1, runs  # the base alone knows none of it: weights, not the base, answer


def test_small_talk_gets_no_adapter(runs: list[dict[str, list]]) -> None:
    applied = [a for r in runs for a in r["talk_adapters"]]
    assert len(applied) >= 10
    assert sum(applied) / len(applied) <= TALK_ADAPTER_BOUND, runs


def test_biscuit_porto_and_a_job(llm: LocalHypernetChatModel) -> None:
    """A hand-written thread: three facts, then small talk pushes them out of the prompt."""
    agent = create_memory_agent(llm, tempfile.mkdtemp(prefix="agenthn-test-"), checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "biscuit"}}
    said = [
        "Hi there! How are you today?",
        "My dog is called Biscuit.",
        "It's raining again.",
        "I live in Porto.",
        "Tell me a joke.",
        "I work as a dental hygienist.",
        "Thanks for your help earlier.",
        "I had a really long day.",
    ]
    for text in said:
        agent.invoke({"messages": [("user", text)]}, cfg)
    final = agent.get_state(cfg)
    answers = {}
    for question in ("What is my dog called?", "Where do I live?", "What do I do for work?", "Tell me a joke."):
        out = agent.invoke({"messages": [("user", question)]}, final.config)
        answers[question] = (str(out["messages"][-1].content), bool(out["active_adapters"]["segments"]))
    assert "Biscuit" in answers["What is my dog called?"][0], answers
    assert "Porto" in answers["Where do I live?"][0], answers
    assert "dental hygienist" in answers["What do I do for work?"][0], answers
    assert answers["Tell me a joke."][1] is False, answers  # small talk: no segment applied


def test_a_token_budget_counted_by_smollm2s_tokenizer(llm: LocalHypernetChatModel) -> None:
    """``max_tokens`` compaction: the thread is counted with SmolLM2's own tokenizer and kept under it."""
    agent = create_memory_agent(
        llm, tempfile.mkdtemp(prefix="agenthn-test-"), max_tokens=120, keep_tokens=60, checkpointer=InMemorySaver()
    )
    cfg = {"configurable": {"thread_id": "budget"}}
    thread = draw_thread(language_of(llm.engine), random.Random(7010), 10, 3, 0)
    sizes = []
    for text in thread.said:
        out = agent.invoke({"messages": [("user", text)]}, cfg)
        sizes.append(llm.get_num_tokens_from_messages(out["messages"][:-1]))  # the prompt this turn was answered from
    assert out["memory_segments"], sizes  # something was compacted into weights
    assert max(sizes) <= 120, sizes
    assert int(out["compacted_turns"]) >= 3, sizes
