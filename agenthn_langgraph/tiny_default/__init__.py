"""The embedded default: a tiny Llama base + its hypernetwork, trained by ``agenthn train``.

Shipped inside the package under ``checkpoint/`` (``base/`` in Hugging Face format, ``hypernet/``
as safetensors + JSON, ``training.json`` recording how it was made) and loaded fully offline. It
registers itself as the model ``"tiny"`` (entry point ``agenthn_langgraph.models``); generic code
loads it by that name through :mod:`agenthn_langgraph.models.registry`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..models.registry import ModelSpec

if TYPE_CHECKING:
    from ..engine import WeightMemoryModel
    from .data import TinyLanguage

CHECKPOINT_DIR = Path(__file__).parent / "checkpoint"
VOCABULARY_NOTE = (
    "The tiny default understands only its little language (a few hundred lower-case words, see "
    'agenthn_langgraph/tiny_default/language.py); for English use model="smollm2" '
    '(LocalHypernetChatModel(model="smollm2"), load_default("smollm2")) or your own checkpoint '
    "(LocalHypernetChatModel.from_pretrained(...))."
)


def load_tiny(device: str | None = None) -> WeightMemoryModel:
    """A fresh engine over the shipped checkpoint (CPU unless ``device`` says otherwise)."""
    from ..engine import WeightMemoryModel
    from ..errors import CheckpointError

    if not (CHECKPOINT_DIR / "base").is_dir() or not (CHECKPOINT_DIR / "hypernet").is_dir():
        raise CheckpointError(
            f"the embedded default model is missing from {CHECKPOINT_DIR}; run `agenthn train --install`"
        )
    model = WeightMemoryModel.from_pretrained(
        CHECKPOINT_DIR / "base", CHECKPOINT_DIR / "hypernet", device=device or "cpu", name="agenthn-tiny-default"
    )
    model.vocabulary_note = VOCABULARY_NOTE
    return model


def tiny_language(engine: WeightMemoryModel) -> TinyLanguage:
    """The little language, limited to the attributes this checkpoint's tokenizer knows."""
    from .data import TinyLanguage
    from .language import known_attributes

    return TinyLanguage(known_attributes(engine.tokenizer.get_vocab()))


MODEL_SPEC = ModelSpec(
    name="tiny",
    load=load_tiny,
    description="the embedded 3M-parameter default: a little word-level language, CPU, offline",
    language=tiny_language,
    recall_judge="reader",
)


def load_default(*, device: str | None = None, fresh: bool = False) -> WeightMemoryModel:
    """The embedded tiny model, loaded once per process and device (``fresh=True`` reloads)."""
    from ..models.registry import load_default as load

    return load("tiny", device=device, fresh=fresh)


def training_record() -> dict[str, Any]:
    """How the shipped checkpoint was trained (commands, seconds, hardware, final metrics)."""
    path = CHECKPOINT_DIR / "training.json"
    return json.loads(path.read_text()) if path.exists() else {}
