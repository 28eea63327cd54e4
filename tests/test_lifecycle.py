"""Process-global state: engines give a lent model back, caches are bounded, registrations are weak."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from agenthn_langgraph import chat_model
from agenthn_langgraph._cache import LRUCache
from agenthn_langgraph.chat_model import LocalHypernetChatModel, _shared_engine
from agenthn_langgraph.engine import WeightMemoryModel
from agenthn_langgraph.errors import EngineClosedError, ModelNotFoundError
from agenthn_langgraph.lora import AdapterMetadata, LoraAdapter
from agenthn_langgraph.lora.inject import InjectionPlan

from .conftest import _random_model


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _state(model: torch.nn.Module) -> tuple[dict[str, bool], dict[str, bool]]:
    return (
        {n: m.training for n, m in model.named_modules()},
        {n: p.requires_grad for n, p in model.named_parameters()},
    )


def _adapter_for(engine: WeightMemoryModel) -> LoraAdapter:
    """A small random rank-2 adapter on every module the engine adapts."""
    g = torch.Generator().manual_seed(0)
    weights = {
        name: (0.1 * torch.randn(2, d_in, generator=g), 0.1 * torch.randn(d_out, 2, generator=g))
        for name, (d_in, d_out) in engine.injector.module_shapes().items()
    }
    return LoraAdapter(weights, metadata=AdapterMetadata(base_fingerprint=engine.fingerprint))


def _plain_and_adapted(engine: WeightMemoryModel, adapter: LoraAdapter) -> torch.Tensor:
    """Next-token logits for "hi" without and with ``adapter``, in one batch [2, vocab]."""
    return engine.next_token_logits(["hi", "hi"], [[], [adapter]])


@pytest.fixture()
def lent_model(tokenizer) -> torch.nn.Module:
    """A model as a caller might own it: training mode, one submodule in eval, one frozen weight."""
    base = _random_model("llama", len(tokenizer)).train()
    base.model.layers[1].eval()
    base.model.norm.weight.requires_grad_(False)
    return base


def test_close_gives_the_lent_model_back_as_it_was(lent_model, tokenizer):
    base = lent_model
    before, hooks_before = _state(base), _hooks(base)
    ids = torch.tensor([[5, 6, 7, 8]])
    reference = base(ids).logits.detach()
    engine = WeightMemoryModel(base, tokenizer)
    assert not base.training and not any(p.requires_grad for p in base.parameters())
    assert _hooks(base) > hooks_before
    engine.close()
    assert _state(base) == before
    assert _hooks(base) == hooks_before
    assert torch.equal(base(ids).logits.detach(), reference)
    with pytest.raises(EngineClosedError):
        engine.generate("hi")
    with pytest.raises(EngineClosedError):
        engine.next_token_logits(["hi"])
    engine.close()  # idempotent
    assert engine.closed


def test_engine_is_a_context_manager(lent_model, tokenizer):
    before, hooks_before = _state(lent_model), _hooks(lent_model)
    with WeightMemoryModel(lent_model, tokenizer) as engine:
        assert isinstance(engine, WeightMemoryModel) and not engine.closed
        assert not lent_model.training
        plain, adapted = _plain_and_adapted(engine, _adapter_for(engine))
        ids = torch.tensor([engine._encode(engine.render("hi"))])
        bare = lent_model(input_ids=ids).logits[0, -1].float()
    # inside the block: no adapter leaves the model's own logits, an adapter changes them
    assert torch.allclose(plain, bare, atol=1e-5)
    assert not torch.allclose(adapted, plain, atol=1e-3)
    assert engine.closed and _state(lent_model) == before and _hooks(lent_model) == hooks_before
    with pytest.raises(EngineClosedError):
        engine.generate("hi")


def test_a_model_shared_by_two_engines_comes_back_when_the_last_closes(lent_model, tokenizer):
    before, hooks_before = _state(lent_model), _hooks(lent_model)
    first = WeightMemoryModel(lent_model, tokenizer)
    second = WeightMemoryModel(lent_model, tokenizer)
    adapter = _adapter_for(second)
    expected = _plain_and_adapted(second, adapter)
    assert not torch.allclose(expected[0], expected[1], atol=1e-3)  # the adapter changes the logits
    first.close()
    # the second engine still needs the model frozen, in eval mode, and its own hooks on
    assert not lent_model.training and not any(p.requires_grad for p in lent_model.parameters())
    assert _hooks(lent_model) > hooks_before
    # its adapter still applies, exactly as before the first engine closed
    assert torch.allclose(_plain_and_adapted(second, adapter), expected, atol=1e-6)
    second.close()
    assert _state(lent_model) == before and _hooks(lent_model) == hooks_before


def test_close_restores_the_models_checkpointing_function(lent_model, tokenizer):
    """The injector wraps a checkpointing layer's function on first use under a plan; close unwraps it."""
    lent_model.activation_checkpointing_enable()
    layers = list(lent_model.model.layers)
    original = [layer._gradient_checkpointing_func for layer in layers]
    engine = WeightMemoryModel(lent_model, tokenizer)
    lent_model.train()
    plan = InjectionPlan(
        {n: (torch.zeros(1, i), torch.zeros(o, 1)) for n, (i, o) in engine.injector.module_shapes().items()}
    )
    emb = lent_model.get_input_embeddings()(torch.tensor([[5, 6, 7]])).detach().requires_grad_()
    with engine.injector.use_plan(plan):
        lent_model(inputs_embeds=emb)
    assert all(layer._gradient_checkpointing_func is not f for layer, f in zip(layers, original, strict=True))
    engine.close()
    assert all(layer._gradient_checkpointing_func is f for layer, f in zip(layers, original, strict=True))


def test_an_engine_dropped_without_close_takes_its_hooks_off(lent_model, tokenizer):
    hooks_before = _hooks(lent_model)
    keep = WeightMemoryModel(lent_model, tokenizer)
    WeightMemoryModel(lent_model, tokenizer)  # dropped at once
    gc.collect()
    assert _hooks(lent_model) == hooks_before + len(keep.injector._handles)
    keep.close()
    assert _hooks(lent_model) == hooks_before


# ------------------------------------------------------------------------------ caches
class _FakeEngine:
    closed = False

    def __init__(self, path: str) -> None:
        self.path = path


def test_engine_cache_is_bounded_and_evicts_the_least_recently_used(monkeypatch):
    loads: list[str] = []

    def fake_from_pretrained(cls, base, hypernet=None, *, device=None):
        loads.append(base)
        return _FakeEngine(base)

    monkeypatch.setattr(WeightMemoryModel, "from_pretrained", classmethod(fake_from_pretrained))
    monkeypatch.setattr(chat_model, "_ENGINES", LRUCache(maxsize=2))
    a = _shared_engine("/models/a", None, None)
    b = _shared_engine("/models/b", None, None)
    assert _shared_engine("/models/a", None, None) is a  # cached, and now the most recent
    _shared_engine("/models/c", None, None)  # evicts b, the least recently used
    assert chat_model._ENGINES.keys() == [("/models/a", None, None), ("/models/c", None, None)]
    assert _shared_engine("/models/b", None, None) is not b  # reloaded
    assert loads == ["/models/a", "/models/b", "/models/c", "/models/b"]
    assert len(chat_model._ENGINES) == 2
    a.closed = True  # a closed engine is never handed out again
    assert _shared_engine("/models/a", None, None) is not a


def test_registry_cache_is_bounded():
    from agenthn_langgraph.models import registry

    assert isinstance(registry._engines, LRUCache) and registry._engines.maxsize >= 1


def test_from_engine_registration_is_weak_and_never_keyed_by_id(default_model):
    engine = WeightMemoryModel(default_model.base, default_model.tokenizer, default_model.hypernet, name="weak")
    model = LocalHypernetChatModel.from_engine(engine, max_tokens=2)
    key = model.model_path
    assert key == f"engine:weak@{engine.uid}" and f"{id(engine):x}" not in key
    copy = model.configurable_adapters().with_config(configurable={"adapter_ids": []})
    assert copy.invoke("hi").response_metadata["model_name"] == "weak"  # copies find it while it lives
    dead = weakref.ref(engine)
    del engine, model, copy
    gc.collect()
    assert dead() is None  # the registration did not keep it alive
    assert key not in chat_model._FROM_ENGINE
    with pytest.raises(ModelNotFoundError):
        LocalHypernetChatModel(model_path=key).invoke("hi")


def test_from_engine_refuses_a_closed_engine(default_model):
    question = "what pet do i have ?"
    memory = default_model.internalize("<user> my pet is a frog . <assistant> nice ! <end>")
    remembered = default_model.generate(question, adapters=[memory], max_new_tokens=2)
    assert remembered == "frog" and default_model.generate(question, max_new_tokens=2) != "frog"
    engine = WeightMemoryModel(default_model.base, default_model.tokenizer, default_model.hypernet, name="shut")
    engine.close()
    with pytest.raises(EngineClosedError):
        LocalHypernetChatModel.from_engine(engine)
    # closing another engine on the same base left the default's hooks on: its adapter still answers
    assert not default_model.closed
    assert default_model.generate(question, adapters=[memory], max_new_tokens=2) == remembered
