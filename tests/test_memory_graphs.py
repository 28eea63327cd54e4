"""The memory nodes and prebuilt graphs, run for real: tiny model, real Chroma, real LangGraph."""

from __future__ import annotations

import gc
import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage, SystemMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from agenthn_langgraph.chat_model import LocalHypernetChatModel
from agenthn_langgraph.errors import EmptyConversationError, MessageTypeError, NamespaceError, PromptTooLongError
from agenthn_langgraph.nodes import (
    CompactNode,
    MemoryRecallNode,
    PassageReflector,
    ProfileEdit,
    ProfileUpdateNode,
    RuleProfileExtractor,
    SkillNotFoundError,
    apply_edits,
    split_turns,
)
from agenthn_langgraph.prebuilt import (
    AgentContext,
    WeightMemoryMiddleware,
    create_memory_agent,
    create_personalized_agent,
    create_self_improvement_graph,
    create_skill_agent,
)
from agenthn_langgraph.store import AdapterStore
from agenthn_langgraph.tiny_default.data import TinyLanguage
from agenthn_langgraph.tiny_default.language import Corpus


@pytest.fixture(scope="module")
def llm() -> LocalHypernetChatModel:
    # tool-call turns say "add", outside the tiny language (refused by default: tests/test_tiny_refuses_english.py)
    return LocalHypernetChatModel(max_tokens=4, allow_unknown=True)


@pytest.fixture()
def store(llm, tmp_path) -> AdapterStore:
    return AdapterStore.for_model(llm.engine, tmp_path / "store")


def profile_facts(llm: LocalHypernetChatModel, seed: int, n: int) -> list[tuple[str, str, str]]:
    """(statement, question, answer) for n distinct user facts of the model's language; a draw per seed."""
    return [(f.statement, f.question, f.answer) for f in llm.engine.language.user_facts(random.Random(seed), n)]


def first_word(text: str) -> str:
    return (text.split() or [""])[0]


# ------------------------------------------------------------------------------ CompactNode
def _ids(msgs):
    for i, m in enumerate(msgs):
        m.id = str(i)
    return msgs


def test_compaction_cuts_on_turn_boundaries_only(llm, store):
    msgs = _ids(
        [
            SystemMessage("be brief ."),
            HumanMessage("add 2 and 3"),
            AIMessage("", tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "c1"}]),
            ToolMessage("5", tool_call_id="c1"),
            AIMessage("5 ."),
            HumanMessage("my pet is a frog ."),
            AIMessage("nice !"),
            HumanMessage("i live in lima ."),
            AIMessage("ok ."),
            HumanMessage("what pet do i have ?"),
        ]
    )
    head, turns = split_turns(msgs)
    assert [m.id for m in head] == ["0"] and [len(t) for t in turns] == [4, 2, 2, 1]
    node = CompactNode(llm, store, max_turns=2, keep_turns=2)
    update = node.invoke({"messages": msgs}, {"configurable": {"thread_id": "t"}})
    evicted = [m.id for m in update["messages"]]
    assert all(isinstance(m, RemoveMessage) for m in update["messages"])
    # the tool call and its result leave together; the system prompt and the newest human stay
    assert evicted == ["1", "2", "3", "4", "5", "6"]
    assert update["compacted_turns"] == 2 and len(update["memory_segments"]) == 1
    record = store.get_record(update["memory_segments"][0], namespace=("memories", "t"))
    assert (record.kind, record.turn_start, record.turn_end) == ("segment", 0, 1)
    assert "my pet is a frog" in record.text and "add 2 and 3" in record.text
    # short threads are left alone
    assert node.invoke({"messages": msgs[-3:]}, {"configurable": {"thread_id": "t"}}) == {}
    with pytest.raises(ValueError):
        CompactNode(llm, store, max_turns=2, keep_turns=3)


def _turns(n: int, start: int = 0) -> list:
    """n user/assistant turns with distinct content and stable message ids."""
    msgs = []
    for t in range(start, start + n):
        msgs += [HumanMessage(f"fact {t} : my pet is a frog .", id=f"h{t}"), AIMessage("nice !", id=f"a{t}")]
    return msgs


def _ranges(store, namespace):
    return sorted((r.turn_start, r.turn_end) for r in store.list(namespace=namespace, kind="segment"))


def test_compaction_replayed_or_retried_stores_one_segment(llm, store, monkeypatch):
    node = CompactNode(llm, store, max_turns=2, keep_turns=1)
    cfg = {"configurable": {"thread_id": "replay"}}
    state = {"messages": _turns(4)}
    first = node.invoke(state, cfg)
    internalized = []
    real = LocalHypernetChatModel.internalize
    monkeypatch.setattr(
        LocalHypernetChatModel, "internalize", lambda self, *a, **k: internalized.append(a) or real(self, *a, **k)
    )
    again = node.invoke(state, cfg)  # a retried / replayed node: same state, same config
    assert again == first and len(first["memory_segments"]) == 1
    assert internalized == []  # found, not recomputed
    assert _ranges(store, ("memories", "replay")) == [(0, 2)]
    seg = first["memory_segments"][0]
    assert seg.startswith("seg-0-2-")
    versions = store.path / "adapters" / "memories" / "replay" / "_adapters" / seg
    assert sorted(p.name for p in versions.iterdir()) == ["v00000001"]  # not even re-written
    # The same turns in another thread are another segment (ids never collide across threads).
    other = node.invoke(state, {"configurable": {"thread_id": "replay-2"}})
    assert other["memory_segments"] != first["memory_segments"]


def test_crash_between_segment_files_and_state_leaves_no_duplicates(llm, store):
    """A writer dies after the segment is durable but before the thread's state is saved, four times.

    Each time the thread has gone on by a turn; the next run must adopt what the dead one stored,
    not compact the same turns again (before ids were derived from content, 4 crashes left 4
    overlapping copies of turn 0).
    """
    node = CompactNode(llm, store, max_turns=2, keep_turns=1, max_segment_turns=8)
    cfg = {"configurable": {"thread_id": "crashy"}}
    messages = _turns(3)
    for crash in range(4):
        node.invoke({"messages": messages}, cfg)  # files written; the update is lost with the process
        messages = messages + _turns(1, start=3 + crash)
    update = node.invoke({"messages": messages}, cfg)  # this run's state is saved
    ranges = _ranges(store, ("memories", "crashy"))
    covered = [t for first, last in ranges for t in range(first, last + 1)]
    assert covered == list(range(update["compacted_turns"])) == list(range(6))  # every turn once
    assert len(update["memory_segments"]) == len(ranges) == store.count(namespace=("memories", "crashy"))
    # The adopted segments answer like any other.
    recall = MemoryRecallNode(store, top_k=1)
    hit = recall.invoke({"messages": [HumanMessage("what is fact 1 ?")]}, cfg)["active_adapters"]["segments"]
    assert hit[0]["id"] in update["memory_segments"]


def test_remove_orphans_after_a_thread_went_another_way(llm, store):
    node = CompactNode(llm, store, max_turns=2, keep_turns=1)
    cfg = {"configurable": {"thread_id": "forked"}}
    abandoned = node.invoke({"messages": _turns(3)}, cfg)
    # The thread is rewound and goes on differently: the same turn range now holds other content.
    rewritten = [HumanMessage("i live in lima .", id="x0"), AIMessage("ok .", id="y0"), *_turns(2, start=1)]
    kept = node.invoke({"messages": rewritten}, cfg)
    assert kept["memory_segments"] != abandoned["memory_segments"]
    assert node.remove_orphans({"memory_segments": kept["memory_segments"]}, cfg) == abandoned["memory_segments"]
    assert [r.id for r in store.list(namespace=("memories", "forked"))] == kept["memory_segments"]


def test_bad_state_is_a_typed_error(llm, store):
    node = CompactNode(llm, store)
    with pytest.raises(EmptyConversationError):
        node.invoke({}, {"configurable": {"thread_id": "t"}})
    with pytest.raises(MessageTypeError):
        node.invoke({"messages": ["hi", 42]}, {"configurable": {"thread_id": "t"}})
    with pytest.raises(NamespaceError, match="user_id"):
        ProfileUpdateNode(llm, store).invoke({"messages": [HumanMessage("hi")]}, {})


# ------------------------------------------------------------------------------ memory agent
@pytest.mark.parametrize("seed", [101, 202])
def test_memory_agent_recalls_evicted_turns_with_a_small_prompt(llm, store, seed):
    facts = profile_facts(llm, seed, 8)
    agent = create_memory_agent(llm, store, max_turns=4, keep_turns=1, checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": f"thread-{seed}"}}
    prompt_tokens = []
    for statement, _, _ in facts:
        out = agent.invoke({"messages": [("user", statement)]}, cfg)
        prompt_tokens.append(out["messages"][-1].usage_metadata["input_tokens"])
    # one segment per statement (the factory's max_segment_statements=1)
    assert out["compacted_turns"] == 4 and len(out["memory_segments"]) == 4
    assert max(prompt_tokens) < 60, prompt_tokens  # never the whole thread: it would be ~100 tokens
    hits = 0
    for _, question, answer in facts:  # the first question's turn evicts the last four facts too
        out = agent.invoke({"messages": [("user", question)]}, cfg)
        hits += first_word(out["messages"][-1].content) == answer
    assert out["compacted_turns"] >= 8
    # Measured over seeds 101, 202, ..., 808: 7, 8, 8, 8, 8, 8, 8, 8 of 8; without memory 0, 1, 0, 1,
    # 1, 1, 1, 1. (Before retrieval over the user's statements with the reader's relevance gate:
    # 7, 6, 7, 7, 8, 6, 6, 5.) The bound leaves one answer of margin under the worst seed.
    no_memory = sum(first_word(llm.invoke(q).content) == a for _, q, a in facts)
    assert hits >= 6 and hits >= no_memory + 5, (hits, no_memory)


@pytest.mark.slow
def test_thread_resumed_in_a_new_process_keeps_its_adapters(tmp_path):
    """SqliteSaver + the store on disk: a second process answers from the first one's adapters."""
    script = textwrap.dedent(
        f"""
        import sys
        from langgraph.checkpoint.sqlite import SqliteSaver
        from agenthn_langgraph.prebuilt import create_memory_agent
        with SqliteSaver.from_conn_string({str(tmp_path / "ckpt.sqlite")!r}) as saver:
            agent = create_memory_agent(adapter_store={str(tmp_path / "store")!r}, max_turns=2, keep_turns=1,
                                        checkpointer=saver)
            cfg = {{"configurable": {{"thread_id": "resume-me"}}}}
            for text in sys.argv[1:]:
                out = agent.invoke({{"messages": [("user", text)]}}, cfg)
            print("ANSWER", out["messages"][-1].content, "SEGMENTS", len(out.get("memory_segments", [])),
                  "MESSAGES", len(out["messages"]))
        """
    )
    env = {"HF_HUB_OFFLINE": "1", "PATH": str(Path(sys.executable).parent)}
    first = subprocess.run(
        [sys.executable, "-c", script, "my pet is a frog .", "hello , how are you ?", "i am fine ."],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    assert "SEGMENTS 1" in first.stdout
    second = subprocess.run(
        [sys.executable, "-c", script, "what pet do i have ?"], capture_output=True, text=True, timeout=300, env=env
    )
    assert second.returncode == 0, second.stderr[-2000:]
    assert "ANSWER frog" in second.stdout, second.stdout


async def test_memory_agent_async(llm, store):
    agent = create_memory_agent(llm, store, max_turns=1, keep_turns=1, checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "async"}}
    await agent.ainvoke({"messages": [("user", "my pet is a frog .")]}, cfg)
    out = await agent.ainvoke({"messages": [("user", "what pet do i have ?")]}, cfg)
    assert out["compacted_turns"] == 1 and first_word(out["messages"][-1].content) == "frog"


def test_empty_conversation(llm, store):
    agent = create_memory_agent(llm, store)
    with pytest.raises(EmptyConversationError):
        agent.invoke({"messages": []}, {"configurable": {"thread_id": "e"}})


# ------------------------------------------------------------------------------ profile
def test_profile_edits_are_diff_style():
    facts, applied = apply_edits(
        {"pet": "my pet is a cat ."},
        [
            ProfileEdit(op="add", key="city", value="i live in lima ."),
            ProfileEdit(op="add", key="pet", value="my pet is a frog ."),
            ProfileEdit(op="remove", key="job"),
        ],
    )
    assert facts == {"pet": "my pet is a frog .", "city": "i live in lima ."}
    assert [e.op for e in applied] == ["add", "update"]
    edits = RuleProfileExtractor(TinyLanguage().statement_patterns())(
        [HumanMessage("call me bob . forget my city .")], facts
    )
    assert [(e.op, e.key) for e in edits] == [("add", "name"), ("remove", "city")]


def test_personalized_agent_across_sessions_and_users(llm, store):
    agent = create_personalized_agent(llm, store, internalize_every=2, checkpointer=InMemorySaver())
    ann = AgentContext(user_id="ann")
    s1 = {"configurable": {"thread_id": "ann-session-1"}}
    agent.invoke({"messages": [("user", "my pet is a frog .")]}, s1, context=ann)
    out = agent.invoke({"messages": [("user", "i live in lima .")]}, s1, context=ann)
    assert out["profile"] == {"pet": "my pet is a frog .", "city": "i live in lima ."}
    assert out["profile_pending_edits"] == 0  # 2 edits -> internalized
    # switched off per call: the statement is not recorded
    off = {"configurable": {"thread_id": "ann-session-1", "profile_updates": False}}
    out = agent.invoke({"messages": [("user", "i play golf .")]}, off, context=ann)
    assert "sport" not in out["profile"]
    # a later session, empty context: the profile adapter answers
    s2 = {"configurable": {"thread_id": "ann-session-2"}}
    out = agent.invoke({"messages": [("user", "what pet do i have ?")]}, s2, context=ann)
    assert first_word(out["messages"][-1].content) == "frog"
    assert out["active_adapters"]["profile"] == [{"id": "profile", "namespace": ["profiles", "ann"]}]
    # another user sees nothing of ann's
    bob = {"configurable": {"thread_id": "bob-1"}}
    out = agent.invoke({"messages": [("user", "what pet do i have ?")]}, bob, context=AgentContext(user_id="bob"))
    assert out["active_adapters"]["profile"] == [] and first_word(out["messages"][-1].content) != "frog"
    with pytest.raises(NamespaceError):
        llm.invoke(
            "what pet do i have ?", adapters=[{"id": "profile", "namespace": ["profiles", "bob"]}], adapter_store=store
        )
    # on-demand internalization and forgetting
    s3 = {"configurable": {"thread_id": "ann-session-3", "internalize_profile": True}}
    out = agent.invoke({"messages": [("user", "forget my pet .")]}, s3, context=ann)
    assert out["profile"] == {"city": "i live in lima ."}
    assert "pet" not in store.get_record("profile", namespace=("profiles", "ann")).extra["facts"]


# ------------------------------------------------------------------------------ skills
def test_skill_agent_picks_the_matching_skill(llm, store):
    skills = {
        "zorblax manual": "this is the manual for zorblax . zorblax is made by acme . the price of zorblax is 7 .",
        "quibbit manual": "this is the manual for quibbit . quibbit is made by globex . the price of quibbit is 3 .",
    }
    agent = create_skill_agent(llm, store, skills=skills)
    create_skill_agent(llm, store, skills=skills)  # internalized once: a second build reuses them
    assert store.count(namespace=("skills",)) == 2
    out = agent.invoke({"messages": [("user", "who makes quibbit ?")]})
    assert out["skill"] == "quibbit manual" and first_word(out["messages"][-1].content) == "globex"
    out = agent.invoke({"messages": [("user", "who makes zorblax ?")]})
    assert out["skill"] == "zorblax manual" and first_word(out["messages"][-1].content) == "acme"
    with pytest.raises(SkillNotFoundError):
        agent.invoke({"messages": [("user", "hi")]}, {"configurable": {"skill": "no such skill"}})


# ------------------------------------------------------------------------------ self-improvement
@pytest.mark.parametrize("seed", [777, 1, 2])
def test_self_improvement_improves_and_never_regresses(llm, store, seed):
    docs = Corpus(seed=seed, attributes=llm.engine.language.attributes).group(3, 4, genre="product")
    material = " ".join(d.text for d in docs)
    rng = random.Random(0)
    questions = [{"question": f.question(rng), "answer": f.value} for d in docs for f in d.facts]
    graph = create_self_improvement_graph(llm, store, max_rounds=3)
    out = graph.invoke({"study_material": material, "questions": questions}, {"configurable": {"thread_id": "si"}})
    scores = out["scores"]
    right = [round(s * len(questions)) for s in scores]  # of 12 questions, by round
    # Measured on 30 seeds (777, 1-29): round 0, no notes: 0 right on 17 seeds, 1 on 5, 2 on 7, 3 on 1
    # (chance ~1 in 10 a question); the best round 7-11 right; the gain over round 0 4 (seed 28) to
    # 10. Bounds one question past the worst measured: round 0 <= 4, best >= 6, gain >= 3.
    assert len(questions) == 12 and right[0] <= 4, scores
    best = round(out["best_score"] * len(questions))
    assert best >= 6 and best >= right[0] + 3, scores
    # later rounds may not add (seed 10: 0, 9, 8 right), but the best is kept
    assert out["best_score"] == max(scores), scores
    assert out["best_adapter"] is not None and store.exists(out["best_adapter"]["id"], namespace=("notes", "si"))
    assert len(scores) <= 4


def test_passage_reflector_puts_answering_passages_first():
    material = (
        "zorblax is a new gadget . zorblax is made by acme . the price of zorblax is 7 . zorblax weighs 3 grams ."
    )
    miss = {"question": "who makes zorblax ?", "expected": "acme", "predicted": "x", "correct": False}
    notes = PassageReflector(facts_per_chunk=2)(
        [miss], ["the price of zorblax is 7 . zorblax is made by acme ."], material
    )
    assert notes == ["zorblax is made by acme . the price of zorblax is 7 ."]
    # no passage holds the answer: nothing invented
    wrong = {**miss, "expected": "globex"}
    assert PassageReflector()([wrong], [], "the price of zorblax is 7 .") == []


# ------------------------------------------------------------------------------ middleware
def test_create_agent_middleware_adds_weight_memory(llm, store):
    from langchain.agents import create_agent

    agent = create_agent(
        llm,
        tools=[],
        middleware=[WeightMemoryMiddleware(llm, store, max_turns=1, keep_turns=1)],
        checkpointer=InMemorySaver(),
    )
    cfg = {"configurable": {"thread_id": "mw"}}
    agent.invoke({"messages": [("user", "my pet is a frog .")]}, cfg)
    out = agent.invoke({"messages": [("user", "what pet do i have ?")]}, cfg)
    assert out["compacted_turns"] == 1 and len(out["messages"]) == 2
    assert first_word(out["messages"][-1].content) == "frog"


# ------------------------------------------------------------------------------ review regressions
def test_blank_message_and_huge_turn_do_not_break_a_thread(llm, store):
    agent = create_memory_agent(llm, store, max_turns=1, keep_turns=1, checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "huge"}}
    agent.invoke({"messages": [("user", "   ")]}, cfg)  # nothing to search for: no error
    huge = "my pet is a frog . " * 1450  # ~8.7k tokens: > 32 chunks, and far past the 512-token context
    with pytest.raises(PromptTooLongError):  # the model cannot read it; the message stays in the thread
        agent.invoke({"messages": [("user", huge)]}, cfg)
    out = agent.invoke({"messages": [("user", "hello !")]}, cfg)
    out = agent.invoke({"messages": [("user", "hi !")]}, cfg)
    records = store.list(namespace=("memories", "huge"), kind="segment")
    assert any(r.extra.get("truncated") for r in records)
    assert out["compacted_turns"] == 3 and len(out["messages"]) == 2


def test_two_threads_of_one_user_do_not_overwrite_each_others_profile(llm, store):
    agent = create_personalized_agent(llm, store, internalize_every=1, checkpointer=InMemorySaver())
    ann = AgentContext(user_id="ann")
    a, b = {"configurable": {"thread_id": "a"}}, {"configurable": {"thread_id": "b"}}
    agent.invoke({"messages": [("user", "hello !")]}, a, context=ann)
    agent.invoke({"messages": [("user", "my pet is a frog .")]}, b, context=ann)
    out = agent.invoke({"messages": [("user", "i live in lima .")]}, a, context=ann)
    assert set(out["profile"]) == {"pet", "city"}
    assert set(json.loads(store.get_record("profile", namespace=("profiles", "ann")).extra["facts"])) == {"pet", "city"}


ALICE_SAYS = ["my pet is a frog .", "i work as a pilot ."]
BOB_SAYS = ["i live in lima .", "my pet is a owl ."]


def stored_profile(store: AdapterStore, user: str) -> dict[str, str] | None:
    if not store.exists("profile", namespace=("profiles", user)):
        return None
    return json.loads(store.get_record("profile", namespace=("profiles", user)).extra["facts"])


def test_two_users_on_one_thread_never_write_into_each_others_profile(llm, store):
    """Alice and bob take turns on ONE thread id (a shared session); with internalize_every=2 the
    thread holds both users' edits at once. Each profile gets exactly its own user's facts, and
    each user, in a fresh thread, answers from their own."""
    agent = create_personalized_agent(llm, store, internalize_every=2, checkpointer=InMemorySaver())
    shared = {"configurable": {"thread_id": "shared-kiosk"}}
    alice, bob = AgentContext(user_id="alice"), AgentContext(user_id="bob")
    for alice_says, bob_says in zip(ALICE_SAYS, BOB_SAYS, strict=True):
        out = agent.invoke({"messages": [("user", alice_says)]}, shared, context=alice)
        assert out["active_adapters"]["profile"] in ([], [{"id": "profile", "namespace": ["profiles", "alice"]}])
        out = agent.invoke({"messages": [("user", bob_says)]}, shared, context=bob)
        assert out["active_adapters"]["profile"] in ([], [{"id": "profile", "namespace": ["profiles", "bob"]}])
    assert stored_profile(store, "alice") == {"pet": ALICE_SAYS[0], "job": ALICE_SAYS[1]}
    assert stored_profile(store, "bob") == {"city": BOB_SAYS[0], "pet": BOB_SAYS[1]}
    assert out["profile_pending"] == {} and out["profile_pending_edits"] == 0

    def ask(user: AgentContext, question: str) -> str:
        fresh = {"configurable": {"thread_id": f"fresh-{user.user_id}-{question}"}}
        return first_word(agent.invoke({"messages": [("user", question)]}, fresh, context=user)["messages"][-1].content)

    # measured: alice frog / pilot; bob owl / lima and not alice's job
    assert (ask(alice, "what pet do i have ?"), ask(alice, "what is my job ?")) == ("frog", "pilot")
    assert (ask(bob, "what pet do i have ?"), ask(bob, "where do i live ?")) == ("owl", "lima")
    assert ask(bob, "what is my job ?") != "pilot"


def test_pending_edits_wait_per_user_on_a_shared_thread(llm, store):
    """Below the internalization threshold each user's edits wait under their own key, and a turn
    of one user neither reads nor drops the other's."""
    agent = create_personalized_agent(llm, store, internalize_every=3, checkpointer=InMemorySaver())
    shared = {"configurable": {"thread_id": "shared-pending"}}
    agent.invoke({"messages": [("user", ALICE_SAYS[0])]}, shared, context=AgentContext(user_id="alice"))
    out = agent.invoke({"messages": [("user", BOB_SAYS[0])]}, shared, context=AgentContext(user_id="bob"))
    assert out["profile"] == {"city": BOB_SAYS[0]} and out["profile_pending_edits"] == 1
    assert {k: [e["key"] for e in v] for k, v in out["profile_pending"].items()} == {
        '["profiles", "alice"]': ["pet"],
        '["profiles", "bob"]': ["city"],
    }
    assert stored_profile(store, "alice") is None and stored_profile(store, "bob") is None


def test_per_user_profile_locks_do_not_accumulate(llm, store):
    from agenthn_langgraph.nodes import profile

    node = ProfileUpdateNode(llm, store, internalize_every=1)
    for i in range(4):
        out = node.invoke({"messages": [HumanMessage("i live in lima .")]}, {"configurable": {"user_id": f"u{i}"}})
        assert out["profile_pending_edits"] == 0  # internalized, so the lock was taken
    gc.collect()
    assert len(profile._LOCKS) == 0  # one lock per user ever seen would be 4
    held = profile._namespace_lock(("profiles", "x"))
    assert profile._namespace_lock(("profiles", "x")) is held  # shared while someone holds it
    assert profile._namespace_lock(("profiles", "y")) is not held
    del held
    gc.collect()
    assert len(profile._LOCKS) == 0


@pytest.mark.parametrize("seed", [31, 1, 2])
def test_self_improvement_reruns_on_a_thread_start_fresh(llm, store, seed):
    docs = Corpus(seed=seed, attributes=llm.engine.language.attributes).group(1, 3, genre="product")
    rng = random.Random(1)
    qs = [{"question": f.question(rng), "answer": f.value} for f in docs[0].facts]
    graph = create_self_improvement_graph(llm, store, max_rounds=1, checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "again"}}
    run = {"study_material": docs[0].text, "questions": qs}
    first = graph.invoke(run, cfg)
    second = graph.invoke(run, cfg)
    # Measured on seeds 31 and 1-19 (3 questions): round 0, no notes, 0 right on 17 seeds and 1 on 3;
    # round 1 3 right on 17 and 2 on 3: one round always gained (a best adapter exists to compare).
    assert first["round"] == 1 and first["best_score"] > first["scores"][0], first["scores"]
    # The same input on the same thread: a rerun that starts fresh (round 0, no notes) repeats the
    # first run round for round; one that resumed its loop would start at round 1 with its notes.
    assert second["round"] == first["round"] and second["scores"] == first["scores"], (
        first["scores"],
        second["scores"],
    )
    assert first["best_adapter"] is not None and second["best_adapter"] is not None
    assert first["best_adapter"]["id"] != second["best_adapter"]["id"]
    # the rerun did not overwrite or delete the first run's best notes
    assert store.exists(first["best_adapter"]["id"], namespace=("notes", "again"))
    assert store.exists(second["best_adapter"]["id"], namespace=("notes", "again"))
