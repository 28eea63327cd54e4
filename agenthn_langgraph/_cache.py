"""A small bounded, thread-safe LRU cache for loaded engines.

Loaded models are the largest objects this package keeps, and a long-lived server that opens
chat models over many paths (or devices) must not keep every one of them for the life of the
process. Eviction only drops the cache's reference: an engine a chat model still holds keeps
working, and is freed with the last object that uses it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

DEFAULT_MAX_ENGINES = 4


class LRUCache(Generic[K, V]):
    """At most ``maxsize`` values; the least recently used one goes first.

    >>> cache = LRUCache[str, int](maxsize=2)
    >>> [cache.get_or_create(k, lambda k=k: len(k)) for k in ("a", "bb", "a", "ccc")]
    [1, 2, 1, 3]
    >>> cache.keys()
    ['a', 'ccc']
    """

    def __init__(self, maxsize: int = DEFAULT_MAX_ENGINES) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be an int >= 1, got {maxsize!r}")
        self.maxsize = maxsize
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, key: K) -> V | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: K, value: V) -> V:
        """Store ``value`` (replacing any under ``key``), evicting the oldest entries past ``maxsize``."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
            return value

    def get_or_create(self, key: K, factory: Callable[[], V]) -> V:
        """The cached value, or ``factory()`` stored under ``key``.

        The factory runs under the cache's lock: two threads asking for one new model load it once.
        """
        with self._lock:
            found = self.get(key)
            return found if found is not None else self.put(key, factory())

    def pop(self, key: K) -> V | None:
        with self._lock:
            return self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def keys(self) -> list[K]:
        """Keys, least recently used first."""
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items
