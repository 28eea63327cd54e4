"""``agenthn eval binding``: per target module, do a question's activations tell subjects apart?"""

from __future__ import annotations

import pytest

from agenthn_langgraph.data.language import DatasetLanguage
from agenthn_langgraph.data.qa import QAExample, QAPair
from agenthn_langgraph.evals.binding import evaluate_binding
from agenthn_langgraph.models.registry import language_of


@pytest.mark.parametrize("seed", [20261123, 1, 2])
def test_the_tiny_bases_last_layer_cannot_tell_two_products_apart(default_model, seed):
    """The finding docs/results.md states: at the last prompt token, questions about the same attribute
    of two different products are nearly the same vector in the tiny base's deepest layer, while
    one product's different attributes are not. Measured on seeds 20261123, 1-5 and 777 (60 texts):
    deepest same-attribute 0.996-0.998 (threshold 0.95), same-subject -0.105 to -0.055 (threshold
    0.3), smallest per-module gap 0.92 (threshold 0.5). Two-subject reading below."""
    report = evaluate_binding(default_model, language_of(default_model), n_docs=60, seed=seed)
    names = list(report.same_attribute)
    assert names == default_model.injector.target_modules
    assert report.n_subjects >= 5
    deepest = names[-1]
    assert report.same_attribute[deepest] > 0.95
    assert report.same_subject[deepest] < 0.3
    for name in names:  # the attribute always dominates the subject
        assert report.same_attribute[name] > report.same_subject[name] + 0.5, name
    assert report.same_attribute[names[0]] < report.same_attribute[deepest]  # the first layer keeps more of the name
    assert "| model.layers.0.mlp.down_proj |" in report.table()
    # and in behaviour: with two products in one context it answers by the attribute alone, so it
    # gives the other product's value about as often as the asked one's. Measured on the same
    # seeds (200 questions): answered 0.42-0.515, the other's value 0.44-0.49; a reader of the
    # subject would answer >= 0.7 and confuse < 0.3 (binomial sd ~0.035, so >= 4 sd of margin).
    assert report.n_paired == 200
    assert report.paired_in_context < 0.7
    assert report.paired_confused > 0.3
    assert report.paired_in_context + report.paired_confused <= 1.0
    assert "gave the other subject's value" in report.table()


def test_binding_needs_questions_about_two_subjects(default_model):
    only_user = DatasetLanguage(
        [
            QAExample(
                context="i live in lima .", qa=(QAPair(question="where do i live ?", answer="lima", key="user/city"),)
            )
        ]
    )
    with pytest.raises(ValueError, match="two or more subjects"):
        evaluate_binding(default_model, only_user, n_docs=1)
