"""Doc-to-LoRA (Sakana AI's D2L) as a second hypernetwork kind, and the converter for its checkpoints.

Our own implementation of the architecture of github.com/SakanaAI/doc-to-lora (MIT), written from
its public source: module and parameter names follow the reference's so that a converted
checkpoint's tensors load one to one, and ``tests/test_d2l.py`` checks the generated A and B
against a fixture made by running the reference's own modules.

The pipeline, for a text:

1. **context ids**: the text is wrapped as a chat turn (``context_prefix + text.strip() +
   context_suffix``, the reference's chat template with an empty system message) and tokenized.
2. **chunks**: past ``chunk_tokens`` tokens the ids are cut into ``n = ceil(len / chunk_tokens)``
   even pieces (``ceil(len / n)`` tokens each), and each cut is closed and reopened with the chat
   turn's own tokens (``chunk_suffix_ids`` / ``chunk_prefix_ids``), as the reference's
   ``split_too_long_ctx`` does.
3. **features**: the frozen base without its last decoder layer reads every chunk; the residual
   stream of every layer ``[N, L, T, d]`` (the embeddings, the outputs of layers ``0..L-3`` and the
   final norm of layer ``L-2``'s output) is what the LoRA of layer ``l`` is conditioned on.
4. **aggregator**: one Perceiver shared by all layers (layers folded into the batch): a SwiGLU
   projection to ``latent_size``, cross-attention blocks from learned latents to the tokens, then
   a one-block decoder with ``rank`` queries. Queries attend to the valid tokens of their own
   chunk only.
5. **head**: per-layer residual MLPs, L2 normalisation, a per-layer linear map to ``d_in + d_out``
   split into one row of A and one row of B per rank, times learned per-layer, per-rank scalers.
6. **combine**: the chunks' LoRAs are concatenated along the rank, then the learned,
   context-independent bias LoRA is appended: rank ``(n_chunks + 1) * rank``. The delta is
   ``lora_alpha * (x A^T) B^T`` with ``lora_alpha = 2 r^1.5`` (not ``alpha / r``).

The result is our :class:`~agenthn_langgraph.lora.LoraAdapter` (``scaling = lora_alpha``), so
composition, the store, PEFT export and every node treat it like any other adapter.
"""

from __future__ import annotations

import io
import math
import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, UntrustedCheckpointError
from .config import D2LSettings, HypernetConfig
from .model import read_checkpoint, write_checkpoint

__all__ = [
    "KNOWN_CONTEXT_AFFIXES",
    "D2LHypernetwork",
    "context_ids",
    "convert_d2l_checkpoint",
    "split_chunks",
]

# The reference's chat wrapping of a context, per released base model: the text of its chat
# template (chat_templates/*.jinja) around the document with an empty system message, and its
# chunk affixes (data/definitions.py CTX_AFFIXES), as token ids of that model's vocabulary.
KNOWN_CONTEXT_AFFIXES: dict[str, dict[str, Any]] = {
    "google/gemma-2-2b-it": {
        "context_prefix": "<bos><start_of_turn>user\n\n\n",
        "context_suffix": "<end_of_turn>\n<start_of_turn>model\n",
        "chunk_prefix_ids": [2, 106, 1645, 110],
        "chunk_suffix_ids": [107, 108, 106, 2516, 108],
    },
    "mistralai/Mistral-7B-Instruct-v0.2": {
        "context_prefix": "<s> [INST] \n\n",
        "context_suffix": " [/INST] ",
        "chunk_prefix_ids": [1, 733, 16289, 28793, 28705, 13, 13],
        "chunk_suffix_ids": [733, 28748, 16289, 28793],
    },
    "Qwen/Qwen3-4B-Instruct-2507": {
        "context_prefix": "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n",
        "context_suffix": "<|im_end|>\n<|im_start|>assistant\n",
        "chunk_prefix_ids": [151644, 8948, 198, 151645, 198, 151644, 872, 198],
        "chunk_suffix_ids": [151645, 198, 151644, 77091, 198],
    },
}
DEFAULT_CHUNK_TOKENS = 8192  # the reference's evaluation setting (--max_ctx_chunk_len 8192)


# ---------------------------------------------------------------------- context and chunks
def context_ids(tokenizer: Any, text: str, settings: D2LSettings) -> list[int]:
    """The text wrapped as the reference wraps a context (a chat turn), as token ids."""
    wrapped = settings.context_prefix + text.strip() + settings.context_suffix
    return list(tokenizer(wrapped, add_special_tokens=False)["input_ids"])


def split_chunks(
    ids: Sequence[int], chunk_tokens: int | None, prefix_ids: Sequence[int], suffix_ids: Sequence[int]
) -> list[list[int]]:
    """The reference's chunking rule (``split_too_long_ctx`` at evaluation).

    ``n = ceil(len / chunk_tokens)`` even pieces of ``ceil(len / n)`` ids; the first piece gets the
    suffix, the last the prefix, the ones between both, so every chunk reads as a chat turn.
    """
    ids = list(ids)
    if not chunk_tokens or chunk_tokens <= 0:
        return [ids]
    n = max(1, math.ceil(len(ids) / chunk_tokens))
    if n == 1:
        return [ids]
    step = math.ceil(len(ids) / n)
    chunks = [ids[i : i + step] for i in range(0, len(ids), step)]
    prefix, suffix = list(prefix_ids), list(suffix_ids)
    out = [chunks[0] + suffix]
    out += [prefix + c + suffix for c in chunks[1:-1]]
    out.append(prefix + chunks[-1])
    return out


# ---------------------------------------------------------------------- modules
class _RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class _SwiGLU(nn.Module):
    def __init__(self, d_in: int, d_hidden: int, d_out: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d_in, d_hidden, bias=False)
        self.up_proj = nn.Linear(d_in, d_hidden, bias=False)
        self.down_proj = nn.Linear(d_hidden, d_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class _Attention(nn.Module):
    """Latents attend to a context (grouped-query heads, no positions, not causal)."""

    def __init__(self, width: int, heads: int, head_dim: int, kv_heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim, self.kv_heads = heads, head_dim, kv_heads
        self.q_proj = nn.Linear(width, heads * head_dim, bias=False)
        self.k_proj = nn.Linear(width, kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(width, kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(heads * head_dim, width, bias=False)

    def forward(self, latents: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        n, q_len, _ = latents.shape
        t = context.shape[1]
        q = self.q_proj(latents).view(n, q_len, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(context).view(n, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(context).view(n, t, self.kv_heads, self.head_dim).transpose(1, 2)
        rep = self.heads // self.kv_heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        attn_mask = None if mask is None else mask.bool()[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.o_proj(out.transpose(1, 2).reshape(n, q_len, self.heads * self.head_dim))


class _PerceiverLayer(nn.Module):
    def __init__(self, s: D2LSettings) -> None:
        super().__init__()
        w, eps = s.latent_size, s.rms_norm_eps
        self.input_latents_layernorm = _RMSNorm(w, eps)
        self.input_context_layernorm = _RMSNorm(w, eps)
        self.self_attn = _Attention(w, s.n_heads, s.head_dim, s.n_kv_heads)
        self.post_attention_layernorm = _RMSNorm(w, eps)
        self.pre_ff_layernorm = _RMSNorm(w, eps)
        self.post_ff_layernorm = _RMSNorm(w, eps)
        self.mlp = _SwiGLU(w, 4 * w, w)

    def forward(self, latents: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        h = self.self_attn(self.input_latents_layernorm(latents), self.input_context_layernorm(context), mask)
        latents = latents + self.post_attention_layernorm(h)
        return latents + self.post_ff_layernorm(self.mlp(self.pre_ff_layernorm(latents)))


class _Resampler(nn.Module):
    def __init__(self, s: D2LSettings, n_latents: int, n_blocks: int) -> None:
        super().__init__()
        self.latents_q = nn.Parameter(torch.randn(n_latents, s.latent_size))
        self.layers = nn.ModuleList(_PerceiverLayer(s) for _ in range(n_blocks))
        self.layernorm = _RMSNorm(s.latent_size, s.rms_norm_eps)

    def forward(self, context: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        latents = self.latents_q.unsqueeze(0).expand(context.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(latents, context, mask)
        return self.layernorm(latents)


class _Perceiver(nn.Module):
    def __init__(self, s: D2LSettings, feature_size: int) -> None:
        super().__init__()
        self.modality_projection = _SwiGLU(feature_size, 4 * feature_size, s.latent_size)
        self.encoder = _Resampler(s, s.n_latents, s.num_blocks)
        self.decoder = _Resampler(s, s.rank, 1)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(self.modality_projection(features), mask), None)


class _Aggregator(nn.Module):
    def __init__(self, s: D2LSettings, feature_size: int) -> None:
        super().__init__()
        self.perceiver = _Perceiver(s, feature_size)


class _PerLayerLinear(nn.Module):
    """``x [N, L, M, r, d_in] -> [N, L, M, r, d_out]`` with layer ``l``'s own weights."""

    def __init__(self, n_layers: int, d_in: int, d_out: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_layers, d_in, d_out))
        self.bias = nn.Parameter(torch.zeros(1, n_layers, 1, 1, d_out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.einsum("blmrd,lde->blmre", x, self.weight)
        return y if self.bias is None else y + self.bias


class _ResMLPPerLayer(nn.Module):
    def __init__(self, n_layers: int, width: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.LayerNorm(width),
            _PerLayerLinear(n_layers, width, 4 * width),
            nn.SiLU(),
            _PerLayerLinear(n_layers, 4 * width, width),
            nn.LayerNorm(width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class D2LHypernetwork(nn.Module):
    """The D2L hypernetwork: chunks of a text -> one rank-r LoRA per chunk and layer, plus the bias LoRA."""

    def __init__(self, config: HypernetConfig) -> None:
        super().__init__()
        if config.kind != "d2l" or config.d2l is None:
            raise CheckpointError("D2LHypernetwork needs a hypernetwork config of kind 'd2l'")
        self.config = config
        s = config.d2l
        self.settings = s
        self.n_layers = config.n_states
        self.module_names = list(config.targets)  # one per layer, in layer order
        if len(self.module_names) != self.n_layers:
            raise CheckpointError(f"d2l: {len(self.module_names)} targets for {self.n_layers} layers")
        self.d_in, self.d_out = next(iter(config.targets.values()))
        m, r, n_l = s.module, s.rank, self.n_layers
        self.aggregator = _Aggregator(s, config.base_hidden_size)
        self.layers = nn.Sequential(*(_ResMLPPerLayer(n_l, s.latent_size) for _ in range(s.num_pre_head_layers)))
        self.bias_A = nn.ParameterDict({m: nn.Parameter(torch.zeros(n_l, r, self.d_in))})
        self.bias_B = nn.ParameterDict({m: nn.Parameter(torch.zeros(n_l, r, self.d_out))})
        self.scaler_A = nn.ParameterDict({m: nn.Parameter(torch.ones(1, n_l, r, 1))})
        self.scaler_B = nn.ParameterDict({m: nn.Parameter(torch.zeros(1, n_l, r, 1))})
        self.head = _PerLayerLinear(n_l, s.latent_size, self.d_in + self.d_out, bias=False)

    @property
    def scaling(self) -> float:
        return float(self.settings.lora_alpha)

    # ------------------------------------------------------------------ text -> chunks
    def chunk(self, tokenizer: Any, text: str) -> list[list[int]]:
        s = self.settings
        return split_chunks(context_ids(tokenizer, text, s), s.chunk_tokens, s.chunk_prefix_ids, s.chunk_suffix_ids)

    # ------------------------------------------------------------------ chunks -> LoRAs
    def features(self, base: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[N, L, T, d]``: what the reference's context encoder (the base without its last
        decoder layer, no LM head) returns: every hidden state it outputs, the last one normed."""
        decoder = base.base_model
        hs = decoder(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False).hidden_states
        n = self.n_layers
        if len(hs) != n + 1:
            raise CheckpointError(f"d2l: the base returned {len(hs)} hidden states, expected {n + 1}")
        return torch.stack([*hs[: n - 1], decoder.norm(hs[n - 1])], dim=1)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per chunk and layer: ``(A [N, L, r, d_in], B [N, L, r, d_out])`` (before the bias LoRA)."""
        n, n_l, t, d = features.shape
        r = self.settings.rank
        folded = features.float().transpose(0, 1).reshape(n_l * n, t, d)  # (layer, chunk) into the batch
        lat = self.aggregator.perceiver(folded, mask.repeat(n_l, 1))  # [L*N, r, w]
        lat = lat.view(n_l, n, r, -1).transpose(0, 1).unsqueeze(2)  # [N, L, 1, r, w]
        lat = self.layers(lat)
        flat = self.head(lat / lat.norm(dim=-1, keepdim=True)).squeeze(2)  # [N, L, r, d_in + d_out]
        m = self.settings.module
        a = flat[..., : self.d_in] * self.scaler_A[m]
        b = flat[..., self.d_in : self.d_in + self.d_out] * self.scaler_B[m]
        return a, b

    @torch.no_grad()
    def generate_chunks(
        self, base: nn.Module, ids: torch.Tensor, mask: torch.Tensor
    ) -> list[dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """One block per chunk (a padded batch): ``{module: (A [r, d_in], B [d_out, r])}``."""
        a, b = self(self.features(base, ids, mask), mask)
        return [
            {name: (a[j, i].cpu(), b[j, i].T.cpu()) for i, name in enumerate(self.module_names)}
            for j in range(a.shape[0])
        ]

    def with_bias(
        self, weights: dict[str, tuple[torch.Tensor, torch.Tensor]]
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The chunks' rank-concatenated LoRA with the bias LoRA appended (the reference's ``combine_lora``)."""
        if not self.settings.use_bias:
            return weights
        m = self.settings.module
        bias_a, bias_b = self.bias_A[m].detach().float().cpu(), self.bias_B[m].detach().float().cpu()
        return {
            name: (torch.cat([a, bias_a[i]], 0), torch.cat([b, bias_b[i].T], 1))
            for i, (name, (a, b)) in enumerate(weights.items())
        }

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        return write_checkpoint(directory, self.config, self.state_dict())

    @classmethod
    def from_config_and_state(
        cls, config: HypernetConfig, state: dict[str, torch.Tensor], where: str = "checkpoint"
    ) -> D2LHypernetwork:
        model = cls(config)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise CheckpointError(f"{where}: weights do not fit the d2l config ({e})") from e
        return model.eval()

    @classmethod
    def load(cls, directory: str | Path, *, map_location: str | torch.device = "cpu") -> D2LHypernetwork:
        config, state = read_checkpoint(directory, map_location=map_location)
        return cls.from_config_and_state(config, state, str(directory)).to(map_location)


# ---------------------------------------------------------------------- the converter
class _Inert:
    """Stands in for any class the checkpoint pickled (its config dataclasses, peft's LoraConfig,
    enums): it only records what it is given, so no code of the checkpoint's classes runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args, self._kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)

    @property
    def value(self) -> Any:
        """An enum member's value (enums pickle as ``Class(value)``)."""
        return self._args[0] if self._args else None


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "object"),
    ("copyreg", "_reconstructor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch", "Size"),
    ("torch", "device"),
}
_INERT_PREFIXES = ("ctx_to_lora.", "peft.", "__main__")


class _CheckpointUnpickler(pickle.Unpickler):
    """Resolves only tensor rebuilding and plain containers; the checkpoint's own classes become
    :class:`_Inert` records; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        module = {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(module, module)  # protocol-2 names
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if module.startswith(_INERT_PREFIXES) or module in ("peft", "ctx_to_lora"):
            return type(name, (_Inert,), {"__module__": "agenthn_langgraph.hypernet.d2l._inert"})
        raise CheckpointError(f"the checkpoint pickles {module}.{name}, which a D2L checkpoint never holds; refused")


class _PickleModule:
    Unpickler = _CheckpointUnpickler
    __name__ = "agenthn_d2l_pickle"

    @staticmethod
    def load(f: io.BufferedIOBase, **kwargs: Any) -> Any:
        return _CheckpointUnpickler(f, **kwargs).load()


PICKLE_WARNING = (
    "Unpickling a D2L checkpoint ({path}). A pickle can run code while it loads; this converter "
    "only resolves tensor and container types and turns the checkpoint's own classes into inert "
    "records, but only convert checkpoints from a source you trust. The converted directory is "
    "safetensors + JSON and never needs unpickling again."
)


def _attr(obj: Any, name: str, default: Any = None) -> Any:
    value = getattr(obj, name, default)
    return value.value if isinstance(value, _Inert) and hasattr(value, "_args") and value._args else value


def _base_layout(base: Path) -> tuple[Any, nn.Module, Any]:
    """The base's config, its decoder layers' ``mlp.down_proj``-like modules and shapes, and its
    tokenizer, without loading any weights (the model is built on the meta device)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(base, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"cannot read the base model at {base}: {e}") from e
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return config, model, tokenizer


def _derive_affixes(tokenizer: Any) -> dict[str, Any]:
    """The chat turn around a context, from the base's own chat template (system "" first, as the
    reference does; without it when the template refuses a system message)."""
    marker = "\x00AGENTHN-D2L-CONTEXT\x00"
    rendered = None
    for messages in (
        [{"role": "system", "content": ""}, {"role": "user", "content": marker}],
        [{"role": "user", "content": marker}],
    ):
        try:
            rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            break
        except Exception:  # noqa: BLE001 - templates raise their own errors (jinja raise_exception)
            continue
    if rendered is None or marker not in rendered:
        raise CheckpointError("the base's tokenizer has no chat template to wrap contexts with")
    prefix, suffix = rendered.split(marker, 1)
    enc = tokenizer
    return {
        "context_prefix": prefix,
        "context_suffix": suffix,
        "chunk_prefix_ids": list(enc(prefix, add_special_tokens=False)["input_ids"]),
        "chunk_suffix_ids": list(enc(suffix, add_special_tokens=False)["input_ids"]),
    }


def convert_d2l_checkpoint(
    checkpoint: str | Path,
    base: str | Path,
    out: str | Path,
    *,
    trust_pickle: bool = False,
    chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
) -> Path:
    """Convert a released D2L ``pytorch_model.bin`` into our hypernetwork directory.

    Unpickling happens here only, and only with ``trust_pickle=True`` (else
    :class:`UntrustedCheckpointError`). ``base`` is the local directory of the base model the
    checkpoint was trained on; its layers and module shapes must match the checkpoint.
    """
    path = Path(checkpoint)
    if not trust_pickle:
        raise UntrustedCheckpointError(
            f"{path} is a pickle (torch.save of the reference's state dict, with its config objects): "
            "loading a pickle can run arbitrary code, so it is only unpickled when you pass "
            "--trust-pickle (trust_pickle=True) for a checkpoint from a source you trust"
        )
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    warnings.warn(PICKLE_WARNING.format(path=path), UserWarning, stacklevel=2)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_PickleModule)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad checkpoint
        raise CheckpointError(f"{path}: not a readable D2L checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(sd, dict) or "hypernet_config" not in sd:
        raise CheckpointError(f"{path}: not a D2L checkpoint (no hypernet_config in it)")
    hc, ctx = sd.pop("hypernet_config"), sd.pop("ctx_encoder_args", None)
    source = str(sd.pop("base_model_name_or_path", ""))
    agg, lora = _attr(hc, "aggregator_config"), _attr(hc, "lora_config")
    targets = sorted(_attr(lora, "target_modules") or [])
    checks = {
        "one target module": len(targets) == 1,
        "per-rank generation": bool(_attr(hc, "per_rank_gen")),
        "per-layer processing": bool(_attr(hc, "per_layer_processing")),
        "no extra modules": not _attr(hc, "extra_modules"),
        "a perceiver aggregator": str(_attr(agg, "aggregator_type")).endswith("perceiver"),
        "no latent self-attention": int(_attr(agg, "num_self_attn_per_block", 0)) == 0,
        "unshared perceiver weights": not _attr(agg, "shared_weights"),
        "per-layer-activations context encoder": str(_attr(ctx, "ctx_encoder_type", "")).endswith(
            "per_layer_activations"
        ),
        "the full base as context encoder": _attr(ctx, "ctx_encoder_last_layer") is None
        and _attr(ctx, "ctx_encoder_model_name_or_path") is None,
    }
    failed = [k for k, ok in checks.items() if not ok]
    if failed:
        raise CheckpointError(f"{path}: unsupported D2L configuration (needs {', '.join(failed)})")
    module = targets[0]
    suffix = {"down_proj": "mlp.down_proj", "up_proj": "mlp.up_proj", "gate_proj": "mlp.gate_proj"}.get(
        module, f"self_attn.{module}"
    )
    config_hf, meta_model, tokenizer = _base_layout(Path(base))
    names = [n for n, m in meta_model.named_modules() if isinstance(m, nn.Linear) and n.endswith("." + suffix)]
    shapes = {n: (m.in_features, m.out_features) for n, m in meta_model.named_modules() if n in names}
    n_layers = int(_attr(agg, "num_layers"))
    feature_sizes = _attr(hc, "feature_sizes")
    d_in, d_out = int(feature_sizes[0][module]), int(feature_sizes[1][module])
    hidden = int(_attr(hc, "base_hidden_size"))
    if len(names) != n_layers or any(s != (d_in, d_out) for s in shapes.values()) or hidden != config_hf.hidden_size:
        raise CheckpointError(
            f"{path} was trained for {source or 'another base'} ({n_layers} layers, {module} {d_in}->{d_out}, "
            f"hidden {hidden}); {base} has {len(names)} such layers, shapes {sorted(set(shapes.values()))}, "
            f"hidden {config_hf.hidden_size}"
        )
    affixes = KNOWN_CONTEXT_AFFIXES.get(source) or _derive_affixes(tokenizer)
    rank = int(_attr(lora, "r"))
    settings = D2LSettings(
        module=module,
        rank=rank,
        lora_alpha=float(_attr(lora, "lora_alpha")),
        latent_size=int(_attr(hc, "latent_size")),
        n_latents=int(_attr(agg, "n_latent_queries")),
        num_blocks=int(_attr(agg, "num_blocks")),
        num_pre_head_layers=int(_attr(hc, "num_pre_head_layers") or 1),
        use_bias=bool(_attr(hc, "use_bias", True)),
        chunk_tokens=chunk_tokens,
        source=source,
        quantized_context_encoder=bool(_attr(ctx, "quantize_ctx_encoder", False)),
        **affixes,
    )
    config = HypernetConfig(
        base_hidden_size=hidden,
        n_states=n_layers,
        targets={n: shapes[n] for n in names},
        width=settings.latent_size,
        rank=rank,
        window=chunk_tokens or 0,
        selection="top_r",
        kind="d2l",
        d2l=settings,
    )
    state = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{path}: unexpected non-tensor entry {k!r}")
        state[k.removeprefix("_orig_mod.")] = v.detach().to(torch.float32)
    model = D2LHypernetwork.from_config_and_state(config, state, str(path))
    return model.save(out)
