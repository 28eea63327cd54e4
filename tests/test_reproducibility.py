"""Seeded sampling is reproducible under threads: each call samples from its own generator.

A call that reseeded the global torch RNG (``torch.manual_seed(seed)``, then ``multinomial``)
would give the serial answer alone but not when other threads draw from the same RNG between
its steps; these tests run 8 threads x every (prompt, seed) job and compare with the serial run.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Hashable

import pytest
import torch

from agenthn_langgraph.chat_model import LocalHypernetChatModel

PROMPTS = ["hello , how are you ?", "what pet do i have ?", "tell me a joke ."]
SEEDS = [0, 1, 7, 42, 1234]
THREADS = 8
TEMPERATURE = 1.5  # at 1.0 the tiny model answers small talk the same under every seed


def _threaded(jobs: list[Hashable], run: Callable[[Hashable], object]) -> list[tuple[int, Hashable, object]]:
    """Every thread runs every job, each thread in its own shuffled order, all starting together.

    Results come back to the caller's thread; a worker's exception is re-raised here.
    """
    barrier = threading.Barrier(THREADS, timeout=60)
    results: list[tuple[int, Hashable, object]] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        order = list(jobs)
        random.Random(i).shuffle(order)
        try:
            barrier.wait()
            for job in order:
                results.append((i, job, run(job)))
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    if errors:
        raise errors[0]
    assert not any(t.is_alive() for t in threads), "a worker hung"
    assert len(results) == THREADS * len(jobs)
    return results


@pytest.fixture(scope="module")
def engine():
    from agenthn_langgraph import load_default

    return load_default()


def test_seeded_generate_is_identical_across_threads(engine):
    jobs = [(p, s) for p in PROMPTS for s in SEEDS]

    def run(job):
        return engine.generate(job[0], temperature=TEMPERATURE, seed=job[1], max_new_tokens=8)

    serial = {job: run(job) for job in jobs}
    # the seed matters (this is sampling, not greedy decoding by accident)
    assert all(len({serial[(p, s)] for s in SEEDS}) > 1 for p in PROMPTS), serial
    mismatches = [(i, job, text) for i, job, text in _threaded(jobs, run) if text != serial[job]]
    assert mismatches == []


def test_seeded_generate_batch_is_identical_across_threads(engine):
    def run(seed):
        return tuple(engine.generate_batch(PROMPTS, temperature=TEMPERATURE, top_p=0.9, seed=seed, max_new_tokens=8))

    serial = {s: run(s) for s in SEEDS}
    assert len(set(serial.values())) > 1
    mismatches = [(i, s, texts) for i, s, texts in _threaded(SEEDS, run) if texts != serial[s]]
    assert mismatches == []


def test_seeded_chat_model_is_identical_across_threads():
    llm = LocalHypernetChatModel(max_tokens=8, temperature=TEMPERATURE)
    jobs = [(p, s) for p in PROMPTS for s in SEEDS]

    def run(job):
        return llm.invoke(job[0], seed=job[1]).content

    serial = {job: run(job) for job in jobs}
    assert all(len({serial[(p, s)] for s in SEEDS}) > 1 for p in PROMPTS), serial
    mismatches = [(i, job, text) for i, job, text in _threaded(jobs, run) if text != serial[job]]
    assert mismatches == []


def test_inference_never_touches_the_global_rng(engine, monkeypatch):
    """No generation path seeds or draws from torch's global RNG (which threads share), seeded or not."""

    def refuse(*args, **kwargs):
        raise AssertionError("global RNG touched at inference")

    for module, name in [
        (torch, "manual_seed"),
        (torch.random, "manual_seed"),
        (torch, "seed"),
        (torch.random, "seed"),
        (torch, "set_rng_state"),
        (torch.random, "set_rng_state"),
        (torch.cuda, "manual_seed"),
        (torch.cuda, "manual_seed_all"),
    ]:
        monkeypatch.setattr(module, name, refuse)
    before = torch.get_rng_state()
    memory = engine.internalize("<user> my pet is a frog . <assistant> nice ! <end>")
    engine.generate("what pet do i have ?", adapters=[memory], temperature=1.0, seed=3)
    engine.generate_batch(PROMPTS, temperature=0.8, top_p=0.5, seed=4)
    list(engine.stream("hello , how are you ?", temperature=1.0, seed=5))
    engine.generate("tell me a joke .", temperature=1.0)  # unseeded: fresh entropy, still a private generator
    LocalHypernetChatModel(max_tokens=4).invoke("hello , how are you ?", temperature=1.0, seed=6)
    assert torch.equal(torch.get_rng_state(), before)  # nothing drew from it either
