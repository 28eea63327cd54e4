"""Serving at scale: internalize locally, answer on a multi-adapter server (vLLM)."""

from .vllm import VLLMChatModel, adapter_name

__all__ = ["VLLMChatModel", "adapter_name"]
