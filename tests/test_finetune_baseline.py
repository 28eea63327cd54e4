"""The fine-tuning baseline (``agenthn eval recall --baselines finetune``) on the shipped tiny model."""

from __future__ import annotations

import math

import pytest

from agenthn_langgraph.errors import InvalidArgumentError
from agenthn_langgraph.evals.finetune import evaluate_finetune, fit_lora
from agenthn_langgraph.models.registry import language_of
from agenthn_langgraph.tiny_default import load_default

FROG = "<user> my pet is a frog . <assistant> nice ! <end>"


@pytest.fixture(scope="module")
def model():  # noqa: ANN201
    return load_default()


def test_fit_lora_learns_only_the_lora(model):
    before = {n: p.detach().clone() for n, p in model.base.named_parameters()}
    fits = list(fit_lora(model, FROG, rank=4, checkpoints=(1, 3), seed=7))
    assert [step for step, _, _ in fits] == [1, 3]
    assert fits[0][1] <= fits[1][1]  # seconds accumulate
    adapter = fits[1][2]
    assert adapter.rank == 4 and set(adapter.weights) == set(model.injector.module_shapes())
    assert adapter.metadata.base_fingerprint == model.fingerprint
    assert all(b.abs().sum() > 0 for _, b in adapter.weights.values())  # B left zero: nothing was fitted
    assert all((p == before[n]).all() for n, p in model.base.named_parameters())  # the base is frozen


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rank": 0}, "rank"),
        ({"rank": 4, "checkpoints": ()}, "checkpoints"),
        ({"rank": 4, "checkpoints": (0,)}, "checkpoints"),
        ({"rank": 4, "lr": math.nan}, "lr"),
        ({"rank": 4, "lr": -1.0}, "lr"),
    ],
)
def test_bad_options_are_refused(model, kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        list(fit_lora(model, FROG, **kwargs))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [20261123, 1, 2])
def test_fine_tuning_needs_many_steps_where_internalize_needs_one_pass(model, seed):
    # Measured on 8 held-out texts (32 questions) for seeds 20261123 and 1-6: recall after 2 steps
    # 0.03-0.19 (at most 6 of 32), after 40 steps 0.94-1.00 (at least 30 of 32); the hypernetwork's
    # adapter 1.00 on every seed; speedup 318-615. Bounds: 2 steps <= 0.4 (7 questions over the
    # highest), 40 steps >= 0.8 (4 under the lowest), the adapter >= 0.9 (3 under), speedup > 1.
    docs = language_of(model).examples(8, seed, n_facts=4)
    report = evaluate_finetune(model, docs, internalize_ms_median=20.0, checkpoints=(2, 40))
    assert report.n_questions == 32, report
    assert report.by_steps["2"]["recall"] <= 0.4, report
    assert report.by_steps["40"]["recall"] >= 0.8, report
    assert report.hypernet_adapter >= 0.9, report
    assert report.speedup is not None and report.speedup > 1, report
