"""``WeightMemoryModel``: a causal LM + tokenizer + hypernetwork, with per-call adapters.

This is the one object the LangGraph layer talks to. ``internalize(text)`` runs the base over the
text and the hypernetwork over its hidden states -- one forward pass -- and returns a
:class:`~agenthn_langgraph.lora.LoraAdapter`. ``generate(prompt, adapters=[...])`` answers with
those adapters injected for that call only (see :mod:`agenthn_langgraph.lora.inject`).

Example:
    >>> from agenthn_langgraph import load_default
    >>> model = load_default()
    >>> memory = model.internalize("<user> my pet is a frog . <assistant> nice ! <end>")
    >>> model.generate("what pet do i have ?", adapters=[memory])
    'frog'
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .errors import CheckpointError, EmptyTextError, PromptTooLongError, TextTooLongError
from .hypernet.model import Hypernetwork, token_unembeddings
from .lora.adapter import AdapterKind, AdapterMetadata, LoraAdapter, text_sha256
from .lora.inject import InjectionPlan, LoraInjector

Message = Mapping[str, Any]
PromptLike = str | Sequence[Message]
DEFAULT_MAX_CHUNKS = 32


def base_fingerprint(model: PreTrainedModel) -> str:
    """Identify a base model by its architecture and a sample of its weights (cheap, stable)."""
    cfg = model.config
    arch = {
        k: getattr(cfg, k, None)
        for k in (
            "model_type",
            "hidden_size",
            "num_hidden_layers",
            "intermediate_size",
            "vocab_size",
            "num_attention_heads",
        )
    }
    h = hashlib.sha256(json.dumps(arch, sort_keys=True).encode())
    params = dict(model.named_parameters())
    for name in sorted(params)[:8] + sorted(params)[-8:]:
        sample = params[name].detach().flatten()[:2048].to("cpu", torch.float32).contiguous()
        h.update(name.encode())
        h.update(sample.numpy().tobytes())
    return h.hexdigest()


def _check_text(text: object, what: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, got {type(text).__name__}")
    if not text.strip():
        raise EmptyTextError(f"{what} is empty or only whitespace: nothing to internalize")
    return text


class WeightMemoryModel:
    """A causal LM whose memory can be written into LoRA weights by a hypernetwork."""

    def __init__(
        self,
        base: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        hypernet: Hypernetwork | None = None,
        *,
        name: str = "custom",
        max_chunks: int = DEFAULT_MAX_CHUNKS,
    ) -> None:
        self.base = base.eval()
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name
        self.max_chunks = max_chunks
        self.fingerprint = base_fingerprint(base)
        suffixes = (
            sorted({n.split(".")[-2] + "." + n.split(".")[-1] for n in hypernet.config.targets})
            if hypernet
            else ["mlp.down_proj"]
        )
        self.injector = LoraInjector(base, suffixes)
        self.hypernet = hypernet
        if hypernet is not None:
            hypernet.eval()
            shapes = self.injector.module_shapes()
            if {k: tuple(v) for k, v in hypernet.config.targets.items()} != shapes:
                raise CheckpointError("hypernetwork targets do not match this base model's modules")
            if hypernet.config.base_fingerprint and hypernet.config.base_fingerprint != self.fingerprint:
                raise CheckpointError("hypernetwork was trained for another base model (fingerprint differs)")
        self._weight_norms = self.injector.weight_norms()
        # generated tokens the adapters act on (None: all); a property of how the hypernetwork was
        # trained, so the checkpoint's loader sets it (the tiny default: 1, see ``stream``)
        self.default_adapter_tokens: int | None = None
        # fast tokenizers are not safe to call from several threads at once ("Already borrowed")
        self._tok_lock = threading.Lock()

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        base: str | os.PathLike[str],
        hypernet: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        name: str | None = None,
    ) -> WeightMemoryModel:
        """Load a local HF base model (+ tokenizer) and our hypernetwork checkpoint.

        A GPU is used when present unless ``device`` says otherwise. Nothing is downloaded when
        ``HF_HUB_OFFLINE=1`` (set by the CLI); pass local directories.
        """
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        try:
            tokenizer = AutoTokenizer.from_pretrained(base)
            model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype or torch.float32).to(device)
        except OSError as e:
            raise CheckpointError(f"cannot load base model from {base}: {e}") from e
        hn = Hypernetwork.load(hypernet, map_location=device) if hypernet is not None else None
        return cls(model, tokenizer, hn, name=name or str(base))

    @property
    def device(self) -> torch.device:
        return next(self.base.parameters()).device

    # ------------------------------------------------------------------ tokens
    def _encode(self, text: str) -> list[int]:
        with self._tok_lock:
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added), by this model's own tokenizer."""
        return self._encode(text)

    def render(
        self,
        prompt_or_messages: PromptLike,
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        """The exact prompt string the model sees (chat template applied).

        ``tools`` (OpenAI-style function schemas) go to the template's own ``tools`` variable;
        templates without tool support ignore them.
        """
        if isinstance(prompt_or_messages, str):
            messages: list[dict[str, Any]] = [{"role": "user", "content": prompt_or_messages}]
        elif isinstance(prompt_or_messages, Sequence):
            messages = []
            for m in prompt_or_messages:
                if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
                    raise TypeError("messages must be mappings with 'role' and 'content'")
                messages.append(dict(m))
        else:
            raise TypeError(f"prompt must be a str or a list of messages, got {type(prompt_or_messages).__name__}")
        with self._tok_lock:
            return self.tokenizer.apply_chat_template(
                messages,
                tools=list(tools) if tools else None,
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
            )

    def count_tokens(self, prompt_or_messages: PromptLike) -> int:
        return len(self._encode(self.render(prompt_or_messages)))

    # ------------------------------------------------------------------ internalize
    def _chunks(self, ids: list[int]) -> list[list[int]]:
        """Split token ids into encoder-window chunks, preferring sentence and turn boundaries."""
        window = self.hypernet.config.window - 1  # one slot for <bos>
        if len(ids) <= window:
            return [ids]
        enders = {self.tokenizer.convert_tokens_to_ids(t) for t in (".", "?", "!", "<end>")}
        enders.discard(self.tokenizer.unk_token_id)
        chunks, start = [], 0
        while start < len(ids):
            end = min(start + window, len(ids))
            if end < len(ids):
                cut = max((i + 1 for i in range(start + window // 2, end) if ids[i] in enders), default=end)
                end = cut
            chunks.append(ids[start:end])
            start = end
        return chunks

    @torch.no_grad()
    def internalize_many(
        self,
        texts: Sequence[str],
        *,
        kind: AdapterKind = "document",
        extra: Mapping[str, str | int | float | bool | None] | None = None,
    ) -> list[LoraAdapter]:
        """Internalize several texts in one batched pass; one adapter per text."""
        if self.hypernet is None:
            raise RuntimeError("this model has no hypernetwork: load one to internalize text")
        if isinstance(texts, str):
            raise TypeError("internalize_many takes a list of texts; use internalize() for one")
        texts = [_check_text(t) for t in texts]
        per_text = [self._chunks(self._encode(t)) for t in texts]
        for t, chunks in zip(texts, per_text, strict=True):
            if len(chunks) > self.max_chunks:
                raise TextTooLongError(
                    f"text of {len(t)} characters needs {len(chunks)} chunks, more than max_chunks="
                    f"{self.max_chunks}; split it into several memories or raise max_chunks"
                )
        flat = [c for chunks in per_text for c in chunks]
        generated = self._generate_pieces(flat)
        adapters, i = [], 0
        for t, chunks in zip(texts, per_text, strict=True):
            parts = generated[i : i + len(chunks)]
            i += len(chunks)
            weights = {
                n: (torch.cat([p[n][0] for p in parts], 0), torch.cat([p[n][1] for p in parts], 1)) for n in parts[0]
            }
            meta = AdapterMetadata(
                base_fingerprint=self.fingerprint,
                kind=kind,
                source_sha256=text_sha256(t),
                n_chunks=len(chunks),
                hypernet=self.name,
                extra=dict(extra or {}),
            )
            adapter = LoraAdapter(weights, metadata=meta)
            adapter.check_against_base(self.fingerprint, self.injector.module_shapes(), self._weight_norms)
            adapters.append(adapter)
        return adapters

    def internalize(
        self,
        text: str,
        *,
        kind: AdapterKind = "document",
        extra: Mapping[str, str | int | float | bool | None] | None = None,
    ) -> LoraAdapter:
        """Write ``text`` into a LoRA adapter in one forward pass (chunked past the window)."""
        return self.internalize_many([text], kind=kind, extra=extra)[0]

    def _generate_pieces(
        self, chunks: list[list[int]], batch: int = 64
    ) -> list[dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        out: list[dict[str, tuple[torch.Tensor, torch.Tensor]]] = []
        bos = self.tokenizer.bos_token_id
        for s in range(0, len(chunks), batch):
            group = [([bos] if bos is not None else []) + c for c in chunks[s : s + batch]]
            ids, mask = pad_sequences(group, self.tokenizer.pad_token_id or 0, device=self.device)
            with self.injector.capture_inputs() as module_inputs:
                states = self.base(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            token_out = token_unembeddings(self.base, ids)
            pieces = self.hypernet(states, mask, module_inputs, token_out).top_r(self.hypernet.config.rank)
            for j in range(ids.shape[0]):
                out.append({n: (a[j].float().cpu(), b[j].float().cpu()) for n, (a, b) in pieces.items()})
        return out

    # ------------------------------------------------------------------ adapters
    def check_adapter(self, adapter: LoraAdapter) -> LoraAdapter:
        if not isinstance(adapter, LoraAdapter):
            raise TypeError(f"expected a LoraAdapter, got {type(adapter).__name__}")
        adapter.check_against_base(self.fingerprint, self.injector.module_shapes(), self._weight_norms)
        return adapter

    def load_adapter(self, path: str | os.PathLike[str]) -> LoraAdapter:
        """Load an adapter directory and check that it belongs to this base model."""
        return self.check_adapter(LoraAdapter.load(path))

    def compose(self, adapters: Sequence[LoraAdapter], weights: Sequence[float] | None = None) -> LoraAdapter:
        return LoraAdapter.compose([self.check_adapter(a) for a in adapters], weights)

    def _row_plan(self, n_rows: int, adapters_per_row: Sequence[Sequence[LoraAdapter]] | None) -> InjectionPlan | None:
        """Validate each row's adapters against this base and build one plan for the batch."""
        if isinstance(adapters_per_row, LoraAdapter):
            raise TypeError("adapters must be a list of LoraAdapter objects")
        rows = [list(a) for a in adapters_per_row] if adapters_per_row is not None else [[] for _ in range(n_rows)]
        if len(rows) != n_rows:
            raise ValueError(f"{n_rows} prompts but {len(rows)} adapter lists")
        for row in rows:
            for ad in row:
                self.check_adapter(ad)
        if all(r == rows[0] for r in rows):  # the same adapters everywhere: one shared composite
            return self.injector.plan_for(rows[0])
        return self.injector.plan_for(per_row=rows)

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(
        self,
        prompt_or_messages: PromptLike,
        adapters: Sequence[LoraAdapter] = (),
        *,
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> str:
        """Answer a prompt (a string or chat messages) with ``adapters`` applied to this call only."""
        return self.generate_batch(
            [prompt_or_messages],
            [list(adapters)],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            stop=stop,
            seed=seed,
        )[0]

    @torch.no_grad()
    def generate_batch(
        self,
        prompts: Sequence[PromptLike],
        adapters_per_row: Sequence[Sequence[LoraAdapter]] | None = None,
        *,
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> list[str]:
        """Generate for several prompts at once; each row may carry its own adapters."""
        plan = self._row_plan(len(prompts), adapters_per_row)
        encoded = [self._encode(self.render(p)) for p in prompts]
        ids, mask = pad_sequences(encoded, self.tokenizer.pad_token_id or 0, side="left", device=self.device)
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.tokenizer.eos_token_id,
        }
        if temperature > 0:
            gen_kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
            if seed is not None:
                torch.manual_seed(seed)
        else:
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with self.injector.use_plan(plan):
            out = self.base.generate(input_ids=ids, attention_mask=mask, **gen_kwargs)
        texts = []
        for row in out[:, ids.shape[1] :]:
            with self._tok_lock:
                text = self.tokenizer.decode(row, skip_special_tokens=True).strip()
            for s in stop or ():
                if s and s in text:
                    text = text[: text.index(s)]
            texts.append(text)
        return texts

    @torch.no_grad()
    def stream(
        self,
        prompt_or_messages: PromptLike,
        adapters: Sequence[LoraAdapter] = (),
        *,
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        timeout: float | None = None,
        adapter_tokens: int | None | Literal["default"] = "default",
    ) -> Iterator[StreamEvent]:
        """Decode one prompt token by token, yielding text deltas as they become final.

        The adapters' plan is entered around each forward pass only, never across a ``yield``, so
        the caller's code between two deltas (callbacks, other model calls) runs without it.
        Text that might be the start of a stop string is held back until it is decided.
        The last event has ``finish_reason`` set ("stop" or "length") and the token counts.

        ``adapter_tokens=n`` (default: the model's ``default_adapter_tokens``) applies the adapters
        to the prompt and the first ``n`` generated tokens only; later tokens run on the base (over
        a cache the adapters shaped). The tiny default
        needs ``1``: its hypernetwork was trained on the first answer token, and a delta left on
        keeps repeating the remembered value instead of ending the turn.
        """
        plan = self._row_plan(1, [list(adapters)])
        if adapter_tokens == "default":
            adapter_tokens = self.default_adapter_tokens
        prompt_ids = self._encode(self.render(prompt_or_messages, tools=tools))
        window = getattr(self.base.config, "max_position_embeddings", None)
        if window and len(prompt_ids) >= window:
            raise PromptTooLongError(
                f"prompt of {len(prompt_ids)} tokens does not fit the model's {window}-token context; "
                "compact the conversation (CompactNode) or trim it"
            )
        eos = self.tokenizer.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        generator = torch.Generator(device="cpu").manual_seed(seed) if seed is not None else None
        deadline = time.monotonic() + timeout if timeout else None
        stops = [s for s in (stop or ()) if s]
        ids = torch.tensor([prompt_ids], dtype=torch.long, device=self.device)
        past: Any = None
        generated: list[int] = []
        emitted = ""
        finish: Literal["stop", "length"] = "length"
        stopped = False
        for _ in range(max_new_tokens):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"generation exceeded timeout={timeout}s")
            step_plan = plan if adapter_tokens is None or len(generated) < adapter_tokens else None
            with self.injector.use_plan(step_plan):
                out = self.base(input_ids=ids, past_key_values=past, use_cache=True)
            past = out.past_key_values
            token = _pick_token(out.logits[0, -1].float(), temperature, top_p, generator)
            if token in eos_ids:
                finish = "stop"
                break
            generated.append(token)
            ids = torch.tensor([[token]], dtype=torch.long, device=self.device)
            text = self._decoded(generated)
            hit = min((text.index(s) for s in stops if s in text), default=None)
            if hit is not None:
                text, finish, stopped = text[:hit], "stop", True
            else:
                # hold back a tail that could still grow into a stop string, and a partly decoded
                # character (byte-level BPE decodes half a UTF-8 sequence as U+FFFD)
                hold = max((k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
                text = text[: len(text) - hold]
                text = text.rstrip("\ufffd")
            if len(text) > len(emitted) and text.startswith(emitted):
                yield StreamEvent(text[len(emitted) :])
                emitted = text
            if stopped:
                break
        if not stopped and generated:  # EOS or length: release whatever was held back
            text = self._decoded(generated)
            if len(text) > len(emitted) and text.startswith(emitted):
                yield StreamEvent(text[len(emitted) :])
        yield StreamEvent("", finish_reason=finish, input_tokens=len(prompt_ids), output_tokens=len(generated))

    def _decoded(self, ids: list[int]) -> str:
        with self._tok_lock:
            return self.tokenizer.decode(ids, skip_special_tokens=True).lstrip()

    @torch.no_grad()
    def next_token_logits(
        self,
        prompts: Sequence[PromptLike],
        adapters_per_row: Sequence[Sequence[LoraAdapter]] | None = None,
        *,
        raw: bool = False,
    ) -> torch.Tensor:
        """Logits of the first answer token for each prompt [N, vocab] (used by the evaluations).

        ``raw=True`` takes prompts as already-rendered strings (no chat template applied).
        """
        plan = self._row_plan(len(prompts), adapters_per_row)
        encoded = [self._encode(p if raw else self.render(p)) for p in prompts]  # type: ignore[arg-type]
        ids, mask = pad_sequences(encoded, self.tokenizer.pad_token_id or 0, side="left", device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding must not shift RoPE positions
        with self.injector.use_plan(plan):
            return self.base(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1].float()

    def __repr__(self) -> str:
        return f"WeightMemoryModel(name={self.name!r}, targets={len(self.injector.modules)}, device={self.device})"


@dataclass(frozen=True)
class StreamEvent:
    """One step of :meth:`WeightMemoryModel.stream`: a text delta, or (last) the finish record."""

    text: str
    finish_reason: Literal["stop", "length"] | None = None
    input_tokens: int = 0
    output_tokens: int = 0


def _pick_token(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> int:
    """Greedy at temperature 0, else nucleus sampling (reproducible with a seeded generator)."""
    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / temperature, dim=-1).cpu()
    if top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        keep = sorted_p.cumsum(0) - sorted_p < top_p
        keep[0] = True  # the most likely token always stays (also for top_p <= 0)
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
    return int(torch.multinomial(probs, 1, generator=generator))


def pad_sequences(
    seqs: Sequence[Sequence[int]], pad: int, *, side: str = "right", device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) for token lists; ``side="left"`` for generation prompts."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        span = slice(0, len(s)) if side == "right" else slice(width - len(s), width)
        ids[i, span] = torch.tensor(s, dtype=torch.long)
        mask[i, span] = 1
    return ids.to(device), mask.to(device)
