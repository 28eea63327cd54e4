"""Self-improvement: attempt, grade, reflect on the failures, rewrite notes, re-internalize.

``AttemptNode`` answers the practice questions with the current notes adapter; ``GradeNode``
scores the attempts and keeps the best adapter so far (a round never makes things worse);
``ReflectNode`` asks a *reflector* to rewrite the notes from the failures and internalizes the new
notes into a fresh adapter. :func:`~agenthn_langgraph.prebuilt.create_self_improvement_graph`
wires them into a loop.

Two reflectors ship: :class:`PassageReflector` (no model: extracts the passages of the study
material that answer what was missed, and gives missed facts a chunk of their own) and
:class:`ChatModelReflector` (any chat model rewrites the notes).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NotRequired, Protocol, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig, RunnableLambda

from ..chat_model import LocalHypernetChatModel
from ..errors import EmptyTextError
from ..lora.adapter import LoraAdapter
from .state import AdapterRef, NamespaceTemplate, ref, run_context

DEFAULT_NOTES_NAMESPACE = ("notes", "{thread_id}")
_WORD = re.compile(r"[\w-]+")
_STOP = set("a an the is are of what which who where when how do does did i my you to in on for by much many ?".split())


class QA(TypedDict):
    question: str
    answer: str


class Attempt(TypedDict):
    question: str
    expected: str
    predicted: str
    correct: bool


class SelfImproveState(TypedDict):
    """State of the self-improvement loop (all JSON-serializable)."""

    study_material: str
    questions: list[QA]
    notes: NotRequired[list[str]]
    """The agent's notes: passages, one adapter chunk per entry."""
    round: NotRequired[int]
    attempts: NotRequired[list[Attempt]]
    scores: NotRequired[list[float]]
    """Score of each round's attempts, round 0 (no notes) first."""
    best_score: NotRequired[float]
    best_notes: NotRequired[list[str] | None]
    best_adapter: NotRequired[AdapterRef | None]
    candidate_adapter: NotRequired[AdapterRef | None]
    stop_reason: NotRequired[str]
    run_id: NotRequired[str]


def start_run(state: dict[str, Any]) -> dict[str, Any]:
    """Reset the loop: a new input on a thread starts a new run, not round N+1 of the last one."""
    return {
        "run_id": uuid.uuid4().hex[:8],
        "round": 0,
        "notes": [],
        "attempts": [],
        "scores": [],
        "best_score": -1.0,
        "best_notes": None,
        "best_adapter": None,
        "candidate_adapter": None,
        "stop_reason": "",
    }


Grader = Callable[[str, str, str], bool]


def exact_match_grader(question: str, expected: str, predicted: str) -> bool:
    """Correct when the answer's first words are the expected answer (case-insensitive)."""
    want, got = expected.lower().split(), predicted.lower().split()
    return bool(want) and got[: len(want)] == want


def sentences(text: str) -> list[str]:
    """Split study material into sentences (". ", "? ", "! " or line breaks)."""
    parts = re.split(r"(?<=[.!?])\s+|\n+", text.strip())
    return [p.strip() for p in parts if p.strip()]


class Reflector(Protocol):
    def __call__(self, failures: Sequence[Attempt], notes: Sequence[str], study_material: str) -> list[str]: ...


class PassageReflector:
    """New notes = the study passages that answer each missed question, plus the old notes.

    The passage that answers a missed question is the one that contains the expected answer
    (the grader's feedback) and shares the most content words with the question. Missed passages
    are grouped ``facts_per_chunk`` to a note entry (each entry becomes one adapter chunk; the
    hypernetwork holds a few facts per chunk well, many badly); old notes that still matter follow.

    >>> r = PassageReflector()
    >>> r([{"question": "who makes zorp ?", "expected": "acme", "predicted": "x", "correct": False}],
    ...   [], "zorp is a gadget . zorp is made by acme . the price of zorp is 7 .")
    ['zorp is made by acme .']
    """

    def __init__(self, *, facts_per_chunk: int = 3) -> None:
        self.facts_per_chunk = facts_per_chunk

    @staticmethod
    def _content(text: str) -> set[str]:
        return {w for w in _WORD.findall(text.lower()) if w not in _STOP}

    def answering_passage(self, attempt: Attempt, passages: Sequence[str]) -> str | None:
        q, answer = self._content(attempt["question"]), set(_WORD.findall(attempt["expected"].lower()))

        def score(p: str) -> tuple[bool, int]:
            words = set(_WORD.findall(p.lower()))
            return (bool(answer) and answer <= words, len(q & words))

        best = max(passages, key=score, default=None)
        return best if best is not None and score(best)[0] else None

    def __call__(self, failures: Sequence[Attempt], notes: Sequence[str], study_material: str) -> list[str]:
        passages = sentences(study_material)
        missed: list[str] = []
        for f in failures:
            p = self.answering_passage(f, passages)
            if p is not None and p not in missed:
                missed.append(p)
        kept = [s for chunk in notes for s in sentences(chunk) if s not in missed]
        ordered = missed + kept
        n = self.facts_per_chunk
        return [" ".join(ordered[i : i + n]) for i in range(0, len(ordered), n)]


REFLECT_PROMPT = """You are improving your study notes. Study material:
{material}

Current notes:
{notes}

You got these questions wrong:
{failures}

Rewrite the notes so they answer those questions and keep what was right. One fact per line."""


class ChatModelReflector:
    """Any chat model rewrites the notes (one line per note chunk)."""

    def __init__(self, model: BaseChatModel, *, prompt: str = REFLECT_PROMPT) -> None:
        self.model, self.prompt = model, prompt

    def __call__(self, failures: Sequence[Attempt], notes: Sequence[str], study_material: str) -> list[str]:
        listed = "\n".join(
            f"- {f['question']} (answered {f['predicted']!r}, expected {f['expected']!r})" for f in failures
        )
        reply = self.model.invoke(
            self.prompt.format(material=study_material, notes="\n".join(notes) or "(none)", failures=listed)
        ).text
        return [line.strip("-* ").strip() for line in reply.splitlines() if line.strip("-* ").strip()]


def internalize_notes(model: LocalHypernetChatModel, notes: Sequence[str]) -> LoraAdapter:
    """One chunk adapter per note entry, composed into a single adapter."""
    entries = [n for n in notes if n.strip()]
    if not entries:
        raise EmptyTextError("no notes to internalize")
    parts = model.engine.internalize_many(entries, kind="notes")
    if len(parts) == 1:
        return parts[0]
    composed = LoraAdapter.compose(parts)
    composed.metadata = composed.metadata.model_copy(update={"kind": "notes"})
    return composed


class AttemptNode(RunnableLambda):
    """Answer every practice question with the candidate (or best) notes adapter applied."""

    def __init__(self, model: LocalHypernetChatModel, store: Any, *, max_tokens: int = 4, name: str = "attempt"):
        self.model, self.store, self.max_tokens = model, store, max_tokens
        super().__init__(self._attempt, afunc=self._aattempt, name=name)

    def _attempt(self, state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        questions = state.get("questions") or []
        if not questions:
            raise ValueError("the self-improvement loop needs at least one practice question")
        adapter_ref = state.get("candidate_adapter")
        adapters = [adapter_ref] if adapter_ref else []
        replies = self.model.batch(
            [q["question"] for q in questions],
            config=config,
            adapters=adapters,
            adapter_store=self.store,
            max_tokens=self.max_tokens,
        )
        attempts = [
            Attempt(question=q["question"], expected=q["answer"], predicted=r.text, correct=False)
            for q, r in zip(questions, replies, strict=True)
        ]
        return {"attempts": attempts}

    async def _aattempt(self, state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        return await asyncio.to_thread(self._attempt, state, config)


class GradeNode(RunnableLambda):
    """Grade the attempts; keep the best adapter and notes so far."""

    def __init__(self, grader: Grader = exact_match_grader, *, name: str = "grade"):
        self.grader = grader
        super().__init__(self._grade, name=name)

    def _grade(self, state: dict[str, Any]) -> dict[str, Any]:
        attempts = [
            {**a, "correct": bool(self.grader(a["question"], a["expected"], a["predicted"]))}
            for a in state.get("attempts") or []
        ]
        score = sum(a["correct"] for a in attempts) / max(len(attempts), 1)
        update: dict[str, Any] = {"attempts": attempts, "scores": [*(state.get("scores") or []), score]}
        if score > state.get("best_score", -1.0):
            update |= {
                "best_score": score,
                "best_adapter": state.get("candidate_adapter"),
                "best_notes": list(state.get("notes") or []),
            }
        return update


class ReflectNode(RunnableLambda):
    """Reflect on the failed attempts, rewrite the notes, and internalize them into a fresh adapter.

    Args:
        model: the chat model whose hypernetwork writes the notes adapter.
        store: an :class:`~agenthn_langgraph.store.AdapterStore`; adapters are kept per round
            (``notes-round-<n>``) so the best one stays loadable.
        reflector: default :class:`PassageReflector`.
        namespace: default ``("notes", "{thread_id}")``.
    """

    def __init__(
        self,
        model: LocalHypernetChatModel,
        store: Any,
        *,
        reflector: Reflector | None = None,
        namespace: str | Sequence[str] = DEFAULT_NOTES_NAMESPACE,
        name: str = "reflect",
    ) -> None:
        self.model, self.store = model, store
        self.reflector = reflector or PassageReflector()
        self.namespace = NamespaceTemplate(namespace)
        super().__init__(self._reflect, afunc=self._areflect, name=name)

    def _reflect(self, state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        failures = [a for a in state.get("attempts") or [] if not a["correct"]]
        round_ = int(state.get("round") or 0) + 1
        # reflect from the best notes so far, so a bad round is not built upon
        base_notes = state.get("best_notes") if state.get("best_notes") is not None else state.get("notes") or []
        notes = self.reflector(failures, base_notes, state.get("study_material", ""))
        if not notes or notes == list(state.get("notes") or []):
            return {"round": round_, "stop_reason": "reflection changed nothing"}
        namespace = self.namespace.format(config, run_context())
        adapter = internalize_notes(self.model, notes)
        # unique per run: a later run on the same thread never replaces an earlier run's best adapter
        adapter_id = f"notes-{state.get('run_id') or uuid.uuid4().hex[:8]}-round-{round_}"
        self.store.put(adapter, namespace=namespace, text="\n".join(notes), kind="notes", adapter_id=adapter_id)
        return {"round": round_, "notes": notes, "candidate_adapter": ref(adapter_id, namespace)}

    async def _areflect(self, state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        return await asyncio.to_thread(self._reflect, state, config)
