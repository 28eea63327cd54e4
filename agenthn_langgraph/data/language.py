"""A model's language, as generic code sees it: examples to train and evaluate on, and user facts.

The tiny default provides one (its little language), English another; benchmarks, demos and the
trainer take a :class:`Language` and never import either.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

from .facts import Fact, FactSource
from .qa import QAExample


class Language(FactSource, Protocol):
    """Generated data in one language: random facts, so nothing can live in a base's weights."""

    name: str
    genres: tuple[str, ...]

    def examples(
        self,
        n: int,
        seed: int,
        *,
        n_facts: int | tuple[int, int] = (1, 8),
        genres: Sequence[str] | None = None,
        heldout_phrasing: bool = False,
    ) -> list[QAExample]:
        """``n`` examples for ``seed``; ``heldout_phrasing`` states facts only with phrasings
        training never sees. Raises ValueError for more facts than a genre can hold."""
        ...

    def max_facts(self, genre: str) -> int:
        """Most facts one text of ``genre`` can state."""
        ...


class DatasetLanguage:
    """A fixed list of examples (e.g. a JSONL file) seen as a :class:`Language` for benchmarks.

    ``examples(n, seed, ...)`` samples without replacement among the examples that match
    (facts per text, genres, held-out phrasing by ``meta["split"]``) and returns at most ``n``:
    a fixed dataset may hold fewer. It states no user facts of its own.
    """

    def __init__(self, examples: Sequence[QAExample], name: str = "dataset") -> None:
        if not examples:
            raise ValueError("a dataset language needs at least one example")
        self.name = name
        self._examples = list(examples)
        self.genres = tuple(dict.fromkeys(str(e.genre) for e in self._examples))

    def examples(
        self,
        n: int,
        seed: int,
        *,
        n_facts: int | tuple[int, int] = (1, 10_000),
        genres: Sequence[str] | None = None,
        heldout_phrasing: bool = False,
    ) -> list[QAExample]:
        lo, hi = (n_facts, n_facts) if isinstance(n_facts, int) else n_facts
        match = [
            e
            for e in self._examples
            if lo <= e.n_facts <= hi
            and (genres is None or str(e.genre) in genres)
            and (e.meta.get("split") == "heldout_phrasing") == heldout_phrasing
        ]
        return random.Random(seed).sample(match, min(n, len(match)))

    def max_facts(self, genre: str) -> int:
        return max((e.n_facts for e in self._examples if str(e.genre) == genre), default=0)

    def user_facts(self, rng: random.Random, n: int, *, heldout_phrasing: bool = False) -> list[Fact]:
        raise ValueError(f"the dataset {self.name!r} has no generator of user facts")

    def small_talk(self, rng: random.Random) -> tuple[str, str]:
        raise ValueError(f"the dataset {self.name!r} has no generator of small talk")
