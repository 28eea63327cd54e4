"""``LoraAdapter``: a generated LoRA as a plain value (tensors + metadata), saved as safetensors + JSON.

Per target module (its full name in the base, e.g. ``model.layers.0.mlp.down_proj``) an adapter
holds ``A [r, d_in]`` and ``B [d_out, r]``; the module's output becomes
``y + scaling * (x @ A.T) @ B.T``. Adapters compose by rank concatenation.

On disk an adapter is a directory (like peft's)::

    my_adapter/
      adapter.json          # format tag, metadata, module list with shapes, sha256 of the weights file
      adapter.safetensors   # "<module>.lora_A", "<module>.lora_B"

Loading never unpickles: JSON is parsed and tensors are read by safetensors, then every shape,
dtype and value is checked before an adapter object exists.

Integrity: shape, finiteness and norm checks cannot see a flipped mantissa bit (the adapter stays
plausible and silently answers differently), so format version 2 records the sha256 of the exact
``adapter.safetensors`` bytes in ``adapter.json`` and :meth:`LoraAdapter.load` refuses any file
whose bytes no longer hash to it. Version-1 files (written before checksums existed) still load,
with every other check, but unverified (``file_sha256`` is None); ``require_checksum=True`` refuses
them, and saving an adapter again writes version 2.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from ..errors import AdapterFormatError, AdapterMismatchError, AdapterNormError

FORMAT = "agenthn-lora"
FORMAT_VERSION = 2
"""Version 2 adds ``sha256`` (of ``adapter.safetensors``); version 1 files load unverified."""
READABLE_VERSIONS = frozenset({1, 2})
WEIGHTS_FILE = "adapter.safetensors"
CONFIG_FILE = "adapter.json"
# Largest ||scaling * B @ A||_F accepted from any file or generator. The relative check against
# the base weights (see ``check_against_base``) is the tighter one; this catches garbage early.
MAX_ABSOLUTE_DELTA_NORM = 1e4

AdapterKind = Literal["document", "segment", "profile", "skill", "notes", "composed"]


class AdapterMetadata(BaseModel):
    """What an adapter is and where it came from. Stored in ``adapter.json``."""

    model_config = ConfigDict(extra="forbid")

    base_fingerprint: str
    kind: AdapterKind = "document"
    source_sha256: str | None = None
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    n_chunks: int = Field(default=1, ge=0)
    hypernet: str | None = None
    extra: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class _ModuleEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rank: int = Field(ge=1)
    d_in: int = Field(ge=1)
    d_out: int = Field(ge=1)


class _AdapterFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal["agenthn-lora"]
    version: int
    scaling: float
    metadata: AdapterMetadata
    modules: dict[str, _ModuleEntry]
    # sha256 of adapter.safetensors; required from version 2 on, absent in version 1.
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def delta_norm(a: torch.Tensor, b: torch.Tensor, scaling: float = 1.0) -> float:
    """Exact ||scaling * B @ A||_F in O(r^2 (d_in + d_out)): trace((B^T B)(A A^T))."""
    a64, b64 = a.detach().double(), b.detach().double()
    sq = ((b64.T @ b64) * (a64 @ a64.T)).sum().clamp(min=0)
    return abs(scaling) * math.sqrt(float(sq))


class LoraAdapter:
    """A LoRA adapter for one base model: ``{module: (A [r, d_in], B [d_out, r])}`` plus metadata.

    Example:
        >>> import torch
        >>> from agenthn_langgraph.lora import LoraAdapter, AdapterMetadata
        >>> a = LoraAdapter({"m": (torch.randn(2, 8), torch.randn(4, 2))},
        ...                 metadata=AdapterMetadata(base_fingerprint="x"))
        >>> LoraAdapter.compose([a, a]).rank
        4
    """

    def __init__(
        self,
        weights: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
        *,
        metadata: AdapterMetadata,
        scaling: float = 1.0,
        validate: bool = True,
    ) -> None:
        self.weights: dict[str, tuple[torch.Tensor, torch.Tensor]] = {
            name: (a.detach(), b.detach()) for name, (a, b) in weights.items()
        }
        self.metadata = metadata
        self.scaling = float(scaling)
        self.file_sha256: str | None = None
        """The checksum this adapter's file was verified against by :meth:`load` (None when it was
        made in memory or read from an unverified version-1 file)."""
        if validate:
            self.validate()

    # ------------------------------------------------------------------ properties
    @property
    def rank(self) -> int:
        return max((a.shape[0] for a, _ in self.weights.values()), default=0)

    @property
    def parts(self) -> int:
        """How many adapters were composed into this one (1 for a generated adapter)."""
        n = (self.metadata.extra or {}).get("n_adapters", 1) if self.metadata.kind == "composed" else 1
        return n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else 1

    @property
    def target_modules(self) -> list[str]:
        return list(self.weights)

    @property
    def nbytes(self) -> int:
        return sum(a.numel() * a.element_size() + b.numel() * b.element_size() for a, b in self.weights.values())

    def delta_norms(self) -> dict[str, float]:
        return {name: delta_norm(a, b, self.scaling) for name, (a, b) in self.weights.items()}

    def __repr__(self) -> str:
        return (
            f"LoraAdapter(kind={self.metadata.kind!r}, rank={self.rank}, modules={len(self.weights)}, "
            f"n_chunks={self.metadata.n_chunks}, base={self.metadata.base_fingerprint[:12]})"
        )

    # ------------------------------------------------------------------ checks
    def validate(self, *, max_delta_norm: float = MAX_ABSOLUTE_DELTA_NORM) -> None:
        """Shapes consistent, floating point, finite, and the delta of sane size; else raise."""
        if not self.weights:
            raise AdapterFormatError("adapter has no target modules")
        if not math.isfinite(self.scaling):
            raise AdapterNormError(f"adapter scaling is not finite: {self.scaling}")
        for name, (a, b) in self.weights.items():
            if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
                raise AdapterFormatError(
                    f"{name}: expected A [r, d_in] and B [d_out, r], got {tuple(a.shape)} and {tuple(b.shape)}"
                )
            if not (a.is_floating_point() and b.is_floating_point()):
                raise AdapterFormatError(f"{name}: A and B must be floating point, got {a.dtype}, {b.dtype}")
            if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
                raise AdapterNormError(f"{name}: adapter holds NaN or Inf")
            norm = delta_norm(a, b, self.scaling)
            if not math.isfinite(norm) or norm > max_delta_norm:
                raise AdapterNormError(f"{name}: delta norm {norm:.3g} exceeds the limit {max_delta_norm:.3g}")

    def check_against_base(
        self,
        fingerprint: str,
        module_shapes: Mapping[str, tuple[int, int]],
        weight_norms: Mapping[str, float] | None = None,
        *,
        max_relative_norm: float = 100.0,
    ) -> None:
        """Refuse an adapter made for another base, for modules it lacks, or absurdly large.

        "Absurdly large" is ``max_relative_norm`` times the base weight's norm per part: a composed
        adapter of ``n`` parts (``extra["n_adapters"]``, never counted above its rank, since every
        part brings at least one rank) may reach ``n`` times that, the most ``n`` legitimate parts
        can sum to. So composing every segment of a long thread is allowed, while a single absurd
        adapter, or a composite claiming parts it does not have, is still refused.
        """
        parts = max(1, min(self.parts, self.rank))
        max_relative_norm *= parts
        if self.metadata.base_fingerprint != fingerprint:
            raise AdapterMismatchError(
                f"adapter was made for base model {self.metadata.base_fingerprint[:16]}..., "
                f"this model is {fingerprint[:16]}..."
            )
        for name, (a, b) in self.weights.items():
            if name not in module_shapes:
                raise AdapterMismatchError(f"adapter targets {name!r}, which this model does not adapt")
            d_in, d_out = module_shapes[name]
            if a.shape[1] != d_in or b.shape[0] != d_out:
                raise AdapterMismatchError(
                    f"{name}: adapter is {a.shape[1]}->{b.shape[0]}, the module is {d_in}->{d_out}"
                )
            if weight_norms and name in weight_norms:
                rel = delta_norm(a, b, self.scaling) / max(weight_norms[name], 1e-12)
                if rel > max_relative_norm:
                    raise AdapterNormError(
                        f"{name}: delta is {rel:.1f}x the base weight's norm (limit {max_relative_norm:g}x"
                        + (f" for {parts} composed parts)" if parts > 1 else ")")
                    )

    # ------------------------------------------------------------------ algebra
    @classmethod
    def compose(cls, adapters: Sequence[LoraAdapter], weights: Sequence[float] | None = None) -> LoraAdapter:
        """Rank-concatenate adapters: the result's delta is ``sum_i w_i * delta_i``.

        Each adapter's scaling and weight are folded into its B block, so the composite has
        scaling 1 and rank ``sum_i r_i``. All adapters must belong to the same base model.
        """
        if not adapters:
            raise ValueError("compose() needs at least one adapter")
        if not all(isinstance(a, LoraAdapter) for a in adapters):
            raise TypeError("compose() takes LoraAdapter objects")
        weights = [1.0] * len(adapters) if weights is None else [float(w) for w in weights]
        if len(weights) != len(adapters):
            raise ValueError(f"got {len(weights)} weights for {len(adapters)} adapters")
        fingerprints = {a.metadata.base_fingerprint for a in adapters}
        if len(fingerprints) != 1:
            raise AdapterMismatchError("cannot compose adapters made for different base models")
        names: list[str] = []
        for a in adapters:
            names += [n for n in a.weights if n not in names]
        out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name in names:
            parts = [
                (ad.weights[name], ad.scaling * w)
                for ad, w in zip(adapters, weights, strict=True)
                if name in ad.weights
            ]
            out[name] = (torch.cat([a for (a, _), _ in parts], 0), torch.cat([b * s for (_, b), s in parts], 1))
        meta = AdapterMetadata(
            base_fingerprint=fingerprints.pop(),
            kind="composed",
            source_sha256=text_sha256("".join(a.metadata.source_sha256 or "" for a in adapters)),
            n_chunks=sum(a.metadata.n_chunks for a in adapters),
            hypernet=adapters[0].metadata.hypernet,
            extra={"n_adapters": sum(a.parts for a in adapters)},
        )
        return cls(out, metadata=meta, scaling=1.0)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> LoraAdapter:
        moved = {
            n: (a.to(device=device, dtype=dtype), b.to(device=device, dtype=dtype))
            for n, (a, b) in self.weights.items()
        }
        return LoraAdapter(moved, metadata=self.metadata, scaling=self.scaling, validate=False)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``adapter.safetensors`` then ``adapter.json`` (the JSON last: it marks completion).

        The JSON records the sha256 of the exact weights bytes written, so :meth:`load` notices any
        later change to them (format version 2).
        """
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, torch.Tensor] = {}
        for name, (a, b) in self.weights.items():
            tensors[f"{name}.lora_A"] = a.detach().to("cpu").contiguous()
            tensors[f"{name}.lora_B"] = b.detach().to("cpu").contiguous()
        # Serialise once and hash those very bytes: hashing a re-read could bless a bad write.
        data = save_safetensors(tensors, metadata={"format": FORMAT})
        header = _AdapterFile(
            format=FORMAT,
            version=FORMAT_VERSION,
            scaling=self.scaling,
            metadata=self.metadata,
            modules={
                n: _ModuleEntry(rank=a.shape[0], d_in=a.shape[1], d_out=b.shape[0])
                for n, (a, b) in self.weights.items()
            },
            sha256=hashlib.sha256(data).hexdigest(),
        )
        _atomic_write(directory / WEIGHTS_FILE, lambda p: Path(p).write_bytes(data))
        _atomic_write(directory / CONFIG_FILE, lambda p: Path(p).write_text(header.model_dump_json(indent=2)))
        return directory

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        max_delta_norm: float = MAX_ABSOLUTE_DELTA_NORM,
        require_checksum: bool = False,
    ) -> LoraAdapter:
        """Read an adapter directory written by :meth:`save`; every failure is an AdapterFormatError.

        The weights file is read once; those bytes are hashed and compared with ``adapter.json``'s
        ``sha256`` before they are parsed, so a single flipped bit is refused rather than applied.
        A version-1 file has no checksum: it loads unverified (``file_sha256`` None) unless
        ``require_checksum`` is set, in which case it is refused too.
        """
        directory = Path(path)
        cfg_path, w_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        if not directory.is_dir():
            raise AdapterFormatError(f"{directory}: not an adapter directory")
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise AdapterFormatError(f"{directory}: missing {p.name}")
        try:
            header = _AdapterFile.model_validate_json(cfg_path.read_bytes())
        except ValidationError as e:
            raise AdapterFormatError(
                f"{cfg_path}: not an agenthn adapter config ({e.error_count()} problems: {e.errors()[0]['msg']})"
            ) from e
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise AdapterFormatError(f"{cfg_path}: not valid JSON") from e
        if header.version not in READABLE_VERSIONS:
            raise AdapterFormatError(
                f"{cfg_path}: format version {header.version}, expected one of {sorted(READABLE_VERSIONS)}"
            )
        if header.version >= 2 and header.sha256 is None:
            raise AdapterFormatError(f"{cfg_path}: version {header.version} file without its sha256 checksum")
        if header.sha256 is None and require_checksum:
            raise AdapterFormatError(
                f"{cfg_path}: version-1 file without a checksum, refused (require_checksum=True); "
                "load it with require_checksum=False and save it again to add one"
            )
        try:
            data = w_path.read_bytes()
        except OSError as e:
            raise AdapterFormatError(f"{w_path}: unreadable ({e})") from e
        if header.sha256 is not None and hashlib.sha256(data).hexdigest() != header.sha256:
            raise AdapterFormatError(
                f"{w_path}: checksum mismatch, the weights changed after they were written (corrupt file)"
            )
        try:
            tensors = load_safetensors(data)
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise AdapterFormatError(f"{w_path}: unreadable safetensors file ({e})") from e
        expected = {f"{n}.lora_{s}" for n in header.modules for s in "AB"}
        if set(tensors) != expected:
            raise AdapterFormatError(
                f"{w_path}: tensors do not match {CONFIG_FILE} "
                f"(missing {sorted(expected - set(tensors))[:3]}, unexpected {sorted(set(tensors) - expected)[:3]})"
            )
        weights: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name, entry in header.modules.items():
            a, b = tensors[f"{name}.lora_A"], tensors[f"{name}.lora_B"]
            if tuple(a.shape) != (entry.rank, entry.d_in) or tuple(b.shape) != (entry.d_out, entry.rank):
                raise AdapterFormatError(f"{name}: tensor shapes disagree with {CONFIG_FILE}")
            weights[name] = (a, b)
        adapter = cls(weights, metadata=header.metadata, scaling=header.scaling, validate=False)
        adapter.validate(max_delta_norm=max_delta_norm)
        adapter.file_sha256 = header.sha256
        return adapter

    @staticmethod
    def bytes_on_disk(path: str | os.PathLike[str]) -> int:
        return sum(p.stat().st_size for p in Path(path).iterdir() if p.is_file())

    def state_dict(self) -> dict[str, Any]:
        """Tensors keyed like the safetensors file (for callers that store adapters elsewhere)."""
        out: dict[str, Any] = {}
        for n, (a, b) in self.weights.items():
            out[f"{n}.lora_A"], out[f"{n}.lora_B"] = a, b
        return out


def _atomic_write(final: Path, write: Any) -> None:
    """Write to a temp file in the same directory, fsync, then rename over ``final``."""
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    write(str(tmp))
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
