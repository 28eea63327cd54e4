"""The hypernetwork: text -> LoRA weights in one forward pass (Doc-to-LoRA style).

Like D2L it reads the frozen base model's per-layer hidden states over the text and emits rank-r
``A`` and ``B`` for the chosen target modules of every layer, zero at initialisation. Unlike D2L's
Perceiver (whose latent slots must learn *which key goes with which value*, where a first small
try got stuck: ``shared/brief/calibration.md``), the generator is laid out as an associative
memory:

1. ``encode``: the base's hidden states of all layers at each text token are normalised,
   concatenated and projected to ``width``; a small bidirectional transformer (the *mixer*) lets
   each token gather its neighbours, so a value token's feature knows its key.
2. per target module, each token ``t`` proposes a rank-1 piece ``b_t a_t^T`` (``a_t``: what the
   question's activation looks like when it asks for this fact; ``b_t``: what to write into the
   residual stream) and a gate ``g_t`` in (0, 1).
3. the ``rank`` tokens with the largest gates become the adapter: ``A = [g_t a_t]``, ``B = [b_t]``.

A piece never mixes two tokens, so a value cannot be bound to the wrong key by the layout itself.
Training (``hypernet/train.py``) uses the soft all-token delta and the hard top-r delta together.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import CheckpointError

CONFIG_FILE = "hypernet_config.json"
WEIGHTS_FILE = "hypernet.safetensors"


@dataclass
class HypernetConfig:
    base_hidden_size: int
    n_states: int  # hidden states read per token: embeddings + every decoder layer's output
    targets: dict[str, tuple[int, int]]  # module name -> (d_in, d_out)
    width: int = 256
    mixer_layers: int = 2
    mixer_heads: int = 4
    rank: int = 8
    window: int = 128  # encoder window in tokens; longer texts are chunked
    base_fingerprint: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> str:
        d = asdict(self)
        d["targets"] = {k: list(v) for k, v in self.targets.items()}
        return json.dumps(d, indent=2)

    @classmethod
    def from_json(cls, text: str) -> HypernetConfig:
        d = json.loads(text)
        d["targets"] = {k: (int(v[0]), int(v[1])) for k, v in d["targets"].items()}
        return cls(**d)


@dataclass
class TokenPieces:
    """Per-token rank-1 proposals for one batch of texts: a [N, T, d_in], b [N, T, d_out], gate [N, T]."""

    a: dict[str, torch.Tensor]
    b: dict[str, torch.Tensor]
    gate: dict[str, torch.Tensor]

    def top_r(self, rank: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Hard selection: per text, the ``rank`` most-gated pieces -> (A [N, r, d_in], B [N, d_out, r])."""
        out = {}
        for name, gate in self.gate.items():
            r = min(rank, gate.shape[1])
            g, idx = gate.topk(r, dim=1)  # [N, r]
            a = torch.gather(self.a[name], 1, idx.unsqueeze(-1).expand(-1, -1, self.a[name].shape[-1]))
            b = torch.gather(self.b[name], 1, idx.unsqueeze(-1).expand(-1, -1, self.b[name].shape[-1]))
            out[name] = (a * g.unsqueeze(-1), b.transpose(1, 2))
        return out

    def soft(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Every token's piece, gated: (A [N, T, d_in], B [N, d_out, T])."""
        return {n: (self.a[n] * self.gate[n].unsqueeze(-1), self.b[n].transpose(1, 2)) for n in self.gate}


class _ModuleHead(nn.Module):
    def __init__(self, width: int, d_in: int, d_out: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.to_a = nn.Linear(width, d_in)
        self.to_b = nn.Linear(width, d_out)
        self.to_gate = nn.Linear(width, 1)
        nn.init.zeros_(self.to_b.weight)  # B = 0 at init: the generated LoRA starts as a no-op
        nn.init.zeros_(self.to_b.bias)
        nn.init.normal_(self.to_a.weight, std=width**-0.5)
        nn.init.zeros_(self.to_a.bias)

    def forward(self, z: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.norm(z)
        gate = torch.sigmoid(self.to_gate(h).squeeze(-1)) * mask
        return self.to_a(h), self.to_b(h), gate


class Hypernetwork(nn.Module):
    """Maps the base's hidden states over a text to per-token LoRA pieces (see module docstring)."""

    def __init__(self, config: HypernetConfig) -> None:
        super().__init__()
        self.config = config
        d, w = config.base_hidden_size, config.width
        self.state_norm = nn.LayerNorm(d, elementwise_affine=False)
        self.state_weight = nn.Parameter(torch.ones(config.n_states))
        self.proj = nn.Sequential(nn.Linear(config.n_states * d, w), nn.GELU(), nn.Linear(w, w))
        self.pos = nn.Embedding(config.window, w)
        nn.init.normal_(self.pos.weight, std=0.02)
        layer = nn.TransformerEncoderLayer(w, config.mixer_heads, dim_feedforward=2 * w, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.mixer = nn.TransformerEncoder(layer, config.mixer_layers, enable_nested_tensor=False)
        # ModuleDict keys cannot contain "."; keep the mapping to the base's module names
        self._names = list(config.targets)
        self.heads = nn.ModuleDict({
            self._key(n): _ModuleHead(w, d_in, d_out) for n, (d_in, d_out) in config.targets.items()
        })

    @staticmethod
    def _key(name: str) -> str:
        return name.replace(".", "__")

    def forward(self, hidden_states: Sequence[torch.Tensor], attention_mask: torch.Tensor) -> TokenPieces:
        """hidden_states: ``n_states`` tensors [N, T, d] (as ``output_hidden_states`` gives them)."""
        if len(hidden_states) != self.config.n_states:
            raise ValueError(f"expected {self.config.n_states} hidden states, got {len(hidden_states)}")
        n, t = attention_mask.shape
        if t > self.config.window:
            raise ValueError(f"{t} tokens exceed the encoder window of {self.config.window}; chunk first")
        states = torch.cat([self.state_norm(h.float()) * wt for h, wt in zip(hidden_states, self.state_weight,
                                                                             strict=True)], dim=-1)
        mask = attention_mask.to(states.dtype)
        z = self.proj(states) + self.pos(torch.arange(t, device=states.device))
        z = self.mixer(z, src_key_padding_mask=~attention_mask.bool())
        a, b, g = {}, {}, {}
        for name in self._names:
            a[name], b[name], g[name] = self.heads[self._key(name)](z, mask)
        return TokenPieces(a, b, g)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()},
                  str(directory / WEIGHTS_FILE), metadata={"format": "agenthn-hypernet"})
        (directory / CONFIG_FILE).write_text(self.config.to_json())
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, map_location: str | torch.device = "cpu") -> Hypernetwork:
        directory = Path(directory)
        try:
            config = HypernetConfig.from_json((directory / CONFIG_FILE).read_text())
            state = load_file(str(directory / WEIGHTS_FILE), device=str(map_location))
        except FileNotFoundError as e:
            raise CheckpointError(f"{directory}: not a hypernetwork checkpoint ({e.filename} missing)") from e
        except (SafetensorError, ValueError, TypeError, KeyError, OSError) as e:
            raise CheckpointError(f"{directory}: corrupt hypernetwork checkpoint ({e})") from e
        model = cls(config)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise CheckpointError(f"{directory}: weights do not fit the config ({e})") from e
        return model.to(map_location).eval()
