"""LocalHypernetChatModel beyond the standard suites: the weight-injection hook, per call."""

from __future__ import annotations

import socket
import threading

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableLambda

from agenthn_langgraph.chat_model import LocalHypernetChatModel, parse_tool_calls, to_chat_dicts
from agenthn_langgraph.errors import (
    AdapterMismatchError,
    EmptyConversationError,
    MessageTypeError,
    PromptTooLongError,
)

MEMORY = "<user> my pet is a frog . <assistant> nice ! <end> <user> i live in lima . <assistant> ok . <end>"


@pytest.fixture(scope="module")
def llm() -> LocalHypernetChatModel:
    return LocalHypernetChatModel(max_tokens=4)


@pytest.fixture(scope="module")
def memory(llm):
    return llm.internalize(MEMORY, kind="segment")


def test_adapter_changes_the_answer_for_that_call_only(llm, memory):
    assert llm.invoke("what pet do i have ?", adapters=[memory]).content.split()[0] == "frog"
    without = llm.invoke("what pet do i have ?").content
    assert not without.startswith("frog")
    bound = llm.bind(adapters=[memory])
    assert bound.invoke("where do i live ?").content.split()[0] == "lima"
    assert not llm.invoke("where do i live ?").content.startswith("lima")


def test_adapters_from_run_config_inside_a_runnable(llm, memory):
    # a node / runnable passes its config down; the model reads configurable["adapters"] from it
    chain = RunnableLambda(lambda q: llm.invoke(q))
    with_memory = chain.invoke("what pet do i have ?", config={"configurable": {"adapters": [memory]}})
    assert with_memory.content.startswith("frog")
    assert not chain.invoke("what pet do i have ?").content.startswith("frog")


def test_configurable_adapter_ids_resolve_through_a_store(llm, memory, tmp_path):
    from agenthn_langgraph.store import AdapterStore

    store = AdapterStore.for_model(llm.engine, tmp_path)
    store.put(memory, namespace=("users", "ann"), text=MEMORY, adapter_id="m1")
    configurable = LocalHypernetChatModel(max_tokens=4, adapter_store=store).configurable_adapters()
    cfg = {"configurable": {"adapter_ids": ["m1"], "namespace": ("users", "ann")}}
    assert configurable.invoke("what pet do i have ?", config=cfg).content.startswith("frog")
    assert not configurable.invoke("what pet do i have ?").content.startswith("frog")


def test_threads_never_see_each_others_adapters(llm, memory):
    """Eight threads on one model, half with the memory, interleaved; each gets its own answer."""
    results: dict[int, str] = {}
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        barrier.wait()
        for _ in range(3):
            msg = llm.invoke("what pet do i have ?", adapters=[memory] if i % 2 else [])
            results[i] = msg.content
            assert msg.content.startswith("frog") == bool(i % 2), (i, msg.content)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8


async def test_async_and_streaming_carry_the_adapters(llm, memory):
    msg = await llm.ainvoke("what pet do i have ?", adapters=[memory])
    assert msg.content.startswith("frog")
    chunks = [c async for c in llm.astream("where do i live ?", adapters=[memory])]
    assert "".join(c.content for c in chunks).startswith("lima")
    assert chunks[-1].usage_metadata["output_tokens"] >= 1
    sync_chunks = list(llm.stream("hello , how are you ?", max_tokens=10))
    assert len(sync_chunks) > 2, "tokens must stream one by one"


def test_usage_stop_and_token_counting(llm):
    msg = llm.invoke("hello , how are you ?", max_tokens=10)
    assert msg.content == "i am fine , thanks ."
    assert msg.usage_metadata["input_tokens"] == llm.get_num_tokens_from_messages(
        [HumanMessage("hello , how are you ?")]
    )
    assert msg.usage_metadata["output_tokens"] == 6
    assert msg.response_metadata["finish_reason"] == "stop"
    cut = llm.invoke("hello , how are you ?", max_tokens=10, stop=["thanks"])
    assert cut.content.strip() == "i am fine ,"
    assert llm.invoke("hello , how are you ?", max_tokens=2).response_metadata["finish_reason"] == "length"


def test_token_counting_never_touches_the_network(llm, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    n = llm.get_num_tokens_from_messages([SystemMessage("be brief ."), HumanMessage("what is my name ?")])
    assert n == len(
        llm.engine.encode(
            llm.engine.render(
                [{"role": "system", "content": "be brief ."}, {"role": "user", "content": "what is my name ?"}]
            )
        )
    )


def test_sampling_is_reproducible_with_a_seed(llm):
    a = llm.invoke("hello , how are you ?", temperature=1.5, seed=7, max_tokens=8).content
    b = llm.invoke("hello , how are you ?", temperature=1.5, seed=7, max_tokens=8).content
    assert a == b


def test_bad_input_is_typed(llm, memory):
    with pytest.raises(EmptyConversationError):
        llm.invoke([])
    with pytest.raises(PromptTooLongError):  # past the tiny base's 512 positions
        llm.invoke("frog " * 600)
    with pytest.raises(MessageTypeError):
        llm.invoke([HumanMessage(content=[{"type": "image", "url": "http://x/y.png"}])])
    with pytest.raises(TypeError):
        llm.invoke("hi", adapters=memory)  # a single adapter, not a list
    with pytest.raises(TypeError):
        llm.invoke("hi", adapters=[42])
    with pytest.raises(TypeError):
        llm.invoke("hi", not_an_option=1)
    with pytest.raises(ValueError, match="no adapter_store"):
        llm.invoke("hi", adapters=["some-id"])
    foreign = memory.__class__(memory.weights, metadata=memory.metadata.model_copy(update={"base_fingerprint": "x"}))
    with pytest.raises(AdapterMismatchError):
        llm.invoke("hi", adapters=[foreign])


def test_tool_messages_and_tool_call_parsing():
    history = [
        HumanMessage("add 2 and 3"),
        AIMessage("", tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "c1"}]),
        ToolMessage("5", tool_call_id="c1"),
    ]
    dicts = to_chat_dicts(history)
    assert dicts[1]["tool_calls"][0]["function"] == {"name": "add", "arguments": {"a": 2, "b": 3}}
    assert dicts[2] == {"role": "tool", "content": "5", "tool_call_id": "c1"}
    text, calls = parse_tool_calls('sure <tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>')
    assert text == "sure" and calls[0]["name"] == "add" and calls[0]["args"] == {"a": 1}
    assert parse_tool_calls("<tool_call>{not json}</tool_call>")[1] == []


def test_bound_tools_reach_a_tool_aware_chat_template(llm):
    """bind_tools passes OpenAI-style schemas to the tokenizer's template; this one renders them."""
    from agenthn_langgraph.tiny_default.base import build_tokenizer

    tok = build_tokenizer()
    tok.chat_template = (
        "{% if tools %}<system> tools : {% for t in tools %}{{ t['function']['name'] }} {% endfor %}<end> {% endif %}"
        "{% for m in messages %}<user> {{ m['content'] }} {% endfor %}<assistant>"
    )

    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    from agenthn_langgraph.engine import WeightMemoryModel

    engine = WeightMemoryModel(llm.engine.base, tok, llm.engine.hypernet, name="tool-template")
    model = LocalHypernetChatModel.from_engine(engine, max_tokens=2)
    bound = model.bind_tools([add])
    assert bound.kwargs["tools"][0]["function"]["name"] == "add"
    rendered = engine.render([{"role": "user", "content": "hi"}], tools=bound.kwargs["tools"])
    assert "tools : add" in rendered
    assert model.get_num_tokens_from_messages([HumanMessage("hi")], tools=[add]) > model.get_num_tokens_from_messages(
        [HumanMessage("hi")]
    )
    assert isinstance(bound.invoke("hi"), AIMessage)


def test_held_back_stop_prefix_is_released_at_end_of_turn(llm):
    # "." could start the stop string ". x"; the turn ends right after it and it must still come out
    msg = llm.invoke("hello , how are you ?", max_tokens=10, stop=[". x"])
    assert msg.content == "i am fine , thanks ."
    assert "".join(c.content for c in llm.stream("hello , how are you ?", max_tokens=10, stop=[". x"])) == msg.content


def test_degenerate_sampling_options_and_single_string_ids(llm):
    assert llm.invoke("hello , how are you ?", temperature=0.7, top_p=0.0, max_tokens=3).content
    with pytest.raises(TypeError):
        llm.invoke("hi", adapter_ids="abc")


def test_an_adapter_named_twice_is_applied_once(llm, memory, tmp_path):
    from agenthn_langgraph.store import AdapterStore

    store = AdapterStore.for_model(llm.engine, tmp_path)
    store.put(memory, namespace="ann", text=MEMORY, adapter_id="m1")
    configurable = LocalHypernetChatModel(max_tokens=2, adapter_store=store).configurable_adapters()
    cfg = {"configurable": {"adapter_ids": ["m1"], "namespace": "ann"}}
    inner = RunnableLambda(lambda q: configurable.invoke(q))  # the run config reaches the model twice
    assert inner.invoke("what pet do i have ?", config=cfg).response_metadata["adapters_applied"] == 1


def test_from_engine_survives_configurable_copies(llm):
    from agenthn_langgraph.engine import WeightMemoryModel

    engine = WeightMemoryModel(llm.engine.base, llm.engine.tokenizer, llm.engine.hypernet, name="mine")
    wrapped = LocalHypernetChatModel.from_engine(engine, max_tokens=2).configurable_adapters()
    copy = wrapped.with_config(configurable={"adapter_ids": []})
    assert copy.invoke("hi").response_metadata["model_name"] == "mine"
    bound_model, _ = wrapped._prepare({"configurable": {"adapter_ids": []}})
    assert bound_model.engine is engine
