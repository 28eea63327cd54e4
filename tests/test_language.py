"""The little language: tokenizer agreement, coverage, held-out phrasing, disjoint keys."""

from __future__ import annotations

import re

from agenthn_langgraph.tiny_default.base import WordEncoder
from agenthn_langgraph.tiny_default.language import ATTRIBUTE_BY_NAME, ATTRIBUTES, Corpus, chance, render_prompt


def test_fast_encoder_equals_the_tokenizer_and_covers_the_corpus(tokenizer):
    encode = WordEncoder(tokenizer)
    corpus = Corpus(11)
    unk = tokenizer.unk_token_id
    for _ in range(200):
        s = corpus.sample(corpus.rng.randint(1, 6))
        ids = tokenizer(s.text, add_special_tokens=False)["input_ids"]
        assert ids == encode(s.text)
        assert unk not in ids, s.text
        for f in s.facts:
            assert len(tokenizer(f.value, add_special_tokens=False)["input_ids"]) == 1  # one-word answers


def _template_pattern(template: str) -> re.Pattern[str]:
    """A statement template as a regex over texts: its fixed words verbatim, ``{s}``/``{v}`` any one word."""
    parts = re.split(r"(\{s\}|\{v\})", template)
    body = "".join(r"\S+" if p in ("{s}", "{v}") else re.escape(p) for p in parts)
    return re.compile(rf"(?<!\S){body}(?!\S)")


def test_heldout_phrasing_never_appears_in_training_texts():
    train = Corpus(5)
    texts = [train.sample(4).text for _ in range(400)]
    texts += [train.sample(4, genre=g).text for g in ("profile", "preference", "product") for _ in range(100)]
    joined = " || ".join(texts)
    for a in ATTRIBUTES:  # all 29: no attribute is skipped
        assert a.heldout_statement not in a.train_statements, a.name
        # the held-out template, any subject and value, matches no statement of any training text ...
        found = _template_pattern(a.heldout_statement).search(joined)
        assert found is None, (a.name, found and found[0])
        # ... while the same search finds this attribute's training phrasings (the search can hit)
        assert any(_template_pattern(t).search(joined) for t in a.train_statements), a.name
        # and a text with the held-out phrasing is matched
        assert _template_pattern(a.heldout_statement).fullmatch(a.heldout_statement.format(s="zorblax", v=a.values[0]))
    held = Corpus(5, heldout_phrasing=True)
    for genre in ("profile", "preference", "product"):
        sample = held.sample(4, genre=genre)
        for f in sample.facts:  # every fact of a held-out text is stated with its held-out phrasing
            statement = ATTRIBUTE_BY_NAME[f.attribute].heldout_statement.format(s=f.subject, v=f.value)
            assert statement in sample.text, (statement, sample.text)


def test_groups_have_disjoint_keys_and_answers_are_determined():
    corpus = Corpus(3)
    for _ in range(100):
        group = corpus.group(3, 4)
        keys = [k for s in group for k in s.keys]
        assert len(keys) == len(set(keys)) == 12


def test_chance_and_prompt_rendering():
    s = Corpus(1).sample(4, genre="profile")
    assert 0 < chance(s.facts) < 0.2
    assert render_prompt("what is my pet ?") == "<bos> <user> what is my pet ? <assistant>"
    assert render_prompt("q ?", "ctx .") == "<bos> ctx . <user> q ? <assistant>"


def test_corpus_is_deterministic_for_a_seed():
    a, b = Corpus(9), Corpus(9)
    assert [a.sample(3).text for _ in range(5)] == [b.sample(3).text for _ in range(5)]


def test_multi_product_rows_hold_several_products_and_the_default_rows_one(tokenizer):
    """``multi_product`` puts 2-3 product documents in one context (the base must then carry the
    subject to the answer); at 0 the batches are exactly the earlier single-document ones."""
    import torch

    from agenthn_langgraph.tiny_default.base import qa_batch
    from agenthn_langgraph.tiny_default.language import PRODUCTS

    encode = WordEncoder(tokenizer)
    names = {tokenizer.convert_tokens_to_ids(p) for p in PRODUCTS}
    user = tokenizer.convert_tokens_to_ids("<user>")

    def products_in_contexts(ids: torch.Tensor) -> list[int]:
        out = []
        for row in ids.tolist():
            context = row[: row.index(user)]
            out.append(len(names & set(context)))
        return out

    single = qa_batch(Corpus(7), encode, 24, (2, 4), 0.0, product_weight=1.0)
    same = qa_batch(Corpus(7), encode, 24, (2, 4), 0.0, product_weight=1.0, multi_product=0.0)
    assert all(torch.equal(x, y) for x, y in zip(single, same, strict=True))
    assert products_in_contexts(single[0]) == [1] * 24

    multi = products_in_contexts(qa_batch(Corpus(7), encode, 24, (2, 4), 0.0, product_weight=1.0, multi_product=1.0)[0])
    assert max(multi) <= 3
    assert sum(multi) / len(multi) >= 1.8  # two or three documents a row; the same product twice is rare
