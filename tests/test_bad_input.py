"""Bad input, table-driven: every case is one call and the typed error it must raise.

Each expected error is a project error (``AgenthnError``) *and* the built-in a caller would catch
(``ValueError``, ``TypeError``, ...). Cases marked as wrapping a dependency check that the
dependency's own error (pydantic, transformers, LangChain) is kept as ``__cause__``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from agenthn_langgraph.chat_model import LocalHypernetChatModel
from agenthn_langgraph.engine import WeightMemoryModel
from agenthn_langgraph.errors import (
    AgenthnError,
    ArgumentTypeError,
    ChatModelConfigError,
    CheckpointError,
    InvalidArgumentError,
    MessageFormatError,
    MessageTypeError,
    PromptTooLongError,
    StorePathError,
)
from agenthn_langgraph.store import AdapterStore


@dataclass
class Ctx:
    engine: WeightMemoryModel
    llm: LocalHypernetChatModel
    store: AdapterStore
    tmp: Path


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> Ctx:
    from agenthn_langgraph import load_default

    engine = load_default()
    tmp = tmp_path_factory.mktemp("bad-input")
    (tmp / "a_file").write_text("not a directory")
    (tmp / "empty_model").mkdir()
    (tmp / "broken_config").mkdir()
    (tmp / "broken_config" / "config.json").write_text("{not json")
    return Ctx(engine, LocalHypernetChatModel(max_tokens=4), AdapterStore.for_model(engine, tmp / "store"), tmp)


Chat = LocalHypernetChatModel
Invalid, BadType = InvalidArgumentError, ArgumentTypeError  # short names for the table
Case = tuple[str, Callable[[Ctx], Any], type[AgenthnError], bool]
"""(id, the call, the error it must raise, whether it wraps a dependency's error)."""

CASES: list[Case] = [
    # --- engine generation options: nothing coerced, nothing silently reinterpreted
    ("generate max_new_tokens=0", lambda c: c.engine.generate("hi", max_new_tokens=0), Invalid, False),
    ("generate max_new_tokens=-1", lambda c: c.engine.generate("hi", max_new_tokens=-1), Invalid, False),
    ("generate max_new_tokens='7'", lambda c: c.engine.generate("hi", max_new_tokens="7"), BadType, False),
    ("generate max_new_tokens=2.5", lambda c: c.engine.generate("hi", max_new_tokens=2.5), BadType, False),
    ("generate temperature<0", lambda c: c.engine.generate("hi", temperature=-1.0), Invalid, False),
    ("generate temperature=nan", lambda c: c.engine.generate("hi", temperature=math.nan), Invalid, False),
    ("generate temperature=inf", lambda c: c.engine.generate("hi", temperature=math.inf), Invalid, False),
    ("generate temperature='1'", lambda c: c.engine.generate("hi", temperature="1"), BadType, False),
    (
        "generate top_p=nan",
        lambda c: c.engine.generate("hi", temperature=1, top_p=math.nan),
        Invalid,
        False,
    ),
    ("generate top_p=2", lambda c: c.engine.generate("hi", temperature=1, top_p=2.0), Invalid, False),
    ("generate seed='x'", lambda c: c.engine.generate("hi", temperature=1, seed="x"), BadType, False),
    ("generate seed=2**70", lambda c: c.engine.generate("hi", temperature=1, seed=2**70), Invalid, False),
    ("generate stop='.' (a bare str)", lambda c: c.engine.generate("hi", stop="."), BadType, False),
    ("generate stop=[5]", lambda c: c.engine.generate("hi", stop=[5]), BadType, False),
    ("generate adapters='x' (not a list)", lambda c: c.engine.generate("hi", adapters="x"), BadType, False),
    (
        "generate_batch adapter_tokens=-1",
        lambda c: c.engine.generate_batch(["hi"], adapter_tokens=-1),
        Invalid,
        False,
    ),
    ("stream timeout=-1", lambda c: list(c.engine.stream("hi", timeout=-1)), Invalid, False),
    ("stream tools='x'", lambda c: list(c.engine.stream("hi", tools="x")), BadType, False),
    # --- prompts and token ids
    ("generate a 700-token prompt", lambda c: c.engine.generate("hi " * 700), PromptTooLongError, False),
    ("generate prompt=5", lambda c: c.engine.generate(5), MessageTypeError, False),
    (
        "generate message content=5",
        lambda c: c.engine.generate([{"role": "user", "content": 5}]),
        MessageTypeError,
        False,
    ),
    ("generate_ids an empty prompt", lambda c: c.engine.generate_ids([[]]), Invalid, False),
    ("generate_ids id out of vocabulary", lambda c: c.engine.generate_ids([[10**9]]), Invalid, False),
    ("next_token_logits no prompts", lambda c: c.engine.next_token_logits([]), Invalid, False),
    ("encode 5 (transformers ValueError)", lambda c: c.engine.encode(5), BadType, False),
    (
        "internalize_many batch_size=0",
        lambda c: c.engine.internalize_many(["hi ."], batch_size=0),
        Invalid,
        False,
    ),
    # --- loading (transformers / torch errors wrapped)
    (
        "from_pretrained a dir with no model",
        lambda c: WeightMemoryModel.from_pretrained(c.tmp / "empty_model"),
        CheckpointError,
        True,
    ),
    (
        "from_pretrained a broken config.json",
        lambda c: WeightMemoryModel.from_pretrained(c.tmp / "broken_config"),
        CheckpointError,
        True,
    ),
    (
        "from_pretrained device='gpu9' (torch RuntimeError)",
        lambda c: WeightMemoryModel.from_pretrained(c.tmp / "empty_model", device="gpu9"),
        Invalid,
        True,
    ),
    (
        "from_pretrained dtype='x'",
        lambda c: WeightMemoryModel.from_pretrained(c.tmp / "empty_model", dtype="x"),
        BadType,
        False,
    ),
    # --- chat model per-call options
    ("invoke max_tokens=0", lambda c: c.llm.invoke("hi", max_tokens=0), Invalid, False),
    ("invoke max_tokens='7'", lambda c: c.llm.invoke("hi", max_tokens="7"), BadType, False),
    ("invoke temperature<0", lambda c: c.llm.invoke("hi", temperature=-1), Invalid, False),
    ("invoke temperature=nan", lambda c: c.llm.invoke("hi", temperature=math.nan), Invalid, False),
    ("invoke temperature='hot'", lambda c: c.llm.invoke("hi", temperature="hot"), BadType, False),
    ("invoke seed='x'", lambda c: c.llm.invoke("hi", temperature=1, seed="x"), BadType, False),
    ("invoke stop=5", lambda c: c.llm.invoke("hi", stop=5), BadType, False),
    ("invoke timeout=-1", lambda c: c.llm.invoke("hi", timeout=-1), Invalid, False),
    ("invoke unknown option", lambda c: c.llm.invoke("hi", not_an_option=1), BadType, False),
    # --- chat model input (LangChain errors wrapped)
    ("invoke ['hi', 5] (NotImplementedError)", lambda c: c.llm.invoke(["hi", 5]), MessageTypeError, False),
    ("invoke 5", lambda c: c.llm.invoke(5), MessageTypeError, False),
    ("invoke None", lambda c: c.llm.invoke(None), MessageTypeError, False),
    ("invoke [('wizard', 'hi')]", lambda c: c.llm.invoke([("wizard", "hi")]), MessageFormatError, True),
    ("invoke [{'role': 'user'}]", lambda c: c.llm.invoke([{"role": "user"}]), MessageFormatError, True),
    # --- chat model fields (pydantic ValidationError wrapped)
    ("Chat max_tokens=0", lambda c: Chat(max_tokens=0), ChatModelConfigError, True),
    (
        "Chat max_tokens='7'",
        lambda c: Chat(max_tokens="7"),
        BadType,
        False,
    ),
    (
        "Chat max_tokens=None",
        lambda c: Chat(max_tokens=None),
        BadType,
        False,
    ),
    (
        "Chat temperature=-1",
        lambda c: Chat(temperature=-1),
        ChatModelConfigError,
        True,
    ),
    (
        "Chat temperature='hot'",
        lambda c: Chat(temperature="hot"),
        BadType,
        False,
    ),
    ("Chat top_p=1.5", lambda c: Chat(top_p=1.5), ChatModelConfigError, True),
    ("Chat seed=2**70", lambda c: Chat(seed=2**70), ChatModelConfigError, True),
    ("Chat adapters=[5]", lambda c: Chat(adapters=[5]), ChatModelConfigError, True),
    (
        "Chat adapter_ids='x'",
        lambda c: Chat(adapter_ids="x"),
        ChatModelConfigError,
        True,
    ),
    ("Chat namespace=5", lambda c: Chat(namespace=5), ChatModelConfigError, True),
    ("Chat stop='x'", lambda c: Chat(stop="x"), ChatModelConfigError, True),
    ("Chat model=5", lambda c: Chat(model=5), ChatModelConfigError, True),
    ("Chat unknown field", lambda c: Chat(foo=1), ChatModelConfigError, True),
    (
        "Chat device='gpu9'",
        lambda c: Chat(model_path=str(c.tmp / "empty_model"), device="gpu9").invoke("hi"),
        Invalid,
        True,
    ),
    # --- store entry points (Chroma errors)
    (
        "store search k=2**40 (OverflowError)",
        lambda c: c.store.search("hi", namespace="a", k=2**40),
        Invalid,
        False,
    ),
    ("store search k=0", lambda c: c.store.search("hi", namespace="a", k=0), Invalid, False),
    (
        "store path is a file (Chroma InternalError)",
        lambda c: AdapterStore.for_model(c.engine, c.tmp / "a_file"),
        StorePathError,
        False,
    ),
]

BUILTIN_OF = {
    InvalidArgumentError: ValueError,
    ChatModelConfigError: ValueError,
    PromptTooLongError: ValueError,
    CheckpointError: ValueError,
    MessageFormatError: ValueError,
    ArgumentTypeError: TypeError,
    MessageTypeError: TypeError,
    StorePathError: NotADirectoryError,
}


@pytest.mark.parametrize(("call", "expected", "wraps"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_typed_error(ctx, call, expected, wraps):
    with pytest.raises(expected) as info:
        call(ctx)
    assert isinstance(info.value, AgenthnError) and isinstance(info.value, BUILTIN_OF[expected])
    assert str(info.value)  # says what was wrong
    assert (info.value.__cause__ is not None) == wraps


def test_every_expected_error_is_a_project_error_and_a_builtin():
    for expected, builtin in BUILTIN_OF.items():
        assert issubclass(expected, AgenthnError) and issubclass(expected, builtin)
    assert {c[2] for c in CASES} <= set(BUILTIN_OF)


def test_generation_never_runs_past_the_context_window(ctx):
    """max_new_tokens past the window is capped at the room the prompt leaves (documented
    choice: capped, not refused; the caller sees finish_reason="length")."""
    engine = ctx.engine
    window = engine.base.config.max_position_embeddings
    prompt = engine.encode(engine.render("hello , how are you ?"))
    steps = sum(1 for _ in engine._decode([prompt], None, 700, 0.0, 1.0, torch.Generator(), None))
    assert steps == window - len(prompt)
    long_prompt = prompt * (window // len(prompt))  # fills the window but for a few positions
    room = window - len(long_prompt)
    assert 0 < room < 32
    out = engine.generate_ids([long_prompt], max_new_tokens=700)
    assert len(engine.encode(out[0])) <= room
    msg = ctx.llm.invoke("hello , how are you ?", max_tokens=700)
    assert msg.usage_metadata["input_tokens"] + msg.usage_metadata["output_tokens"] <= window


def test_valid_edge_values_are_accepted(ctx):
    """The checks refuse only what is wrong: these are fine."""
    engine = ctx.engine
    assert engine.generate_batch([]) == []
    assert isinstance(engine.generate("hello , how are you ?", temperature=0.5, top_p=0.0, max_new_tokens=2), str)
    assert isinstance(engine.generate("hi", temperature=1, top_p=1, seed=-1, max_new_tokens=2), str)  # ints are numbers
    assert LocalHypernetChatModel(temperature=1, max_tokens=3, seed=0, timeout=5).temperature == 1.0
