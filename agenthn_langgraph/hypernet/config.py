"""What a hypernetwork checkpoint says about itself: shapes, targets, selection, and its chat format.

Everything that decides how a generated adapter must be *used* lives here and is saved with the
weights (``hypernet_config.json``), so an engine loading the checkpoint behaves as it was trained:
which modules it adapts, how the context was shown to the teacher, the system instruction of the
prompts, and on how many generated tokens the adapter acts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, TypeVar

from ..errors import CheckpointError

# Target modules per architecture (module-name suffixes inside each decoder layer), as peft keeps a
# map per ``model_type``. ``mlp.down_proj`` is the default everywhere: D2L's choice, and the
# module whose input is the MLP's key-like hidden features. The others are optional.
_LLAMA_LIKE = (
    "mlp.down_proj",
    "mlp.up_proj",
    "mlp.gate_proj",
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
)
TARGET_MODULES: dict[str, tuple[str, ...]] = {
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gemma": _LLAMA_LIKE,
    "gemma2": _LLAMA_LIKE,
    "gemma3_text": _LLAMA_LIKE,
    "phi3": ("mlp.down_proj", "mlp.gate_up_proj", "self_attn.qkv_proj", "self_attn.o_proj"),
}
DEFAULT_TARGETS = ("mlp.down_proj",)
T = TypeVar("T")


def target_suffixes(model_type: str, requested: tuple[str, ...] | list[str] | None = None) -> tuple[str, ...]:
    """The module suffixes to adapt for ``model_type``; ``requested`` is checked against the map.

    Architectures outside the map are allowed (the injector still refuses names that match no
    ``nn.Linear``), so a user can point the library at a new model family.

    >>> target_suffixes("phi3")
    ('mlp.down_proj',)
    >>> target_suffixes("llama", ["self_attn.q_proj"])
    ('self_attn.q_proj',)
    """
    chosen = tuple(requested) if requested else DEFAULT_TARGETS
    known = TARGET_MODULES.get(model_type)
    if known is not None:
        unknown = [s for s in chosen if s not in known]
        if unknown:
            raise ValueError(f"{model_type} has no target module {unknown}; choose from {list(known)}")
    return chosen


@dataclass(frozen=True)
class ChatFormat:
    """How prompts were built when the hypernetwork was trained; inference builds them the same way.

    ``context``: where the teacher saw the text. ``"user"`` puts it in the user's message before
    the question (any chat model); ``"prefix"`` writes it raw right after the BOS token, before
    the conversation (the tiny default, whose texts are transcripts in its own markup).
    ``system``: an instruction in every prompt (e.g. "Answer in a few words.") or ``None``.
    ``adapter_tokens``: how many generated tokens the adapter acts on (``None``: all of them).
    ``adapter_on_prompt``: whether the adapter also acts on the prompt's tokens. ``False`` (a
    hypernetwork trained that way) applies it from the position that predicts the first answer
    token on: the prompt's keys and values are the base's own, so training can skip the backward
    pass through every prompt token, and a prompt's KV cache is the same with any adapter.
    ``answer_prefix``: what a trained answer starts with. A byte-level BPE tokenizes "Barcelona"
    at the start of a turn as ``B arc elona`` but inside the text as one ``Ġ Barcelona`` token; a
    space (``" "``) makes every answer token one the text holds, so an adapter can copy it.
    Replies are stripped, so users never see it.
    ``memory_format``: how a conversation becomes text to internalize (memory segments, profile
    documents): in the base's own chat template (``"chat_template"``, the tiny default, whose
    training texts are transcripts in its template), or as a plain ``User: ...`` /
    ``Assistant: ...`` transcript, one line a message (``"transcript"``: how the English training
    chats are written).
    """

    context: Literal["user", "prefix"] = "user"
    system: str | None = None
    adapter_tokens: int | None = None
    adapter_on_prompt: bool = True
    answer_prefix: str = ""
    memory_format: Literal["chat_template", "transcript"] = "chat_template"

    def __post_init__(self) -> None:
        if self.context not in ("user", "prefix"):
            raise ValueError(f"context must be 'user' or 'prefix', got {self.context!r}")
        if self.adapter_tokens is not None and (
            not isinstance(self.adapter_tokens, int) or isinstance(self.adapter_tokens, bool) or self.adapter_tokens < 1
        ):
            raise ValueError(f"adapter_tokens must be a positive int or None, got {self.adapter_tokens!r}")
        if not isinstance(self.answer_prefix, str) or self.answer_prefix.strip():
            raise ValueError(f"answer_prefix must be whitespace (e.g. ' '), got {self.answer_prefix!r}")
        if self.memory_format not in ("chat_template", "transcript"):
            raise ValueError(f"memory_format must be 'chat_template' or 'transcript', got {self.memory_format!r}")
        if not isinstance(self.adapter_on_prompt, bool):
            raise ValueError(f"adapter_on_prompt must be a bool, got {self.adapter_on_prompt!r}")


@dataclass(frozen=True)
class D2LSettings:
    """What a Doc-to-LoRA checkpoint (``kind="d2l"``, see :mod:`.d2l`) needs beyond the shapes.

    ``n_heads``, ``head_dim`` and ``n_kv_heads`` are the reference perceiver's fixed values (its
    attention config never overrides them). ``context_prefix``/``context_suffix`` wrap a text as
    the chat turn the reference encodes; ``chunk_*_ids`` close and reopen that turn at chunk cuts;
    ``chunk_tokens`` is the longest chunk (``None``: never chunk). ``source`` is the base model
    name the checkpoint recorded; ``quantized_context_encoder`` whether the reference ran its
    context encoder in 4-bit (we never do).
    """

    module: str
    rank: int
    lora_alpha: float
    latent_size: int
    n_latents: int
    num_blocks: int
    num_pre_head_layers: int = 1
    use_bias: bool = True
    n_heads: int = 16
    head_dim: int = 128
    n_kv_heads: int = 4
    rms_norm_eps: float = 1e-6
    context_prefix: str = ""
    context_suffix: str = ""
    chunk_prefix_ids: tuple[int, ...] = ()
    chunk_suffix_ids: tuple[int, ...] = ()
    chunk_tokens: int | None = 8192
    source: str = ""
    quantized_context_encoder: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "chunk_prefix_ids", tuple(int(i) for i in self.chunk_prefix_ids))
        object.__setattr__(self, "chunk_suffix_ids", tuple(int(i) for i in self.chunk_suffix_ids))


@dataclass
class HypernetConfig:
    base_hidden_size: int
    n_states: int  # hidden states read per token: len(read_layers), or embeddings + every decoder layer's output
    targets: dict[str, tuple[int, int]]  # module name -> (d_in, d_out)
    width: int = 256
    mixer_layers: int = 2
    mixer_heads: int = 4
    rank: int = 8  # "top_r": the rank of every adapter; "gated": the least rank of one
    window: int = 128  # encoder window in tokens; longer texts are chunked
    base_fingerprint: str = ""
    selection: Literal["top_r", "gated"] = "gated"
    """``top_r``: the ``rank`` highest-gated token pieces; ``gated``: every piece whose gate is at
    least ``gate_threshold`` (at least ``rank``, at most ``max_rank``), so an adapter's rank grows
    with the facts its text holds instead of capping them."""
    gate_threshold: float = 0.5
    max_rank: int | None = None
    chat: ChatFormat = field(default_factory=ChatFormat)
    extra: dict[str, object] = field(default_factory=dict)
    format_version: int = 2
    kind: Literal["pieces", "d2l"] = "pieces"
    """``pieces``: our token-piece hypernetwork (:mod:`.model`); ``d2l``: Sakana AI's Doc-to-LoRA
    architecture (:mod:`.d2l`), settings in ``d2l``. Configs written before kinds existed are ``pieces``."""
    d2l: D2LSettings | None = None
    read_layers: tuple[int, ...] | None = None
    """Which of the base's hidden states the hypernetwork reads (``output_hidden_states`` indices:
    0 the embeddings, ``i`` the output of decoder layer ``i - 1``); ``None``: all of them. A few
    layers carry what the mixer needs (which tokens are values, what they answer), and each one
    read is a per-token feature to compute, cache and project."""

    def __post_init__(self) -> None:
        if self.read_layers is not None:
            self.read_layers = tuple(int(i) for i in self.read_layers)
            if len(self.read_layers) != self.n_states or len(set(self.read_layers)) != len(self.read_layers):
                raise CheckpointError(
                    f"read_layers {self.read_layers} must be n_states={self.n_states} distinct indices"
                )
            if min(self.read_layers) < 0:
                raise CheckpointError(f"read_layers must be non-negative, got {self.read_layers}")
        if self.selection not in ("top_r", "gated"):
            raise CheckpointError(f"unknown selection {self.selection!r}")
        if self.rank < 1 or (self.max_rank is not None and self.max_rank < self.rank):
            raise CheckpointError(f"bad ranks: rank={self.rank}, max_rank={self.max_rank}")
        if self.kind not in ("pieces", "d2l"):
            raise CheckpointError(f"unknown hypernetwork kind {self.kind!r}")
        if (self.kind == "d2l") != (self.d2l is not None):
            raise CheckpointError("a hypernetwork of kind 'd2l' needs d2l settings, and only it has them")

    def read_states(self, hidden_states: Sequence[T]) -> tuple[T, ...]:
        """The hidden states this hypernetwork reads, from all of them or already chosen.

        ``hidden_states`` is either every state a base pass returns (``output_hidden_states``) or
        exactly the ``n_states`` it reads (a feature cache stores only those).

        >>> cfg = HypernetConfig(base_hidden_size=4, n_states=2, targets={}, read_layers=(1, 3))
        >>> cfg.read_states(["e", "l0", "l1", "l2"]), cfg.read_states(["l0", "l2"])
        (('l0', 'l2'), ('l0', 'l2'))
        """
        if len(hidden_states) == self.n_states:
            return tuple(hidden_states)
        if self.read_layers is None or len(hidden_states) <= max(self.read_layers):
            raise ValueError(f"expected {self.n_states} hidden states (or all of a base's), got {len(hidden_states)}")
        return tuple(hidden_states[i] for i in self.read_layers)

    def to_json(self) -> str:
        d = asdict(self)
        d["targets"] = {k: list(v) for k, v in self.targets.items()}
        return json.dumps(d, indent=2)

    @classmethod
    def from_json(cls, text: str) -> HypernetConfig:
        d: dict[str, Any] = json.loads(text)
        if "format_version" not in d:
            # version 1 (the first shipped tiny default): fixed top-r, context as a raw prefix
            d.update(format_version=1, selection="top_r")
            d.setdefault("chat", {"context": "prefix"})
        d["targets"] = {k: (int(v[0]), int(v[1])) for k, v in d["targets"].items()}
        d["chat"] = ChatFormat(**d.get("chat", {}))
        if d.get("d2l") is not None:
            d["d2l"] = D2LSettings(**d["d2l"])
        if d.get("read_layers") is not None:
            d["read_layers"] = tuple(d["read_layers"])
        return cls(**d)

    def with_chat(self, **changes: Any) -> HypernetConfig:
        return replace(self, chat=replace(self.chat, **changes))
