"""Per-call weight injection: exactness, isolation between threads, per-row adapters."""

from __future__ import annotations

import copy
import threading

import pytest
import torch

from agenthn_langgraph.errors import AdapterMismatchError

from .conftest import make_engine

TEXT_A = "<user> my pet is a frog . <assistant> nice ! <end>"
TEXT_B = "zorblax is a product . the price of zorblax is 40 . zorblax is made by acme ."


def _ids(engine, prompt: str) -> torch.Tensor:
    return torch.tensor([engine.tokenizer(engine.render(prompt), add_special_tokens=False)["input_ids"]])


def test_injection_matches_merged_weights_and_removal_is_exact(llama_engine):
    engine = llama_engine
    ad = engine.internalize(TEXT_A)
    ids = _ids(engine, "what pet do i have ?")
    with torch.no_grad():
        before = engine.base(ids).logits
        with engine.injector.apply([ad]):
            injected = engine.base(ids).logits
        after = engine.base(ids).logits
        merged = copy.deepcopy(engine.base)
        for name, (a, b) in ad.weights.items():
            merged.get_submodule(name).weight += ad.scaling * b @ a
        reference = merged(ids).logits
    assert not torch.allclose(before, injected, atol=1e-4)  # the adapter does something
    torch.testing.assert_close(injected, reference, atol=1e-5, rtol=1e-4)
    assert torch.equal(before, after)  # bit-exact once the call is over


def test_concurrent_threads_never_see_each_others_adapters(llama_engine):
    """Three threads run forwards at the same time, interleaved step by step, each with its own
    adapter (or none); each must get exactly what it gets alone."""
    engine = llama_engine
    ad_a, ad_b = engine.internalize(TEXT_A), engine.internalize(TEXT_B)
    prompt = "what pet do i have ?"
    conditions = {"a": [ad_a], "b": [ad_b], "none": []}
    expected = {k: engine.next_token_logits([prompt], [v]) for k, v in conditions.items()}
    assert not torch.allclose(expected["a"], expected["b"], atol=1e-3)
    assert not torch.allclose(expected["a"], expected["none"], atol=1e-3)

    # force interleaving: no thread's forward proceeds until all three are inside a forward
    barrier = threading.Barrier(3, timeout=20)
    hook = engine.base.model.layers[0].register_forward_pre_hook(lambda *_: (barrier.wait(), None)[1])
    results: dict[str, list[torch.Tensor]] = {k: [] for k in conditions}
    errors: list[BaseException] = []

    def run(key: str) -> None:
        try:
            for _ in range(4):
                results[key].append(engine.next_token_logits([prompt], [conditions[key]]))
        except BaseException as e:  # noqa: BLE001 - surfaced below
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(k,)) for k in conditions]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        hook.remove()
    assert not errors, errors
    for key, outs in results.items():
        assert len(outs) == 4
        for out in outs:
            torch.testing.assert_close(out, expected[key], atol=1e-5, rtol=1e-5)


def test_rows_of_one_batch_carry_different_adapters(llama_engine):
    engine = llama_engine
    ad_a, ad_b = engine.internalize(TEXT_A), engine.internalize(TEXT_B)
    prompts = ["what pet do i have ?", "what is the price of zorblax ?", "where do i live ?"]
    rows = [[ad_a], [ad_b], [ad_a, ad_b]]
    batched = engine.next_token_logits(prompts, rows)
    for i, (p, r) in enumerate(zip(prompts, rows, strict=True)):
        alone = engine.next_token_logits([p], [r])
        torch.testing.assert_close(batched[i], alone[0], atol=1e-4, rtol=1e-4)
    assert engine.generate_batch(prompts, rows, max_new_tokens=4) == [
        engine.generate(p, adapters=r, max_new_tokens=4) for p, r in zip(prompts, rows, strict=True)
    ]


def test_adapter_for_another_base_is_refused(llama_engine, tokenizer):
    other = make_engine("qwen2", tokenizer)
    foreign = other.internalize(TEXT_A)
    with pytest.raises(AdapterMismatchError, match="another base|made for base"):
        llama_engine.generate("what pet do i have ?", adapters=[foreign])
    with pytest.raises(TypeError):
        llama_engine.generate("hi", adapters=["not an adapter"])  # type: ignore[list-item]
