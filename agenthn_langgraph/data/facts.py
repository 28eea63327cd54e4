"""Facts a user states in a conversation, for benchmarks and demos that build threads turn by turn.

A model's language (the tiny default's little language, English, ...) provides a
:class:`FactSource`; generic code (the long-thread benchmark, the demos) draws from it and never
needs to know which language it is.
"""

from __future__ import annotations

import random
from typing import NamedTuple, Protocol


class Fact(NamedTuple):
    """One fact about the user: how it is said, how it is asked, and its value."""

    key: str  # e.g. "user/pet": two facts with one key cannot both be true
    statement: str  # the user's turn stating it ("my pet is a frog .", "My dog is called Biscuit.")
    question: str  # a question asking for it
    answer: str  # the value, verbatim in ``statement``


class FactSource(Protocol):
    """Draws user facts and small talk in one language."""

    def user_facts(self, rng: random.Random, n: int, *, heldout_phrasing: bool = False) -> list[Fact]:
        """``n`` facts about the user with distinct keys (raises ValueError past the language's maximum)."""
        ...

    def small_talk(self, rng: random.Random) -> tuple[str, str]:
        """A (user, assistant) exchange that states nothing lasting."""
        ...
