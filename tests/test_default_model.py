"""The shipped tiny default, run for real on held-out data: a broken checkpoint fails here.

Thresholds are the ones ``agenthn eval recall`` must meet on 200 texts; here a smaller fixed
held-out set (its own seed, never used by training) keeps the suite fast, except for in-context
reading, whose true value sits within sampling noise of its threshold on a small set.
"""

from __future__ import annotations

import threading

import pytest

from agenthn_langgraph.evals.recall import evaluate_recall, in_context_recall
from agenthn_langgraph.tiny_default import CHECKPOINT_DIR
from agenthn_langgraph.tiny_default.language import Corpus

TEST_SEED = 4242
pytestmark = pytest.mark.slow  # the shipped model over hundreds of questions


@pytest.fixture(scope="module")
def report(default_model):
    return evaluate_recall(
        default_model,
        default_model.language,
        n_docs=60,
        seed=TEST_SEED,
        heldout_docs=0,
        facts_per_text=(12, 16),
        docs_per_n_facts=10,
        progress=False,
    )


def test_checkpoint_is_small_and_safetensors_only():
    files = [p for p in CHECKPOINT_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 30 * 2**20
    assert not [p for p in files if p.suffix in {".bin", ".pt", ".pkl", ".pickle"}]


def test_in_context_reading_is_competent(default_model):
    # The v2 base reads 0.9835 on these 2,000 questions (0.982 and 0.981 on seeds 555001/555002),
    # standard error ~0.003: 0.96 is 7 standard errors under, and the v1 base (0.949) fails it.
    assert in_context_recall(default_model, default_model.language, n_docs=500, seed=31337) >= 0.96


# Bounds below: measured on this 60-text set and two others (seeds 4242, 4243, 4244); each bound
# sits 2-4 standard errors of its sample under the lowest of the three.
def test_adapter_recall_without_text(report):
    assert report.adapter >= 0.95, report.table()  # measured 0.988 / 0.983 / 0.996
    assert report.prompt_tokens_adapter < report.prompt_tokens_in_context / 4


def test_composed_with_unrelated_adapters(report):
    composed = report.composed_by_n
    assert composed["2"] >= 0.88 and composed["8"] >= 0.78, report.table()  # 0.942-0.954 and 0.846-0.883
    # products share every attribute with their distractors: 0.55 / 0.55 / 0.65 at N = 8 on 80
    # questions each (v1: 0.41)
    assert report.by_genre["product"]["composed_8"] >= 0.45, report.table()


def test_one_adapter_holds_every_fact_of_a_long_text(report):
    # 10 texts each of 12 and 16 facts: 1.000 on all three seeds (v1, top-8 selection: 0.675 at 12)
    assert report.by_n_facts["12"]["adapter"] >= 0.90 and report.by_n_facts["16"]["adapter"] >= 0.90, report.table()


def test_no_memory_is_at_chance(report):
    assert report.no_memory <= report.chance + 0.05, report.table()


def test_concurrent_generation_with_different_adapters(default_model):
    """Real generations on one shared model from several threads, each with its own memory."""
    corpus = Corpus(TEST_SEED + 7, attributes=default_model.language.attributes)
    samples = [corpus.sample(4, genre="profile") for _ in range(4)]
    adapters = default_model.internalize_many([s.text for s in samples])
    questions = [s.facts[0].question(corpus.rng) for s in samples]
    alone = [
        default_model.generate(q, adapters=[a], max_new_tokens=3) for q, a in zip(questions, adapters, strict=True)
    ]
    out: dict[int, list[str]] = {i: [] for i in range(4)}

    def work(i: int) -> None:
        for _ in range(3):
            out[i].append(default_model.generate(questions[i], adapters=[adapters[i]], max_new_tokens=3))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(out[i] == [alone[i]] * 3 for i in range(4)), (out, alone)
    # and the memories are really different answers, not a shared default
    assert len(set(alone)) > 1
