"""Exported adapters load in peft and give the same logits as our own injection."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from peft import PeftModel

from agenthn_langgraph.lora import export_peft, next_vllm_rank

TEXT = "<user> my pet is a frog . <assistant> nice ! <end> <user> i live in lima . <assistant> ok . <end>"


@pytest.mark.parametrize("pad_rank_to", [None, 16])
def test_peft_model_matches_our_injection(tmp_path, llama_engine, pad_rank_to):
    engine = llama_engine
    ad = engine.internalize(TEXT)
    path = export_peft(ad, tmp_path / "peft", pad_rank_to=pad_rank_to)
    cfg = json.loads((path / "adapter_config.json").read_text())
    assert cfg["r"] == (pad_rank_to or ad.rank) and cfg["lora_alpha"] == cfg["r"]

    ids = torch.tensor([engine.tokenizer(engine.render("where do i live ?"), add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        with engine.injector.apply([ad]):
            ours = engine.base(ids).logits
        plain = engine.base(ids).logits
        base_copy = copy.deepcopy(engine.base)
        for h in list(base_copy.modules()):
            h._forward_hooks.clear()  # the copy must not carry our injector's hooks
        peft_model = PeftModel.from_pretrained(base_copy, str(path)).eval()
        theirs = peft_model(input_ids=ids).logits
    assert not torch.allclose(ours, plain, atol=1e-4)
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-4)


def test_vllm_rank_padding():
    assert [next_vllm_rank(r) for r in (1, 2, 8, 9, 24, 320)] == [1, 8, 8, 16, 32, 320]
    with pytest.raises(ValueError):
        next_vllm_rank(10_000)
