"""Export a :class:`LoraAdapter` to a standard PEFT LoRA directory.

The result (``adapter_config.json`` + ``adapter_model.safetensors``) loads with
``peft.PeftModel.from_pretrained`` and in LoRA servers such as vLLM and LoRAX. Our scaling is
folded into ``lora_B`` and ``lora_alpha = r``, so PEFT's ``alpha / r`` scaling is exactly 1.
vLLM accepts only some ranks (8, 16, 32, 64, ...): ``pad_rank_to`` zero-pads a composed adapter
to such a rank without changing its delta.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from .adapter import LoraAdapter

VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def next_vllm_rank(rank: int) -> int:
    """The smallest rank vLLM serves that holds ``rank``."""
    for r in VLLM_RANKS:
        if r >= rank:
            return r
    raise ValueError(f"rank {rank} is above vLLM's largest LoRA rank {VLLM_RANKS[-1]}")


def export_peft(
    adapter: LoraAdapter,
    path: str | os.PathLike[str],
    *,
    base_model_name_or_path: str | None = None,
    pad_rank_to: int | None = None,
) -> Path:
    """Write ``adapter`` as a PEFT LoRA adapter directory; returns the directory."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    rank = adapter.rank
    target_rank = rank if pad_rank_to is None else pad_rank_to
    if target_rank < rank:
        raise ValueError(f"pad_rank_to={pad_rank_to} is below the adapter's rank {rank}")
    tensors: dict[str, torch.Tensor] = {}
    for name, (a, b) in adapter.weights.items():
        a = a.float().cpu()
        b = (b.float() * adapter.scaling).cpu()
        pad = target_rank - a.shape[0]
        if pad:
            a = torch.cat([a, a.new_zeros(pad, a.shape[1])], 0)
            b = torch.cat([b, b.new_zeros(b.shape[0], pad)], 1)
        tensors[f"base_model.model.{name}.lora_A.weight"] = a.contiguous()
        tensors[f"base_model.model.{name}.lora_B.weight"] = b.contiguous()
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": target_rank,
        "lora_alpha": target_rank,  # scaling alpha / r = 1: ours is already folded into B
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "use_rslora": False,
        "use_dora": False,
        "target_modules": sorted(adapter.weights),  # full names: exactly these modules
        "base_model_name_or_path": base_model_name_or_path,
    }
    save_file(tensors, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})
    (directory / "adapter_config.json").write_text(json.dumps(config, indent=2))
    # provenance in a sidecar: peft warns about unknown keys in adapter_config.json
    provenance = {
        "base_fingerprint": adapter.metadata.base_fingerprint,
        "kind": adapter.metadata.kind,
        "source_sha256": adapter.metadata.source_sha256,
        "created_at": adapter.metadata.created_at,
    }
    (directory / "agenthn.json").write_text(json.dumps(provenance, indent=2))
    return directory
