"""What each target module sees over a text, recorded without keeping every layer's wide inputs.

The hypernetwork keys a token's LoRA piece on the target module's own input at that token. For
``mlp.down_proj`` that input is the MLP's intermediate activation (``intermediate_size`` wide, 3-8x
the hidden size), so recording it for every layer at once costs ``layers x tokens x
intermediate`` floats -- gigabytes for a 1B model over a long text. :class:`ModuleInputRecorder`
instead records the *MLP's* input (hidden-size wide) during the base pass and recomputes one
module's wide input at a time, on demand, by re-running that layer's MLP: internalize's memory then
grows with the text and the adapter, not with every layer's intermediate width.

Recomputing costs about 40% of a forward pass, so it is done only when it pays: when the wide
inputs of a pass would exceed ``stream_above_bytes`` (default 64 MiB; a 135M model over 128 tokens
needs 24 MiB and records them directly, a 1B model over 2,000 tokens needs 1 GiB and streams).
Targets outside an MLP (attention projections) take hidden-size inputs already and are recorded
directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn


class ModuleInputRecorder:
    """Records target-module inputs during a forward pass; ``get(name)`` returns one [N, T, d_in].

    Example:
        >>> from transformers import LlamaConfig, LlamaForCausalLM
        >>> model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=48,
        ...     num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2))
        >>> targets = {n: m for n, m in model.named_modules() if n.endswith("mlp.down_proj")}
        >>> rec = ModuleInputRecorder(model, targets, stream_above_bytes=0)  # always recompute
        >>> with rec.recording():
        ...     _ = model(input_ids=torch.tensor([[1, 2, 3]]))
        >>> rec.get("model.layers.1.mlp.down_proj").shape
        torch.Size([1, 3, 48])
    """

    def __init__(
        self, model: nn.Module, targets: Mapping[str, nn.Module], *, stream_above_bytes: int = 64 * 2**20
    ) -> None:
        self._targets = dict(targets)
        self.stream_above_bytes = stream_above_bytes
        # target name -> (parent MLP name, the target's attribute name in it), when recomputable
        self._via_parent: dict[str, tuple[str, nn.Module]] = {}
        for name in self._targets:
            parent_name, _, _ = name.rpartition(".")
            if parent_name.rsplit(".", 1)[-1] == "mlp":
                self._via_parent[name] = (parent_name, model.get_submodule(parent_name))
        self._recorded: dict[str, torch.Tensor] = {}
        self._streaming = True

    @contextmanager
    def recording(self, n_tokens: int | None = None) -> Iterator[ModuleInputRecorder]:
        """Record during the block (hooks are removed on exit; what was recorded stays readable).

        ``n_tokens`` (batch x length of the pass) decides whether wide inputs are recorded
        directly or recomputed on demand; ``None`` always streams.
        """
        self._recorded = {}
        wide = sum(getattr(m, "in_features", 0) for n, m in self._targets.items() if n in self._via_parent)
        self._streaming = n_tokens is None or n_tokens * wide * 4 > self.stream_above_bytes
        handles = []
        if self._streaming:
            for pname, mod in {p: mod for p, mod in self._via_parent.values()}.items():
                handles.append(mod.register_forward_pre_hook(self._store(pname)))
        for name, mod in self._targets.items():
            if name not in self._via_parent or not self._streaming:
                handles.append(mod.register_forward_pre_hook(self._store(name)))
        try:
            yield self
        finally:
            for h in handles:
                h.remove()

    def _store(self, key: str):  # noqa: ANN202 - torch hook signature
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            self._recorded[key] = args[0].detach()

        return hook

    @torch.no_grad()
    def get(self, name: str) -> torch.Tensor:
        """The input of target ``name`` over the recorded pass [N, T, d_in] (recomputed if needed)."""
        if name not in self._via_parent or not self._streaming:
            return self._recorded[name]
        return self.input_from(name, self._recorded[self._via_parent[name][0]])

    def source(self, name: str) -> torch.Tensor:
        """The narrow tensor target ``name``'s input is computed from [N, T, d]: its parent MLP's
        input (for an MLP's own projections), else its own input. Needs a streaming recording
        (``recording(n_tokens=None)``). A feature cache stores it and recomputes the wide input
        for the rows it needs with :meth:`input_from`."""
        if not self._streaming:
            raise RuntimeError("sources are kept by a streaming recording: use recording(n_tokens=None)")
        return self._recorded[self._via_parent[name][0] if name in self._via_parent else name]

    def input_from(self, name: str, source: torch.Tensor) -> torch.Tensor:
        """Target ``name``'s input for ``source`` (rows of :meth:`source`, any leading shape).

        Re-runs the parent MLP with a hook on the target for an MLP's projections; any other
        target's source is its input already. Runs under the caller's grad mode.
        """
        if name not in self._via_parent:
            return source
        _, parent = self._via_parent[name]
        gate, up, act = (getattr(parent, a, None) for a in ("gate_proj", "up_proj", "act_fn"))
        if self._targets[name] is getattr(parent, "down_proj", None) and None not in (gate, up, act):
            # a gated MLP (Llama, Mistral, Qwen2, Gemma): down_proj's input without running down_proj
            return act(gate(source)) * up(source)
        seen: dict[str, torch.Tensor] = {}
        handle = self._targets[name].register_forward_pre_hook(lambda _m, args: seen.setdefault("x", args[0]))
        try:
            parent(source)
        finally:
            handle.remove()
        return seen["x"]

    def clear(self) -> None:
        self._recorded = {}
