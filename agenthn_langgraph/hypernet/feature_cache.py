"""A dataset's frozen-base features on disk, built once and read by every step of every epoch.

Training a hypernetwork reads the same texts and asks the same questions many times (a fixed pool
cycled for epochs), and the frozen base gives the same answer every time. So what the steps need
from it is computed once per dataset and stored as memory-mapped ``.npy`` arrays:

per text token
    ``text_states`` [tokens, n_read, d]: the hidden states the hypernetwork reads
    (``HypernetConfig.read_layers``), and ``text_sources`` [tokens, n_targets, d]: what each target
    module's input is computed from (the MLP's input for ``mlp.down_proj``: hidden-size wide, where
    the module's own input is 3-8x wider; the few rows a step keeps are recomputed from it).
per text
    ``text_means`` [texts, n_targets, d_in]: each target's mean input over the text (keys are
    centred on it).
per question
    ``q_kv`` [prompt tokens, layers from the first adapted one, 2, kv_heads, head_dim]: the
    student prompt's keys and values after the prefix all prompts share (the chat template's
    system turn: computed and stored once, ``prefix_kv``); ``q_hidden`` [answer tokens, d]: the
    hidden state entering the first adapted layer at each answer position; ``q_sources``
    [answer tokens, n_targets, d]: the target sources there (the plain base's activations that
    the keys learn to match).

Storage is fp16 (features are read back as fp32; a value outside fp16's range stops the build with
an error rather than being clipped). For SmolLM2-135M with 14 adapted layers and 5 read states a
text token takes 22 KB and a question's prompt token 11 KB; :func:`estimate_bytes` gives a
dataset's figure before the build starts, and ``--feature-cache-max-gb`` refuses a build above a bound.

A build is resumable: texts, then questions, are processed in a fixed order, and the manifest
records how far the build got after every flushed batch. A cache is tied to what it was built
from (base weights, data, layers, chat format); opening one for anything else raises
:class:`~agenthn_langgraph.errors.CheckpointError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import CheckpointError
from .batching import TokenizedExample, tokenize_example
from .features import _decoder_layers, first_adapted_layer

if TYPE_CHECKING:
    from ..data.qa import QAExample
    from ..engine import WeightMemoryModel
    from .config import HypernetConfig

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_SAVE_EVERY = 60.0  # seconds between a build's flushes of its progress
_FP16_MAX = 65504.0


@dataclass(frozen=True)
class CacheLayout:
    """What a cache holds: which states, for which targets, the student's stack from which layer."""

    read_layers: tuple[int, ...]
    targets: tuple[str, ...]
    first_layer: int
    n_layers: int
    hidden_size: int
    source_size: int  # width of a target's stored source (the MLP's input for down_proj)
    input_size: int  # width of a target's own input (d_in)
    kv_heads: int
    head_dim: int

    @property
    def top_layers(self) -> int:
        return self.n_layers - self.first_layer


def identity(model: WeightMemoryModel, config: HypernetConfig, examples: Sequence[QAExample]) -> dict[str, Any]:
    """Everything a cache's contents depend on: a different value means a different cache."""
    data = hashlib.sha256()
    for ex in examples:
        data.update(ex.model_dump_json().encode("utf-8"))
        data.update(b"\n")
    chat = config.chat
    return {
        "format": FORMAT_VERSION,
        "base_fingerprint": model.fingerprint,
        "tokenizer": type(model.tokenizer).__name__ + ":" + str(len(model.tokenizer)),
        "data_sha256": data.hexdigest(),
        "n_examples": len(examples),
        "read_layers": list(config.read_layers or range(config.n_states)),
        "targets": list(config.targets),
        "window": config.window,
        "chat": {"system": chat.system, "context": chat.context, "answer_prefix": chat.answer_prefix},
    }


def default_directory(root: str | os.PathLike[str], ident: dict[str, Any]) -> Path:
    """``root/<digest of the identity>``: one directory per distinct cache."""
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    return Path(root) / digest


def _layout(model: WeightMemoryModel, config: HypernetConfig) -> CacheLayout:
    base_cfg = model.base.config
    names = list(config.targets)
    shapes = {config.targets[n] for n in names}
    if len(shapes) != 1:
        raise CheckpointError(f"a feature cache needs targets of one shape; got {sorted(shapes)}")
    d_in = next(iter(shapes))[0]
    source_sizes = set()
    for n in names:
        module = model.injector.modules[n]
        parent = n.rpartition(".")[0]
        via_mlp = parent.rsplit(".", 1)[-1] == "mlp"
        source_sizes.add(base_cfg.hidden_size if via_mlp else module.in_features)
    if len(source_sizes) != 1:
        raise CheckpointError(f"a feature cache needs targets whose sources have one width; got {source_sizes}")
    heads = base_cfg.num_attention_heads
    return CacheLayout(
        read_layers=tuple(config.read_layers or range(config.n_states)),
        targets=tuple(names),
        first_layer=first_adapted_layer(names),
        n_layers=len(_decoder_layers(model.base.base_model)),
        hidden_size=base_cfg.hidden_size,
        source_size=source_sizes.pop(),
        input_size=d_in,
        kv_heads=getattr(base_cfg, "num_key_value_heads", None) or heads,
        head_dim=getattr(base_cfg, "head_dim", None) or base_cfg.hidden_size // heads,
    )


@dataclass
class QuestionFeatures:
    """A batch of questions' cached features, padded as the batch pads its prompts and chunks."""

    keys: list[torch.Tensor]  # per layer from the first adapted one: [Q, kv_heads, P, head_dim], left-padded
    values: list[torch.Tensor]
    chunk_hidden: torch.Tensor  # [Q, C, d], right-padded
    chunk_sources: torch.Tensor  # [Q, C, n_targets, d_src]


class FeatureCache:
    """Memory-mapped features of one dataset for one base and hypernetwork layout (module docstring)."""

    def __init__(self, directory: Path, manifest: dict[str, Any]) -> None:
        self.directory = directory
        self.manifest = manifest
        self.layout = CacheLayout(**{k: tuple(v) if isinstance(v, list) else v for k, v in manifest["layout"].items()})
        mode = "r"
        self._arrays = {
            name: np.load(directory / f"{name}.npy", mmap_mode=mode)
            for name in (
                "text_offsets",
                "text_states",
                "text_sources",
                "text_means",
                "q_offsets",
                "q_prompt",
                "prefix_kv",
                "q_chunk",
                "q_kv",
                "q_hidden",
                "q_sources",
            )  # fmt: skip
        }

    # ------------------------------------------------------------------------------ opening
    @classmethod
    def open(cls, directory: str | os.PathLike[str]) -> FeatureCache:
        directory = Path(directory)
        try:
            manifest = json.loads((directory / MANIFEST).read_text())
        except FileNotFoundError as e:
            raise CheckpointError(f"{directory}: no feature cache here ({MANIFEST} missing)") from e
        except (json.JSONDecodeError, OSError) as e:
            raise CheckpointError(f"{directory}: unreadable feature cache manifest ({e})") from e
        if manifest.get("identity", {}).get("format") != FORMAT_VERSION:
            raise CheckpointError(f"{directory}: a feature cache of another format; delete it to rebuild")
        if not manifest.get("complete"):
            raise CheckpointError(f"{directory}: the feature cache build did not finish; run the build again to resume")
        return cls(directory, manifest)

    def check_matches(self, model: WeightMemoryModel, config: HypernetConfig) -> None:
        """Raise :class:`CheckpointError` unless this cache was built for ``model`` and ``config``'s layout."""
        mine = self.manifest["identity"]
        if mine["base_fingerprint"] != model.fingerprint:
            raise CheckpointError(f"{self.directory}: feature cache built for another base model")
        want = _layout(model, config)
        if want != self.layout:
            raise CheckpointError(f"{self.directory}: feature cache built for another layout ({self.layout} != {want})")

    @classmethod
    def open_or_build(
        cls,
        model: WeightMemoryModel,
        config: HypernetConfig,
        examples: Sequence[QAExample],
        root: str | os.PathLike[str],
        *,
        max_bytes: int | None = None,
        batch_tokens: int = 4096,
        progress: bool = True,
    ) -> FeatureCache:
        """The cache of exactly this (base, data, layout) under ``root``, built or resumed if needed.

        Each distinct cache has its own directory ``root/<digest of what it was built from>``, so
        one root serves every dataset and layout.
        """
        ident = identity(model, config, examples)
        directory = default_directory(root, ident)
        manifest_path = directory / MANIFEST
        if manifest_path.exists():
            manifest = json.loads(manifest_path.read_text())
            if manifest.get("identity") != ident:
                raise CheckpointError(
                    f"{directory} holds a feature cache of other data, base or layout; pass another directory"
                )
            if manifest.get("complete"):
                return cls(directory, manifest)
        return _Builder(model, config, examples, directory, ident, batch_tokens, progress).run(max_bytes)

    # ------------------------------------------------------------------------------ reading
    @property
    def n_examples(self) -> int:
        return int(self.manifest["identity"]["n_examples"])

    def size_bytes(self) -> int:
        return sum(int(a.nbytes) for a in self._arrays.values())

    def fits(self, example: int) -> bool:
        offsets = self._arrays["text_offsets"]
        return bool(offsets[example + 1] > offsets[example])

    def texts(
        self, examples: Sequence[int], *, width: int, lengths: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(states [N, width, n_read, d] fp32, right-padded with zeros; each text's first token's
        row in ``text_sources`` [N]; means [N, n_targets, d_in]). ``lengths`` are the batch's own
        token counts, checked against the cache's (a cache of other data is caught here too)."""
        lay = self.layout
        offsets = self._arrays["text_offsets"]
        states = torch.zeros(len(examples), width, len(lay.read_layers), lay.hidden_size)
        starts = torch.empty(len(examples), dtype=torch.long)
        for r, ex in enumerate(examples):
            lo, hi = int(offsets[ex]), int(offsets[ex + 1])
            if hi - lo != lengths[r]:
                raise CheckpointError(
                    f"{self.directory}: example {ex} has {hi - lo} cached tokens, the batch has {lengths[r]}"
                )
            states[r, : hi - lo] = torch.from_numpy(np.array(self._arrays["text_states"][lo:hi]))
            starts[r] = lo
        means = torch.from_numpy(np.array(self._arrays["text_means"][list(examples)])).float()
        return states, starts, means

    def source_rows(self, rows: torch.Tensor, target: int) -> torch.Tensor:
        """Target ``target``'s stored sources at global token ``rows`` (any shape) -> [*rows.shape, d_src] fp32.

        Reads just those rows from the memory map: a step keeps a few tokens per text.
        """
        flat = rows.reshape(-1).cpu().numpy()
        out = torch.from_numpy(np.array(self._arrays["text_sources"][flat, target])).float()
        return out.reshape(*rows.shape, -1)

    def questions(
        self,
        keys: Sequence[tuple[int, int]],
        *,
        prompt_width: int,
        chunk_width: int,
        prompt_lengths: Sequence[int],
        chunk_lengths: Sequence[int],
    ) -> QuestionFeatures:
        """The questions ``(example, pair index)``' features, prompts left- and chunks right-padded."""
        lay = self.layout
        a = self._arrays
        n = len(keys)
        kv = torch.zeros(lay.top_layers, 2, n, lay.kv_heads, prompt_width, lay.head_dim)
        prefix = torch.from_numpy(np.array(a["prefix_kv"])).permute(1, 2, 3, 0, 4)  # [L, 2, kv, p, hd]
        p = prefix.shape[3]
        hidden = torch.zeros(n, chunk_width, lay.hidden_size)
        sources = torch.zeros(n, chunk_width, len(lay.targets), lay.source_size)
        for r, (ex, k) in enumerate(keys):
            q = int(a["q_offsets"][ex]) + k
            if k >= int(a["q_offsets"][ex + 1]) - int(a["q_offsets"][ex]):
                raise CheckpointError(f"{self.directory}: example {ex} has no question {k} in the cache")
            p_lo, p_hi = int(a["q_prompt"][q]), int(a["q_prompt"][q + 1])
            c_lo, c_hi = int(a["q_chunk"][q]), int(a["q_chunk"][q + 1])
            if p + p_hi - p_lo != prompt_lengths[r] or c_hi - c_lo != chunk_lengths[r]:
                raise CheckpointError(f"{self.directory}: question {ex}/{k} was cached with other prompt tokens")
            block = torch.from_numpy(np.array(a["q_kv"][p_lo:p_hi]))  # [P - p, L, 2, kv, hd]
            start = prompt_width - prompt_lengths[r]
            kv[:, :, r, :, start : start + p] = prefix
            kv[:, :, r, :, start + p :] = block.permute(1, 2, 3, 0, 4)
            hidden[r, : c_hi - c_lo] = torch.from_numpy(np.array(a["q_hidden"][c_lo:c_hi]))
            sources[r, : c_hi - c_lo] = torch.from_numpy(np.array(a["q_sources"][c_lo:c_hi]))
        return QuestionFeatures(
            keys=[kv[i, 0] for i in range(lay.top_layers)],
            values=[kv[i, 1] for i in range(lay.top_layers)],
            chunk_hidden=hidden,
            chunk_sources=sources,
        )

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.directory)!r}, {self.n_examples} examples, {self.size_bytes() / 2**30:.1f} GiB)"


# ---------------------------------------------------------------------------------------- building
def shared_prefix(prompts: Sequence[Sequence[int]]) -> list[int]:
    """The longest token prefix every prompt shares, short of each prompt's last two tokens (the
    prompt's last token starts the answer chunk, and each question keeps at least one token).

    >>> shared_prefix([[1, 2, 3, 4, 9], [1, 2, 3, 5, 6, 9]])
    [1, 2, 3]
    """
    if not prompts:
        return []
    limit = min(len(p) for p in prompts) - 2
    first = prompts[0]
    n = 0
    while n < limit and all(p[n] == first[n] for p in prompts):
        n += 1
    return list(first[:n])


def estimate_bytes(layout: CacheLayout, text_tokens: int, texts: int, prompt_tokens: int, chunk_tokens: int) -> int:
    """Bytes a cache of these counts takes on disk (fp16 features, fp32 means)."""
    lay = layout
    per_text_token = 2 * (len(lay.read_layers) * lay.hidden_size + len(lay.targets) * lay.source_size)
    per_prompt_token = 2 * lay.top_layers * 2 * lay.kv_heads * lay.head_dim
    per_chunk_token = 2 * (lay.hidden_size + len(lay.targets) * lay.source_size)
    means = 4 * texts * len(lay.targets) * lay.input_size
    return text_tokens * per_text_token + prompt_tokens * per_prompt_token + chunk_tokens * per_chunk_token + means


class _Builder:
    """Fills a cache directory: one pass of the frozen base over every text, then every question."""

    def __init__(
        self,
        model: WeightMemoryModel,
        config: HypernetConfig,
        examples: Sequence[QAExample],
        directory: Path,
        ident: dict[str, Any],
        batch_tokens: int,
        progress: bool,
    ) -> None:
        self.model = model
        self.config = config
        self.examples = examples
        self.directory = directory
        self.ident = ident
        self.batch_tokens = batch_tokens
        self.progress = progress
        self.layout = _layout(model, config)

    def _tokenize(self) -> list[TokenizedExample | None]:
        prompts = self.model.prompts
        out: list[TokenizedExample | None] = []
        for ex in tqdm(self.examples, desc="tokenizing", disable=not self.progress, leave=False):
            t = tokenize_example(ex, prompts)
            out.append(t if len(t.context) <= self.config.window else None)
        return out

    def run(self, max_bytes: int | None) -> FeatureCache:
        lay = self.layout
        tokenized = self._tokenize()
        text_len = np.array([0 if t is None else len(t.context) for t in tokenized], dtype=np.int64)
        n_q = np.array([0 if t is None else len(t.qa) for t in tokenized], dtype=np.int64)
        questions = [(i, k) for i, t in enumerate(tokenized) if t is not None for k in range(len(t.qa))]
        students = [tokenized[i].qa[k].student for i, k in questions]  # type: ignore[union-attr]
        self.prefix = shared_prefix(students)
        prompt_len = np.array([len(s) - 1 - len(self.prefix) for s in students], dtype=np.int64)
        chunk_len = np.array([len(tokenized[i].qa[k].answer) for i, k in questions], dtype=np.int64)  # type: ignore[union-attr]
        need = estimate_bytes(lay, int(text_len.sum()), len(tokenized), int(prompt_len.sum()), int(chunk_len.sum()))
        if max_bytes is not None and need > max_bytes:
            raise CheckpointError(
                f"the feature cache would take {need / 2**30:.1f} GiB, above the bound of {max_bytes / 2**30:.1f} GiB: "
                "use fewer examples, read layers or adapted layers, or raise the bound"
            )
        if self.progress:
            tqdm.write(
                f"feature cache {self.directory}: {need / 2**30:.1f} GiB for {int((text_len > 0).sum())} texts "
                f"({int(text_len.sum())} tokens) and {len(questions)} questions"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        manifest_path = self.directory / MANIFEST
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        fresh = manifest.get("identity") != self.ident
        if fresh:
            manifest = {"identity": self.ident, "layout": asdict(lay), "texts_done": 0, "questions_done": 0,
                        "complete": False, "bytes": need, "build_seconds": 0.0}  # fmt: skip
        offsets = {
            "text_offsets": np.concatenate([[0], np.cumsum(text_len)]),
            "q_offsets": np.concatenate([[0], np.cumsum(n_q)]),
            "q_prompt": np.concatenate([[0], np.cumsum(prompt_len)]),
            "q_chunk": np.concatenate([[0], np.cumsum(chunk_len)]),
        }
        for name, arr in offsets.items():
            np.save(self.directory / f"{name}.npy", arr)
        shapes = {
            "text_states": ((int(text_len.sum()), len(lay.read_layers), lay.hidden_size), np.float16),
            "text_sources": ((int(text_len.sum()), len(lay.targets), lay.source_size), np.float16),
            "text_means": ((len(tokenized), len(lay.targets), lay.input_size), np.float32),
            "q_kv": ((int(prompt_len.sum()), lay.top_layers, 2, lay.kv_heads, lay.head_dim), np.float16),
            "prefix_kv": ((len(self.prefix), lay.top_layers, 2, lay.kv_heads, lay.head_dim), np.float16),
            "q_hidden": ((int(chunk_len.sum()), lay.hidden_size), np.float16),
            "q_sources": ((int(chunk_len.sum()), len(lay.targets), lay.source_size), np.float16),
        }
        arrays = {}
        for name, (shape, dtype) in shapes.items():
            path = self.directory / f"{name}.npy"
            mode = "w+" if fresh or not path.exists() else "r+"
            arrays[name] = np.lib.format.open_memmap(path, mode=mode, dtype=dtype, shape=shape)
        t0 = time.time() - float(manifest["build_seconds"])
        last_save = [0.0]

        def save_progress(force: bool = False, **done: int) -> None:
            """Flush the arrays, then record how far the build got (a resumed build redoes at most
            the batches since). Every ``_SAVE_EVERY`` seconds: syncing many GB of mapped pages
            after every batch costs more than the batches."""
            if not force and time.time() - last_save[0] < _SAVE_EVERY:
                return
            last_save[0] = time.time()
            for arr in arrays.values():
                arr.flush()
            manifest.update(done, build_seconds=round(time.time() - t0, 1))
            tmp = manifest_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(manifest, indent=2))
            os.replace(tmp, manifest_path)

        save_progress(force=True)
        self.prefix_cache = self._prefix(arrays["prefix_kv"])
        # texts, longest first (fixed order, so a resumed build skips what it finished)
        text_order = [i for i in np.argsort(-text_len, kind="stable").tolist() if text_len[i] > 0]
        done = int(manifest["texts_done"])
        bar = tqdm(total=len(text_order), initial=done, desc="caching texts", disable=not self.progress)
        for batch in self._batches(text_order[done:], lambda i: int(text_len[i])):
            self._text_batch([tokenized[i] for i in batch], batch, offsets["text_offsets"], arrays)  # type: ignore[misc]
            done += len(batch)
            bar.update(len(batch))
            save_progress(texts_done=done)
        save_progress(force=True, texts_done=done)
        bar.close()
        seq_len = prompt_len + chunk_len
        q_order = np.argsort(-seq_len, kind="stable").tolist()
        done = int(manifest["questions_done"])
        bar = tqdm(total=len(q_order), initial=done, desc="caching questions", disable=not self.progress)
        for batch in self._batches(q_order[done:], lambda j: int(seq_len[j])):
            self._question_batch(batch, questions, tokenized, offsets, arrays)
            done += len(batch)
            bar.update(len(batch))
            save_progress(questions_done=done)
        bar.close()
        manifest["complete"] = True
        save_progress(force=True, questions_done=done)
        return FeatureCache(self.directory, manifest)

    @torch.no_grad()
    def _prefix(self, store: np.ndarray) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The shared prefix's keys and values in every layer [1, kv, p, hd] (stored from the first adapted one)."""
        if not self.prefix:
            return []
        model, lay = self.model, self.layout
        ids = torch.tensor([self.prefix], device=model.device)
        cache = model.base.base_model(input_ids=ids, use_cache=True).past_key_values
        kv = [(cache.layers[i].keys, cache.layers[i].values) for i in range(lay.n_layers)]
        top = torch.stack([torch.stack([k[0], v[0]]) for k, v in kv[lay.first_layer :]])  # [L, 2, kv, p, hd]
        store[:] = self._fp16(top.permute(3, 0, 1, 2, 4), "a key or value")
        return kv

    def _expand_prefix(self, n: int) -> Any:
        """A KV cache holding the shared prefix for a batch of ``n`` rows (None without a prefix)."""
        if not self.prefix_cache:
            return None
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.base.config)
        for layer, (k, v) in enumerate(self.prefix_cache):
            cache.update(k.expand(n, -1, -1, -1).contiguous(), v.expand(n, -1, -1, -1).contiguous(), layer)
        return cache

    def _batches(self, order: list[int], length: Any) -> list[list[int]]:
        """Consecutive groups of ``order`` of at most ``batch_tokens`` padded tokens each."""
        out: list[list[int]] = []
        for i in order:
            if out and len(out[-1]) + 1 <= max(1, self.batch_tokens // max(length(out[-1][0]), 1)):
                out[-1].append(i)
            else:
                out.append([i])
        return out

    @staticmethod
    def _fp16(x: torch.Tensor, what: str) -> np.ndarray:
        peak = float(x.abs().max()) if x.numel() else 0.0
        if not np.isfinite(peak) or peak >= _FP16_MAX:
            raise CheckpointError(f"{what} holds {peak:.3g}, outside fp16's range: this base cannot be cached in fp16")
        return x.to(torch.float16).cpu().numpy()

    @torch.no_grad()
    def _text_batch(
        self, toks: list[TokenizedExample], rows: list[int], offsets: np.ndarray, arrays: dict[str, np.ndarray]
    ) -> None:
        from ..engine import pad_sequences

        model, lay = self.model, self.layout
        pad = model.tokenizer.pad_token_id or 0
        ids, mask = pad_sequences([t.context for t in toks], pad, device=model.device)
        with model.recorder.recording(n_tokens=None):  # streaming: the targets' narrow sources
            out = model.base.base_model(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
            states = torch.stack([out.hidden_states[i] for i in lay.read_layers], 2)  # [B, T, n_read, d]
            sources = torch.stack([model.recorder.source(n) for n in lay.targets], 2)
            m = mask.unsqueeze(-1).float()
            means = torch.stack(
                [(model.recorder.get(n).float() * m).sum(1) / m.sum(1) for n in lay.targets], 1
            )  # [B, n_targets, d_in]
        model.recorder.clear()
        states_np = self._fp16(states, "a hidden state")
        sources_np = self._fp16(sources, "a module input")
        for b, i in enumerate(rows):
            lo, hi = int(offsets[i]), int(offsets[i + 1])
            arrays["text_states"][lo:hi] = states_np[b, : hi - lo]
            arrays["text_sources"][lo:hi] = sources_np[b, : hi - lo]
            arrays["text_means"][i] = means[b].cpu().numpy()

    @torch.no_grad()
    def _question_batch(
        self,
        batch: list[int],
        questions: list[tuple[int, int]],
        tokenized: list[TokenizedExample | None],
        offsets: dict[str, np.ndarray],
        arrays: dict[str, np.ndarray],
    ) -> None:
        from ..engine import pad_sequences

        model, lay = self.model, self.layout
        pad = model.tokenizer.pad_token_id or 0
        qas = [tokenized[questions[j][0]].qa[questions[j][1]] for j in batch]  # type: ignore[union-attr]
        # the student sequence as training cuts it: the prompt but its last token, then the chunk
        # (the prompt's last token and the answer but its last token), after the shared prefix
        p0 = len(self.prefix)
        ids, mask = pad_sequences([q.student[p0:] + q.answer[:-1] for q in qas], pad, device=model.device)
        n = ids.shape[0]
        past = self._expand_prefix(n)
        full_mask = torch.cat([mask.new_ones(n, p0), mask], 1)
        positions = p0 + torch.arange(ids.shape[1], device=ids.device).expand(n, -1)
        layers = _decoder_layers(model.base.base_model)
        entering: dict[str, torch.Tensor] = {}

        def grab(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            entering["h"] = args[0] if args else kwargs["hidden_states"]

        handle = layers[lay.first_layer].register_forward_pre_hook(grab, with_kwargs=True)
        try:
            with model.recorder.recording(n_tokens=None):
                out = model.base.base_model(
                    input_ids=ids,
                    attention_mask=full_mask,
                    position_ids=positions,
                    past_key_values=past,
                    use_cache=True,
                )
                sources = torch.stack([model.recorder.source(t) for t in lay.targets], 2)  # [B, S, n_t, d]
        finally:
            handle.remove()
            model.recorder.clear()
        cache = out.past_key_values
        kv = torch.stack(
            [
                torch.stack([cache.layers[i].keys[:, :, p0:], cache.layers[i].values[:, :, p0:]])
                for i in range(lay.first_layer, lay.n_layers)
            ]
        )  # [L, 2, B, kv, S, hd]: the tokens after the prefix
        kv_np = self._fp16(kv.permute(2, 4, 0, 1, 3, 5), "a key or value")  # [B, S, L, 2, kv, hd]
        hidden_np = self._fp16(entering["h"], "a hidden state")
        sources_np = self._fp16(sources, "a module input")
        for b, j in enumerate(batch):
            p = len(qas[b].student) - 1 - p0
            p_lo, p_hi = int(offsets["q_prompt"][j]), int(offsets["q_prompt"][j + 1])
            c_lo, c_hi = int(offsets["q_chunk"][j]), int(offsets["q_chunk"][j + 1])
            arrays["q_kv"][p_lo:p_hi] = kv_np[b, :p]
            arrays["q_hidden"][c_lo:c_hi] = hidden_np[b, p : p + c_hi - c_lo]
            arrays["q_sources"][c_lo:c_hi] = sources_np[b, p : p + c_hi - c_lo]
