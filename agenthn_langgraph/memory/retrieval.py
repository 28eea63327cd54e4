"""Finding the segment that holds the fact: what is indexed, how it is ranked, when it is used.

**Indexed**: what the user *stated*, not whole rendered turns. A segment adapter carries, in its
record's ``extra["entries"]``, one :class:`MemoryEntry` per user message that states a value (the
hypernetwork's gate decides, :func:`~agenthn_langgraph.memory.signals.stated_values`): the
message, its turn and its values. Small talk and the assistant's replies are not entries, so an
assistant that echoed an old value never makes a segment look like it holds that value.

**Ranked**, per question (:meth:`SegmentRetriever.retrieve`):

1. memory is consulted only for messages the base alone is unsure how to answer (its most likely
   first answer token has probability <= ``base_confidence_limit``): "hello !" or "tell me a
   joke ." get the base's own reply without any candidate being considered. And a message that
   itself states a value is news, not a question to memory: nothing is recalled;
2. candidates: the ``candidates`` entries most similar to the question: dense (all-MiniLM-L6-v2
   cosine) and lexical (the share of the question's IDF weight found in the entry, IDF over the
   namespace's entries), mixed by ``lexical_weight``;
3. judged, by one of two **judges** (``judge``; by default the one the model registered):

   * ``"reader"``: how likely the base, reading the entry in its prompt, answers the question
     with the entry's value (:func:`~agenthn_langgraph.memory.signals.reader_logprobs`). Entries
     the reader gives less than ``min_confidence``, or more than ``confidence_margin`` below the
     best entry, are dropped. The tiny default reads this way (its reader is its teacher);
   * ``"similarity"``: the dense similarity alone must reach ``min_score``, and entries within
     ``recency_margin`` of the best count. For chat models whose base is a weak reader of its own
     prompt: on generated English threads SmolLM2-135M's reader ranks the right statement first
     for 17% of questions (it copies whatever value it is shown), the sentence embedding for 92%;

   when no entry is left, no adapter is applied and the model answers as the base would
   (questions memory cannot answer, small talk);
4. **the latest value wins**: the entries left are taken newest first, so a fact restated later
   supersedes the earlier statement at answer time. Older segments stay stored and listed: the
   history is kept, it just no longer answers.

Without a trained gate (D2L checkpoints) every user message is an entry, and without values the
reader cannot judge: similarity ranks alone, as under the ``"similarity"`` judge.
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ..errors import AdapterNotFoundError, InvalidArgumentError
from ..options import check_int_option, check_real_option
from .signals import reader_logprobs, stated_values

ENTRIES_KEY = "entries"
_CONTEXT_TURN = 1 << 40  # turn numbers given to messages still in the prompt: newer than any segment
_WORD = re.compile(r"\w+", re.UNICODE)
JUDGES = ("reader", "similarity")
# The similarity judge's bar, from generated English threads (seeds 100-139, 240 questions, 240
# small-talk turns, all-MiniLM-L6-v2): at 0.30 the right statement clears it for 87% of questions
# and the best statement for 14% of small talk; 0.25: 92% / 34%; 0.35: 73% / 7%.
# The newest entry within 0.10 of the best answers: the latest statement is picked for 0.76 of all
# questions and 0.76 of restated ones (0.05: 0.75 / 0.65; 0.15: 0.75 / 0.84); a restatement is
# often phrased further from the question than the statement it replaces.
DEFAULT_SIMILARITY_MIN_SCORE = 0.3
DEFAULT_SIMILARITY_RECENCY_MARGIN = 0.1


@dataclass(frozen=True)
class MemoryEntry:
    """One thing the user stated, as indexed for a segment adapter."""

    turn: int
    text: str
    values: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["values"] = list(self.values)
        return d


@dataclass(frozen=True)
class Recalled:
    """A segment chosen for a question, with the entry that made it win."""

    segment_id: str
    entry: MemoryEntry
    similarity: float
    confidence: float | None  # the reader's P(value | entry, question); None when it could not judge


def entries_for_turns(model: Any, turns: Sequence[tuple[int, str]]) -> list[MemoryEntry]:
    """The entries of a segment: ``(turn, user message)`` pairs kept where the message states a value."""
    texts = [t for _, t in turns]
    values = stated_values(model.engine, texts) if texts and model is not None else None
    if values is None:  # no trained gate: every message is an entry
        return [MemoryEntry(turn, text) for turn, text in turns]
    return [MemoryEntry(turn, text, tuple(v)) for (turn, text), v in zip(turns, values, strict=True) if v]


def dump_entries(entries: Sequence[MemoryEntry]) -> str:
    return json.dumps([e.to_json() for e in entries], separators=(",", ":"))


def load_entries(record: Any) -> list[MemoryEntry]:
    """A stored segment's entries; a segment stored before entries existed is one entry of its text."""
    raw = (record.extra or {}).get(ENTRIES_KEY)
    if raw is None:
        return [MemoryEntry(int(record.turn_start or 0), record.text)]
    return [MemoryEntry(int(e["turn"]), str(e["text"]), tuple(e.get("values") or ())) for e in json.loads(raw)]


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class SegmentRetriever:
    """Ranks a namespace's segments for a question; see the module docstring.

    Args:
        store: the :class:`~agenthn_langgraph.store.AdapterStore` holding the segments.
        model: the :class:`~agenthn_langgraph.LocalHypernetChatModel` whose hypernetwork and base
            judge what a message states and what a statement answers; ``None``: similarity only.
        candidates: entries re-ranked by the reader per question (>= 1).
        judge: ``"reader"`` or ``"similarity"`` (see the module docstring); ``None``: the judge the
            model registered (``ModelSpec.recall_judge``), ``"similarity"`` without one.
        lexical_weight: the lexical share of the similarity (``None``: 0.5 with the reader, 0 with
            the similarity judge, whose bar is calibrated on the dense cosine).
        min_confidence: the reader probability an entry needs to be used (0 < p <= 1).
        confidence_margin: how far below the best entry's reader probability an entry may be and
            still count (then the newest counts first).
        base_confidence_limit: consult memory only when the base alone gives its most likely first
            answer token at most this probability (``None``: always consult).
        news_threshold: the gate value that makes a message news (it states a value, so nothing is
            recalled for it). Stricter than indexing's: indexing a question costs little, while
            reading a question as news would leave it unanswered (the tiny default's gate gives
            "like" in "which color do i like ?" 0.5-0.8, and every stated value >= 0.9).
        min_score: the similarity an entry needs when the reader does not judge it (``None``:
            :data:`DEFAULT_SIMILARITY_MIN_SCORE` under the similarity judge, any under the reader).
        recency_margin: similarity-only ranking prefers the newest entry within this of the best
            (``None``: :data:`DEFAULT_SIMILARITY_RECENCY_MARGIN` under the similarity judge, 0.05
            under the reader).
        cache_size: entry embeddings kept (least recently used go first).
    """

    def __init__(
        self,
        store: Any,
        model: Any = None,
        *,
        judge: str | None = None,
        lexical_weight: float | None = None,
        candidates: int = 8,
        min_confidence: float = 0.5,
        confidence_margin: float = 0.15,
        base_confidence_limit: float | None = 0.5,
        news_threshold: float = 0.9,
        min_score: float | None = None,
        recency_margin: float | None = None,
        cache_size: int = 4096,
    ) -> None:
        self.store, self.model = store, model
        if judge is None:
            judge = getattr(model.engine, "recall_judge", "similarity") if model is not None else "similarity"
        if judge not in JUDGES:
            raise InvalidArgumentError(f"judge must be one of {JUDGES}, got {judge!r}")
        self.judge = judge
        if lexical_weight is None:
            lexical_weight = 0.5 if judge == "reader" else 0.0
        self.lexical_weight = check_real_option("lexical_weight", lexical_weight, maximum=1.0)
        self.candidates = check_int_option("candidates", candidates)
        self.min_confidence = check_real_option("min_confidence", min_confidence, maximum=1.0)
        if self.min_confidence <= 0.0:
            raise InvalidArgumentError(f"min_confidence must be > 0, got {min_confidence!r}")
        self.confidence_margin = check_real_option("confidence_margin", confidence_margin, maximum=1.0)
        self.base_confidence_limit = (
            None
            if base_confidence_limit is None
            else check_real_option("base_confidence_limit", base_confidence_limit, maximum=1.0)
        )
        self.news_threshold = check_real_option("news_threshold", news_threshold, maximum=1.0)
        if min_score is None and judge == "similarity":
            min_score = DEFAULT_SIMILARITY_MIN_SCORE
        self.min_score = None if min_score is None else check_real_option("min_score", min_score, minimum=-1.0)
        if recency_margin is None:
            recency_margin = DEFAULT_SIMILARITY_RECENCY_MARGIN if judge == "similarity" else 0.05
        self.recency_margin = check_real_option("recency_margin", recency_margin)
        self.cache_size = check_int_option("cache_size", cache_size)
        self._embeddings: OrderedDict[str, np.ndarray] = OrderedDict()

    # ------------------------------------------------------------------ similarity
    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._embeddings]
        if missing:
            ef = self.store.embedding_function
            vectors = ef.embed_documents(missing) if hasattr(ef, "embed_documents") else ef(missing)
            for t, v in zip(missing, vectors, strict=True):
                self._embeddings[t] = np.asarray(v, dtype=np.float32)
        for t in texts:
            self._embeddings.move_to_end(t)
        rows = np.stack([self._embeddings[t] for t in texts])
        while len(self._embeddings) > self.cache_size:
            self._embeddings.popitem(last=False)
        return rows

    def similarities(self, query: str, entries: Sequence[MemoryEntry]) -> np.ndarray:
        """Dense cosine and lexical IDF overlap, mixed by ``lexical_weight``, per entry."""
        vectors = self._embed([query, *(e.text for e in entries)])
        dense = vectors[1:] @ vectors[0]
        if self.lexical_weight == 0.0:
            return dense
        docs = [set(_words(e.text)) for e in entries]
        df: dict[str, int] = {}
        for d in docs:
            for w in d:
                df[w] = df.get(w, 0) + 1
        n = len(docs)
        idf = {w: math.log((n + 1) / (df.get(w, 0) + 0.5)) for w in set(_words(query))}
        total = sum(max(v, 0.0) for v in idf.values()) or 1.0
        lexical = np.array([sum(max(idf[w], 0.0) for w in idf if w in d) / total for d in docs], dtype=np.float32)
        return (1.0 - self.lexical_weight) * dense + self.lexical_weight * lexical

    # ------------------------------------------------------------------ retrieval
    def states_value(self, text: str) -> bool:
        """Whether ``text`` states a value (by the hypernetwork's gate); False when it cannot tell."""
        if self.model is None:
            return False
        values = stated_values(self.model.engine, [text], threshold=self.news_threshold)
        return bool(values and values[0])

    def base_knows(self, text: str) -> bool:
        """Whether the base alone is sure how to start answering ``text`` (then memory stays out)."""
        if self.model is None or self.base_confidence_limit is None:
            return False
        logits = self.model.engine.next_token_logits([text])[0]
        return float(torch.softmax(logits, -1).max()) > self.base_confidence_limit

    def retrieve(
        self,
        query: str,
        *,
        namespace: Any,
        k: int = 1,
        context: Sequence[str] = (),
        segments: Sequence[str] | None = None,
    ) -> list[Recalled]:
        """At most ``k`` segments for ``query``, best first; ``[]`` when memory should stay out.

        ``segments``: the ids a thread's state lists (``None``: every segment of the namespace).
        Only these are candidates, so a segment replaced by a grown one, or stored by a branch the
        thread no longer follows, is never recalled.

        ``context``: the user messages still in the prompt, oldest first. They are newer than
        anything compacted, so when one of them answers the question confidently, no segment is
        recalled: the model reads the newest value from its context, not an older one from memory.
        """
        if self.base_knows(query) or self.states_value(query):
            return []
        records = self.store.list(namespace=namespace, kind="segment") if segments is None else []
        for segment in segments or ():  # read by id: a few file reads, whatever else the namespace holds
            try:
                records.append(self.store.get_record(segment, namespace=namespace))
            except AdapterNotFoundError:  # deleted since (remove_orphans, a replaced version)
                continue
        pool = [(rec.id, e) for rec in records for e in load_entries(rec)]
        if not pool:
            return []
        recent = entries_for_turns(self.model, list(enumerate(context, start=_CONTEXT_TURN))) if context else []
        pool += [("", e) for e in recent]  # "" marks an entry that is in the prompt, not in memory
        if not pool:
            return []
        sims = self.similarities(query, [e for _, e in pool])
        order = np.argsort(-sims, kind="stable")[: self.candidates]
        judged = [(pool[i][0], pool[i][1], float(sims[i])) for i in order]
        confident: list[tuple[str, MemoryEntry, float, float | None]] = []
        reader_items = [(j, v) for j, (_, e, _) in enumerate(judged) for v in e.values]
        probs: dict[int, float] = {}
        if self.model is not None and reader_items and self.judge == "reader":
            scores = reader_logprobs(self.model.engine, [(judged[j][1].text, query, v) for j, v in reader_items])
            for (j, _), s in zip(reader_items, scores, strict=True):
                probs[j] = max(probs.get(j, 0.0), math.exp(s))
        best_sim = judged[0][2]
        best_prob = max(probs.values(), default=0.0)
        for j, (seg, entry, sim) in enumerate(judged):
            if j in probs:
                if probs[j] >= max(self.min_confidence, best_prob - self.confidence_margin):
                    confident.append((seg, entry, sim, probs[j]))
            elif (self.min_score is None or sim >= self.min_score) and sim >= best_sim - self.recency_margin:
                confident.append((seg, entry, sim, None))
        confident.sort(key=lambda c: -c[1].turn)  # the latest statement wins
        out: list[Recalled] = []
        if confident and confident[0][0] == "":  # the newest confident statement is in the prompt
            return []
        for seg, entry, sim, p in confident:
            if seg == "":
                continue
            if all(r.segment_id != seg for r in out):
                out.append(Recalled(seg, entry, sim, p))
            if len(out) == k:
                break
        return out
