"""Personalization: a per-user profile document, edited diff-style and internalized into an adapter.

After each user turn ``ProfileUpdateNode`` asks an *extractor* for edits (add / update / remove a
fact) and applies them to the user's profile document. Every ``internalize_every`` edits, or on
demand, the document is internalized into the user's profile adapter (id ``"profile"`` in the
user's namespace), replacing the previous one. The node also puts that adapter in
``active_adapters["profile"]``, so a new session answers from it with an empty context.

Two extractors ship: :class:`RuleProfileExtractor` (patterns; works with the tiny default and
needs no model) and :class:`ChatModelProfileExtractor` (any chat model that can write JSON).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from ..chat_model import LocalHypernetChatModel
from .compact import render_segment
from .state import NamespaceTemplate, latest_human_text, messages_of, ref, run_context

log = logging.getLogger(__name__)
PROFILE_ID = "profile"
DEFAULT_PROFILE_NAMESPACE = ("profiles", "{user_id}")


class ProfileEdit(BaseModel):
    """One diff-style edit of a profile document."""

    op: Literal["add", "update", "remove"]
    key: str = Field(min_length=1, max_length=64)
    value: str | None = None
    """The fact as a first-person statement ("i live in lima ."); ``None`` for ``remove``."""


def apply_edits(facts: Mapping[str, str], edits: Sequence[ProfileEdit]) -> tuple[dict[str, str], list[ProfileEdit]]:
    """Apply edits; returns the new document and the edits that changed something."""
    out, applied = dict(facts), []
    for e in edits:
        if e.op == "remove":
            if e.key in out:
                del out[e.key]
                applied.append(e)
        elif e.value and out.get(e.key) != e.value:
            op = "update" if e.key in out else "add"
            out[e.key] = e.value
            applied.append(ProfileEdit(op=op, key=e.key, value=e.value))
    return out, applied


class ProfileExtractor(Protocol):
    def __call__(self, messages: Sequence[BaseMessage], facts: Mapping[str, str]) -> list[ProfileEdit]: ...


def _statement_patterns() -> dict[str, list[re.Pattern[str]]]:
    from ..tiny_default.language import ATTRIBUTES

    patterns: dict[str, list[re.Pattern[str]]] = {}
    for a in ATTRIBUTES:
        if a.genre in ("profile", "preference"):
            for template in a.statements:
                rx = re.escape(template).replace(re.escape("{v}"), r"(?P<v>[\w-]+)")
                patterns.setdefault(a.name, []).append(re.compile(rf"^{rx}$"))
    return patterns


class RuleProfileExtractor:
    """Edits from first-person statements in the latest human message, by patterns.

    Defaults cover the tiny default's language ("my pet is a frog .", "i live in lima .") plus a
    generic ``my <thing> is <value>``; ``forget my <key>`` removes a fact.

    >>> RuleProfileExtractor()([HumanMessage("hi . i live in lima . forget my pet .")], {"pet": "my pet is a cat ."})
    [ProfileEdit(op='add', key='city', value='i live in lima .'), ProfileEdit(op='remove', key='pet', value=None)]
    """

    _GENERIC = re.compile(r"^my (?P<key>[\w ]{1,30}?) is (?P<v>[\w -]+) \.$")
    _FORGET = re.compile(r"^forget (?:my |about my )?(?P<key>[\w ]{1,30}?) \.$")

    def __init__(self, patterns: Mapping[str, Sequence[re.Pattern[str]]] | None = None) -> None:
        self.patterns = dict(patterns) if patterns is not None else _statement_patterns()

    @staticmethod
    def sentences(text: str) -> list[str]:
        spaced = re.sub(r"\s*([.!?])\s*", r" \1 ", text.lower())
        return [s.strip() + " ." for s in re.split(r" [.!?] ", spaced + " ") if s.strip()]

    def __call__(self, messages: Sequence[BaseMessage], facts: Mapping[str, str]) -> list[ProfileEdit]:
        text = latest_human_text(messages) or ""
        edits: list[ProfileEdit] = []
        for sentence in self.sentences(text):
            forget = self._FORGET.match(sentence)
            if forget:
                edits.append(ProfileEdit(op="remove", key=forget["key"].strip()))
                continue
            key = next((k for k, rxs in self.patterns.items() if any(rx.match(sentence) for rx in rxs)), None)
            if key is None and (generic := self._GENERIC.match(sentence)):
                key = generic["key"].strip()
            if key is not None:
                edits.append(ProfileEdit(op="update" if key in facts else "add", key=key, value=sentence))
        return edits


EXTRACTOR_PROMPT = """You maintain a user's profile: short first-person facts keyed by topic.
Current profile (JSON): {profile}
The user just said: {message}
Reply with ONLY a JSON list of edits, each {{"op": "add"|"update"|"remove", "key": topic, "value": fact or null}}.
Reply [] when the message states nothing lasting about the user."""


class ChatModelProfileExtractor:
    """Ask any chat model for the edits as JSON; malformed replies yield no edits (logged)."""

    def __init__(self, model: BaseChatModel, *, prompt: str = EXTRACTOR_PROMPT) -> None:
        self.model, self.prompt = model, prompt
        self._edits = TypeAdapter(list[ProfileEdit])

    def __call__(self, messages: Sequence[BaseMessage], facts: Mapping[str, str]) -> list[ProfileEdit]:
        message = latest_human_text(messages)
        if not message:
            return []
        reply = self.model.invoke(self.prompt.format(profile=json.dumps(dict(facts)), message=message)).text
        start, end = reply.find("["), reply.rfind("]")
        try:
            return self._edits.validate_json(reply[start : end + 1]) if start >= 0 < end else []
        except ValidationError as e:
            log.warning("profile extractor reply is not a list of edits (%s): %r", e.error_count(), reply[:200])
            return []


def render_profile(model: LocalHypernetChatModel, facts: Mapping[str, str]) -> str:
    """The profile as a conversation the user could have had: one stated fact per turn."""
    turns: list[BaseMessage] = []
    for statement in facts.values():
        turns += [HumanMessage(statement), AIMessage("ok .")]
    return render_segment(model, turns)


_LOCKS: dict[tuple[str, ...], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _namespace_lock(namespace: tuple[str, ...]) -> threading.Lock:
    """One lock per user namespace in this process (read-modify-write of the profile adapter)."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(tuple(namespace), threading.Lock())


class ProfileUpdateNode(RunnableLambda):
    """Edit the user's profile document after each user turn; internalize it every N edits.

    Args:
        model: the chat model whose hypernetwork writes the profile adapter.
        store: an :class:`~agenthn_langgraph.store.AdapterStore`.
        extractor: turns the conversation into :class:`ProfileEdit` s; default
            :class:`RuleProfileExtractor`.
        internalize_every: internalize after this many applied edits (``0``: only on demand).
        namespace: the user's namespace; default ``("profiles", "{user_id}")``.
        render: profile document -> text to internalize; default :func:`render_profile`.

    Per call, ``config["configurable"]``:
        ``profile_updates=False`` switches editing off (the stored adapter is still applied);
        ``internalize_profile=True`` internalizes now.

    Writes ``profile`` (the document), ``profile_pending`` (this thread's edits not yet
    internalized) with its count ``profile_pending_edits``, and ``active_adapters["profile"]``.
    Internalizing re-reads the stored profile under a per-user lock and applies the pending edits
    to it, so two threads of one user never overwrite each other's facts (within one process;
    across processes, serve one user from one worker).
    """

    def __init__(
        self,
        model: LocalHypernetChatModel,
        store: Any,
        *,
        extractor: ProfileExtractor | None = None,
        internalize_every: int = 3,
        namespace: str | Sequence[str] = DEFAULT_PROFILE_NAMESPACE,
        render: Callable[[LocalHypernetChatModel, Mapping[str, str]], str] = render_profile,
        name: str = "update_profile",
    ) -> None:
        if internalize_every < 0:
            raise ValueError("internalize_every must be >= 0")
        self.model, self.store = model, store
        self.extractor = extractor or RuleProfileExtractor()
        self.internalize_every = internalize_every
        self.namespace = NamespaceTemplate(namespace)
        self.render = render
        super().__init__(self._update, afunc=self._aupdate, name=name)

    def stored_facts(self, namespace: tuple[str, ...]) -> dict[str, str] | None:
        """The facts behind the user's stored profile adapter (``None`` if there is none)."""
        if not self.store.exists(PROFILE_ID, namespace=namespace):
            return None
        record = self.store.get_record(PROFILE_ID, namespace=namespace)
        return json.loads(str(record.extra.get("facts", "{}")))

    def internalize(self, facts: Mapping[str, str], namespace: tuple[str, ...]) -> None:
        """Write the profile document into the user's profile adapter (replacing the old one)."""
        if not facts:  # everything was forgotten: forget the adapter too
            if self.store.exists(PROFILE_ID, namespace=namespace):
                self.store.delete(PROFILE_ID, namespace=namespace)
            return
        text = self.render(self.model, facts)
        adapter = self.model.internalize(text, kind="profile")
        self.store.put(
            adapter,
            namespace=namespace,
            text=text,
            kind="profile",
            adapter_id=PROFILE_ID,
            extra={"facts": json.dumps(dict(facts)), "n_facts": len(facts)},
        )

    def _update(self, state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        messages = messages_of(state)
        configurable = config.get("configurable", {}) or {}
        namespace = self.namespace.format(config, run_context())
        # The document is the user's stored profile (shared by all their threads) plus this
        # thread's edits not yet internalized; the thread keeps edits, never a stale full copy.
        pending = [ProfileEdit.model_validate(e) for e in state.get("profile_pending") or []]
        stored = self.stored_facts(namespace)
        facts, _ = apply_edits(stored or {}, pending)
        if configurable.get("profile_updates", True) and messages and isinstance(messages[-1], HumanMessage):
            facts, applied = apply_edits(facts, self.extractor(messages, facts))
            pending += applied
        due = self.internalize_every and len(pending) >= self.internalize_every
        if pending and (due or configurable.get("internalize_profile")):
            with _namespace_lock(namespace):  # re-read: another thread may have written meanwhile
                stored = self.stored_facts(namespace)
                facts, _ = apply_edits(stored or {}, pending)
                self.internalize(facts, namespace)
                stored = facts or None  # internalize() deletes the adapter when nothing is left
            pending = []
        active = [ref(PROFILE_ID, namespace)] if stored is not None else []
        return {
            "profile": facts,
            "profile_pending": [e.model_dump() for e in pending],
            "profile_pending_edits": len(pending),
            "active_adapters": {"profile": active},
        }

    async def _aupdate(self, state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        return await asyncio.to_thread(self._update, state, config)
