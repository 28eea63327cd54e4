"""Named models: ``load_default("tiny")``, a registered name, or a local checkpoint directory.

A model is a :class:`ModelSpec`: how to load its engine (base + tokenizer + hypernetwork) and, if
it has one, the :class:`~agenthn_langgraph.data.language.Language` its benchmarks and demos speak.
Built-in and third-party models register through the ``agenthn_langgraph.models`` entry-point
group (each entry point names a ``ModelSpec``), or at run time with :func:`register_model`, so
generic code asks for a model by name and never imports one.

A directory path works too: ``DIR/base`` (a Hugging Face causal LM) and ``DIR/hypernet`` (our
hypernetwork checkpoint).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._cache import LRUCache
from ..errors import ModelNotFoundError

if TYPE_CHECKING:
    from ..data.language import Language
    from ..engine import WeightMemoryModel

ENTRY_POINT_GROUP = "agenthn_langgraph.models"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    load: Callable[..., WeightMemoryModel]
    """``load(device=...)`` -> a fresh engine."""
    description: str = ""
    language: Callable[[WeightMemoryModel], Language] | None = None
    """The language of its generated benchmark data, given the loaded engine."""
    recall_judge: str = "similarity"
    """How weight memory judges which stored statement answers a question
    (:class:`~agenthn_langgraph.memory.SegmentRetriever`'s ``judge``): ``"reader"`` where the base
    reads a statement in its prompt well enough to score its value (the tiny default), else
    ``"similarity"`` (SmolLM2-135M's reader picks the right statement for 17% of questions, the
    sentence embedding for 92%: docs/memory-benchmark.md)."""


_specs: dict[str, ModelSpec] = {}
# Bounded: a process that loads many directories keeps only the most recently used engines
# (an evicted engine lives on in whoever still holds it).
_engines: LRUCache[tuple[str, str], WeightMemoryModel] = LRUCache()
_lock = threading.Lock()
_discovered = False


def register_model(spec: ModelSpec, *, replace: bool = False) -> None:
    """Make ``spec`` loadable by name (``replace=True`` to override an existing one)."""
    with _lock:
        _discover()
        if spec.name in _specs and not replace:
            raise ValueError(f"a model named {spec.name!r} is already registered")
        _specs[spec.name] = spec


def available_models() -> list[str]:
    with _lock:
        _discover()
        return sorted(_specs)


def get_model_spec(name: str) -> ModelSpec:
    with _lock:
        _discover()
        if name not in _specs:
            raise ModelNotFoundError(f"no model named {name!r}; registered: {sorted(_specs)}, or pass a directory")
        return _specs[name]


def load_default(name: str = "tiny", *, device: str | None = None, fresh: bool = False) -> WeightMemoryModel:
    """A registered model (or a checkpoint directory), loaded once per process and device.

    Sharing one engine is safe: adapters are injected per call, never globally. Loaded engines
    are cached in a bounded LRU (``_engines.maxsize``, default 4); ``fresh=True`` reloads.

    Example:
        >>> from agenthn_langgraph import load_default
        >>> model = load_default()
        >>> model.count_tokens("what pet do i have ?")
        9
    """
    key = (str(name), str(device))
    cached = _engines.get(key)
    if cached is not None and not cached.closed and not fresh:
        return cached
    spec = _spec_for_path(Path(name)) if _looks_like_path(name) else get_model_spec(name)
    engine = spec.load(device=device)
    if spec.language is not None and getattr(engine, "language", None) is None:
        engine.language = spec.language(engine)
    if getattr(engine, "recall_judge", None) is None:  # an engine shared by two specs keeps its first
        engine.recall_judge = spec.recall_judge
    with _lock:
        cached = _engines.get(key)
        if fresh or cached is None or cached.closed:
            return _engines.put(key, engine)
        return cached


def language_of(engine: WeightMemoryModel) -> Language:
    """The language a loaded engine's benchmarks speak (set by its registry entry)."""
    lang = getattr(engine, "language", None)
    if lang is None:
        raise ValueError(
            f"{engine.name} has no registered language for generated benchmarks; pass --data FILE.jsonl instead"
        )
    return lang


def _looks_like_path(name: str) -> bool:
    return "/" in name or "\\" in name or name.startswith(".") or Path(name).is_dir()


def _spec_for_path(path: Path) -> ModelSpec:
    if not (path / "base").is_dir() or not (path / "hypernet").is_dir():
        raise ModelNotFoundError(f"{path} is not a model directory (expected {path}/base and {path}/hypernet)")

    def load(device: str | None = None) -> WeightMemoryModel:
        from ..engine import WeightMemoryModel

        return WeightMemoryModel.from_pretrained(path / "base", path / "hypernet", device=device, name=str(path))

    return ModelSpec(name=str(path), load=load, description=f"checkpoint directory {path}")


def _discover() -> None:
    """Load the entry points once (callers hold ``_lock``)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec: Any = ep.load()
        except Exception as e:  # a broken third-party plugin must not break the others
            import warnings

            warnings.warn(f"model entry point {ep.name!r} failed to load: {e}", stacklevel=3)
            continue
        spec = spec() if callable(spec) and not isinstance(spec, ModelSpec) else spec
        if isinstance(spec, ModelSpec):
            _specs.setdefault(spec.name, spec)
