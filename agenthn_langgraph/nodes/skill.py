"""Skills: reference documents internalized once into skill adapters, picked per query.

``SkillLibrary`` internalizes each document once (re-adding the same text is a no-op) and
indexes it. ``SkillRecallNode`` picks the skill that best matches the latest question -- or the
one named in ``config["configurable"]["skill"]`` -- and puts its adapter in
``active_adapters["skill"]``; with ``nudge`` set it also adds a "recall the relevant facts first"
instruction for that call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig, RunnableLambda

from ..chat_model import LocalHypernetChatModel
from ..errors import AdapterNotFoundError
from ..lora.adapter import text_sha256
from .state import latest_human_text, messages_of, ref

DEFAULT_SKILL_NAMESPACE = ("skills",)
DEFAULT_NUDGE = "first recall the facts of the reference you know that bear on the question, then answer."


class SkillNotFoundError(AdapterNotFoundError):
    """No skill of that name in the library."""


class SkillLibrary:
    """Reference documents as skill adapters in an :class:`~agenthn_langgraph.store.AdapterStore`.

    Example:
        >>> import tempfile
        >>> from agenthn_langgraph.store import AdapterStore
        >>> llm = LocalHypernetChatModel()
        >>> skills = SkillLibrary(llm, AdapterStore.for_model(llm.engine, tempfile.mkdtemp()))
        >>> skills.add("zorblax", "the price of zorblax is 7 .").name
        'zorblax'
        >>> skills.names()
        ['zorblax']
    """

    def __init__(
        self, model: LocalHypernetChatModel, store: Any, *, namespace: Sequence[str] = DEFAULT_SKILL_NAMESPACE
    ):
        self.model, self.store, self.namespace = model, store, tuple(namespace)

    def add(self, name: str, document: str) -> Any:
        """Internalize ``document`` as skill ``name``; the same text again is not re-internalized."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError("a skill needs a non-empty name")
        adapter_id = f"skill-{text_sha256(name)[:16]}"
        if self.store.exists(adapter_id, namespace=self.namespace):
            record = self.store.get_record(adapter_id, namespace=self.namespace)
            if record.extra.get("sha256") == text_sha256(document):
                return record
        adapter = self.model.internalize(document, kind="skill", extra={"skill": name})
        return self.store.put(
            adapter,
            namespace=self.namespace,
            text=document,
            kind="skill",
            adapter_id=adapter_id,
            name=name,
            extra={"sha256": text_sha256(document)},
        )

    def names(self) -> list[str]:
        return sorted(r.name for r in self.store.list(namespace=self.namespace, kind="skill") if r.name)

    def get(self, name: str) -> Any:
        """The skill's record; ``SkillNotFoundError`` for an unknown name."""
        hits = self.store.list(namespace=self.namespace, kind="skill", name=name)
        if not hits:
            raise SkillNotFoundError(f"no skill named {name!r} (known: {self.names()})")
        return hits[0]

    def match(self, query: str, *, min_score: float | None = None) -> Any | None:
        hits = self.store.search(query, namespace=self.namespace, k=1, kind="skill", min_score=min_score)
        return hits[0] if hits else None


class SkillRecallNode(RunnableLambda):
    """Apply the skill adapter that matches the latest question (or the one the config names).

    Args:
        library: the :class:`SkillLibrary`.
        min_score: below this similarity no skill is applied.
        nudge: an instruction added for that call when a skill is applied, e.g.
            ``DEFAULT_NUDGE`` ("first recall the facts ..."); ``None``: none. Off by default: the tiny
            model was not trained with instructions.
    """

    def __init__(
        self,
        library: SkillLibrary,
        *,
        min_score: float | None = 0.2,
        nudge: str | None = None,
        name: str = "recall_skill",
    ) -> None:
        self.library, self.min_score, self.nudge = library, min_score, nudge
        super().__init__(self._recall, afunc=self._arecall, name=name)

    def _recall(self, state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        forced = (config.get("configurable", {}) or {}).get("skill")
        if forced:
            record = self.library.get(forced)
        else:
            query = latest_human_text(messages_of(state))
            record = self.library.match(query, min_score=self.min_score) if query else None
        if record is None:
            return {"active_adapters": {"skill": []}, "instructions": {"skill": ""}, "skill": None}
        return {
            "active_adapters": {"skill": [ref(record.id, self.library.namespace)]},
            "instructions": {"skill": self.nudge or ""},
            "skill": record.name,
        }

    async def _arecall(self, state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        return await asyncio.to_thread(self._recall, state, config)
