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

from .conftest import ProcessGlobalPlan

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


async def test_configurable_adapter_ids_on_a_direct_call_are_applied_or_refused(llm, memory, tmp_path):
    """``config={"configurable": {"adapter_ids": ...}}`` given straight to the model, not through
    an enclosing runnable: LangChain hands that config to callbacks only, so it used to be ignored."""
    from agenthn_langgraph.errors import InvalidArgumentError
    from agenthn_langgraph.store import AdapterStore

    store = AdapterStore.for_model(llm.engine, tmp_path)
    store.put(memory, namespace="ann", text=MEMORY, adapter_id="m1")
    q = "what pet do i have ?"
    cfg = {"configurable": {"adapter_ids": ["m1"], "namespace": "ann", "adapter_store": store}}
    answer = llm.invoke(q, config=cfg)
    assert answer.content.startswith("frog") and answer.response_metadata["adapters_applied"] == 1
    assert "".join(str(c.content) for c in llm.stream(q, config=cfg)).startswith("frog")
    assert (await llm.ainvoke(q, config=cfg)).content.startswith("frog")
    assert "".join([str(c.content) async for c in llm.astream(q, config=cfg)]).startswith("frog")
    assert [m.content.split()[0] for m in llm.batch([q, q], config=cfg)] == ["frog", "frog"]
    # the model's own adapter_store serves ids from the config too
    own = LocalHypernetChatModel(max_tokens=4, adapter_store=store)
    assert own.invoke(q, config={"configurable": {"adapter_ids": ["m1"], "namespace": "ann"}}).content.startswith(
        "frog"
    )
    # a call kwarg wins over the config
    assert llm.invoke(q, config=cfg, adapters=[]).response_metadata["adapters_applied"] == 0
    # ids with nothing to resolve them: a typed error, never a silent base-model answer
    with pytest.raises(InvalidArgumentError, match="no adapter_store"):
        llm.invoke(q, config={"configurable": {"adapter_ids": ["m1"], "namespace": "ann"}})


QUESTION = "what pet do i have ?"


def _isolation_failures(llm: LocalHypernetChatModel, memory, *, threads: int = 8, rounds: int = 3) -> list:
    """Run ``threads`` threads x ``rounds`` calls on one model, odd threads with the memory.

    Every call's prompt forward waits at a barrier until all threads are inside one, so all
    their plans are live at the same moment (the worst case for a leak). Returns every call whose
    answer differs from the same call made alone, as (thread, round, answer, expected). Errors in
    a worker are re-raised here, in the test's thread.
    """
    expected = {True: llm.invoke(QUESTION, adapters=[memory]).content, False: llm.invoke(QUESTION).content}
    assert expected[True].split()[0] == "frog" and expected[False].split()[0] != "frog", expected
    barrier = threading.Barrier(threads, timeout=60)

    def prompt_rendezvous(module, args):  # embed_tokens(input_ids): a prompt has > 1 token, a decode step 1
        if args[0].shape[-1] > 1:
            barrier.wait()

    answers: list[tuple[int, int, str]] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for r in range(rounds):
                answers.append((i, r, llm.invoke(QUESTION, adapters=[memory] if i % 2 else []).content))
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(e)
            barrier.abort()

    hook = llm.engine.base.get_input_embeddings().register_forward_pre_hook(prompt_rendezvous)
    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    try:
        for t in workers:
            t.start()
        for t in workers:
            t.join(120)
    finally:
        hook.remove()
    if errors:
        raise errors[0]
    assert not any(t.is_alive() for t in workers), "a worker hung"
    assert sorted((i, r) for i, r, _ in answers) == [(i, r) for i in range(threads) for r in range(rounds)]
    return [(i, r, a, expected[bool(i % 2)]) for i, r, a in answers if a != expected[bool(i % 2)]]


def test_threads_never_see_each_others_adapters(llm, memory):
    """Eight threads on one model, half with the memory, every prompt forward overlapping all
    others (a barrier); each of the 24 answers is exactly the answer the call gets alone."""
    assert _isolation_failures(llm, memory) == []


def test_isolation_check_detects_a_leaking_injector(llm, memory, monkeypatch):
    """Mutation check: with the injector's plan made process-global (a naive "active adapter"),
    the same check must fail -- so its passing above means something."""
    monkeypatch.setattr(llm.engine.injector, "_plan", ProcessGlobalPlan())
    failures = _isolation_failures(llm, memory)
    assert failures, "a process-global plan leaked nowhere: the isolation check cannot detect leaks"


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
