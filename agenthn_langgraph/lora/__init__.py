"""LoRA adapters as values, their per-call injection into a model, and PEFT export."""

from .adapter import AdapterMetadata, LoraAdapter
from .inject import InjectionPlan, LoraInjector, find_target_modules
from .peft_export import export_peft, next_vllm_rank

__all__ = [
    "AdapterMetadata",
    "InjectionPlan",
    "LoraAdapter",
    "LoraInjector",
    "export_peft",
    "find_target_modules",
    "next_vllm_rank",
]
