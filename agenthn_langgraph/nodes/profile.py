"""Personalization: a per-user profile document, edited diff-style and internalized into an adapter.

After each user turn ``ProfileUpdateNode`` asks an *extractor* for edits (add / update / remove a
fact) and applies them to the user's profile document. Every ``internalize_every`` edits, or on
demand, the document is internalized into the user's profile adapter (id ``"profile"`` in the
user's namespace), replacing the previous one. The node also puts that adapter in
``active_adapters["profile"]``, so a new session answers from it with an empty context.

Two extractors ship: :class:`RuleProfileExtractor` (patterns; works with the tiny default and
needs no model) and :class:`ChatModelProfileExtractor` (any chat model that can write JSON).

Edits not yet internalized wait in the thread's state, **keyed by the user's namespace**: several
users may speak on one thread (a group chat, a shared kiosk session), and one user's pending facts
must never be internalized into another user's profile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from ..chat_model import LocalHypernetChatModel
from ..options import check_int_option
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


def patterns_of(model: LocalHypernetChatModel) -> dict[str, list[re.Pattern[str]]]:
    """The statement patterns of the model's language, when it has them (the tiny default does)."""
    language = getattr(model.engine, "language", None)
    patterns = getattr(language, "statement_patterns", None)
    return patterns() if callable(patterns) else {}


class RuleProfileExtractor:
    r"""Edits from first-person statements in the latest human message, by patterns.

    ``patterns`` map a key to regexes with a ``v`` group (a language can supply them, see
    :func:`patterns_of`); a generic ``my <thing> is <value>`` always applies, and ``forget my
    <key>`` removes a fact.

    >>> rx = {"city": [re.compile(r"^i live in (?P<v>[\w-]+) \.$")]}
    >>> RuleProfileExtractor(rx)([HumanMessage("hi . i live in lima . forget my pet .")], {"pet": "my pet is a cat ."})
    [ProfileEdit(op='add', key='city', value='i live in lima .'), ProfileEdit(op='remove', key='pet', value=None)]
    """

    _GENERIC = re.compile(r"^my (?P<key>[\w ]{1,30}?) is (?P<v>[\w -]+) \.$")
    _FORGET = re.compile(r"^forget (?:my |about my )?(?P<key>[\w ]{1,30}?) \.$")

    def __init__(
        self,
        patterns: Mapping[str, Sequence[re.Pattern[str]]] | None = None,
        *,
        model: LocalHypernetChatModel | None = None,
    ) -> None:
        """``model``: take the patterns of the model's language, on first use (no load at graph build)."""
        self._patterns = dict(patterns) if patterns is not None else None
        self._model = model

    @property
    def patterns(self) -> dict[str, Sequence[re.Pattern[str]]]:
        if self._patterns is None:
            self._patterns = patterns_of(self._model) if self._model is not None else {}
        return self._patterns

    @staticmethod
    def sentences(text: str) -> list[str]:
        spaced = re.sub(r"\s*([.!?])\s*", r" \1 ", text.lower())
        return [s.strip() + " ." for s in re.split(r" [.!?] ", spaced + " ") if s.strip()]

    def __call__(self, messages: Sequence[BaseMessage], facts: Mapping[str, str]) -> list[ProfileEdit]:
        text = latest_human_text(messages) or ""
        edits: list[ProfileEdit] = []
        language = getattr(self._model.engine, "language", None) if self._model is not None else None
        split = getattr(language, "sentences", None)  # a language's own: English keeps case and punctuation
        for sentence in split(text) if callable(split) else self.sentences(text):
            plain = " ".join(self.sentences(sentence))  # lower case, " ." ends: the generic patterns' form
            forget = self._FORGET.match(plain)
            if forget:
                edits.append(ProfileEdit(op="remove", key=forget["key"].strip()))
                continue
            key = next((k for k, rxs in self.patterns.items() if any(rx.match(sentence) for rx in rxs)), None)
            if key is None and (generic := self._GENERIC.match(plain)):
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
    ack = getattr(getattr(model.engine, "language", None), "acknowledgement", "ok .")  # in the model's language
    turns: list[BaseMessage] = []
    for statement in facts.values():
        turns += [HumanMessage(statement), AIMessage(ack)]
    return render_segment(model, turns)


class _NamespaceLock:
    """A lock that can be weakly referenced (``threading.Lock`` cannot)."""

    __slots__ = ("_lock", "__weakref__")

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


# Weak values: a user's lock lives only while some thread holds or waits on it, so a long-running
# server does not keep one lock per user it ever saw. Two threads of one user that overlap get the
# same lock (the first keeps it alive); once both are done it is dropped.
_LOCKS: weakref.WeakValueDictionary[tuple[str, ...], _NamespaceLock] = weakref.WeakValueDictionary()
_LOCKS_GUARD = threading.Lock()


def _namespace_lock(namespace: tuple[str, ...]) -> _NamespaceLock:
    """One lock per user namespace in this process (read-modify-write of the profile adapter).

    Keep the returned object for as long as the lock is needed: it is what keeps it shared.
    """
    with _LOCKS_GUARD:
        lock = _LOCKS.get(tuple(namespace))
        if lock is None:
            lock = _LOCKS[tuple(namespace)] = _NamespaceLock()
        return lock


def pending_key(namespace: Sequence[str]) -> str:
    """The key of a user's pending edits in ``state["profile_pending"]`` (the namespace as JSON)."""
    return json.dumps(list(namespace))


def _pending_by_user(state: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """``profile_pending`` as {namespace key: edits}. A list (the format before edits were keyed
    by user) cannot say whose edits it holds, so it is dropped rather than given to whoever
    speaks next."""
    raw = state.get("profile_pending") or {}
    if isinstance(raw, list):
        log.warning("dropping %d pending profile edits of an unknown user (state from an older version)", len(raw))
        return {}
    return {str(k): list(v) for k, v in raw.items() if v}


class ProfileUpdateNode(RunnableLambda):
    """Edit the user's profile document after each user turn; internalize it every N edits.

    Args:
        model: the chat model whose hypernetwork writes the profile adapter.
        store: an :class:`~agenthn_langgraph.store.AdapterStore`.
        extractor: turns the conversation into :class:`ProfileEdit` s; default
            :class:`RuleProfileExtractor` with the patterns of the model's language.
        internalize_every: internalize after this many applied edits (``0``: only on demand).
        namespace: the user's namespace; default ``("profiles", "{user_id}")``.
        render: profile document -> text to internalize; default :func:`render_profile`.

    Per call, ``config["configurable"]``:
        ``profile_updates=False`` switches editing off (the stored adapter is still applied);
        ``internalize_profile=True`` internalizes now.

    Writes ``profile`` (the current user's document), ``profile_pending`` (edits not yet
    internalized, ``{namespace key: edits}``: each user's own, so users who share a thread never
    write into each other's profile), ``profile_pending_edits`` (the current user's count) and
    ``active_adapters["profile"]``. Internalizing re-reads the stored profile under a per-user
    lock and applies that user's pending edits to it, so two threads of one user never overwrite
    each other's facts (within one process; across processes, serve one user from one worker).
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
        check_int_option("internalize_every", internalize_every, minimum=0)
        self.model, self.store = model, store
        self.extractor = extractor or RuleProfileExtractor(model=model)
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
        # user's edits on this thread not yet internalized; the thread keeps edits, never a stale
        # full copy, and keeps them per user: only this user's own are read, applied or written.
        key = pending_key(namespace)
        by_user = _pending_by_user(state)
        pending = [ProfileEdit.model_validate(e) for e in by_user.pop(key, [])]
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
        if pending:
            by_user[key] = [e.model_dump() for e in pending]
        return {
            "profile": facts,
            "profile_pending": by_user,
            "profile_pending_edits": len(pending),
            "active_adapters": {"profile": active},
        }

    async def _aupdate(self, state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        return await asyncio.to_thread(self._update, state, config)
