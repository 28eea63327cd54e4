"""How the recall benchmark judges an answer, and its interval."""

from __future__ import annotations

import pytest

from agenthn_langgraph.evals.recall import exact_first_words, recalled, wilson_interval


@pytest.mark.parametrize(
    ("reply", "answer", "expected"),
    [
        ("Salt Lake City.", "salt lake city", True),
        ("You live in Salt Lake City, I think. Or Boise.", "Salt Lake City", True),
        ("The Big Apple!", "big apple", True),
        ("I think it is Boise. Salt Lake City was before.", "Salt Lake City", False),  # second sentence
        ("salt lake", "Salt Lake City", False),  # part of the value
        ("lakeside", "lake", False),  # whole words only
        ("", "lima", False),
        ("lima", "", False),  # an empty value never counts
    ],
)
def test_recalled_is_the_value_in_the_first_sentence(reply, answer, expected):
    assert recalled(reply, answer) is expected


def test_exact_first_words_needs_the_value_first():
    assert exact_first_words("Lima, Peru.", "lima")
    assert not exact_first_words("You live in Lima.", "lima")
    assert not exact_first_words("limawood", "lima")


def test_wilson_interval_matches_the_formula_and_is_bounded():
    low, high = wilson_interval(8, 10)  # textbook value: 0.490 - 0.943
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(1, 0)
