"""The hypernetwork: text -> LoRA weights in one forward pass (Doc-to-LoRA style).

Like D2L it reads the frozen base model's per-layer hidden states over the text and emits ``A``
and ``B`` for the chosen target modules of every layer, zero at initialisation. Unlike D2L's
Perceiver (whose latent slots must learn *which key goes with which value*: a first small try got
stuck having learned which values occur, not what they belong to), the generator is laid out as
an associative memory:

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
3. the selected tokens' pieces become the adapter: ``A = [a_t]``, ``B = [b_t]``. ``gated``
   selection (the default) keeps every piece whose gate passes a threshold, so the rank grows with
   the facts a text holds (a fixed top-r capped an adapter at r values); ``top_r`` keeps the r
   highest-gated pieces (the first tiny default).

The gate only *ranks* tokens. It never scales a piece: its value enters the delta through a
straight-through factor that is exactly 1 forward and ``d/dg`` backward, so a gate learns "more of
this piece would help" without being able to switch pieces off. (Multiplicative sigmoid gates
collapse to zero in the first steps, when every piece is still noise, and never recover.)

A piece never mixes two tokens, so a value cannot be bound to the wrong key by the layout itself.
Training (``hypernet/train.py``) uses the soft all-token delta and the hard selected delta
together. At inference :meth:`Hypernetwork.generate` streams the target modules one at a time and
builds pieces for the selected tokens only, so its memory grows with the text and the adapter,
not with every layer's input width times the text length.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import CheckpointError
from .config import HypernetConfig

CONFIG_FILE = "hypernet_config.json"
WEIGHTS_FILE = "hypernet.safetensors"
Pieces = dict[str, tuple[torch.Tensor, torch.Tensor]]
"""Per module: (A [N, R, d_in], B [N, d_out, R]) for a batch of N texts."""


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

    def gated(self, threshold: float, min_rank: int, max_rank: int | None = None) -> tuple[Pieces, torch.Tensor]:
        """Adaptive selection: per text, as many pieces as any module gates at ``threshold`` or above.

        Returns the pieces (padded to the batch's largest rank with zero pieces) and each text's
        rank [N]. One rank per text for all modules: each module keeps its own best pieces.
        """
        ranks = adaptive_ranks(list(self.gate.values()), self.mask, threshold, min_rank, max_rank)
        k = int(ranks.max())
        out = {}
        for name, gate in self.gate.items():
            g, idx = gate.topk(k, dim=1)
            valid = torch.gather(self.mask, 1, idx) * (torch.arange(k, device=idx.device) < ranks[:, None])
            keep = valid * _straight_through(g)
            a = torch.gather(self.a[name], 1, idx.unsqueeze(-1).expand(-1, -1, self.a[name].shape[-1]))
            b = torch.gather(self.b[name], 1, idx.unsqueeze(-1).expand(-1, -1, self.b[name].shape[-1]))
            out[name] = (a * keep.unsqueeze(-1), (b * valid.unsqueeze(-1)).transpose(1, 2))
        return out, ranks

    def select(self, config: HypernetConfig) -> Pieces:
        """The pieces the product ships, by the checkpoint's selection rule."""
        if config.selection == "top_r":
            return self.top_r(config.rank)
        return self.gated(config.gate_threshold, config.rank, config.max_rank)[0]

    def soft(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Every token's piece (training only): (A [N, T, d_in], B [N, d_out, T])."""
        out = {}
        for n, gate in self.gate.items():
            keep = self.mask * _straight_through(gate)
            out[n] = (self.a[n] * keep.unsqueeze(-1), self.b[n].transpose(1, 2))
        return out


def adaptive_ranks(
    gates: Sequence[torch.Tensor], mask: torch.Tensor, threshold: float, min_rank: int, max_rank: int | None
) -> torch.Tensor:
    """Rank per text [N]: the most pieces any module gates at ``threshold`` or above, clamped.

    Never more than the text's tokens; never fewer than ``min_rank`` (or the text's tokens).
    """
    n_tokens = mask.sum(1).long()
    counts = torch.stack([((g >= threshold) & mask.bool()).sum(1) for g in gates]).amax(0)
    ranks = counts.clamp(min=min_rank)
    if max_rank is not None:
        ranks = ranks.clamp(max=max_rank)
    return torch.minimum(ranks, n_tokens).clamp(min=1)


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

    def gate(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[N, T] in (0, 1), 0 on padding: how much this token's piece is wanted."""
        return torch.sigmoid(self.to_gate(self.norm(z)).squeeze(-1)) * mask

    def piece(
        self, z: torch.Tensor, centred_input: torch.Tensor, token_out: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(key [.., d_in], value [.., d_out]) for tokens whose features are ``z``.

        The key is the module's own input at the token, centred on the text's mean (MLP inputs
        share a large common component, and uncentred keys match every question alike), unit-norm
        (as D2L L2-normalises its latents: a piece's response a.x is bounded by ||x||, so the
        delta's scale is learned by B alone), plus a learned correction.
        """
        h = self.norm(z)
        key = F.normalize(centred_input.float(), dim=-1) + self.to_a(h)
        value = self.to_b(h)
        if token_out is not None and token_out.shape[-1] == value.shape[-1]:
            value = value + self.copy_scale * token_out
        return F.normalize(key, dim=-1), value


class ModuleInputs:
    """Each target module's input over a batch of texts, as the pieces' keys need it.

    A key is the module's input at a kept token, centred on the text's mean input
    (:meth:`centred`). This default computes both from the whole input [N, T, d_in] that
    ``full(name)`` gives (a recorder of the base pass); a feature cache overrides :meth:`centred`
    to recompute the kept rows only, with the mean it stored.
    """

    def __init__(self, full: Callable[[str], torch.Tensor], mask: torch.Tensor) -> None:
        self.full = full
        self.mask = mask

    def centred(self, name: str, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx`` [N, K] of module ``name``'s input minus each text's mean input -> [N, K, d_in]."""
        x = self.full(name)[:, : self.mask.shape[1]].float()
        return _gather(x, idx) - _masked_mean(x, self.mask)


def _distinct_rows(
    idx: torch.Tensor, ranks: torch.Tensor, also_at: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per text, the distinct positions of its kept pieces (the first ``ranks[n]`` of ``idx``) and
    of ``also_at`` (negative: none), padded with position 0: (rows [N, U], where each of ``idx``'s
    slots is in ``rows`` [N, k], where each of ``also_at``'s is [N, V]). Slots that are not kept
    (or negative) point at column 0; callers mask them out.
    """
    n, k = idx.shape
    v = 0 if also_at is None else also_at.shape[1]
    at_kept = torch.zeros(n, k, dtype=torch.long, device=idx.device)
    at_also = torch.zeros(n, v, dtype=torch.long, device=idx.device)
    distinct = []
    for r in range(n):
        kept = idx[r, : int(ranks[r])]
        asked = also_at[r][also_at[r] >= 0] if also_at is not None else kept[:0]
        rows, where = torch.unique(torch.cat([kept, asked]), return_inverse=True)
        distinct.append(rows)
        at_kept[r, : len(kept)] = where[: len(kept)]
        if also_at is not None:
            at_also[r, also_at[r] >= 0] = where[len(kept) :]
    width = max(len(d) for d in distinct)
    rows = torch.zeros(n, width, dtype=torch.long, device=idx.device)
    for r, d in enumerate(distinct):
        rows[r, : len(d)] = d
    return rows, at_kept, at_also


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` [N, K] of ``x`` [N, T, d] -> [N, K, d]."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1)


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

    def encode(self, hidden_states: Sequence[torch.Tensor], attention_mask: torch.Tensor) -> torch.Tensor:
        """Per-token features [N, T, width]: the states it reads, projected, then mixed across tokens.

        ``hidden_states``: every state of a base pass, or the ``n_states`` it reads (``config.read_layers``).
        """
        hidden_states = self.config.read_states(hidden_states)
        t = attention_mask.shape[1]
        if t > self.config.window:
            raise ValueError(f"{t} tokens exceed the encoder window of {self.config.window}; chunk first")
        # proj(cat_i(norm(h_i) * w_i)), computed state by state: sum_i w_i * (norm(h_i) @ W_i^T) + b.
        # Same weights and result; the per-state scale then needs no gradient through the wide
        # concatenated input (the frozen states have none), which was most of the projection's backward.
        first, d = self.proj[0], self.config.base_hidden_size
        z = first.bias
        for i, (h, wt) in enumerate(zip(hidden_states, self.state_weight, strict=True)):
            z = z + wt * F.linear(self.state_norm(h.float()), first.weight[:, i * d : (i + 1) * d])
        z = self.proj[2](self.proj[1](z)) + self.pos(torch.arange(t, device=z.device))
        return self.mixer(z, src_key_padding_mask=~attention_mask.bool())

    def forward(
        self,
        hidden_states: Sequence[torch.Tensor],
        attention_mask: torch.Tensor,
        module_inputs: Mapping[str, torch.Tensor],
        token_out: torch.Tensor | None = None,
    ) -> TokenPieces:
        """Every token's piece for a batch of texts (training: all of them carry gradients).

        hidden_states: ``n_states`` tensors [N, T, d] (as ``output_hidden_states`` gives them);
        module_inputs: each target module's input over the text [N, T, d_in]
        (``LoraInjector.capture_inputs`` records them during the same base pass);
        token_out: the unit-norm output-embedding row of each text token [N, T, d] (copy prior).
        """
        missing = set(self._names) - set(module_inputs)
        if missing:
            raise ValueError(f"module inputs missing for {sorted(missing)[:3]}")
        z = self.encode(hidden_states, attention_mask)
        mask = attention_mask.to(z.dtype)
        t = mask.shape[1]
        a, b, g = {}, {}, {}
        for name in self._names:
            head = self.heads[self._key(name)]
            x = module_inputs[name][:, :t].float()
            g[name] = head.gate(z, mask)
            a[name], b[name] = head.piece(z, x - _masked_mean(x, mask), token_out)
        return TokenPieces(a, b, g, mask)

    @torch.no_grad()
    def token_gates(self, hidden_states: Sequence[torch.Tensor], attention_mask: torch.Tensor) -> torch.Tensor:
        """Each token's gate [N, T], the largest over the target modules (0 on padding).

        Training teaches the gate to fire on the tokens of the values a text states (the answer
        spans), so it doubles as a detector of what a text states: weight memory indexes the
        messages it fires on and treats a message that states a value as news, not a question.
        """
        z = self.encode(hidden_states, attention_mask)
        mask = attention_mask.to(z.dtype)
        return torch.stack([self.heads[self._key(n)].gate(z, mask) for n in self._names]).amax(0)

    def gates(self, z: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Each target module's gate per token [N, T] for features ``z`` (:meth:`encode`)."""
        return [self.heads[self._key(n)].gate(z, mask) for n in self._names]

    def select_pieces(
        self,
        z: torch.Tensor,
        mask: torch.Tensor,
        module_input: Callable[[str], torch.Tensor] | ModuleInputs,
        token_out: torch.Tensor | None = None,
        *,
        also_at: torch.Tensor | None = None,
    ) -> tuple[Pieces, torch.Tensor, dict[str, torch.Tensor]]:
        """The adapters the checkpoint's selection rule keeps, computed for the kept tokens only.

        Returns (pieces, rank per text [N], keys at ``also_at``). Streams the target modules:
        ``module_input(name)`` gives one module's input [N, T, d_in] at a time, reduced to its mean
        and its selected rows before the next is asked for (or a :class:`ModuleInputs` gives the
        centred rows directly). Differentiable (training's hard
        adapters come from here too): a kept piece's key carries its gate's straight-through factor.
        ``also_at`` [N, V] (optional): more positions whose keys are returned per module (training
        asks for the answer spans' keys); negative entries give zero keys.
        """
        mask = mask.to(z.dtype)
        inputs = module_input if isinstance(module_input, ModuleInputs) else ModuleInputs(module_input, mask)
        heads = [self.heads[self._key(n)] for n in self._names]
        gates = self.gates(z, mask)
        cfg = self.config
        if cfg.selection == "top_r":
            ranks = torch.minimum(mask.sum(1).long(), torch.tensor(cfg.rank)).clamp(min=1)
            k = min(cfg.rank, mask.shape[1])
        else:
            ranks = adaptive_ranks(gates, mask, cfg.gate_threshold, cfg.rank, cfg.max_rank)
            k = int(ranks.max())
        out: Pieces = {}
        extra: dict[str, torch.Tensor] = {}
        for name, head, gate in zip(self._names, heads, gates, strict=True):
            g, idx = gate.topk(k, dim=1)  # [N, k]
            valid = torch.gather(mask, 1, idx) * (torch.arange(k, device=idx.device) < ranks[:, None])
            # each position a piece or a key is asked at, once: the kept pieces and ``also_at``
            # overlap (gates learn to keep the answer spans), and a row costs a module-input
            # recomputation and two head projections
            rows, at_kept, at_also = _distinct_rows(idx, ranks, also_at)
            centred = inputs.centred(name, rows)
            key, value = head.piece(_gather(z, rows), centred, None if token_out is None else _gather(token_out, rows))
            if also_at is not None:
                extra[name] = _gather(key, at_also) * (also_at >= 0).unsqueeze(-1)
            key, value = _gather(key, at_kept), _gather(value, at_kept)
            keep = valid * _straight_through(g)
            out[name] = (key * keep.unsqueeze(-1), (value * valid.unsqueeze(-1)).transpose(1, 2))
        return out, ranks, extra

    @torch.no_grad()
    def generate(
        self,
        hidden_states: Sequence[torch.Tensor],
        attention_mask: torch.Tensor,
        module_input: Callable[[str], torch.Tensor] | ModuleInputs,
        token_out: torch.Tensor | None = None,
    ) -> tuple[Pieces, torch.Tensor]:
        """The shipped adapters for a batch of texts: (pieces, rank per text [N]).

        Keys and values are computed for selected tokens only (:meth:`select_pieces`), so memory
        grows with the text and the adapter, not with every layer's input width times the text.
        """
        z = self.encode(hidden_states, attention_mask)
        pieces, ranks, _ = self.select_pieces(z, attention_mask, module_input, token_out)
        return pieces, ranks

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path, *, dtype: torch.dtype | None = None) -> Path:
        """Write the checkpoint (safetensors + JSON); ``dtype=torch.bfloat16`` halves a shipped one."""
        state = self.state_dict()
        if dtype is not None:
            state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        return write_checkpoint(directory, self.config, state)

    @classmethod
    def load(cls, directory: str | Path, *, map_location: str | torch.device = "cpu") -> Hypernetwork:
        """Load a checkpoint directory; a config of kind ``d2l`` loads a :class:`~.d2l.D2LHypernetwork`."""
        directory = Path(directory)
        config, state = read_checkpoint(directory, map_location=map_location)
        if config.kind == "d2l":  # Sakana AI's architecture: same files, another module
            from .d2l import D2LHypernetwork

            return D2LHypernetwork.from_config_and_state(config, state, str(directory)).to(map_location)  # type: ignore[return-value]
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


def write_checkpoint(directory: str | Path, config: HypernetConfig, state: dict[str, torch.Tensor]) -> Path:
    """The checkpoint format every hypernetwork kind shares: safetensors weights + JSON config."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in state.items()},
        str(directory / WEIGHTS_FILE),
        metadata={"format": "agenthn-hypernet", "kind": config.kind},
    )
    (directory / CONFIG_FILE).write_text(config.to_json())
    return directory


def read_checkpoint(
    directory: str | Path, *, map_location: str | torch.device = "cpu"
) -> tuple[HypernetConfig, dict[str, torch.Tensor]]:
    """Config and weights of a checkpoint directory, any kind; a typed error when missing or corrupt."""
    directory = Path(directory)
    try:
        config = HypernetConfig.from_json((directory / CONFIG_FILE).read_text())
        state = load_file(str(directory / WEIGHTS_FILE), device=str(map_location))
    except FileNotFoundError as e:
        raise CheckpointError(f"{directory}: not a hypernetwork checkpoint ({e.filename} missing)") from e
    except (SafetensorError, ValueError, TypeError, KeyError, OSError) as e:
        raise CheckpointError(f"{directory}: corrupt hypernetwork checkpoint ({e})") from e
    return config, state
