"""``evaluate_recall`` when the engine refuses a text's adapter: a miss, counted, and the run goes on.

The refusals are real: the tiny default's own norm check (``AdapterNormError``, delta over 100x the
base weight's norm) with its limit moved, through the engine's base weight norms, to just under
the largest of the four target adapters.
"""

from __future__ import annotations

import json

import pytest

from agenthn_langgraph.errors import AdapterNormError
from agenthn_langgraph.evals.recall import evaluate_recall, recalled
from agenthn_langgraph.lora.adapter import delta_norm
from agenthn_langgraph.models.registry import language_of

SEED = 20261123
ROWS = {"n_docs": 4, "seed": SEED, "docs_per_n_facts": 0, "heldout_docs": 0, "progress": False}
MAX_RELATIVE_NORM = 100.0  # LoraAdapter.check_against_base's limit, in units of the base weight's norm


def _strict(text: str) -> object:
    def refuse(name: str) -> object:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def _relative_norm(model, adapter) -> float:  # noqa: ANN001
    """The largest delta norm over the adapter's modules, in units of the base weight's norm."""
    return max(delta_norm(a, b, adapter.scaling) / model._weight_norms[n] for n, (a, b) in adapter.weights.items())


def _limit_at(model, monkeypatch: pytest.MonkeyPatch, relative: float) -> None:  # noqa: ANN001
    """Refuse every adapter whose relative norm is over ``relative`` (the real check, rescaled)."""
    scale = relative / MAX_RELATIVE_NORM
    monkeypatch.setattr(model, "_weight_norms", {n: w * scale for n, w in model._weight_norms.items()})


def test_a_refused_adapter_counts_as_a_miss_and_the_evaluation_goes_on(default_model, monkeypatch):
    language = language_of(default_model)
    targets = language.examples(4, SEED, n_facts=4)
    adapters = default_model.internalize_many([t.context for t in targets])
    norms = [_relative_norm(default_model, a) for a in adapters]
    top, second = sorted(norms)[-1], sorted(norms)[-2]
    assert top > second * 1.01  # room for a limit between them
    lost = norms.index(top)
    # what the text to be refused answers while its adapter is accepted
    prompts = [default_model.prompts.student_ids(p.question) for p in targets[lost].qa]
    replies = default_model.generate_ids(prompts, [[adapters[lost]]] * len(prompts), max_new_tokens=8)
    lost_hits = sum(recalled(r, p.answer) for r, p in zip(replies, targets[lost].qa, strict=True))
    assert lost_hits >= 1  # so that losing them shows in the figure
    before = evaluate_recall(default_model, language, compose_ns=(), **ROWS)

    _limit_at(default_model, monkeypatch, (top + second) / 2)
    with pytest.raises(AdapterNormError):
        default_model.internalize(targets[lost].context)
    after = evaluate_recall(default_model, language, compose_ns=(), **ROWS)

    assert after.refused_adapters == {"targets": 1, "distractors": 0, "by_n_facts": 0, "heldout_phrasing": 0}
    n = after.n_questions
    assert n == before.n_questions == 16
    # the refused text's questions became misses; every other answer is what it was
    assert round(after.adapter * n) == round(before.adapter * n) - lost_hits, (before.adapter, after.adapter)
    assert (after.no_memory, after.in_context) == (before.no_memory, before.in_context)
    assert after.adapter_bytes == before.adapter_bytes and after.internalize_ms_median > 0
    assert "refused adapters (their questions count as misses): targets 1" in after.table()
    assert before.refused_adapters == {"targets": 0, "distractors": 0, "by_n_facts": 0, "heldout_phrasing": 0}

    # composed stacks: the refused target's own stack is not built, so its questions miss there too
    composed = evaluate_recall(default_model, language, compose_ns=(2,), **ROWS)
    assert composed.refused_adapters["targets"] == 1
    assert composed.composed_by_n["2"] * n <= n - len(targets[lost].qa)


def test_when_every_adapter_is_refused_the_report_says_so_in_strict_json(default_model, monkeypatch):
    language = language_of(default_model)
    _limit_at(default_model, monkeypatch, 1e-6)  # far under any adapter's norm
    report = evaluate_recall(default_model, language, compose_ns=(2,), **ROWS)
    assert report.refused_adapters["targets"] == 4 and report.refused_adapters["distractors"] >= 1
    assert report.adapter == 0.0 and report.composed == 0.0 and report.in_context > 0.5
    data = _strict(report.to_json())  # no NaN anywhere: what does not exist is null
    assert data["adapter_bytes"] is None and data["internalize_ms_median"] is None and data["adapter_rank"] is None
    assert data["composed_rank"] is None and data["refused_adapters"]["targets"] == 4
    assert "no adapter" in report.table()


def test_strict_json_writes_null_for_missing_values():
    from agenthn_langgraph.evals.recall import strict_json

    text = strict_json({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf"), "e": 2}})
    assert _strict(text) == {"a": None, "b": [1.0, None], "c": {"d": None, "e": 2}}
    with pytest.raises(ValueError, match="not JSON: NaN"):
        _strict(json.dumps({"a": float("nan")}))  # what the CLI printed before
