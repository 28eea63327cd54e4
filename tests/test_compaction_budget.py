"""Compaction by token budget: ``CompactNode(max_tokens=..., token_counter=...)``.

Node-logic tests count tokens with a simple counter (one per message, or one per word) so the
cut each one expects is plain; the end-to-end test runs the real graph with the tiny model's own
tokenizer (the default counter).
"""

from __future__ import annotations

import math

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from agenthn_langgraph.chat_model import LocalHypernetChatModel
from agenthn_langgraph.errors import AgenthnError, ArgumentTypeError, InvalidArgumentError
from agenthn_langgraph.nodes import CompactNode
from agenthn_langgraph.prebuilt import create_memory_agent
from agenthn_langgraph.store import AdapterStore

CFG = {"configurable": {"thread_id": "t"}}


@pytest.fixture(scope="module")
def llm() -> LocalHypernetChatModel:
    return LocalHypernetChatModel(max_tokens=4, allow_unknown=True)  # tool-call turns hold words outside the language


@pytest.fixture()
def store(llm, tmp_path) -> AdapterStore:
    return AdapterStore.for_model(llm.engine, tmp_path / "store")


def one_per_message(messages: list[BaseMessage]) -> int:
    return len(messages)


def words(messages: list[BaseMessage]) -> int:
    return sum(len(str(m.content).split()) + 1 for m in messages)


def _ids(msgs: list[BaseMessage]) -> list[BaseMessage]:
    for i, m in enumerate(msgs):
        m.id = str(i)
    return msgs


def tool_thread() -> list[BaseMessage]:
    """system, then 3 turns; the first holds an AI call of two tools and both results (9 messages)."""
    return _ids(
        [
            SystemMessage("be brief ."),  # 0
            HumanMessage("add 2 and 3 , then 4 and 5"),  # 1: turn 0 starts
            AIMessage(
                "",
                tool_calls=[
                    {"name": "add", "args": {"a": 2, "b": 3}, "id": "c1"},
                    {"name": "add", "args": {"a": 4, "b": 5}, "id": "c2"},
                ],
            ),  # 2
            ToolMessage("5", tool_call_id="c1"),  # 3
            ToolMessage("9", tool_call_id="c2"),  # 4
            AIMessage("5 and 9 ."),  # 5
            HumanMessage("my pet is a frog ."),  # 6: turn 1
            AIMessage("nice !"),  # 7
            HumanMessage("what pet do i have ?"),  # 8: turn 2, the newest human message
        ]
    )


def _check_tool_calls_whole(msgs: list[BaseMessage], evicted: set[str]) -> None:
    """Every tool call and its results are on the same side of the cut."""
    call_side = {c["id"]: m.id in evicted for m in msgs if isinstance(m, AIMessage) for c in m.tool_calls}
    for m in msgs:
        if isinstance(m, ToolMessage):
            assert (m.id in evicted) == call_side[m.tool_call_id], (m.id, m.tool_call_id)


def test_a_thread_within_budget_is_left_alone(llm, store):
    msgs = tool_thread()
    node = CompactNode(llm, store, max_tokens=len(msgs), token_counter=one_per_message)
    assert node.invoke({"messages": msgs}, CFG) == {}


def test_token_budget_cuts_whole_turns_never_inside_a_tool_call(llm, store):
    msgs = tool_thread()
    # 9 messages > 8; a message-level trim to 6 would keep the 2nd ToolMessage without its call
    node = CompactNode(llm, store, max_tokens=8, keep_tokens=6, token_counter=one_per_message)
    update = node.invoke({"messages": msgs}, CFG)
    evicted = {m.id for m in update["messages"]}
    assert evicted == {"1", "2", "3", "4", "5"}
    assert update["compacted_turns"] == 1 and len(update["memory_segments"]) == 1
    _check_tool_calls_whole(msgs, evicted)
    record = store.get_record(update["memory_segments"][0], namespace=("memories", "t"))
    assert "add 2 and 3" in record.text and "5 and 9" in record.text

    # a tighter target takes the next whole turn too, and still not the newest one
    node = CompactNode(llm, store, max_tokens=8, keep_tokens=3, token_counter=one_per_message)
    evicted = {m.id for m in node.invoke({"messages": msgs}, CFG)["messages"]}
    assert evicted == {"1", "2", "3", "4", "5", "6", "7"}
    _check_tool_calls_whole(msgs, evicted)


def test_the_newest_human_message_stays_even_alone_over_budget(llm, store):
    huge = HumanMessage(" ".join(["i live in lima ."] * 20))
    msgs = _ids([SystemMessage("be brief ."), HumanMessage("my pet is a frog ."), AIMessage("nice !"), huge])
    node = CompactNode(llm, store, max_tokens=10, token_counter=words)
    assert words(msgs[-1:]) > 10
    update = node.invoke({"messages": msgs}, CFG)
    assert {m.id for m in update["messages"]} == {"1", "2"}  # the older turn goes, the newest stays
    # the newest turn alone over budget: nothing to compact (never an empty prompt)
    assert node.invoke({"messages": [msgs[0], msgs[3]]}, CFG) == {}
    # also when the newest turn holds a pending tool call and its result
    call = AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "c9"}], id="9")
    update = node.invoke({"messages": [*msgs, call, ToolMessage("x", tool_call_id="c9", id="10")]}, CFG)
    assert {m.id for m in update["messages"]} == {"1", "2"}


def test_turn_count_is_still_available_and_either_limit_triggers(llm, store):
    msgs = tool_thread()  # 3 turns
    assert CompactNode(llm, store, max_turns=3, keep_turns=1).invoke({"messages": msgs}, CFG) == {}
    by_turns = CompactNode(llm, store, max_turns=2, keep_turns=1).invoke({"messages": msgs}, CFG)
    assert {m.id for m in by_turns["messages"]} == {"1", "2", "3", "4", "5", "6", "7"}
    # both given: tokens over budget triggers although the turn count is fine
    both = CompactNode(
        llm, store, max_turns=5, keep_turns=3, max_tokens=8, keep_tokens=6, token_counter=one_per_message
    )
    assert {m.id for m in both.invoke({"messages": msgs}, CFG)["messages"]} == {"1", "2", "3", "4", "5"}


def test_default_counter_is_the_models_tokenizer_and_a_model_can_be_the_counter(llm, store):
    msgs = tool_thread()
    node = CompactNode(llm, store, max_tokens=10)
    assert node.count_tokens(msgs) == llm.get_num_tokens_from_messages(msgs)
    assert CompactNode(llm, store, max_tokens=10, token_counter=llm).count_tokens(msgs) == node.count_tokens(msgs)
    assert node.count_tokens(msgs) != one_per_message(msgs)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_tokens": 0}, InvalidArgumentError),
        ({"max_tokens": -5}, InvalidArgumentError),
        ({"max_tokens": math.nan}, ArgumentTypeError),
        ({"max_tokens": 100.0}, ArgumentTypeError),
        ({"max_tokens": "100"}, ArgumentTypeError),
        ({"max_tokens": True}, ArgumentTypeError),
        ({"max_tokens": 10, "keep_tokens": 0}, InvalidArgumentError),
        ({"max_tokens": 10, "keep_tokens": -1}, InvalidArgumentError),
        ({"max_tokens": 10, "keep_tokens": math.nan}, ArgumentTypeError),
        ({"max_tokens": 10, "keep_tokens": 11}, InvalidArgumentError),
        ({"keep_tokens": 5}, InvalidArgumentError),
        ({"max_tokens": 10, "keep_turns": 1}, InvalidArgumentError),
        ({"max_turns": 0}, InvalidArgumentError),
        ({"max_turns": 2, "keep_turns": 3}, InvalidArgumentError),
        ({"max_tokens": 10, "token_counter": 5}, ArgumentTypeError),
    ],
)
def test_bad_budgets_are_typed_errors(llm, store, kwargs, error):
    with pytest.raises(error) as err:
        CompactNode(llm, store, **kwargs)
    assert isinstance(err.value, AgenthnError)


def test_a_counter_that_returns_a_non_int_is_a_typed_error(llm, store):
    node = CompactNode(llm, store, max_tokens=10, token_counter=lambda msgs: 3.5)
    with pytest.raises(ArgumentTypeError):
        node.invoke({"messages": tool_thread()}, CFG)


def test_memory_agent_on_a_token_budget_keeps_every_prompt_within_it(llm, tmp_path):
    """Real LangGraph, tiny model, its own tokenizer: every model call's prompt fits the budget,
    and the fact compacted out of the thread is answered from the segment adapter."""
    agent = create_memory_agent(llm, adapter_store=tmp_path / "store", max_tokens=24, checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "t1"}}
    said = ["my pet is a frog .", "i live in lima .", "i play golf .", "i speak greek .", "hello !"]
    prompts = []
    for text in [*said, "what pet do i have ?"]:
        out = agent.invoke({"messages": [("user", text)]}, cfg)
        prompts.append(out["messages"][-1].usage_metadata["input_tokens"])
    assert max(prompts) <= 24, prompts
    assert out["compacted_turns"] >= 4 and out["memory_segments"]
    # the statement was evicted from the thread (the assistant may still echo the value into small
    # talk, "hello !" -> "hi , frog": recalled adapters are applied to every turn, a known limit)
    assert not any(m.type == "human" and "frog" in str(m.content) for m in out["messages"][:-1])
    assert out["messages"][-1].content.split()[0] == "frog"
