"""The adapter store as langgraph's own ``BaseStore``.

:class:`~agenthn_langgraph.store.AdapterStore` subclasses ``langgraph.store.base.BaseStore`` through
:class:`LangGraphStoreMixin`, which implements its public ``batch`` / ``abatch`` over langgraph's
ops (``GetOp``, ``PutOp``, ``SearchOp``, ``ListNamespacesOp``). So a graph compiles with
``store=adapter_store``, nodes reach it through ``langgraph.config.get_store()`` (or
``runtime.store``), and a LangGraph server can serve it through its store API.

An *item* is an adapter's record, never its tensors: ``key`` is the adapter id, ``namespace`` its
namespace, and ``value`` is ``{"text", "kind", "name", "preview", "turn_start", "turn_end",
"extra"}``. Namespaces are enforced as everywhere in the store: a ``GetOp`` for an id that lives in
another namespace finds nothing, and every search filters on the exact namespace inside Chroma.

Writing (``PutOp``) needs an adapter: ``value["adapter"]`` (a ``LoraAdapter``, in process) with
``value["text"]``, its source text; or ``value["text"]`` alone, internalized into an adapter by
the store's model (a store opened with ``AdapterStore.for_model(engine, path)`` has one). A
``PutOp`` whose value is ``None`` deletes.

``get``, ``put``, ``delete``, ``search`` and their async twins are the store's own methods and
langgraph's at once: a call whose first argument is a namespace tuple (or that names ``key`` /
``value``, as langgraph's do) is langgraph's (``store.get(("users", "ann"), "profile")``), any other
is the store's own (``store.get("profile", namespace=("users", "ann"))``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import operator
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from ..errors import AdapterNotFoundError, ArgumentTypeError, InvalidArgumentError, NamespaceError

if TYPE_CHECKING:
    from ..lora.adapter import LoraAdapter
    from .records import AdapterRecord

F = TypeVar("F", bound=Callable[..., Any])

VALUE_KEYS = frozenset({"text", "adapter", "kind", "name", "preview", "turn_start", "turn_end", "extra"})
"""Keys a ``PutOp`` value may hold (``preview`` is derived from the text and ignored on write)."""

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": operator.eq,
    "$ne": operator.ne,
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}
_MAX_K = 100_000


def is_langgraph_call(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    """A call in langgraph's ``BaseStore`` form: a namespace tuple first, or ``key`` / ``value`` named."""
    return bool(args and isinstance(args[0], tuple)) or "key" in kwargs or "value" in kwargs


def also_langgraph(base_method: Callable[..., Any]) -> Callable[[F], F]:
    """Make a store method answer langgraph's ``BaseStore`` form of the same name too (see module doc)."""

    def decorate(own: F) -> F:
        if inspect.iscoroutinefunction(own):

            @functools.wraps(own)
            async def async_method(self: Any, *args: Any, **kwargs: Any) -> Any:
                if is_langgraph_call(args, kwargs):
                    return await base_method(self, *args, **kwargs)
                return await own(self, *args, **kwargs)

            return async_method  # type: ignore[return-value]

        @functools.wraps(own)
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            if is_langgraph_call(args, kwargs):
                return base_method(self, *args, **kwargs)
            return own(self, *args, **kwargs)

        return method  # type: ignore[return-value]

    return decorate


def item_value(record: AdapterRecord) -> dict[str, Any]:
    """An adapter record as a langgraph item's ``value`` (JSON-serializable; no tensors)."""
    return {
        "text": record.text,
        "kind": record.kind,
        "name": record.name,
        "preview": record.preview,
        "turn_start": record.turn_start,
        "turn_end": record.turn_end,
        "extra": dict(record.extra),
    }


def _matches(value: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    for key, condition in filter.items():
        actual = value.get(key)
        if isinstance(condition, Mapping) and condition and all(str(k).startswith("$") for k in condition):
            for op_name, expected in condition.items():
                compare = _COMPARE.get(op_name)
                if compare is None:
                    raise InvalidArgumentError(
                        f"unsupported filter operator {op_name!r}; use one of {sorted(_COMPARE)}"
                    )
                try:
                    if not compare(actual, expected):
                        return False
                except TypeError:  # None or another type compared by order
                    return False
        elif actual != condition:
            return False
    return True


def _namespace_matches(namespace: tuple[str, ...], condition: MatchCondition) -> bool:
    path = tuple(condition.path)
    if len(path) > len(namespace):
        return False
    parts = namespace[: len(path)] if condition.match_type == "prefix" else namespace[len(namespace) - len(path) :]
    return all(p == "*" or p == n for p, n in zip(path, parts, strict=True))


class LangGraphStoreMixin(BaseStore):
    """langgraph's ``BaseStore`` over an :class:`~agenthn_langgraph.store.AdapterStore` (see module doc).

    TTLs are not supported (``supports_ttl = False``: langgraph refuses a ``ttl`` before it reaches
    the store). The index is always the adapter's source text (``index`` may be ``None`` or
    ``["text"]``).
    """

    supports_ttl: bool = False
    internalizer: Any = None
    """What turns a ``PutOp``'s text into an adapter (``.internalize(text, kind=...)``); set by ``for_model``."""

    # The store's own methods these ops are built on (implemented by AdapterStore).
    get_record: Callable[..., AdapterRecord]
    namespaces: Callable[[], list[tuple[str, ...]]]
    count: Callable[..., int]

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run langgraph store ops in order; one result per op (``None`` for a put)."""
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                results.append(self._get_item(op))
            elif isinstance(op, PutOp):
                self._put_item(op)
                results.append(None)
            elif isinstance(op, SearchOp):
                results.append(self._search_items(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            else:
                raise ArgumentTypeError(f"unknown store op {type(op).__name__}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """:meth:`batch` in a worker thread (the store's file and index work blocks)."""
        return await asyncio.to_thread(self.batch, list(ops))

    # ------------------------------------------------------------------ the ops
    @staticmethod
    def _namespace(namespace: tuple[str, ...]) -> tuple[str, ...]:
        from .records import normalize_namespace

        return normalize_namespace(namespace)

    @staticmethod
    def _well_formed_key(key: object) -> bool:
        from .records import PART_RE as _PART_RE

        return isinstance(key, str) and _PART_RE.fullmatch(key) is not None

    def _item(self, record: AdapterRecord, score: float | None = None, *, search: bool = False) -> Item:
        stamp = datetime.fromisoformat(record.created_at)
        if search:
            return SearchItem(record.namespace, record.id, item_value(record), stamp, stamp, score=score)
        return Item(
            value=item_value(record), key=record.id, namespace=record.namespace, created_at=stamp, updated_at=stamp
        )

    def _get_item(self, op: GetOp) -> Item | None:
        ns = self._namespace(op.namespace)
        if not self._well_formed_key(op.key):
            return None  # no adapter can have that id
        try:
            return self._item(self.get_record(op.key, namespace=ns))
        except (AdapterNotFoundError, NamespaceError):  # none here (an id of another namespace is not found)
            return None

    def _put_item(self, op: PutOp) -> None:
        ns = self._namespace(op.namespace)
        if op.value is None:
            if self._well_formed_key(op.key):
                # deleting what is not there is a no-op, as in langgraph's stores
                with contextlib.suppress(AdapterNotFoundError, NamespaceError):
                    self.delete(op.key, namespace=ns)
            return
        if op.index not in (None, ["text"], ("text",)):
            raise InvalidArgumentError(
                f"the adapter store indexes an adapter's source text: index must be None or ['text'], got {op.index!r}"
            )
        value = op.value
        if not isinstance(value, Mapping):
            raise ArgumentTypeError(f"a store value must be a dict, got {type(value).__name__}")
        unknown = set(value) - VALUE_KEYS
        if unknown:
            raise InvalidArgumentError(
                f"unknown keys {sorted(unknown)} in a store value; it may hold {sorted(VALUE_KEYS)}"
            )
        text = value.get("text")
        if not isinstance(text, str):
            raise ArgumentTypeError("a store value needs 'text', the adapter's source text (a str)")
        kind = value.get("kind") or "document"
        adapter: LoraAdapter | None = value.get("adapter")
        if adapter is None:
            if self.internalizer is None:
                raise InvalidArgumentError(
                    "this store has no model to internalize 'text' with: open it with "
                    "AdapterStore.for_model(engine, path), or put a LoraAdapter under 'adapter'"
                )
            adapter = self.internalizer.internalize(text, kind=kind)
        start, end = value.get("turn_start"), value.get("turn_end")
        self.put(
            adapter,
            namespace=ns,
            text=text,
            kind=kind,
            adapter_id=op.key,
            name=value.get("name"),
            turn_range=None if start is None and end is None else (start, end),
            extra=value.get("extra"),
        )

    def _namespaces_under(self, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
        prefix = tuple(prefix)
        return [ns for ns in self.namespaces() if ns[: len(prefix)] == prefix]

    def _search_items(self, op: SearchOp) -> list[SearchItem]:
        if op.limit < 0 or op.offset < 0:
            raise InvalidArgumentError(f"limit and offset must be >= 0, got {op.limit}, {op.offset}")
        found: list[tuple[AdapterRecord, float | None]] = []
        query = op.query if op.query and op.query.strip() else None
        for ns in self._namespaces_under(op.namespace_prefix):
            if query is None:
                found += [(r, None) for r in self.list(namespace=ns)]
                continue
            k = self.count(namespace=ns) if op.filter else op.limit + op.offset
            if k >= 1:
                found += [(r, r.score) for r in self.search(query, namespace=ns, k=min(k, _MAX_K))]
        if op.filter:
            found = [(r, s) for r, s in found if _matches(item_value(r), op.filter)]
        if query is not None:
            found.sort(key=lambda rs: -(rs[1] or 0.0))
        page = found[op.offset : op.offset + op.limit]
        return [self._item(r, s, search=True) for r, s in page]  # type: ignore[misc]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        conditions = op.match_conditions or ()
        out = {
            ns[: op.max_depth] if op.max_depth is not None else ns
            for ns in self.namespaces()
            if all(_namespace_matches(ns, c) for c in conditions)
        }
        return sorted(out)[op.offset : op.offset + op.limit]
