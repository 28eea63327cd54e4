"""The embedded default: a tiny Llama base + its hypernetwork, trained by ``agenthn train``.

Shipped inside the package under ``checkpoint/`` (``base/`` in Hugging Face format, ``hypernet/``
as safetensors + JSON, ``training.json`` recording how it was made) and loaded fully offline.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..engine import WeightMemoryModel

CHECKPOINT_DIR = Path(__file__).parent / "checkpoint"
_lock = threading.Lock()
_cached: dict[str, WeightMemoryModel] = {}


def load_default(*, device: str | None = "cpu", fresh: bool = False) -> WeightMemoryModel:
    """The embedded tiny model, loaded once per process and device (``fresh=True`` reloads).

    Sharing one instance is safe: adapters are injected per call, never globally.

    Example:
        >>> from agenthn_langgraph import load_default
        >>> model = load_default()
        >>> model.count_tokens("what pet do i have ?")
        9
    """
    from ..engine import WeightMemoryModel
    from ..errors import CheckpointError

    key = str(device)
    with _lock:
        if fresh or key not in _cached:
            if not (CHECKPOINT_DIR / "base").is_dir() or not (CHECKPOINT_DIR / "hypernet").is_dir():
                raise CheckpointError(
                    f"the embedded default model is missing from {CHECKPOINT_DIR}; run `agenthn train --install`"
                )
            model = WeightMemoryModel.from_pretrained(
                CHECKPOINT_DIR / "base", CHECKPOINT_DIR / "hypernet", device=device, name="agenthn-tiny-default"
            )
            # its hypernetwork was trained on the first answer token only (see WeightMemoryModel.stream)
            model.default_adapter_tokens = 1
            _cached[key] = model
        return _cached[key]


def training_record() -> dict[str, Any]:
    """How the shipped checkpoint was trained (commands, seconds, hardware, final metrics)."""
    path = CHECKPOINT_DIR / "training.json"
    return json.loads(path.read_text()) if path.exists() else {}
