"""Adapter storage: LoRA adapters on disk, indexed in Chroma by their source text, per namespace.

See :class:`AdapterStore` for the layout, crash-safety and namespace rules.
"""

from .adapter_store import (
    AdapterRecord,
    AdapterStore,
    Namespace,
    PurgeReport,
    ReconcileReport,
    make_preview,
    normalize_namespace,
)
from .embeddings import MiniLMEmbeddingFunction, get_sentence_transformer

__all__ = [
    "AdapterRecord",
    "AdapterStore",
    "MiniLMEmbeddingFunction",
    "Namespace",
    "PurgeReport",
    "ReconcileReport",
    "get_sentence_transformer",
    "make_preview",
    "normalize_namespace",
]
