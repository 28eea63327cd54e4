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
        docs_per_n_facts=0,
        progress=False,
    )


def test_checkpoint_is_small_and_safetensors_only():
    files = [p for p in CHECKPOINT_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 30 * 2**20
    assert not [p for p in files if p.suffix in {".bin", ".pt", ".pkl", ".pickle"}]


def test_in_context_reading_is_competent(default_model):
    # The shipped v1 base reads 0.949 (seed 31337) and 0.955 (an earlier draw) on 2,000 questions each,
    # standard error about 0.005, so 0.93 is 4 standard errors under the lower measurement. The
    # retrained v2 base (0.98 on two unseen seeds) raises this bound when it ships.
    assert in_context_recall(default_model, default_model.language, n_docs=500, seed=31337) >= 0.93


def test_adapter_recall_without_text(report):
    assert report.adapter >= 0.80, report.table()
    assert report.prompt_tokens_adapter < report.prompt_tokens_in_context / 4


def test_composed_with_unrelated_adapters(report):
    assert report.composed >= 0.70, report.table()


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
