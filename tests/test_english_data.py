"""The English synthetic data: verbatim answers, keys, fact counts, held-out phrasings, formats, errors."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from agenthn_langgraph.data.english import (
    ATTRIBUTE_BY_NAME,
    ATTRIBUTES,
    ATTRIBUTES_BY_GENRE,
    CHAT_GENRES,
    DOCUMENT_GENRES,
    GENRES,
    N_HELDOUT,
    SMALL_TALK,
    Attribute,
    EnglishFacts,
    generate_english,
    max_facts,
)
from agenthn_langgraph.data.facts import FactSource
from agenthn_langgraph.data.qa import QAExample

SUBJECT = "Quibbit X2"  # stands in for a document's subject when rendering templates by hand


@pytest.fixture(scope="module")
def train_examples() -> list[QAExample]:
    return generate_english(2000, 101, n_facts=(1, 16))


@pytest.fixture(scope="module")
def heldout_examples() -> list[QAExample]:
    return generate_english(2000, 202, n_facts=(1, 16), heldout_phrasing=True)


def _attribute(key: str) -> tuple[str, Attribute]:
    subject, name = key.rsplit("/", 1)
    return subject, ATTRIBUTE_BY_NAME[name]


def _article(value: str) -> str:
    from agenthn_langgraph.data.english import _article

    return _article(value)


def _renderings(template: str, subject: str, value: str) -> set[str]:
    """A template as it can appear in a text: as written, or lower-cased after a chat lead-in."""
    text = template.format(s=subject, v=value, a=_article(value))
    return {text, text[0].lower() + text[1:]}


def _uses(template: str, subject: str, value: str, context: str) -> bool:
    return any(r in context for r in _renderings(template, subject, value))


# ----------------------------------------------------------------------------- the attribute tables
def test_every_genre_has_enough_attributes_and_phrasings():
    assert set(ATTRIBUTES_BY_GENRE) == set(GENRES) == set(CHAT_GENRES) | set(DOCUMENT_GENRES)
    assert len({a.name for a in ATTRIBUTES}) == len(ATTRIBUTES)  # names are unique: keys are unambiguous
    for genre in GENRES:
        assert len(ATTRIBUTES_BY_GENRE[genre]) >= 16
        assert max_facts(genre) == len(ATTRIBUTES_BY_GENRE[genre])
    for a in ATTRIBUTES:
        assert len(a.statements) >= 8, a.name
        assert len(a.questions) >= 3, a.name
        assert len(a.heldout_statements) == N_HELDOUT == 2
        assert a.train_statements + a.heldout_statements == a.statements
        assert len(set(a.statements)) == len(a.statements) and len(set(a.questions)) == len(a.questions)


def test_templates_are_well_formed_sentences():
    for a in ATTRIBUTES:
        in_document = a.genre in DOCUMENT_GENRES
        for t in a.statements:
            assert t.count("{v}") == 1, (a.name, t)  # the value is stated exactly once
            assert (t.count("{s}") == 1) if in_document else ("{s}" not in t), (a.name, t)
            assert t[0].isupper() or t.startswith("{"), (a.name, t)
            assert t.endswith((".", "!")), (a.name, t)
            assert not t.startswith("{a}"), (a.name, t)  # "a"/"an" would need a capital
        for q in a.questions:
            assert "{v}" not in q and q.endswith("?") and q[0].isupper(), (a.name, q)
            assert (q.count("{s}") == 1) if in_document else ("{s}" not in q), (a.name, q)


def test_templates_that_open_with_the_value_only_get_capitalized_values():
    rng = random.Random(0)
    openers = [a for a in ATTRIBUTES if any(t.startswith("{v}") for t in a.statements)]
    assert len(openers) >= 10
    for a in openers:
        for _ in range(200):
            value = a.draw(rng)
            assert not value[0].islower(), (a.name, value)


def test_heldout_and_training_phrasings_cannot_be_mistaken_for_each_other():
    """The phrasing checks below look for rendered templates in texts; that only works if no
    held-out rendering is contained in a training one (or the reverse)."""
    rng = random.Random(1)
    for a in ATTRIBUTES:
        for _ in range(5):
            value = a.draw(rng)
            held = [_renderings(t, SUBJECT, value) for t in a.heldout_statements]
            train = [_renderings(t, SUBJECT, value) for t in a.train_statements]
            for h in held:
                for t in train:
                    assert not any(x in y for x in h for y in t), (a.name, h, t)
                    assert not any(y in x for x in h for y in t), (a.name, h, t)


# ----------------------------------------------------------------------------- generated examples
def test_generation_is_deterministic_for_a_seed():
    kwargs = {"n_facts": (2, 9), "genres": ("product", "profile", "procedure")}
    a = [e.model_dump() for e in generate_english(300, 7, **kwargs)]
    b = [e.model_dump() for e in generate_english(300, 7, **kwargs)]
    assert a == b
    random.seed(12345)  # the global RNG plays no part
    c = [e.model_dump() for e in generate_english(300, 7, **kwargs)]
    assert a == c


def test_different_seeds_give_different_examples():
    a = [e.context for e in generate_english(300, 1)]
    b = [e.context for e in generate_english(300, 2)]
    assert sum(x == y for x, y in zip(a, b, strict=True)) < 5
    assert len(set(a) | set(b)) > 590


def test_answers_are_verbatim_in_the_context_and_keys_are_distinct(train_examples, heldout_examples):
    assert {e.genre for e in train_examples} == {e.genre for e in heldout_examples} == set(GENRES)
    for e in train_examples + heldout_examples:
        keys = [p.key for p in e.qa]
        assert len(keys) == len(set(keys)), e.id
        answers = [p.answer for p in e.qa]
        assert len({x.lower() for x in answers}) == len(answers), e.id  # no question has two candidates
        for p in e.qa:
            assert p.answer in e.context, (e.id, p.answer)
            subject, attribute = _attribute(p.key)
            assert attribute.genre == e.genre, (e.id, p.key)
            assert subject == e.meta["subject"]
            assert (subject == "user") == (e.genre in CHAT_GENRES)
            assert p.question.endswith("?")
            assert p.answer not in p.question, (e.id, p.question)


def test_heldout_phrasings_never_appear_in_training_examples(train_examples):
    for e in train_examples:
        assert "split" not in e.meta
        for p in e.qa:
            subject, a = _attribute(p.key)
            assert not any(_uses(t, subject, p.answer, e.context) for t in a.heldout_statements), (e.id, p.key)
            assert any(_uses(t, subject, p.answer, e.context) for t in a.train_statements), (e.id, p.key)


def test_heldout_examples_always_use_heldout_phrasings(heldout_examples):
    used = Counter()
    for e in heldout_examples:
        assert e.meta["split"] == "heldout_phrasing"
        for p in e.qa:
            subject, a = _attribute(p.key)
            assert not any(_uses(t, subject, p.answer, e.context) for t in a.train_statements), (e.id, p.key)
            hits = [t for t in a.heldout_statements if _uses(t, subject, p.answer, e.context)]
            assert hits, (e.id, p.key)
            used.update(hits)
    assert len(used) > 0.9 * N_HELDOUT * len(ATTRIBUTES)  # both held-out phrasings get used


@pytest.mark.parametrize("genre", GENRES)
def test_the_number_of_facts_is_respected(genre):
    for k in (1, 16, max_facts(genre)):
        examples = generate_english(40, k, n_facts=k, genres=[genre])
        assert [len(e.qa) for e in examples] == [k] * 40
        assert {e.genre for e in examples} == {genre}
    counts = Counter(len(e.qa) for e in generate_english(300, 3, n_facts=(3, 5), genres=[genre]))
    assert set(counts) == {3, 4, 5}


def test_genres_are_cycled_and_ids_are_numbered():
    examples = generate_english(8, 42, genres=("product", "profile"))
    assert [e.genre for e in examples] == ["product", "profile"] * 4
    assert [e.id for e in examples[:3]] == ["en-42-000000", "en-42-000001", "en-42-000002"]
    assert [e.genre for e in generate_english(8, 0)] == list(GENRES) * 2
    assert generate_english(0, 0) == []


def test_values_span_several_tokens_numbers_dates_and_codes(train_examples):
    answers = [p.answer for e in train_examples for p in e.qa]
    shapes = {
        "several words": r"\S \S",
        "digit": r"\d",
        "date": r"^[A-Z][a-z]+ \d{1,2}, \d{4}$",
        "money": r"^[$€£]\d+(\.\d\d)?$",
        "code": r"^[A-Z0-9]{2,4}-[A-Z0-9]{2,4}$",
        "quantity with unit": r"^\d+(\.\d)? [a-z]+",
        "full name": r"^[A-Z][a-z]+ [A-Z][a-z]+$",
        "multi-word city": r"^(Buenos Aires|Salt Lake City|New York|Rio de Janeiro)$",
    }
    for shape, pattern in shapes.items():
        assert sum(bool(re.search(pattern, a)) for a in answers) >= 20, shape
    assert sum(" " in a for a in answers) > 0.3 * len(answers)


def test_article_agrees_with_the_value(train_examples, heldout_examples):
    bad = []
    for e in train_examples + heldout_examples:
        bad += re.findall(r"\b[Aa] [AEIOUaeiou][\w-]*", e.context)
        bad += re.findall(r"\b[Aa]n [^AEIOUaeiou\s][\w-]*", e.context)
    assert set(bad) <= {"a USB"}, Counter(bad).most_common(5)
    assert [_article(v) for v in ("iguana", "USB cable", "Audi A4", "dog", "e-reader", "hour")] == [
        "an",
        "a",
        "an",
        "a",
        "an",
        "an",
    ]


def test_chats_are_user_assistant_transcripts_with_some_small_talk(train_examples):
    chats = [e for e in train_examples if e.genre in CHAT_GENRES]
    facts = small_talk = 0
    for e in chats:
        turns = e.meta["turns"]
        lines = e.context.split("\n")
        assert lines == [f"{'User' if r == 'user' else 'Assistant'}: {t}" for r, t in turns]
        assert [r for r, _ in turns] == ["user", "assistant"] * (len(turns) // 2)
        assert all(t.strip() for _, t in turns)
        user_lines = [t for r, t in turns if r == "user"]
        for p in e.qa:  # every fact is stated by the user, in a turn of its own
            assert sum(p.answer in t for t in user_lines) >= 1, (e.id, p.answer)
        facts += len(e.qa)
        small_talk += len(user_lines) - len(e.qa)
    assert 0.4 < small_talk / facts < 0.6  # about half as many small-talk exchanges as facts


def test_documents_have_a_title_and_short_paragraphs(train_examples):
    documents = [e for e in train_examples if e.genre in DOCUMENT_GENRES]
    n_paragraphs = Counter()
    for e in documents:
        assert "turns" not in e.meta
        title, *paragraphs = e.context.split("\n\n")
        assert e.meta["subject"] in title and "\n" not in title and len(title) < 80
        assert 1 <= len(paragraphs) <= 3 and all(p and "\n" not in p for p in paragraphs)
        assert "User:" not in e.context
        n_paragraphs[len(paragraphs)] += 1
        sentences = sum(p.count(". ") + 1 for p in paragraphs)
        assert sentences >= len(e.qa) + 2  # an intro and at least one filler besides the facts
    assert set(n_paragraphs) == {1, 2, 3}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": -1}, "n must be"),
        ({"n_facts": 0}, "at least 1"),
        ({"n_facts": (0, 3)}, "at least 1"),
        ({"n_facts": (5, 2)}, "empty"),
        ({"n_facts": 19}, "exceeds"),
        ({"n_facts": (1, 19)}, "exceeds"),
        ({"n_facts": (1, 2, 3)}, "n_facts must be"),
        ({"n_facts": "3"}, "n_facts must be"),
        ({"n_facts": True}, "n_facts must be"),
        ({"genres": ["poem"]}, "unknown genre"),
        ({"genres": []}, "at least one genre"),
        ({"genres": "profile"}, "not the string"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    args = {"n": 3, "seed": 0} | kwargs
    assert max(max_facts(g) for g in GENRES) == 18  # so 19 is past every genre's maximum
    with pytest.raises(ValueError, match=message):
        generate_english(args.pop("n"), args.pop("seed"), **args)


def test_max_facts_rejects_an_unknown_genre():
    with pytest.raises(ValueError, match="unknown genre"):
        max_facts("poem")


# ----------------------------------------------------------------------------- the fact source
def test_english_facts_draws_distinct_user_facts_stated_verbatim():
    source: FactSource = EnglishFacts()
    rng = random.Random(5)
    user_attributes = {a.name for g in CHAT_GENRES for a in ATTRIBUTES_BY_GENRE[g]}
    for n in (0, 1, 7, 16, len(user_attributes)):
        facts = source.user_facts(rng, n)
        assert len(facts) == n
        assert len({f.key for f in facts}) == n
        for f in facts:
            assert f.key.startswith("user/") and f.key.removeprefix("user/") in user_attributes
            assert f.answer in f.statement
            assert f.question.endswith("?") and f.answer not in f.question
    with pytest.raises(ValueError):
        source.user_facts(rng, len(user_attributes) + 1)
    with pytest.raises(ValueError):
        source.user_facts(rng, -1)


def test_english_facts_heldout_phrasing_and_small_talk():
    source = EnglishFacts()
    rng = random.Random(6)
    for heldout in (False, True):
        for f in source.user_facts(rng, 20, heldout_phrasing=heldout):
            a = ATTRIBUTE_BY_NAME[f.key.removeprefix("user/")]
            templates = a.heldout_statements if heldout else a.train_statements
            assert any(_uses(t, "user", f.answer, f.statement) for t in templates), f
    exchanges = {source.small_talk(rng) for _ in range(200)}
    assert len(exchanges) > 10 and exchanges <= set(SMALL_TALK)
    for user, assistant in exchanges:
        assert isinstance(user, str) and user.strip() and isinstance(assistant, str) and assistant.strip()
