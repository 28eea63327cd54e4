"""``WeightMemoryModel``: a causal LM + tokenizer + hypernetwork, with per-call adapters.

This is the one object the LangGraph layer talks to. ``internalize(text)`` runs the base over the
text and the hypernetwork over its hidden states -- one forward pass -- and returns a
:class:`~agenthn_langgraph.lora.LoraAdapter`. ``generate(prompt, adapters=[...])`` answers with
those adapters injected for that call only (see :mod:`agenthn_langgraph.lora.inject`).

Example:
    >>> from agenthn_langgraph import load_default
    >>> model = load_default()
    >>> memory = model.internalize("<user> my pet is a frog . <assistant> nice ! <end>")
    >>> model.generate("what pet do i have ?", adapters=[memory]).split()[0]  # the tiny base writes the rest
    'frog'
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .errors import (
    ArgumentTypeError,
    CheckpointError,
    EmptyTextError,
    EngineClosedError,
    InvalidArgumentError,
    MessageTypeError,
    ModelNotFoundError,
    NoHypernetworkError,
    OutOfVocabularyError,
    PromptTooLongError,
    TextTooLongError,
)
from .hypernet.config import ChatFormat, target_suffixes
from .hypernet.model import Hypernetwork, token_unembeddings
from .lora.adapter import AdapterKind, AdapterMetadata, LoraAdapter, text_sha256
from .lora.capture import ModuleInputRecorder
from .lora.inject import InjectionPlan, LoraInjector, layer_index
from .options import _is_int, check_generation_options, check_int_option
from .prompting import PromptBuilder, end_of_turn_ids

Message = Mapping[str, Any]
PromptLike = str | Sequence[Message]
P = ParamSpec("P")
R = TypeVar("R")
DEFAULT_MAX_CHUNKS = 32
# A text with more than this share of unknown tokens is refused: a closed-vocabulary model reads
# an unknown word as <unk>, so an adapter of it (or an answer to it) is a confident guess. By
# default any unknown word is refused; allow_unknown=True per call (or a higher limit) accepts it.
DEFAULT_MAX_UNKNOWN_FRACTION = 0.0
_SENTENCE_END = (".", "?", "!", "\n", "\u010a")  # "\u010a" is a newline in byte-level BPE vocabularies


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


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _check_text(text: object, what: str = "text") -> str:
    if not isinstance(text, str):
        raise ArgumentTypeError(f"{what} must be a str, got {type(text).__name__}")
    if not text.strip():
        raise EmptyTextError(f"{what} is empty or only whitespace: nothing to internalize")
    return text


def _check_prompt_ids(prompt_ids: object, vocab_size: int) -> list[list[int]]:
    """Token-id prompts, checked: a non-empty list of non-empty lists of ids in the vocabulary."""
    if isinstance(prompt_ids, (str, bytes)) or not isinstance(prompt_ids, Sequence):
        raise ArgumentTypeError(f"prompt_ids must be a list of token-id lists, got {type(prompt_ids).__name__}")
    out = []
    for i, row in enumerate(prompt_ids):
        if isinstance(row, (str, bytes)) or not isinstance(row, Sequence) or not all(_is_int(t) for t in row):
            raise ArgumentTypeError(f"prompt {i} must be a list of int token ids")
        if not row:
            raise InvalidArgumentError(f"prompt {i} has no tokens")
        bad = [t for t in row if not 0 <= t < vocab_size]
        if bad:
            raise InvalidArgumentError(
                f"prompt {i} holds token ids outside the vocabulary [0, {vocab_size}): {bad[:5]}"
            )
        out.append([int(t) for t in row])
    return out


@dataclass
class _Claim:
    """What a model looked like before the first engine claimed it, restored when the last one closes."""

    training: dict[str, bool]
    requires_grad: dict[str, bool]
    engines: int = 0
    frozen: bool = False


# Engines that wrap the same module (several engines over one base, as the tests and from_engine
# users do) share one claim: the module is put back only when the last of them closes.
_CLAIMS: weakref.WeakKeyDictionary[torch.nn.Module, _Claim] = weakref.WeakKeyDictionary()
_CLAIMS_LOCK = threading.RLock()  # re-entrant: a finalizer may run during a claim's allocation


def _claim(module: torch.nn.Module, *, freeze: bool) -> None:
    """Put ``module`` in eval mode (and, with ``freeze``, stop its gradients), remembering how it was."""
    with _CLAIMS_LOCK:
        claim = _CLAIMS.get(module)
        if claim is None:
            claim = _Claim(
                training={n: m.training for n, m in module.named_modules()},
                requires_grad={n: p.requires_grad for n, p in module.named_parameters()},
            )
            _CLAIMS[module] = claim
        claim.engines += 1
        module.eval()
        if freeze:
            claim.frozen = True
            for p in module.parameters():
                p.requires_grad_(False)


def _close_parts(injector: LoraInjector, base: torch.nn.Module, hypernet: torch.nn.Module | None) -> None:
    """What closing an engine undoes (a function of the parts, so a finalizer can run it)."""
    injector.remove()
    if hypernet is not None:
        _release(hypernet)
    _release(base)


def _release(module: torch.nn.Module) -> None:
    """Undo :func:`_claim` once no engine holds ``module`` any more."""
    with _CLAIMS_LOCK:
        claim = _CLAIMS.get(module)
        if claim is None:
            return
        claim.engines -= 1
        if claim.engines > 0:
            return
        del _CLAIMS[module]
        for name, m in module.named_modules():  # per module: train(mode) would recurse over the children
            if name in claim.training:
                m.training = claim.training[name]
        if claim.frozen:
            for name, p in module.named_parameters():
                if name in claim.requires_grad:
                    p.requires_grad_(claim.requires_grad[name])


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
        targets: Sequence[str] | None = None,
        chat: ChatFormat | None = None,
        max_unknown_fraction: float = DEFAULT_MAX_UNKNOWN_FRACTION,
        vocabulary_note: str = "",
        layers: Sequence[int] | None = None,
    ) -> None:
        """Wrap a loaded base model. The engine never changes ``base``'s weights.

        ``targets`` (module-name suffixes) and ``layers`` (decoder-layer numbers, peft's
        ``layers_to_transform``; default all) apply when there is no hypernetwork yet (training
        one); a hypernetwork brings its own targets and chat format. ``vocabulary_note`` is appended to
        the :class:`OutOfVocabularyError` a closed-vocabulary model raises.

        The engine puts ``base`` (and ``hypernet``) in eval mode, turns ``base``'s gradients off
        and hooks its target modules; :meth:`close` (or leaving a ``with`` block) undoes all three,
        so a model you own comes back as you lent it.
        """
        self._closed = True  # until construction succeeds: close() then has nothing to undo
        _claim(base, freeze=True)
        try:
            self._setup(
                base,
                tokenizer,
                hypernet,
                name,
                max_chunks,
                targets,
                chat,
                max_unknown_fraction,
                vocabulary_note,
                layers,
            )
        except BaseException:
            if getattr(self, "injector", None) is not None:
                self.injector.remove()
            _release(base)
            raise
        if self.hypernet is not None:
            _claim(self.hypernet, freeze=False)
        # An engine dropped without close() (one a test or a script builds and forgets) still
        # takes its hooks off the model and returns its claim when it is garbage-collected.
        self._finalizer = weakref.finalize(self, _close_parts, self.injector, base, self.hypernet)
        self._finalizer.atexit = False
        self._closed = False

    def _setup(
        self,
        base: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        hypernet: Hypernetwork | None,
        name: str,
        max_chunks: int,
        targets: Sequence[str] | None,
        chat: ChatFormat | None,
        max_unknown_fraction: float,
        vocabulary_note: str,
        layers: Sequence[int] | None,
    ) -> None:
        self.base = base
        self.uid = uuid.uuid4().hex  # names this engine for from_engine (never id(): ids are reused)
        self.tokenizer = tokenizer
        self.name = name
        self.max_chunks = max_chunks
        self.max_unknown_fraction = max_unknown_fraction
        self.vocabulary_note = vocabulary_note
        self.hypernet_note = ""  # how to get a hypernetwork, for the error a model without one raises
        self.fingerprint = base_fingerprint(base)
        model_type = getattr(base.config, "model_type", "")
        if hypernet is not None:
            suffixes = sorted({".".join(n.split(".")[-2:]) for n in hypernet.config.targets})
            indices = {layer_index(n) for n in hypernet.config.targets}
            layers = None if None in indices else sorted(indices)  # type: ignore[type-var]
        else:
            suffixes = list(target_suffixes(model_type, list(targets) if targets else None))
        self.injector = LoraInjector(base, suffixes, layers=layers)
        self.recorder = ModuleInputRecorder(base, self.injector.modules)
        self.hypernet = hypernet
        if hypernet is not None:
            shapes = self.injector.module_shapes()
            if {k: tuple(v) for k, v in hypernet.config.targets.items()} != shapes:
                raise CheckpointError("hypernetwork targets do not match this base model's modules")
            if hypernet.config.base_fingerprint and hypernet.config.base_fingerprint != self.fingerprint:
                raise CheckpointError("hypernetwork was trained for another base model (fingerprint differs)")
        self._weight_norms = self.injector.weight_norms()
        self.end_ids = end_of_turn_ids(tokenizer, base.config, getattr(base, "generation_config", None))
        self.prompts = PromptBuilder(
            tokenizer, chat or (hypernet.config.chat if hypernet else ChatFormat()), self.end_ids
        )
        # Internalize runs one batch at a time: the recorder holds one pass's inputs.
        self._internalize_lock = threading.Lock()

    # ------------------------------------------------------------------ lifetime
    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run (every call then raises :class:`EngineClosedError`)."""
        return self._closed

    def close(self) -> None:
        """Give the base model back as it was lent: hooks removed, train/eval modes and
        ``requires_grad`` flags restored (when no other open engine still wraps the same model).

        Idempotent. The engine cannot generate or internalize afterwards.
        """
        if self._closed:
            return
        self._closed = True
        self._finalizer()

    def __enter__(self) -> WeightMemoryModel:
        self._check_open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosedError(f"{self.name}: this engine was closed; create a new one to use the model again")

    def bind(self, fn: Callable[P, R], adapters: Sequence[LoraAdapter] = ()) -> Callable[P, R]:
        """``fn`` made to run with ``adapters`` injected, in whatever thread calls it.

        For code that runs the base model outside this engine's own calls, in another thread --
        Hugging Face's ``TextIteratorStreamer`` pattern::

            streamer = TextIteratorStreamer(engine.tokenizer)
            generate = engine.bind(engine.base.generate, [memory])
            Thread(target=generate, kwargs={"input_ids": ids, "streamer": streamer}).start()

        A thread started without it sees the base model only (plans never cross threads by
        themselves). The adapters act on every generated token there.
        """
        self._check_open()
        return self.injector.bind(fn, self._row_plan(1, [list(adapters)]))

    @property
    def chat_format(self) -> ChatFormat:
        """How prompts are built (from the hypernetwork checkpoint): context placement, system, adapter_tokens."""
        return self.prompts.chat

    @property
    def default_adapter_tokens(self) -> int | None:
        """Generated tokens the adapters act on by default (``None``: all), as the hypernetwork was trained."""
        return self.prompts.chat.adapter_tokens

    @property
    def _tok_lock(self) -> threading.Lock:
        return self.prompts.lock

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        base: str | os.PathLike[str],
        hypernet: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        device_map: str | Mapping[str, Any] | None = None,
        name: str | None = None,
        targets: Sequence[str] | None = None,
        layers: Sequence[int] | None = None,
        **model_kwargs: Any,
    ) -> WeightMemoryModel:
        """Load a local HF base model (+ tokenizer) and our hypernetwork checkpoint.

        ``device``: cuda when present, else cpu. ``dtype``: bfloat16 on CUDA, float32 on CPU (bf16
        matmuls are ~30x slower on CPUs). ``device_map`` (e.g. ``"auto"``) is handed to transformers
        and replaces ``device``. Extra keywords go to ``AutoModelForCausalLM.from_pretrained``
        (``gguf_file=...`` for a GGUF checkpoint). A path that does not exist raises
        :class:`ModelNotFoundError` at once; with ``HF_HUB_OFFLINE=1`` nothing is ever downloaded.
        A directory transformers cannot read (no tokenizer, an unknown architecture, a broken
        config) raises :class:`CheckpointError`, with transformers' error as its cause.
        """
        if dtype is not None and not isinstance(dtype, torch.dtype):
            raise ArgumentTypeError(f"dtype must be a torch.dtype (e.g. torch.bfloat16), got {dtype!r}")
        try:
            dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        except (RuntimeError, TypeError) as e:
            raise InvalidArgumentError(f"not a device: {device!r} (use 'cpu', 'cuda', 'cuda:1', ...)") from e
        dtype = dtype or (torch.bfloat16 if dev.type == "cuda" else torch.float32)
        offline = _offline()
        local = Path(base).expanduser()
        if not local.exists() and (offline or os.sep in str(base) or str(base).startswith(".")):
            raise ModelNotFoundError(
                f"no base model at {base!s}: pass a local directory"
                + (" (HF_HUB_OFFLINE is set, so nothing is downloaded)" if offline else "")
            )
        if hypernet is not None and not Path(hypernet).is_dir():
            raise ModelNotFoundError(f"no hypernetwork checkpoint at {hypernet!s}")
        source = str(local) if local.exists() else str(base)
        gguf = {"gguf_file": model_kwargs["gguf_file"]} if "gguf_file" in model_kwargs else {}
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline, **gguf)
            model = AutoModelForCausalLM.from_pretrained(
                source, dtype=dtype, device_map=device_map, local_files_only=offline, **model_kwargs
            )
        except (OSError, ValueError, KeyError) as e:  # transformers' errors for unreadable checkpoints
            raise CheckpointError(f"cannot load base model from {base}: {e}") from e
        if device_map is None:
            model = model.to(dev)
        param_device = next(model.parameters()).device
        hn = Hypernetwork.load(hypernet, map_location=param_device) if hypernet is not None else None
        return cls(model, tokenizer, hn, name=name or str(base), targets=targets, layers=layers)

    @property
    def device(self) -> torch.device:
        return next(self.base.parameters()).device

    @property
    def _vocab_size(self) -> int:
        """Rows of the input embedding: the ids a prompt may hold."""
        return int(self.base.get_input_embeddings().weight.shape[0])

    # ------------------------------------------------------------------ tokens
    def _encode(self, text: str) -> list[int]:
        return self.prompts.encode(text)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added), by this model's own tokenizer."""
        if not isinstance(text, str):
            raise ArgumentTypeError(f"text must be a str, got {type(text).__name__}")
        return self._encode(text)

    def render(
        self,
        prompt_or_messages: PromptLike,
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        """The exact prompt string the model sees (chat template applied).

        The checkpoint's system instruction (if any) is added; templates without a system role get
        system text folded into the first user turn. ``tools`` (OpenAI-style function schemas) go
        to the template's own ``tools`` variable; templates without tool support ignore them.
        """
        if isinstance(prompt_or_messages, str):
            messages: list[dict[str, Any]] = [{"role": "user", "content": prompt_or_messages}]
        elif isinstance(prompt_or_messages, Sequence):
            messages = []
            for m in prompt_or_messages:
                if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
                    raise MessageTypeError("messages must be mappings with 'role' and 'content'")
                if not isinstance(m["role"], str) or not (isinstance(m["content"], str) or m["content"] is None):
                    raise MessageTypeError(
                        f"a message's role and content must be strings, got {type(m['role']).__name__} "
                        f"and {type(m['content']).__name__}"
                    )
                messages.append(dict(m))
        else:
            raise MessageTypeError(
                f"prompt must be a str or a list of messages, got {type(prompt_or_messages).__name__}"
            )
        if tools is not None and (
            isinstance(tools, (str, Mapping))
            or not isinstance(tools, Sequence)
            or not all(isinstance(t, Mapping) for t in tools)
        ):
            raise ArgumentTypeError("tools must be a list of OpenAI-style function schemas (dicts)")
        return self.prompts.render(messages, add_generation_prompt=add_generation_prompt, tools=tools)

    def count_tokens(self, prompt_or_messages: PromptLike) -> int:
        return len(self._encode(self.render(prompt_or_messages)))

    def unknown_fraction(self, ids: Sequence[int]) -> float:
        """Share of ``<unk>`` tokens in ``ids`` (0.0 for tokenizers that have none, e.g. byte-level BPE)."""
        unk = self.tokenizer.unk_token_id
        if unk is None or not ids:
            return 0.0
        return sum(t == unk for t in ids) / len(ids)

    def unknown_words(self, text: str) -> list[str]:
        """The words of ``text`` this tokenizer reads as its unknown token, once each, in order
        (always empty for tokenizers without one, such as byte-level BPE).

        >>> from agenthn_langgraph import load_default
        >>> load_default().unknown_words("My dog is called Biscuit.")
        ['biscuit']
        """
        unk = self.tokenizer.unk_token_id
        if unk is None:
            return []
        with self._tok_lock:
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        words: list[str] = []
        for token, (start, end) in zip(enc["input_ids"], enc["offset_mapping"], strict=True):
            word = text[start:end].strip()
            if token == unk and word and word.lower() not in words:
                words.append(word.lower())
        return words

    def check_vocabulary(self, text: str, *, allow_unknown: bool = False, what: str = "text") -> None:
        """Raise :class:`OutOfVocabularyError` naming ``text``'s unknown words, unless allowed
        (``allow_unknown``) or within the engine's ``max_unknown_fraction``."""
        if allow_unknown or self.tokenizer.unk_token_id is None:
            return
        frac = self.unknown_fraction(self._encode(text))
        if frac > self.max_unknown_fraction:
            words = self.unknown_words(text)
            shown = ", ".join(repr(w) for w in words[:8]) + (", ..." if len(words) > 8 else "")
            raise OutOfVocabularyError(
                f"{what} holds words {self.name} cannot read: {shown} ({frac:.0%} of its tokens are unknown; "
                f"pass allow_unknown=True to accept them as <unk>). {self.vocabulary_note}".rstrip()
            )

    def _check_prompts(self, prompts: Sequence[PromptLike], allow_unknown: bool) -> None:
        """Every message's text must be readable (see :meth:`check_vocabulary`)."""
        if allow_unknown or self.tokenizer.unk_token_id is None:
            return
        for p in prompts:
            contents = [p] if isinstance(p, str) else [m.get("content") for m in p if isinstance(m, Mapping)]
            for content in contents:
                if isinstance(content, str):
                    self.check_vocabulary(content, what="a message")

    # ------------------------------------------------------------------ internalize
    def _chunks(self, ids: list[int]) -> list[list[int]]:
        """Split token ids into encoder-window chunks, preferring sentence and turn boundaries."""
        window = self.hypernet.config.window - (self.tokenizer.bos_token_id is not None)
        if len(ids) <= window:
            return [ids]
        chunks, start = [], 0
        while start < len(ids):
            end = min(start + window, len(ids))
            if end < len(ids):
                end = max((i + 1 for i in range(start + window // 2, end) if self._ends_sentence(ids[i])), default=end)
            chunks.append(ids[start:end])
            start = end
        return chunks

    def _ends_sentence(self, token_id: int) -> bool:
        if token_id in self.end_ids:
            return True
        token = self.tokenizer.convert_ids_to_tokens(token_id)
        return isinstance(token, str) and token.rstrip(" \u0120").endswith(_SENTENCE_END)

    @torch.no_grad()
    def internalize_many(
        self,
        texts: Sequence[str],
        *,
        kind: AdapterKind = "document",
        extra: Mapping[str, str | int | float | bool | None] | None = None,
        batch_size: int = 16,
        allow_unknown: bool = False,
    ) -> list[LoraAdapter]:
        """Internalize several texts in batched passes; one adapter per text.

        A closed-vocabulary model refuses a text with words it cannot read
        (:class:`OutOfVocabularyError` naming them) unless ``allow_unknown``."""
        self._check_open()
        if self.hypernet is None:
            raise NoHypernetworkError(
                f"{self.name} has no hypernetwork, so it chats as its plain base but cannot internalize text. "
                + (self.hypernet_note or "Load one: WeightMemoryModel.from_pretrained(base, hypernet_dir).")
            )
        if isinstance(texts, str):
            raise ArgumentTypeError("internalize_many takes a list of texts; use internalize() for one")
        check_int_option("batch_size", batch_size)
        texts = [_check_text(t) for t in texts]
        for t in texts:
            self.check_vocabulary(t, allow_unknown=allow_unknown)
        encoded = [self._encode(t) for t in texts]
        unknown = [self.unknown_fraction(ids) for ids in encoded]
        d2l = self.hypernet.config.kind == "d2l"
        if d2l:  # D2L wraps the text as a chat turn and chunks it its own way (hypernet/d2l.py)
            with self._tok_lock:
                per_text = [self.hypernet.chunk(self.tokenizer, t) for t in texts]
        else:
            per_text = [self._chunks(ids) for ids in encoded]
        for t, chunks in zip(texts, per_text, strict=True):
            if len(chunks) > self.max_chunks:
                raise TextTooLongError(
                    f"text of {len(t)} characters needs {len(chunks)} chunks, more than max_chunks="
                    f"{self.max_chunks}; split it into several memories or raise max_chunks"
                )
        flat = [c for chunks in per_text for c in chunks]
        generated = self._generate_pieces(flat, batch_size)
        adapters, i = [], 0
        for t, chunks, frac in zip(texts, per_text, unknown, strict=True):
            parts = generated[i : i + len(chunks)]
            i += len(chunks)
            weights = {
                n: (torch.cat([p[n][0] for p in parts], 0), torch.cat([p[n][1] for p in parts], 1)) for n in parts[0]
            }
            if d2l:  # the learned bias LoRA after the chunks' ranks, scaled by lora_alpha
                weights = self.hypernet.with_bias(weights)
            meta_extra = dict(extra or {})
            if self.tokenizer.unk_token_id is not None:
                meta_extra["unknown_token_fraction"] = round(frac, 4)
            meta = AdapterMetadata(
                base_fingerprint=self.fingerprint,
                kind=kind,
                source_sha256=text_sha256(t),
                n_chunks=len(chunks),
                hypernet=self.name,
                extra=meta_extra,
            )
            adapter = LoraAdapter(weights, metadata=meta, scaling=self.hypernet.scaling if d2l else 1.0)
            adapter.check_against_base(self.fingerprint, self.injector.module_shapes(), self._weight_norms)
            adapters.append(adapter)
        return adapters

    def internalize(
        self,
        text: str,
        *,
        kind: AdapterKind = "document",
        extra: Mapping[str, str | int | float | bool | None] | None = None,
        allow_unknown: bool = False,
    ) -> LoraAdapter:
        """Write ``text`` into a LoRA adapter in one forward pass (chunked past the window).

        ``allow_unknown``: accept words a closed-vocabulary model cannot read (as ``<unk>``)."""
        return self.internalize_many([text], kind=kind, extra=extra, allow_unknown=allow_unknown)[0]

    def _generate_pieces(
        self, chunks: list[list[int]], batch: int
    ) -> list[dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """One adapter block per chunk: (A [r, d_in], B [d_out, r]) per module, r the chunk's rank."""
        out: list[dict[str, tuple[torch.Tensor, torch.Tensor]]] = []
        bos = self.tokenizer.bos_token_id
        assert self.hypernet is not None
        d2l = self.hypernet.config.kind == "d2l"
        for s in range(0, len(chunks), batch):
            group = [([bos] if bos is not None and not d2l else []) + c for c in chunks[s : s + batch]]
            ids, mask = pad_sequences(group, self.tokenizer.pad_token_id or 0, device=self.device)
            if d2l:  # its chunks carry their chat turn's tokens (BOS included)
                with self._internalize_lock:
                    out += self.hypernet.generate_chunks(self.base, ids, mask)
                continue
            with self._internalize_lock:
                with self.recorder.recording(n_tokens=ids.numel()):
                    # the decoder alone: hidden states need no vocabulary-sized logits
                    states = self.base.base_model(
                        input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False
                    ).hidden_states
                token_out = token_unembeddings(self.base, ids)
                pieces, ranks = self.hypernet.generate(states, mask, self.recorder.get, token_out)
                self.recorder.clear()
            for j in range(ids.shape[0]):
                r = int(ranks[j])
                out.append({n: (a[j, :r].float().cpu(), b[j, :, :r].float().cpu()) for n, (a, b) in pieces.items()})
        return out

    # ------------------------------------------------------------------ adapters
    def check_adapter(self, adapter: LoraAdapter) -> LoraAdapter:
        if not isinstance(adapter, LoraAdapter):
            raise ArgumentTypeError(f"expected a LoraAdapter, got {type(adapter).__name__}")
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
            raise ArgumentTypeError("adapters must be a list of LoraAdapter objects")
        rows = [list(a) for a in adapters_per_row] if adapters_per_row is not None else [[] for _ in range(n_rows)]
        if len(rows) != n_rows:
            raise InvalidArgumentError(f"{n_rows} prompts but {len(rows)} adapter lists")
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
        adapter_tokens: int | None | Literal["default"] = "default",
        allow_unknown: bool = False,
    ) -> str:
        """Answer a prompt (a string or chat messages) with ``adapters`` applied to this call only.

        ``adapter_tokens`` as in :meth:`stream` (default: the hypernetwork's chat format);
        ``allow_unknown`` as in :meth:`generate_batch`."""
        if isinstance(adapters, (LoraAdapter, str)) or not isinstance(adapters, Sequence):
            raise ArgumentTypeError(f"adapters must be a list of LoraAdapter objects, got {type(adapters).__name__}")
        return self.generate_batch(
            [prompt_or_messages],
            [list(adapters)],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            stop=stop,
            seed=seed,
            adapter_tokens=adapter_tokens,
            allow_unknown=allow_unknown,
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
        adapter_tokens: int | None | Literal["default"] = "default",
        allow_unknown: bool = False,
    ) -> list[str]:
        """Generate for several prompts at once; each row may carry its own adapters.

        A closed-vocabulary model refuses a message with words it cannot read
        (:class:`OutOfVocabularyError` naming them) unless ``allow_unknown``: it would answer them
        with a confident guess."""
        self._check_open()
        if isinstance(prompts, str) or not isinstance(prompts, Sequence):
            raise ArgumentTypeError(f"prompts must be a list of prompts, got {type(prompts).__name__}")
        if not prompts:
            return []
        encoded = [self._encode(self.render(p)) for p in prompts]  # render checks each prompt's shape
        self._check_prompts(prompts, allow_unknown)
        return self.generate_ids(
            encoded,
            adapters_per_row,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            stop=stop,
            seed=seed,
            adapter_tokens=adapter_tokens,
        )

    @torch.no_grad()
    def generate_ids(
        self,
        prompt_ids: Sequence[Sequence[int]],
        adapters_per_row: Sequence[Sequence[LoraAdapter]] | None = None,
        *,
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        adapter_tokens: int | None | Literal["default"] = "default",
        adapter_on_prompt: bool | None = None,
    ) -> list[str]:
        """Like :meth:`generate_batch` for prompts already tokenized (e.g. teacher prompts).

        One batched, KV-cached decode loop: greedy at temperature 0, else nucleus sampling from a
        generator of this call (``seed``) -- never the global RNG, so seeded calls give the same
        text whatever other threads do. Rows stop at any end id. ``adapter_tokens`` as in
        :meth:`stream`; ``adapter_on_prompt`` overrides the chat format's (evaluations: an adapter
        fitted on whole sequences, or one served by vLLM, acts on the prompt too); bad options
        raise as :func:`check_generation_options` says.
        """
        if adapter_on_prompt is not None and not isinstance(adapter_on_prompt, bool):
            raise ArgumentTypeError(f"adapter_on_prompt must be a bool or None, got {adapter_on_prompt!r}")
        self._check_open()
        check_generation_options(
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            stop=stop,
            adapter_tokens=adapter_tokens,
        )
        prompt_ids = _check_prompt_ids(prompt_ids, self._vocab_size)
        plan = self._row_plan(len(prompt_ids), adapters_per_row)
        generator = _call_generator(seed)
        rows: list[list[int]] = [[] for _ in prompt_ids]
        done = [False] * len(prompt_ids)
        steps = self._decode(
            prompt_ids, plan, max_new_tokens, temperature, top_p, generator, adapter_tokens, adapter_on_prompt
        )
        for step in steps:
            for i, token in enumerate(step.tolist()):
                if not done[i]:
                    done[i] = token in self.end_ids
                    if not done[i]:
                        rows[i].append(token)
            if all(done):
                break
        texts = []
        for row in rows:
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
        allow_unknown: bool = False,
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
        keeps repeating the remembered value instead of ending the turn. Generation stops at any
        of the model's end ids (``end_ids``: the tokenizer's EOS and every ``eos_token_id`` of the
        model and generation configs), and at the end of the base's context window
        (``finish_reason="length"``).
        """
        self._check_open()
        check_generation_options(
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            stop=stop,
            adapter_tokens=adapter_tokens,
            timeout=timeout,
        )
        if isinstance(adapters, (LoraAdapter, str)) or not isinstance(adapters, Sequence):
            raise ArgumentTypeError(f"adapters must be a list of LoraAdapter objects, got {type(adapters).__name__}")
        plan = self._row_plan(1, [list(adapters)])
        rendered = self.render(prompt_or_messages, tools=tools)  # checks the messages' shape first
        self._check_prompts([prompt_or_messages], allow_unknown)
        prompt_ids = self._encode(rendered)
        generator = _call_generator(seed)
        deadline = time.monotonic() + timeout if timeout else None
        stops = [s for s in (stop or ()) if s]
        generated: list[int] = []
        emitted = ""
        finish: Literal["stop", "length"] = "length"
        stopped = False
        for step in self._decode([prompt_ids], plan, max_new_tokens, temperature, top_p, generator, adapter_tokens):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"generation exceeded timeout={timeout}s")
            token = int(step[0])
            if token in self.end_ids:
                finish = "stop"
                break
            generated.append(token)
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

    def _decode(
        self,
        prompt_ids: Sequence[Sequence[int]],
        plan: InjectionPlan | None,
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        generator: torch.Generator,
        adapter_tokens: int | None | Literal["default"],
        adapter_on_prompt: bool | None = None,
    ) -> Iterator[torch.Tensor]:
        """The KV-cached decode loop shared by every generation path: yields each step's next
        token per row [B]. The caller decides when to stop (end ids, stop strings, a deadline).

        The plan is entered around each forward pass only, never across a ``yield``; it acts on
        the prompt and the first ``adapter_tokens`` generated tokens (``None``: all of them); with
        ``adapter_on_prompt=False`` in the chat format, on the prompt's last token only.
        Prompts are left-padded with positions counted from each row's first real token.

        Generation never runs past the base's context window (``max_position_embeddings``): a
        prompt that fills it raises :class:`PromptTooLongError`, and ``max_new_tokens`` is capped
        at the room the longest prompt leaves (the caller sees ``finish_reason="length"``). Capping
        rather than raising is deliberate: agents set ``max_tokens`` once while their prompts grow,
        and a turn near the end of the window should still get the answer that fits.
        """
        if adapter_tokens == "default":
            adapter_tokens = self.default_adapter_tokens
        window = getattr(self.base.config, "max_position_embeddings", None)
        longest = max(len(p) for p in prompt_ids)
        if window and longest >= window:
            raise PromptTooLongError(
                f"prompt of {longest} tokens does not fit the model's {window}-token context; "
                "compact the conversation (CompactNode) or trim it"
            )
        if window:
            max_new_tokens = min(max_new_tokens, window - longest)
        ids, mask = pad_sequences(prompt_ids, self.tokenizer.pad_token_id or 0, side="left", device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        past: Any = None
        on_prompt = self.prompts.chat.adapter_on_prompt if adapter_on_prompt is None else adapter_on_prompt
        if plan is not None and not on_prompt and ids.shape[1] > 1:
            # trained to act on the answer only: the prompt but its last token runs on the base
            # (left padding puts every row's last token in the last column)
            out = self.base(
                input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1], use_cache=True
            )
            past, ids, positions = out.past_key_values, ids[:, -1:], positions[:, -1:]
        for step in range(max_new_tokens):
            step_plan = plan if adapter_tokens is None or step < adapter_tokens else None
            with self.injector.use_plan(step_plan):
                out = self.base(
                    input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=past, use_cache=True
                )
            past = out.past_key_values
            logits = out.logits[:, -1].float()
            nxt = torch.tensor([_pick_token(r, temperature, top_p, generator) for r in logits], device=self.device)
            yield nxt
            ids = nxt[:, None]
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], 1)
            positions = positions[:, -1:] + 1

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
        self._check_open()
        if isinstance(prompts, str) or not isinstance(prompts, Sequence) or not prompts:
            raise InvalidArgumentError("prompts must be a non-empty list of prompts")
        plan = self._row_plan(len(prompts), adapters_per_row)
        encoded = [self._encode(p if raw else self.render(p)) for p in prompts]  # type: ignore[arg-type]
        ids, mask = pad_sequences(encoded, self.tokenizer.pad_token_id or 0, side="left", device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding must not shift RoPE positions
        if plan is not None and not self.prompts.chat.adapter_on_prompt:
            last = torch.zeros_like(mask)
            last[:, -1] = 1  # the position that predicts the first answer token
            plan = plan.at_positions(last)
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


def _call_generator(seed: int | None) -> torch.Generator:
    """This call's own sampling RNG: seeded, or from OS entropy when ``seed`` is None.

    Never torch's global RNG: threads share it, so a seeded call that reseeded it (the old way)
    gave the serial text alone but not while other threads sampled; and an unseeded call that drew
    from it would shift every later global draw of the process (a training loop's dropout, ...).
    """
    return torch.Generator(device="cpu").manual_seed(seed if seed is not None else secrets.randbits(63))


def _pick_token(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> int:
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
        raise InvalidArgumentError(f"side must be 'left' or 'right', got {side!r}")
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        span = slice(0, len(s)) if side == "right" else slice(width - len(s), width)
        ids[i, span] = torch.tensor(s, dtype=torch.long)
        mask[i, span] = 1
    return ids.to(device), mask.to(device)
