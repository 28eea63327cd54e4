"""Per-call weight injection: exactness, isolation between threads, per-row adapters."""

from __future__ import annotations

import contextvars
import copy
import threading

import pytest
import torch
from torch.utils.checkpoint import CheckpointError, checkpoint

from agenthn_langgraph.errors import AdapterMismatchError
from agenthn_langgraph.lora.inject import InjectionPlan, LoraInjector

from .conftest import ProcessGlobalPlan, make_engine

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


def _concurrent_mismatches(engine) -> list[str]:
    """Three threads run forwards at the same time, interleaved step by step, each with its own
    adapter (or none); returns the conditions whose logits differ from what they get alone."""
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
    assert all(len(outs) == 4 for outs in results.values())
    return [
        key
        for key, outs in results.items()
        for out in outs
        if not torch.allclose(out, expected[key], atol=1e-5, rtol=1e-5)
    ]


def test_concurrent_threads_never_see_each_others_adapters(llama_engine):
    assert _concurrent_mismatches(llama_engine) == []


def test_concurrency_check_detects_a_process_global_plan(llama_engine, monkeypatch):
    """Mutation check: the same check against an injector whose plan is one process-wide value."""
    monkeypatch.setattr(llama_engine.injector, "_plan", ProcessGlobalPlan())
    assert _concurrent_mismatches(llama_engine), "a process-global plan went unnoticed"


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


# ------------------------------------------------------------------------------ other threads
def test_a_thread_started_under_a_plan_sees_it_only_through_bind(llama_engine):
    """Plans never cross threads by themselves; ``injector.bind`` (or copy_context().run) hands one over."""
    engine = llama_engine
    ad = engine.internalize(TEXT_A)
    ids = _ids(engine, "what pet do i have ?")
    base_logits = engine.base(ids).logits.detach()
    out: dict[str, torch.Tensor] = {}

    def forward(key: str) -> None:
        out[key] = engine.base(ids).logits.detach()

    with engine.injector.apply([ad]):
        injected = engine.base(ids).logits.detach()
        workers = [
            threading.Thread(target=forward, args=("plain",)),
            threading.Thread(target=engine.injector.bind(forward), args=("bound",)),
            threading.Thread(target=contextvars.copy_context().run, args=(forward, "copied_context")),
        ]
        for t in workers:
            t.start()
        for t in workers:
            t.join(60)
    late = engine.injector.bind(forward, None)  # an explicit plan: here, none
    with engine.injector.apply([ad]):
        late("explicit_none")
    assert not torch.allclose(injected, base_logits, atol=1e-4)
    assert torch.equal(out["plain"], base_logits)
    assert torch.equal(out["bound"], injected)
    assert torch.equal(out["copied_context"], injected)
    assert torch.equal(out["explicit_none"], base_logits)


def test_hf_generate_in_a_streamer_thread_carries_the_adapters(default_model):
    """The TextIteratorStreamer pattern: ``model.generate`` runs in a worker thread."""
    from transformers import TextIteratorStreamer

    engine = default_model
    memory = engine.internalize("<user> my pet is a frog . <assistant> nice ! <end>")
    ids = torch.tensor([engine.encode(engine.render("what pet do i have ?"))])
    options = {"input_ids": ids, "max_new_tokens": 1, "do_sample": False, "pad_token_id": 0}

    def stream(target) -> str:
        streamer = TextIteratorStreamer(engine.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=60)
        worker = threading.Thread(target=target, kwargs={**options, "streamer": streamer})
        worker.start()
        text = "".join(streamer).strip()
        worker.join(60)
        return text

    with engine.injector.apply([memory]):
        unbound = stream(engine.base.generate)  # started under a plan, but not handed it
    bound = stream(engine.bind(engine.base.generate, [memory]))
    assert bound == "frog"
    assert unbound != "frog" and unbound == engine.generate("what pet do i have ?", max_new_tokens=1)


# ------------------------------------------------------------------------------ gradient checkpointing
def _plan_and_grads(engine, only: str = "") -> tuple[InjectionPlan, list[torch.Tensor]]:
    """A plan of leaf tensors (so their gradients can be compared) for the targets containing ``only``."""
    torch.manual_seed(3)
    shapes = engine.injector.module_shapes()
    weights = {
        n: ((torch.randn(4, d_in) * 0.1).requires_grad_(), (torch.randn(d_out, 4) * 0.1).requires_grad_())
        for n, (d_in, d_out) in shapes.items()
        if only in n
    }
    return InjectionPlan(weights), [t for pair in weights.values() for t in pair]


def _loss_and_grads(engine, plan, leaves, *, checkpointing: bool | None) -> tuple[float, list[torch.Tensor]]:
    """One training step's gradients w.r.t. the plan's A/B and the input embeddings; backward
    runs after the plan's ``with`` block, as a training loop does. ``checkpointing``: None = off,
    True = reentrant, False = non-reentrant."""
    base = engine.base
    for t in leaves:
        t.grad = None
    base.train()
    if checkpointing is None:
        base.activation_checkpointing_disable()
    else:
        base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": checkpointing})
    try:
        ids = torch.arange(5, 17).view(2, 6)
        emb = base.get_input_embeddings()(ids).detach().requires_grad_()
        with engine.injector.use_plan(plan):
            loss = base(inputs_embeds=emb).logits.float().pow(2).mean()
        loss.backward()
    finally:
        base.activation_checkpointing_disable()
        base.eval()
    return loss.item(), [emb.grad, *(t.grad for t in leaves)]


@pytest.mark.parametrize("reentrant", [True, False], ids=["reentrant", "non_reentrant"])
def test_injection_survives_hf_gradient_checkpointing(tokenizer, reentrant):
    """Checkpointing recomputes each layer in backward, after the plan's block has exited; the
    gradients must be those of the same step without checkpointing."""
    engine = make_engine("llama", tokenizer)
    plan, leaves = _plan_and_grads(engine)
    ref_loss, ref_grads = _loss_and_grads(engine, plan, leaves, checkpointing=None)
    loss, grads = _loss_and_grads(engine, plan, leaves, checkpointing=reentrant)
    assert all(g is not None and g.abs().sum() > 0 for g in ref_grads)
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    for g, ref in zip(grads, ref_grads, strict=True):
        assert g is not None
        torch.testing.assert_close(g, ref, atol=1e-6, rtol=1e-5)


def _engine_without_plan_carrier(tokenizer, monkeypatch):
    """Mutation: an engine whose injector does not carry plans into checkpoint recomputation."""
    monkeypatch.setattr(LoraInjector, "_carry_plan_into_checkpoint", lambda self, module, args: None)
    return make_engine("llama", tokenizer)


def test_reentrant_checkpointing_check_fails_without_the_plan_carrier(tokenizer, monkeypatch):
    """Mutation check: without the wrapper, reentrant recomputation runs without the plan and the
    gradients come out wrong (the plan's are missing) -- the test above would catch it."""
    engine = _engine_without_plan_carrier(tokenizer, monkeypatch)
    plan, leaves = _plan_and_grads(engine)
    _, ref_grads = _loss_and_grads(engine, plan, leaves, checkpointing=None)
    _, grads = _loss_and_grads(engine, plan, leaves, checkpointing=True)
    assert not torch.allclose(grads[0], ref_grads[0], atol=1e-6)  # the input gradient is wrong
    assert all(g is None for g in grads[1:])  # and the plan's A/B get none


def test_non_reentrant_checkpointing_check_fails_without_the_plan_carrier(tokenizer, monkeypatch):
    """Mutation check: without the wrapper, non-reentrant recomputation saves other tensors than
    the forward did, and torch refuses."""
    engine = _engine_without_plan_carrier(tokenizer, monkeypatch)
    plan, leaves = _plan_and_grads(engine)
    with pytest.raises(CheckpointError):
        _loss_and_grads(engine, plan, leaves, checkpointing=False)


@pytest.mark.parametrize("reentrant", [True, False], ids=["reentrant", "non_reentrant"])
def test_a_block_checkpointed_by_hand_keeps_its_plan_through_bind(llama_engine, reentrant):
    engine = llama_engine
    mlp = engine.base.model.layers[0].mlp  # holds the target down_proj
    plan, leaves = _plan_and_grads(engine, only="layers.0.")
    x = torch.randn(2, 5, engine.base.config.hidden_size, requires_grad=True)

    def grads(run) -> list[torch.Tensor | None]:
        for t in [x, *leaves]:
            t.grad = None
        with engine.injector.use_plan(plan):
            y = run()
        y.pow(2).sum().backward()
        return [x.grad, *(t.grad for t in leaves)]

    reference = grads(lambda: mlp(x))
    bound = grads(lambda: checkpoint(engine.injector.bind(mlp), x, use_reentrant=reentrant))
    assert len(leaves) == 2
    for g, ref in zip(bound, reference, strict=True):
        assert g is not None and ref is not None
        torch.testing.assert_close(g, ref, atol=1e-6, rtol=1e-5)


def test_a_block_checkpointed_by_hand_without_bind_loses_its_plan(llama_engine):
    """What ``bind`` is for: unbound, the reentrant recomputation drops the delta (silently
    wrong gradients) and the non-reentrant one raises."""
    engine = llama_engine
    mlp = engine.base.model.layers[0].mlp
    plan, leaves = _plan_and_grads(engine, only="layers.0.")
    x = torch.randn(2, 5, engine.base.config.hidden_size, requires_grad=True)
    with engine.injector.use_plan(plan):
        reference = torch.autograd.grad(mlp(x).pow(2).sum(), x)[0]
        y_reentrant = checkpoint(mlp, x, use_reentrant=True)
        y_non_reentrant = checkpoint(mlp, x, use_reentrant=False)
    y_reentrant.pow(2).sum().backward()
    assert leaves[0].grad is None and not torch.allclose(x.grad, reference, atol=1e-6)
    with pytest.raises(CheckpointError):
        y_non_reentrant.pow(2).sum().backward()
