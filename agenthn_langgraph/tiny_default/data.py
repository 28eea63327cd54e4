"""The little language as QA examples, user facts and a :class:`~agenthn_langgraph.data.language.Language`.

Generic code (the trainer, the benchmarks) sees the tiny default only through this: QA examples
whose answers are one word of the language, and fact keys ``"<subject>/<attribute>"``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from ..data.facts import Fact
from ..data.qa import QAExample, QAPair
from .language import ATTRIBUTE_BY_NAME, ATTRIBUTES, GENRES, SMALL_TALK, Attribute, Corpus, max_facts


class TinyLanguage:
    """The tiny default's language, limited to the attributes a checkpoint's tokenizer knows.

    >>> lang = TinyLanguage()
    >>> ex = lang.examples(1, seed=3, n_facts=2, genres=["profile"])[0]
    >>> len(ex.qa), ex.qa[0].key.startswith("user/")
    (2, True)
    """

    name = "tiny"
    genres = GENRES

    def __init__(self, attributes: tuple[Attribute, ...] = ATTRIBUTES) -> None:
        self.attributes = attributes
        self._user = [a for a in attributes if a.genre in ("profile", "preference")]

    def max_facts(self, genre: str) -> int:
        if genre not in GENRES:
            raise ValueError(f"unknown genre {genre!r}; the tiny language has {list(GENRES)}")
        return max_facts(genre, self.attributes)

    def examples(
        self,
        n: int,
        seed: int,
        *,
        n_facts: int | tuple[int, int] = (1, 6),
        genres: Sequence[str] | None = None,
        heldout_phrasing: bool = False,
    ) -> list[QAExample]:
        """``n`` texts; genres cycle through ``genres`` (default: all three) in order."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        lo, hi = (n_facts, n_facts) if isinstance(n_facts, int) else n_facts
        chosen = list(genres or GENRES)
        if lo < 1 or hi < lo:
            raise ValueError(f"n_facts must be >= 1 and lo <= hi, got {n_facts}")
        for g in chosen:
            if self.max_facts(g) < lo:
                raise ValueError(f"genre {g!r} holds at most {self.max_facts(g)} facts, asked for {lo}")
        corpus = Corpus(seed, heldout_phrasing=heldout_phrasing, attributes=self.attributes)
        out = []
        for i in range(n):
            genre = chosen[i % len(chosen)]
            k = corpus.rng.randint(lo, min(hi, self.max_facts(genre)))
            sample = corpus.sample(k, genre=genre)
            qa = tuple(
                QAPair(question=f.question(corpus.rng), answer=f.value, key=f"{f.subject}/{f.attribute}")
                for f in sample.facts
            )
            meta = {"split": "heldout_phrasing"} if heldout_phrasing else {}
            out.append(QAExample(context=sample.text, qa=qa, genre=genre, id=f"tiny-{seed}-{i:06d}", meta=meta))
        return out

    def statement_patterns(self) -> dict[str, list[re.Pattern[str]]]:
        """Regexes (value group ``v``) for every user-fact statement: the rule-based profile extractor's."""
        patterns: dict[str, list[re.Pattern[str]]] = {}
        for a in self._user:
            for template in a.statements:
                rx = re.escape(template).replace(re.escape("{v}"), r"(?P<v>[\w-]+)")
                patterns.setdefault(a.name, []).append(re.compile(rf"^{rx}$"))
        return patterns

    def chance(self, pairs: Sequence[QAPair]) -> float:
        """Expected recall of a guess uniform over each asked attribute's value pool."""
        return sum(1.0 / len(ATTRIBUTE_BY_NAME[p.key.split("/")[-1]].values) for p in pairs if p.key) / max(
            len(pairs), 1
        )

    def user_facts(self, rng: random.Random, n: int, *, heldout_phrasing: bool = False) -> list[Fact]:
        if not 0 <= n <= len(self._user):
            raise ValueError(f"the tiny language holds at most {len(self._user)} user facts, asked for {n}")
        facts = []
        for a in rng.sample(self._user, n):
            v = rng.choice(a.values)
            template = a.heldout_statement if heldout_phrasing else rng.choice(a.train_statements)
            facts.append(Fact(f"user/{a.name}", template.format(v=v), rng.choice(a.questions), v))
        return facts

    def small_talk(self, rng: random.Random) -> tuple[str, str]:
        return rng.choice(SMALL_TALK)
