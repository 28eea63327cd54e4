"""A bounded LRU of loaded adapters for :meth:`AdapterStore.get`."""

from __future__ import annotations

import threading
from collections import OrderedDict

from ..lora.adapter import LoraAdapter
from .records import Namespace

DEFAULT_CACHE_SIZE = 64
DEFAULT_CACHE_BYTES = 512 * 2**20

_CacheKey = tuple[Namespace, str, str]  # (namespace, adapter id, version dir name)


class AdapterCache:
    """A bounded, thread-safe LRU of loaded adapters, keyed by namespace, id and version.

    Why: every model call resolves its active adapters through :meth:`AdapterStore.get`, and a load
    reads the tensors, hashes them and checks their norms; the same few adapters are resolved on
    every turn. A version directory never changes once it is renamed into place, so its name
    identifies immutable content -- except that after a delete (perhaps by another process) and a
    new put, numbering restarts at ``v00000001``; the ``adapter.json`` file signature (inode, size,
    mtime) tells such a reused name apart, so a stale entry is never served.
    """

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[_CacheKey, tuple[tuple[int, int, int], LoraAdapter]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: _CacheKey, signature: tuple[int, int, int]) -> LoraAdapter | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] != signature:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[1]

    def put(self, key: _CacheKey, signature: tuple[int, int, int], adapter: LoraAdapter) -> None:
        size = adapter.nbytes
        if self.max_entries <= 0 or size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1].nbytes
            self._items[key] = (signature, adapter)
            self._bytes += size
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, evicted) = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes

    def invalidate(self, ns: Namespace, adapter_id: str | None = None) -> None:
        """Drop every cached version of one adapter, or of a whole namespace when ``adapter_id`` is None."""
        with self._lock:
            for key in [k for k in self._items if k[0] == ns and (adapter_id is None or k[1] == adapter_id)]:
                self._bytes -= self._items.pop(key)[1].nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def info(self) -> dict[str, int]:
        with self._lock:
            return {
                "entries": len(self._items),
                "bytes": self._bytes,
                "hits": self.hits,
                "misses": self.misses,
                "max_entries": self.max_entries,
                "max_bytes": self.max_bytes,
            }
