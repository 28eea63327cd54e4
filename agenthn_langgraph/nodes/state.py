"""State keys the weight-memory nodes read and write, and the helpers they share.

Any graph whose state has ``messages`` can use the nodes. The extra keys they write are declared in
:class:`WeightMemoryState`; add them to your own state (or subclass it) to keep them. Everything in
state is JSON-serializable (adapter *ids*, never tensors), so ``InMemorySaver`` and ``SqliteSaver``
checkpoint it and a thread resumed in a new process still finds its adapters in the store.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, NotRequired, TypedDict

from langchain_core.messages import AnyMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import add_messages

from ..errors import EmptyConversationError, MessageTypeError, NamespaceError


class AdapterRef(TypedDict):
    """A stored adapter, by id and namespace (what state holds instead of tensors)."""

    id: str
    namespace: list[str]


def merge_active_adapters(
    left: Mapping[str, list[AdapterRef]] | None, right: Mapping[str, list[AdapterRef]] | None
) -> dict[str, list[AdapterRef]]:
    """Each source ("segments", "profile", "skill", "notes") replaces only its own entry."""
    return {**(left or {}), **(right or {})}


def merge_instructions(left: Mapping[str, str] | None, right: Mapping[str, str] | None) -> dict[str, str]:
    """Per source, like ``active_adapters``: a node sets or clears ("") only its own instruction."""
    return {k: v for k, v in {**(left or {}), **(right or {})}.items() if v}


REMOVE_ID_PREFIX = "-"


def removed_id(adapter_id: str) -> str:
    """The update that removes ``adapter_id`` from an id list (like ``RemoveMessage`` for messages).

    >>> add_ids(["a", "b"], [removed_id("b"), "c"])
    ['a', 'c']
    """
    return REMOVE_ID_PREFIX + adapter_id


def add_ids(left: list[str] | None, right: list[str] | None) -> list[str]:
    """Append ids, skipping ones already present, and drop ``removed_id(...)`` ones (re-running a
    node is harmless: removing an absent id and adding a present one change nothing)."""
    out = list(left or [])
    for i in right or []:
        if i.startswith(REMOVE_ID_PREFIX):
            if i[1:] in out:
                out.remove(i[1:])
        elif i not in out:
            out.append(i)
    return out


def add_int(left: int | None, right: int | None) -> int:
    return (left or 0) + (right or 0)


class WeightMemoryState(TypedDict):
    """``messages`` plus what the weight-memory nodes keep per thread."""

    messages: Annotated[list[AnyMessage], add_messages]
    active_adapters: NotRequired[Annotated[dict[str, list[AdapterRef]], merge_active_adapters]]
    """Adapters the next model call applies, by source; written by the recall nodes."""
    memory_segments: NotRequired[Annotated[list[str], add_ids]]
    """Ids of the conversation segments compacted into adapters (oldest first)."""
    compacted_turns: NotRequired[Annotated[int, add_int]]
    """How many turns have been compacted and evicted so far."""
    instructions: NotRequired[Annotated[dict[str, str], merge_instructions]]
    """Extra system instructions for the next model call, by source (not kept in ``messages``)."""


def all_adapter_refs(state: Mapping[str, Any]) -> list[AdapterRef]:
    """Every active adapter ref in a fixed source order (deterministic composition)."""
    active = state.get("active_adapters") or {}
    return [ref for source in sorted(active) for ref in active[source]]


def ref(adapter_id: str, namespace: Sequence[str]) -> AdapterRef:
    return {"id": adapter_id, "namespace": list(namespace)}


def messages_of(state: Mapping[str, Any]) -> list[BaseMessage]:
    """The state's messages, checked: a list of LangChain messages."""
    if not isinstance(state, Mapping) or "messages" not in state:
        raise EmptyConversationError("state has no 'messages' key")
    messages = state["messages"]
    if not isinstance(messages, list):
        raise MessageTypeError(f"state['messages'] must be a list, got {type(messages).__name__}")
    for m in messages:
        if not isinstance(m, BaseMessage):
            raise MessageTypeError(f"state['messages'] holds a {type(m).__name__}, not a LangChain message")
    return messages


def message_text(message: BaseMessage) -> str:
    """A message's text (its text blocks joined; the content as a string when it has none)."""
    return message.text if isinstance(message.text, str) else str(message.content)


def latest_human_text(messages: Sequence[BaseMessage]) -> str | None:
    for m in reversed(messages):
        if isinstance(m, HumanMessage):
            text = message_text(m)
            return text if text.strip() else None
    return None


class NamespaceTemplate:
    """A namespace with ``{placeholders}`` filled per run, like langmem's.

    Values come from the LangGraph runtime context (``context=...`` / ``Runtime.context``) first,
    then ``config["configurable"]``. ``{thread_id}`` is there whenever the run has a thread
    (a checkpointer, or ``langgraph dev``); a missing value is a ``NamespaceError`` naming it.

    >>> NamespaceTemplate(("users", "{user_id}")).format({"configurable": {"user_id": "ann"}})
    ('users', 'ann')
    """

    def __init__(self, template: str | Sequence[str]) -> None:
        parts = (template,) if isinstance(template, str) else tuple(template)
        if not parts or not all(isinstance(p, str) and p for p in parts):
            raise NamespaceError(f"a namespace template is a non-empty tuple of non-empty strings, got {template!r}")
        self.template = parts
        self.fields = {f for p in parts for _, f, _, _ in string.Formatter().parse(p) if f}

    def format(self, config: RunnableConfig | None = None, context: Any = None) -> tuple[str, ...]:
        values: dict[str, Any] = {}
        configurable = (config or {}).get("configurable", {}) or {}
        for f in self.fields:
            v = context.get(f) if isinstance(context, Mapping) else getattr(context, f, None)
            if v is None or v == "":
                v = configurable.get(f)
            if v is None or v == "":
                raise NamespaceError(
                    f"namespace {self.template} needs {f!r}: pass it in the run context or config['configurable']"
                )
            values[f] = str(v)
        return tuple(p.format(**values) for p in self.template)

    def __repr__(self) -> str:
        return f"NamespaceTemplate({self.template!r})"


def run_context() -> Any:
    """The current LangGraph run's context object (``None`` outside a graph or without one)."""
    try:
        from langgraph.runtime import get_runtime

        runtime = get_runtime()
    except (RuntimeError, KeyError, LookupError):
        return None
    return getattr(runtime, "context", None)
