"""What the frozen base computes for a training step, computed live or read from a feature cache.

A hypernetwork step needs three things from the frozen base (``train.py`` says what each is for):

* **texts**: the hidden states the hypernetwork reads and each target module's input at every
  text token (:class:`TextFeatures`);
* **teacher**: the base reading the text, at every answer token (only for a KL loss);
* **student**: the base with the generated adapter answering each question without the text.

:class:`LiveFeatures` runs the base for all of them at every step. :class:`CachedFeatures` reads
the texts' features and the students' prompt KV caches from a :class:`~.feature_cache.FeatureCache`
built once per dataset, and runs only what the adapter changes: the decoder layers from the lowest
adapted one up, over the answer tokens (:class:`DecoderTop`). Both return the same tensors for the
same batch (to storage precision), so one loss function serves both; the tests check it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..lora.inject import InjectionPlan, layer_index
from .model import ModuleInputs, token_unembeddings
from .profile import NO_PROFILER

if TYPE_CHECKING:
    from ..engine import WeightMemoryModel
    from .batching import Batch
    from .config import HypernetConfig
    from .feature_cache import FeatureCache


@dataclass
class TextFeatures:
    """The frozen base over a step's texts."""

    states: tuple[torch.Tensor, ...]  # the hidden states the hypernetwork reads, [N, T, d] each
    inputs: ModuleInputs  # each target module's input, centred rows on demand
    token_out: torch.Tensor  # unit-norm output embedding of each text token [N, T, d] (copy prior)


StudentPass = tuple[torch.Tensor, dict[str, torch.Tensor]]
"""(last hidden state at the asked (row, column) positions [A', d], each target's plain-base input
where each answer token is due [A, d_in]: the queries the keys' InfoNCE loss matches)."""


# ------------------------------------------------------------------------------------------ live
def answer_logits(base: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The LM head on the answer positions only ([A, d] -> [A, vocab]): a vocabulary-wide product
    over every prompt position is most of a small model's forward. Gemma's final soft-capping kept."""
    logits = base.get_output_embeddings()(hidden)
    cap = getattr(base.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


@torch.no_grad()
def read_texts(
    model: WeightMemoryModel, ids: torch.Tensor, mask: torch.Tensor, *, group: int = 4
) -> tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
    """The frozen base over the step's texts: every layer's hidden states and each target module's
    input, [N, T, .] each, as one padded pass would give them.

    The texts run in groups of similar length, each padded only to its own longest: texts of a
    step differ in length by 2-3x, and a large base pays for every padding token.
    """
    order = torch.argsort(mask.sum(1), descending=True)
    states: list[list[torch.Tensor]] = []
    inputs: dict[str, list[torch.Tensor]] = {}
    t = ids.shape[1]

    def pad(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, 0, 0, t - x.shape[1]))

    for start in range(0, len(order), group):
        rows = order[start : start + group]
        width = int(mask[rows].sum(1).max())
        with model.injector.capture_inputs() as captured:  # the decoder alone: no logits over the texts
            out = model.base.base_model(
                input_ids=ids[rows, :width],
                attention_mask=mask[rows, :width],
                output_hidden_states=True,
                use_cache=False,
            )
        states.append([pad(h) for h in out.hidden_states])
        for name, x in captured.items():
            inputs.setdefault(name, []).append(pad(x))
    back = torch.argsort(order)
    hidden = tuple(torch.cat([g[i] for g in states])[back] for i in range(len(states[0])))
    return hidden, {n: torch.cat(xs)[back] for n, xs in inputs.items()}


@torch.no_grad()
def teacher_log_probs(base: nn.Module, b: Batch) -> torch.Tensor:
    """The frozen base reading the text: log-probabilities at every answer token [A, vocab]."""
    if b.teacher_ids is None or b.teacher_pos is None:
        raise ValueError("this batch was made without teacher prompts (make_batch(teacher=False))")
    hidden = base.base_model(input_ids=b.teacher_ids, attention_mask=b.teacher_mask, use_cache=False).last_hidden_state
    return F.log_softmax(answer_logits(base, hidden[b.teacher_pos[:, 0], b.teacher_pos[:, 1]]).float(), -1)


def student_full(
    model: WeightMemoryModel, b: Batch, plan: InjectionPlan, order: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
) -> StudentPass:
    """Student rows (question ``order[i]`` each) over whole sequences, the adapter on every token.

    Returns the last hidden state at (``rows``, ``cols``) [A', d], and each target module's input
    on the plain base where each answer token is due [A, d_in] (the keys' InfoNCE targets).
    """
    base = model.base
    with torch.no_grad(), model.injector.capture_inputs() as captured:
        base.base_model(input_ids=b.student_ids, attention_mask=b.student_mask, use_cache=False)
    queries = {n: x[b.student_pos[:, 0], b.student_pos[:, 1]].float() for n, x in captured.items()}
    with model.injector.use_plan(plan):
        hidden = base.base_model(
            input_ids=b.student_ids[order], attention_mask=b.student_mask[order], use_cache=False
        ).last_hidden_state
    return hidden[rows, cols], queries


def student_answer_only(
    model: WeightMemoryModel,
    b: Batch,
    plan: InjectionPlan,
    order: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    prof: Any = NO_PROFILER,
) -> StudentPass:
    """As :func:`student_full` for an adapter that acts on the answer only (``cols`` index the chunk).

    The prompt runs once, without gradients, into a KV cache; only the answer chunk runs with the
    adapter, so the backward pass covers a few tokens per question instead of the whole prompt.
    """
    assert b.prompt_ids is not None and b.prompt_mask is not None and b.chunk_ids is not None
    assert b.chunk_mask is not None and b.chunk_pos is not None
    if int(b.prompt_mask.sum(1).min()) == 0:
        raise ValueError("a student prompt of one token leaves nothing to cache before the answer")
    base = model.base
    prompt_len = b.prompt_mask.sum(1, keepdim=True)
    chunk_positions = prompt_len + torch.arange(b.chunk_ids.shape[1], device=prompt_len.device)
    full_mask = torch.cat([b.prompt_mask, b.chunk_mask], 1)
    with torch.no_grad(), prof.phase("student_prompt"):
        cache = base.base_model(
            input_ids=b.prompt_ids,
            attention_mask=b.prompt_mask,
            position_ids=(b.prompt_mask.cumsum(1) - 1).clamp(min=0),
            use_cache=True,
        ).past_key_values
        plain = copy.deepcopy(cache)  # the base's own pass over the answer extends a copy
        with model.injector.capture_inputs() as captured:
            base.base_model(
                input_ids=b.chunk_ids, attention_mask=full_mask, position_ids=chunk_positions, past_key_values=plain
            )
        del plain
        queries = {n: x[b.chunk_pos[:, 0], b.chunk_pos[:, 1]].float() for n, x in captured.items()}
        if len(order) != len(b.compose) or bool((order != torch.arange(len(order), device=order.device)).any()):
            cache.reorder_cache(order)
    token_mask = b.chunk_mask[order].float()
    with prof.phase("student_answer"), model.injector.use_plan(plan.at_positions(token_mask)):
        hidden = base.base_model(
            input_ids=b.chunk_ids[order],
            attention_mask=full_mask[order],
            position_ids=chunk_positions[order],
            past_key_values=cache,
        ).last_hidden_state
    return hidden[rows, cols], queries


class LiveFeatures:
    """Every step runs the frozen base over its texts, its teacher prompts and its student prompts."""

    def __init__(self, model: WeightMemoryModel, config: HypernetConfig) -> None:
        self.model = model
        self.config = config

    def texts(self, b: Batch) -> TextFeatures:
        states, captured = read_texts(self.model, b.text_ids, b.text_mask)
        return TextFeatures(
            self.config.read_states(states),
            ModuleInputs(captured.__getitem__, b.text_mask.float()),
            token_unembeddings(self.model.base, b.text_ids),
        )

    def teacher(self, b: Batch) -> torch.Tensor:
        return teacher_log_probs(self.model.base, b)

    def student(
        self, b: Batch, plan: InjectionPlan, order: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, prof: Any
    ) -> StudentPass:
        if self.config.chat.adapter_on_prompt:
            with prof.phase("student_answer"):
                return student_full(self.model, b, plan, order, rows, cols)
        return student_answer_only(self.model, b, plan, order, rows, cols, prof)


# ------------------------------------------------------------------------------------ the top stack
def _decoder_layers(decoder: nn.Module) -> nn.ModuleList:
    layers = getattr(decoder, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise TypeError(f"{type(decoder).__name__} keeps no `layers` list: the feature cache needs a decoder-only LM")
    return layers


class DecoderTop(nn.Module):
    """The base's decoder from layer ``start`` up, run on hidden states that enter layer ``start``.

    A shallow copy of the base's decoder module whose layer list starts at ``start``: the model's
    own forward (its masks, rotary embeddings, layer loop, final norm) runs on ``inputs_embeds`` =
    the cached hidden states, and the layers' weights are the base's own (nothing is copied). Each
    attention layer keeps its index into the KV cache, so the cache holds every layer: the real
    prompt keys and values from ``start`` up, and empty stand-ins of the same length below, which
    no layer reads (:meth:`cache`).
    """

    def __init__(self, base: nn.Module, start: int) -> None:
        super().__init__()
        decoder = base.base_model
        layers = _decoder_layers(decoder)
        if not 0 <= start < len(layers):
            raise ValueError(f"start layer {start} outside the base's {len(layers)} layers")
        top = copy.copy(decoder)
        # own tables, so assigning the shorter layer list leaves the base's decoder whole
        top._modules = dict(decoder._modules)
        top._parameters = dict(decoder._parameters)
        top._buffers = dict(decoder._buffers)
        top.layers = nn.ModuleList(list(layers)[start:])
        config = copy.deepcopy(decoder.config)
        config.num_hidden_layers = len(layers) - start
        if getattr(config, "layer_types", None) is not None:
            config.layer_types = list(config.layer_types)[start:]
        top.config = config
        object.__setattr__(self, "_top", top)  # not a submodule: its parameters are the base's
        self.start = start
        self.n_layers = len(layers)
        self.full_config = decoder.config

    def cache(self, keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor]) -> Any:
        """A KV cache for a batch of prompts: ``keys[i]``/``values[i]`` [B, kv_heads, P, head_dim]
        of layer ``start + i``; layers below get zero stand-ins that only give the cache its length."""
        from transformers import DynamicCache

        if len(keys) != self.n_layers - self.start or len(values) != len(keys):
            raise ValueError(f"expected keys and values of {self.n_layers - self.start} layers")
        cache = DynamicCache(config=self.full_config)
        stand_in = torch.zeros_like(keys[0][:, :, :, :1]).expand_as(keys[0])
        for layer in range(self.n_layers):
            if layer < self.start:
                cache.update(stand_in, stand_in, layer)
            else:
                cache.update(keys[layer - self.start], values[layer - self.start], layer)
        return cache

    def forward(
        self,
        hidden: torch.Tensor,
        *,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: Any,
    ) -> torch.Tensor:
        """The last hidden state (after the final norm) of the layers from ``start`` up [B, C, d]."""
        return self._top(
            inputs_embeds=hidden,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
        ).last_hidden_state


def first_adapted_layer(targets: Sequence[str]) -> int:
    """The lowest decoder layer a hypernetwork adapts: the student's pass starts there."""
    indices = {n: layer_index(n) for n in targets}
    unnumbered = [n for n, i in indices.items() if i is None]
    if unnumbered:
        raise ValueError(f"target modules without a layer number: {unnumbered}")
    return min(i for i in indices.values() if i is not None)


# ------------------------------------------------------------------------------------------ cached
class CachedModuleInputs(ModuleInputs):
    """Module inputs from a feature cache: each target's narrow source and the text's mean input
    are stored; :meth:`centred` reads the kept rows' sources and recomputes their wide inputs (a
    few rows of the text, not all of it)."""

    def __init__(
        self,
        model: WeightMemoryModel,
        cache: FeatureCache,
        starts: torch.Tensor,
        means: torch.Tensor,
        mask: torch.Tensor,
        names: Sequence[str],
    ) -> None:
        super().__init__(self._full, mask)
        self.model = model
        self.cache = cache
        self.starts = starts  # [N] each text's first row in the cache
        self.lengths = mask.sum(1).long().cpu()
        self.means = means  # [N, n_targets, d_in]
        self.index = {n: i for i, n in enumerate(names)}
        self.dtype = next(model.base.parameters()).dtype

    def _rows(self, name: str, idx: torch.Tensor) -> torch.Tensor:
        # padding positions (a text shorter than the rank) read the text's last token; they are masked out later
        local = torch.minimum(idx.cpu(), (self.lengths - 1).unsqueeze(1))
        source = self.cache.source_rows(self.starts.unsqueeze(1) + local, self.index[name])
        with torch.no_grad():
            return self.model.recorder.input_from(name, source.to(self.mask.device, self.dtype)).float()

    def _full(self, name: str) -> torch.Tensor:
        width = self.mask.shape[1]
        return self._rows(name, torch.arange(width).expand(self.mask.shape[0], width))

    def centred(self, name: str, idx: torch.Tensor) -> torch.Tensor:
        return self._rows(name, idx) - self.means[:, self.index[name]].unsqueeze(1)


class CachedFeatures:
    """Reads a step's frozen-base features from a :class:`~.feature_cache.FeatureCache`.

    The texts' hidden states and module sources come from the cache; the student runs only the
    decoder layers from the lowest adapted one up, over each question's answer tokens, on the
    cached hidden states that enter that layer and the prompt's cached keys and values.
    """

    def __init__(self, model: WeightMemoryModel, config: HypernetConfig, cache: FeatureCache) -> None:
        if config.chat.adapter_on_prompt:
            raise ValueError("a feature cache serves answer-only hypernetworks (ChatFormat.adapter_on_prompt=False)")
        cache.check_matches(model, config)
        self.model = model
        self.config = config
        self.cache = cache
        self.names = list(config.targets)
        self.top = DecoderTop(model.base, cache.layout.first_layer)
        dtype = next(model.base.parameters()).dtype
        self.dtype = dtype

    def texts(self, b: Batch) -> TextFeatures:
        assert b.text_examples is not None, "batches for a feature cache carry their example indices"
        device = b.text_ids.device
        t = b.text_ids.shape[1]
        lengths = b.text_mask.sum(1).tolist()
        states, starts, means = self.cache.texts(b.text_examples, width=t, lengths=lengths)
        return TextFeatures(
            tuple(states[:, :, i].to(device) for i in range(states.shape[2])),
            CachedModuleInputs(self.model, self.cache, starts, means.to(device), b.text_mask.float(), self.names),
            token_unembeddings(self.model.base, b.text_ids),
        )

    def teacher(self, b: Batch) -> torch.Tensor:
        raise ValueError("a feature cache stores no teacher: train with kl_weight=0 (gold answers) or without a cache")

    def student(
        self, b: Batch, plan: InjectionPlan, order: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, prof: Any
    ) -> StudentPass:
        assert b.question_keys is not None and b.prompt_mask is not None and b.chunk_mask is not None
        assert b.chunk_pos is not None
        device = b.chunk_mask.device
        with torch.no_grad(), prof.phase("student_prompt"):
            q = self.cache.questions(
                b.question_keys,
                prompt_width=b.prompt_mask.shape[1],
                chunk_width=b.chunk_mask.shape[1],
                prompt_lengths=b.prompt_mask.sum(1).tolist(),
                chunk_lengths=b.chunk_mask.sum(1).tolist(),
            )
            dtype = self.dtype
            at = (b.chunk_pos[:, 0], b.chunk_pos[:, 1])
            sources = q.chunk_sources.to(device, dtype)[at]  # [A, n_targets, d]
            queries = {n: self.model.recorder.input_from(n, sources[:, i]).float() for i, n in enumerate(self.names)}
            keys = [k.to(device, dtype)[order] for k in q.keys]
            values = [v.to(device, dtype)[order] for v in q.values]
            hidden_in = q.chunk_hidden.to(device, dtype)[order]
        prompt_len = b.prompt_mask.sum(1, keepdim=True)
        positions = (prompt_len + torch.arange(b.chunk_mask.shape[1], device=device))[order]
        full_mask = torch.cat([b.prompt_mask, b.chunk_mask], 1)[order]
        token_mask = b.chunk_mask[order].float()
        prompt_width = b.prompt_mask.shape[1]
        hidden = hidden_in.new_zeros(hidden_in.shape)
        with prof.phase("student_answer"):
            # answers differ in length (a city: 2 tokens, a date: 6): rows run in two groups,
            # each padded to its own longest, instead of every row to the batch's longest
            for group in length_groups(token_mask.sum(1).long().tolist()):
                g = torch.tensor(group, device=device)
                width = int(token_mask[g].sum(1).max())
                with torch.no_grad():
                    kv_cache = self.top.cache([k[g] for k in keys], [v[g] for v in values])
                plan_g = plan.for_rows(g).at_positions(token_mask[g, :width])
                with self.model.injector.use_plan(plan_g):
                    out = self.top(
                        hidden_in[g, :width],
                        attention_mask=full_mask[g, : prompt_width + width],
                        position_ids=positions[g, :width],
                        cache=kv_cache,
                    )
                hidden = hidden.index_put((g,), F.pad(out, (0, 0, 0, hidden.shape[1] - width)))
        return hidden[rows, cols], queries


def length_groups(lengths: Sequence[int]) -> list[list[int]]:
    """Row indices in at most two groups by length, cut where padding each group to its own
    longest leaves the fewest padded tokens (one group when a cut saves little).

    >>> length_groups([2, 9, 3, 2, 10])
    [[0, 2, 3], [1, 4]]
    >>> length_groups([3, 3, 4])
    [[0, 1, 2]]
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    ranked = [lengths[i] for i in order]
    n = len(ranked)
    cost, cut = min(((c * ranked[c - 1] + (n - c) * ranked[-1], c) for c in range(1, n)), default=(0, n))
    if cost >= 0.8 * n * ranked[-1]:  # another pass costs something too: cut only for a clear saving
        cut = n
    groups = [order[:cut], order[cut:]] if cut < n else [order]
    return [sorted(g) for g in groups]
