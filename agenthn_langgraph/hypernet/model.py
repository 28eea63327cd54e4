"""The hypernetwork: text -> LoRA weights in one forward pass (Doc-to-LoRA style).

Like D2L it reads the frozen base model's per-layer hidden states over the text and emits rank-r
``A`` and ``B`` for the chosen target modules of every layer, zero at initialisation. Unlike D2L's
Perceiver (whose latent slots must learn *which key goes with which value*, where a first small
try got stuck: ``shared/brief/calibration.md``), the generator is laid out as an associative
memory:

1. ``encode``: the base's hidden states of all layers at each text token are normalised,
   concatenated and projected to ``width``; a small bidirectional transformer (the *mixer*) lets
   each token gather its neighbours, so a value token's feature knows its key.
2. per target module, each token ``t`` proposes a rank-1 piece ``b_t a_t^T`` and a gate ``g_t``.
   ``b_t`` (zero at init) is what to write into the residual stream. The key ``a_t`` is what the
   module itself saw at that token in the text, ``x_t``, plus a learned correction (zero at init),
   unit-normalised. At initialisation the delta is therefore a linear attention from the
   question's activation to the text's tokens, ``sum_t b_t (x_t . x_q)``: tokens that resemble the
   question get consistent weight, so B receives a real learning signal from the first step
   (random keys give a zero-mean signal and training stalls).
3. the ``rank`` tokens with the largest gates become the adapter: ``A = [a_t]``, ``B = [b_t]``.

The gate only *ranks* tokens. It never scales a piece: its value enters the delta through a
straight-through factor that is exactly 1 forward and ``d/dg`` backward, so a gate learns "more of
this piece would help" without being able to switch pieces off. (Multiplicative sigmoid gates
collapse to zero in the first steps, when every piece is still noise, and never recover.)

A piece never mixes two tokens, so a value cannot be bound to the wrong key by the layout itself.
Training (``hypernet/train.py``) uses the soft all-token delta and the hard top-r delta together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
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


def _straight_through(gate: torch.Tensor) -> torch.Tensor:
    """Exactly 1 in the forward pass; the gate's gradient in the backward pass."""
    return 1.0 + gate - gate.detach()


@dataclass
class TokenPieces:
    """Per-token rank-1 proposals for a batch of texts.

    a [N, T, d_in], b [N, T, d_out], gate [N, T] (0 on padding), mask [N, T].
    """

    a: dict[str, torch.Tensor]
    b: dict[str, torch.Tensor]
    gate: dict[str, torch.Tensor]
    mask: torch.Tensor

    def top_r(self, rank: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Hard selection: per text, the ``rank`` highest-gated pieces -> (A [N, r, d_in], B [N, d_out, r])."""
        out = {}
        for name, gate in self.gate.items():
            r = min(rank, gate.shape[1])
            g, idx = gate.topk(r, dim=1)  # [N, r]
            keep = torch.gather(self.mask, 1, idx) * _straight_through(g)  # texts shorter than r: padding drops
            a = torch.gather(self.a[name], 1, idx.unsqueeze(-1).expand(-1, -1, self.a[name].shape[-1]))
            b = torch.gather(self.b[name], 1, idx.unsqueeze(-1).expand(-1, -1, self.b[name].shape[-1]))
            out[name] = (a * keep.unsqueeze(-1), b.transpose(1, 2))
        return out

    def soft(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Every token's piece (training only): (A [N, T, d_in], B [N, d_out, T])."""
        out = {}
        for n, gate in self.gate.items():
            keep = self.mask * _straight_through(gate)
            out[n] = (self.a[n] * keep.unsqueeze(-1), self.b[n].transpose(1, 2))
        return out


class _ModuleHead(nn.Module):
    def __init__(self, width: int, d_in: int, d_out: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.to_a = nn.Linear(width, d_in)
        self.to_b = nn.Linear(width, d_out)
        self.to_gate = nn.Linear(width, 1)
        nn.init.zeros_(self.to_b.weight)  # B = 0 at init: the generated LoRA starts as a no-op
        nn.init.zeros_(self.to_b.bias)
        nn.init.zeros_(self.to_a.weight)  # keys start as the module's own inputs
        nn.init.zeros_(self.to_a.bias)
        # copy prior: token t's piece may also write "say token t" (its unembedding row); 0 at init
        self.copy_scale = nn.Parameter(torch.zeros(()))

    def forward(
        self, z: torch.Tensor, mask: torch.Tensor, module_input: torch.Tensor, token_out: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.norm(z)
        gate = torch.sigmoid(self.to_gate(h).squeeze(-1)) * mask
        # unit-norm keys (as D2L L2-normalises its latents): a piece's response a.x is bounded by
        # ||x||, so the delta's scale is learned by B alone and cannot blow up through A
        # centre on the text's mean activation: MLP inputs share a large common component, and
        # uncentred keys match every question alike (the delta degenerates to a bag of values)
        x = module_input.float()
        m = mask.unsqueeze(-1)
        centred = x - (x * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1)
        key = F.normalize(centred, dim=-1) + self.to_a(h)
        value = self.to_b(h)
        if token_out is not None and token_out.shape[-1] == value.shape[-1]:
            value = value + self.copy_scale * token_out
        return F.normalize(key, dim=-1), value, gate


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
        layer = nn.TransformerEncoderLayer(
            w,
            config.mixer_heads,
            dim_feedforward=2 * w,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.mixer = nn.TransformerEncoder(layer, config.mixer_layers, enable_nested_tensor=False)
        # ModuleDict keys cannot contain "."; keep the mapping to the base's module names
        self._names = list(config.targets)
        self.heads = nn.ModuleDict(
            {self._key(n): _ModuleHead(w, d_in, d_out) for n, (d_in, d_out) in config.targets.items()}
        )

    @staticmethod
    def _key(name: str) -> str:
        return name.replace(".", "__")

    def forward(
        self,
        hidden_states: Sequence[torch.Tensor],
        attention_mask: torch.Tensor,
        module_inputs: Mapping[str, torch.Tensor],
        token_out: torch.Tensor | None = None,
    ) -> TokenPieces:
        """Per-token pieces for a batch of texts.

        hidden_states: ``n_states`` tensors [N, T, d] (as ``output_hidden_states`` gives them);
        module_inputs: each target module's input over the text [N, T, d_in]
        (``LoraInjector.capture_inputs`` records them during the same base pass);
        token_out: the unit-norm output-embedding row of each text token [N, T, d] (copy prior).
        """
        missing = set(self._names) - set(module_inputs)
        if missing:
            raise ValueError(f"module inputs missing for {sorted(missing)[:3]}")
        if len(hidden_states) != self.config.n_states:
            raise ValueError(f"expected {self.config.n_states} hidden states, got {len(hidden_states)}")
        n, t = attention_mask.shape
        if t > self.config.window:
            raise ValueError(f"{t} tokens exceed the encoder window of {self.config.window}; chunk first")
        states = torch.cat(
            [self.state_norm(h.float()) * wt for h, wt in zip(hidden_states, self.state_weight, strict=True)], dim=-1
        )
        mask = attention_mask.to(states.dtype)
        z = self.proj(states) + self.pos(torch.arange(t, device=states.device))
        z = self.mixer(z, src_key_padding_mask=~attention_mask.bool())
        a, b, g = {}, {}, {}
        for name in self._names:
            x_in = module_inputs[name][:, :t]
            a[name], b[name], g[name] = self.heads[self._key(name)](z, mask, x_in, token_out)
        return TokenPieces(a, b, g, mask)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()},
            str(directory / WEIGHTS_FILE),
            metadata={"format": "agenthn-hypernet"},
        )
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


def token_unembeddings(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Unit-norm output-embedding rows of ``input_ids`` [N, T, d]: what "say this token" writes."""
    weight = model.get_output_embeddings().weight  # [vocab, d]
    return F.normalize(weight[input_ids].float(), dim=-1)
