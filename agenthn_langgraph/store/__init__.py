"""Adapter storage: LoRA adapters on disk, indexed by their source text, per namespace.

Where each concern lives: :mod:`.adapter_store` (the store), :mod:`.files` (the directory tree,
versions, crash-safe writes), :mod:`.index` (the index interface) with its backends
:mod:`.chroma_index` (Chroma, the default) and :mod:`.langgraph_index` (any langgraph
``BaseStore`` with a vector index), :mod:`.reconcile` (repair after a crash), :mod:`.cache`
(loaded adapters), :mod:`.langgraph_store` (the store as langgraph's ``BaseStore``).
"""

from .adapter_store import AdapterStore
from .chroma_index import ChromaIndex
from .embeddings import MiniLMEmbeddingFunction, get_sentence_transformer
from .index import AdapterIndex
from .langgraph_index import BaseStoreIndex
from .records import AdapterRecord, Namespace, PurgeReport, ReconcileReport, make_preview, normalize_namespace

__all__ = [
    "AdapterIndex",
    "AdapterRecord",
    "AdapterStore",
    "BaseStoreIndex",
    "ChromaIndex",
    "MiniLMEmbeddingFunction",
    "Namespace",
    "PurgeReport",
    "ReconcileReport",
    "get_sentence_transformer",
    "make_preview",
    "normalize_namespace",
]
