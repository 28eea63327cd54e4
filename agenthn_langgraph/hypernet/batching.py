"""QA examples -> the token tensors one hypernetwork training step needs (any tokenizer).

Per example, once (:class:`TokenizedExample`): the context as the hypernetwork reads it, and per
question the student prompt, the teacher prompt and the answer tokens (through the chat template's
end-of-turn token), all from :class:`~agenthn_langgraph.prompting.PromptBuilder`. Answers are
located in the context through the tokenizer's character offsets, so a multi-token, sub-word
answer ("Maria Lopez", "42 kilograms") maps each of its tokens to the context token it copies.

Per step (:func:`make_batch`): targets with their questions, each composed with 0..8 *unrelated*
distractor texts (disjoint fact keys; mostly of the target's own genre, which share attributes
and make the hard cases), padded into tensors.
"""

from __future__ import annotations

import random
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..data.qa import QAExample
from ..engine import pad_sequences
from ..prompting import PromptBuilder


@dataclass(frozen=True)
class TokenizedQA:
    question: str
    student: list[int]  # prompt without the text
    answer: list[int]  # answer tokens + end of turn
    copies: list[int]  # per answer token: the context position holding it, or -1 (end of turn, not found)
    # The teacher prompt (the text + the question) is built per batch, not kept: it repeats the
    # whole text once per question, and a cache of them outgrew the machine's memory.


@dataclass(frozen=True)
class TokenizedExample:
    context: list[int]  # [BOS] + text: what the hypernetwork reads
    value_positions: frozenset[int]  # context positions inside any answer span
    qa: tuple[TokenizedQA, ...]


def tokenize_example(example: QAExample, prompts: PromptBuilder) -> TokenizedExample:
    tok = prompts.tokenizer
    context = prompts.context_ids(example.context)
    offset = len(context) - len(prompts.encode(example.context))  # 1 with a BOS token
    with prompts.lock:
        spans = tok(example.context, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    values: set[int] = set()
    qa = []
    for pair in example.qa:
        answer, chars = prompts.answer_tokens(pair.question, pair.answer)
        start = _find(example.context, pair.answer)
        copies = [-1] * len(answer)
        if start >= 0:
            values.update(offset + i for i, (a, b) in enumerate(spans) if a < start + len(pair.answer) and b > start)
            for j, char in enumerate(chars):
                if char is not None:
                    pos = next((i for i, (a, b) in enumerate(spans) if a <= start + char < b), None)
                    copies[j] = -1 if pos is None else offset + pos
        qa.append(TokenizedQA(pair.question, prompts.student_ids(pair.question), answer, copies))
    return TokenizedExample(context, frozenset(values), tuple(qa))


def _find(context: str, answer: str) -> int:
    i = context.find(answer)
    return i if i >= 0 else context.lower().find(answer.lower())


@dataclass
class Batch:
    text_ids: torch.Tensor  # [N, T] every text of the step: targets first, then distractors
    text_mask: torch.Tensor
    value_mask: torch.Tensor  # [N, T] 1 on context tokens inside an answer span
    student_ids: torch.Tensor  # [Q, S] question prompt + gold answer (teacher forcing)
    student_mask: torch.Tensor
    teacher_ids: torch.Tensor | None  # [Q, U] prompt with the text + gold answer (None: no teacher)
    teacher_mask: torch.Tensor | None
    student_pos: torch.Tensor  # [A, 2] (question row, position predicting the answer token)
    teacher_pos: torch.Tensor | None  # [A, 2]
    targets: torch.Tensor  # [A] gold answer tokens
    copy_pos: torch.Tensor  # [A, 2] (text row, context position of that token), (-1, -1) if none
    compose: list[list[int]]  # per question: text rows composed for it, its own first
    # The same student sequences cut where the answer begins, for an adapter that acts on the
    # answer only: the prompt but its last token [Q, P] (left-padded, so every row's cache ends
    # in column P - 1), and the answer chunk [Q, C] (right-padded): the prompt's last token, then
    # the answer but its last token; chunk position j predicts answer token j.
    prompt_ids: torch.Tensor | None = None
    prompt_mask: torch.Tensor | None = None
    chunk_ids: torch.Tensor | None = None
    chunk_mask: torch.Tensor | None = None
    chunk_pos: torch.Tensor | None = None  # [A, 2] (question row, chunk position), in targets' order
    # Which pool example each text row is, and (example, pair index) of each question row: what a
    # feature cache looks its stored features up by.
    text_examples: list[int] | None = None
    question_keys: list[tuple[int, int]] | None = None

    @property
    def n_texts(self) -> int:
        return int(self.text_ids.shape[0])

    @property
    def n_targets(self) -> int:
        """Texts whose questions are asked (the first rows); the rest are only distractors."""
        return max(c[0] for c in self.compose) + 1

    def to(self, device: torch.device | str) -> Batch:
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        return Batch(**moved)


class ExamplePool:
    """The examples of one split, tokenized lazily and indexed for distractor draws.

    Tokenized examples are kept in a bounded LRU cache (``cache_size``), so memory does not grow
    with the dataset; which examples fit the window is remembered for all of them (one bool each).
    """

    def __init__(
        self, examples: Sequence[QAExample], prompts: PromptBuilder, *, window: int, cache_size: int = 8192
    ) -> None:
        self.examples = list(examples)
        self.prompts = prompts
        self.window = window
        self.cache_size = cache_size
        self._cache: OrderedDict[int, TokenizedExample] = OrderedDict()
        self._fits: dict[int, bool] = {}
        self.by_genre: dict[str | None, list[int]] = defaultdict(list)
        for i, ex in enumerate(self.examples):
            self.by_genre[ex.genre].append(i)
        self.genres = list(self.by_genre)

    def __len__(self) -> int:
        return len(self.examples)

    def tokenized(self, i: int) -> TokenizedExample | None:
        """The example's tokens, or None when its context does not fit the encoder window."""
        if self._fits.get(i) is False:
            return None
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        t = tokenize_example(self.examples[i], self.prompts)
        self._fits[i] = len(t.context) <= self.window
        if not self._fits[i]:
            return None
        self._cache[i] = t
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return t

    def draw_target(self, rng: random.Random, genre: str | None | object = ...) -> int:
        """A random example that fits the window (of ``genre``, when given)."""
        pool = self.by_genre[genre] if genre is not ... else None  # type: ignore[index]
        for _ in range(100):
            i = pool[rng.randrange(len(pool))] if pool else rng.randrange(len(self.examples))
            if self.tokenized(i) is not None:
                return i
        raise ValueError(f"no example fits the encoder window of {self.window} tokens")

    def mates_among(
        self, target: int, candidates: Sequence[int], n: int, rng: random.Random, same_genre: float
    ) -> list[int]:
        """Up to ``n`` of ``candidates`` unrelated to ``target``, each of its genre with probability ``same_genre``."""
        ex = self.examples[target]
        free = [j for j in candidates if ex.unrelated_to(self.examples[j])]
        rng.shuffle(free)
        same = [j for j in free if self.examples[j].genre == ex.genre]
        other = [j for j in free if self.examples[j].genre != ex.genre]
        chosen = []
        while len(chosen) < n and (same or other):
            source = same if (same and (rng.random() < same_genre or not other)) else other
            chosen.append(source.pop())
        return chosen

    def draw_distractors(self, target: int, n: int, rng: random.Random, same_genre: float) -> list[int]:
        """``n`` examples unrelated to ``target`` (no shared fact key), mostly of its genre."""
        ex = self.examples[target]
        chosen: list[int] = []
        for _ in range(n * 20):
            if len(chosen) == n:
                break
            genre = ex.genre if rng.random() < same_genre else rng.choice(self.genres)
            pool = self.by_genre[genre]
            j = pool[rng.randrange(len(pool))]
            if j != target and j not in chosen and ex.unrelated_to(self.examples[j]) and self.tokenized(j) is not None:
                chosen.append(j)
        return chosen


def _distinct(draw: Callable[[int], int], n: int) -> list[int]:
    """``n`` draws without repeats (a few retries per draw; a repeat is kept if the pool is tiny)."""
    out: list[int] = []
    for k in range(n):
        for _ in range(20):
            i = draw(k)
            if i not in out:
                break
        out.append(i)
    return out


def make_batch(
    pool: ExamplePool,
    rng: random.Random,
    *,
    targets: int,
    questions_per_text: int,
    distractors: Sequence[int],
    same_genre: float,
    pad_id: int,
    in_batch: int | None = None,
    teacher: bool = True,
) -> Batch:
    """One step: ``targets`` texts, up to ``questions_per_text`` questions each, every target
    composed with a number of distractors drawn from ``distractors`` (e.g. ``(0, 1, 2, 4, 8)``).

    Distractors are fresh texts per target by default. With ``in_batch=M`` they are drawn from the
    step's own texts instead -- the other targets plus ``M`` extra texts, the targets drawn from
    two genres so most mates share attributes -- so a step reads ``targets + M`` texts, not
    ``targets x (1 + distractors)``: the base pass over the texts is what a large base pays most for.
    ``teacher=False`` skips the teacher prompts (the text before every question), which only a
    distillation loss reads.
    """
    rows: list[int] = []  # example index per text row
    row_of: dict[int, int] = {}

    def row(i: int) -> int:
        if i not in row_of:
            row_of[i] = len(rows)
            rows.append(i)
        return row_of[i]

    if in_batch is None:
        target_ids = [pool.draw_target(rng) for _ in range(targets)]
    else:
        genres = rng.sample(pool.genres, min(2, len(pool.genres)))
        target_ids = _distinct(lambda k: pool.draw_target(rng, genre=genres[k % len(genres)]), targets)
    for t in target_ids:
        row(t)
    if in_batch:
        for j in _distinct(
            lambda k: pool.draw_target(rng, genre=pool.examples[target_ids[k % targets]].genre), in_batch
        ):
            row(j)
    questions: list[tuple[int, TokenizedQA, list[int]]] = []
    keys: list[tuple[int, int]] = []
    contexts: dict[int, TokenizedExample] = {}  # held for this batch whatever the LRU evicts meanwhile
    for i in rows:
        contexts[i] = pool.tokenized(i)  # type: ignore[assignment]
    for t in target_ids:
        tok = contexts[t]
        n = rng.choice(list(distractors))
        if in_batch is None:
            mates = pool.draw_distractors(t, n, rng, same_genre)
            for j in mates:
                contexts[j] = pool.tokenized(j)  # type: ignore[assignment]
        else:
            mates = pool.mates_among(t, [i for i in rows if i != t], n, rng, same_genre)
        for k in rng.sample(range(len(tok.qa)), min(len(tok.qa), questions_per_text)):
            questions.append((row_of[t], tok.qa[k], [row_of[t], *(row(j) for j in mates)]))
            keys.append((t, k))
    teachers = (
        [pool.prompts.teacher_ids(pool.examples[rows[r]].context, q.question) for r, q, _ in questions]
        if teacher
        else None
    )
    ordered = [contexts[i] for i in rows]
    text_ids, text_mask = pad_sequences([c.context for c in ordered], pad_id)
    value_mask = torch.zeros(text_ids.shape)
    for r, c in enumerate(ordered):
        for p in c.value_positions:
            value_mask[r, p] = 1.0
    student_ids, student_mask = pad_sequences([q.student + q.answer for _, q, _ in questions], pad_id)
    prompt_ids, prompt_mask = pad_sequences([q.student[:-1] for _, q, _ in questions], pad_id, side="left")
    chunk_ids, chunk_mask = pad_sequences([q.student[-1:] + q.answer[:-1] for _, q, _ in questions], pad_id)
    teacher_ids = teacher_mask = None
    if teachers is not None:
        teacher_ids, teacher_mask = pad_sequences(
            [t + q.answer for t, (_, q, _) in zip(teachers, questions, strict=True)], pad_id
        )
    s_pos, t_pos, targets_, copy_pos = [], [], [], []
    for qi, (text_row, q, _) in enumerate(questions):
        for j, token in enumerate(q.answer):
            s_pos.append((qi, len(q.student) - 1 + j))
            if teachers is not None:
                t_pos.append((qi, len(teachers[qi]) - 1 + j))
            targets_.append(token)
            copy_pos.append((text_row, q.copies[j]) if q.copies[j] >= 0 else (-1, -1))
    return Batch(
        text_ids=text_ids,
        text_mask=text_mask,
        value_mask=value_mask,
        student_ids=student_ids,
        student_mask=student_mask,
        teacher_ids=teacher_ids,
        teacher_mask=teacher_mask,
        student_pos=torch.tensor(s_pos),
        teacher_pos=torch.tensor(t_pos) if teachers is not None else None,
        targets=torch.tensor(targets_),
        copy_pos=torch.tensor(copy_pos),
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        chunk_ids=chunk_ids,
        chunk_mask=chunk_mask,
        chunk_pos=torch.tensor([(qi, j) for qi, (_, q, _) in enumerate(questions) for j in range(len(q.answer))]),
        compose=[c for _, _, c in questions],
        text_examples=list(rows),
        question_keys=keys,
    )
