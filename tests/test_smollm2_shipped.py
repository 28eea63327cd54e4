"""SmolLM2's shipped hypernetwork, run for real on held-out English (slow tier): a broken or
missing checkpoint fails here.

The ship test is ``agenthn eval recall --model smollm2`` on 200 questions (docs/training.md); this
runs the same benchmark on a smaller fixed held-out set (its own seed, never used by training: the
training data is ``agenthn data english --seed 1``). Bounds: measured on this set and two others
(seeds 4242, 4243, 4244; 60 questions each, figures in the comments), each bound ~2 standard errors
of a 60-question sample (~0.06) under the lowest of the three.
"""

from __future__ import annotations

import pytest

from agenthn_langgraph.evals.recall import evaluate_recall
from agenthn_langgraph.models.registry import language_of, load_default

smollm2 = pytest.importorskip("agenthn_langgraph.models.smollm2")
pytestmark = pytest.mark.slow
TEST_SEED = 4242
# seeds 4242 / 4243 / 4244, 60 questions each (the step-3,000 bf16 checkpoint, 1 thread): adapter
# 0.850 / 0.767 / 0.850, composed (+2) 0.717 / 0.717 / 0.733, in context 0.317 / 0.400 / 0.433, no
# memory 0.017 / 0.017 / 0.000. A 60-question sample's standard error is ~0.06: bounds sit 2 of them
# under the lowest (the step-1,500 checkpoint measured 0.750 / 0.717 / 0.717 and 0.617 / 0.583 /
# 0.583: it would fail the composed bound and pass the adapter bound by 0.07).
ADAPTER_BOUND = 0.65
COMPOSED_BOUND = 0.60


@pytest.fixture(scope="module")
def model():  # noqa: ANN201
    return load_default("smollm2")


@pytest.fixture(scope="module")
def report(model):  # noqa: ANN001, ANN201
    return evaluate_recall(
        model, language_of(model), n_docs=15, seed=TEST_SEED, compose_ns=(2,), docs_per_n_facts=0, heldout_docs=0,
        progress=False,
    )  # fmt: skip


def test_the_checkpoint_ships_small_and_in_safetensors():
    files = [p for p in smollm2.HYPERNET_DIR.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"hypernet.safetensors", "hypernet_config.json", "training.json"}
    assert sum(p.stat().st_size for p in files) <= 40 * 2**20


def test_the_adapter_answers_without_the_text(report):
    assert report.adapter >= ADAPTER_BOUND, report.table()
    assert report.adapter >= report.in_context, (
        report.table()
    )  # the weights read at least as well as the prompt (gap >= 0.37)
    assert report.prompt_tokens_adapter <= report.prompt_tokens_in_context / 4, report.table()


def test_composed_with_two_unrelated_adapters(report):
    assert report.composed >= COMPOSED_BOUND, report.table()


def test_no_memory_is_at_chance(report):
    assert report.no_memory <= 0.05, report.table()


def test_demo_from_a_fresh_install_answers_from_weights(model):
    adapter = model.internalize("User: My dog is called Biscuit.\nAssistant: Got it.")
    question = [{"role": "user", "content": "What is my dog called?"}]
    assert "biscuit" in model.generate(question, adapters=[adapter], max_new_tokens=12).lower()
    assert "biscuit" not in model.generate(question, max_new_tokens=12).lower()  # the base alone cannot know
