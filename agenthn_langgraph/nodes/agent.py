"""``CallModelNode``: answer the conversation with the state's active adapters injected.

This is where the recalled weights meet the model: the node resolves ``active_adapters`` (ids in
state) through the store and passes the adapters to this one model call. Extra ``instructions``
(a skill nudge, ...) become a leading system message for the call only, not part of history.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import SystemMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda

from .state import all_adapter_refs, messages_of


class CallModelNode(RunnableLambda):
    """Call ``model`` on ``messages`` with the adapters named in ``active_adapters``.

    Args:
        model: a :class:`~agenthn_langgraph.LocalHypernetChatModel` (or one bound with tools).
        store: resolves adapter ids; defaults to the model's ``adapter_store``.
        system_prompt: optional system message put before the conversation on every call.
    """

    def __init__(self, model: Any, store: Any = None, *, system_prompt: str | None = None, name: str = "agent") -> None:
        self.model, self.store, self.system_prompt = model, store, system_prompt
        super().__init__(self._call, afunc=self._acall, name=name)

    def _prepare(self, state: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        messages = list(messages_of(state))
        system = [self.system_prompt] if self.system_prompt else []
        system += [text for _, text in sorted((state.get("instructions") or {}).items()) if text]
        if system:
            messages = [SystemMessage(" ".join(system)), *messages]
        kwargs: dict[str, Any] = {"adapters": all_adapter_refs(state)}
        if self.store is not None:
            kwargs["adapter_store"] = self.store
        return messages, kwargs

    def _call(self, state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        messages, kwargs = self._prepare(state)
        return {"messages": [self.model.invoke(messages, config=config, **kwargs)]}

    async def _acall(self, state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        messages, kwargs = self._prepare(state)
        return {"messages": [await self.model.ainvoke(messages, config=config, **kwargs)]}
