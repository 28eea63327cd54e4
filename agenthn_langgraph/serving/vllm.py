"""Serving adapters with vLLM: internalize locally, answer on a multi-adapter GPU server.

A hypernetwork pass is cheap and runs next to the agent; serving a base model to many users is what
vLLM (or any server with its LoRA API) is for. :class:`VLLMChatModel` is a LangChain chat model
that talks to a vLLM OpenAI-compatible server: per call it composes the call's adapters into one,
writes it as a PEFT directory (``export_peft``, rank zero-padded to a rank vLLM serves) into a
directory the server can read, loads it at run time (``POST /v1/load_lora_adapter``) under a name
derived from its content, and chats with ``model=<that name>``. A repeated adapter set is loaded
once; the server holds at most ``max_loaded`` of ours (the least recently used is unloaded,
``POST /v1/unload_lora_adapter``), so nothing grows without bound.

The server needs LoRA and runtime updates enabled (see ``docs/deployment.md``)::

    VLLM_ALLOW_RUNTIME_LORA_UPDATING=True vllm serve BASE --enable-lora --max-lora-rank 64 --max-loras 8

What vLLM applies is a plain LoRA on every token of the reply. The tiny default's hypernetwork was
trained that way; a checkpoint whose chat format limits adapters to the first ``adapter_tokens``
generated tokens (``engine.hypernet.config.chat.adapter_tokens``) would be served differently from
how it was trained.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr, ValidationError

from ..errors import (
    AdapterRejectedError,
    ArgumentTypeError,
    ChatModelConfigError,
    InvalidArgumentError,
    ServerUnavailableError,
    ServingError,
)
from ..lora.adapter import LoraAdapter
from ..lora.peft_export import VLLM_RANKS, export_peft, next_vllm_rank

ADAPTER_PREFIX = "agenthn-"


def adapter_name(adapter: LoraAdapter) -> str:
    """A name that changes with the adapter's content (its tensors and scaling), never with its object."""
    digest = hashlib.sha256(repr(adapter.scaling).encode())
    for name in sorted(adapter.weights):
        a, b = adapter.weights[name]
        digest.update(name.encode())
        for t in (a, b):
            digest.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return ADAPTER_PREFIX + digest.hexdigest()[:24]


def _server_message(response: httpx.Response) -> str:
    """vLLM's error text: ``{"error": {"message": ...}}`` (newer) or ``{"message": ...}`` (older)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or f"HTTP {response.status_code}"
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"])
        if body.get("message"):
            return str(body["message"])
    return str(body)


class VLLMChatModel(BaseChatModel):
    """A chat model served by vLLM, with per-call adapters loaded into the server at run time.

    Args:
        base_url: the server, e.g. ``http://gpu-1:8000`` (``/v1`` is added).
        model: the base model's name as the server serves it (``vllm serve NAME``).
        adapter_dir: where adapters are written, a directory the server can read (a shared volume).
        server_adapter_dir: the same directory as the server sees it, when mounted elsewhere.
        max_lora_rank: the server's ``--max-lora-rank``; a composed adapter above it is refused here.
        max_loaded: how many of our adapters the server may hold at once (its ``--max-cpu-loras``
            should be at least this).
        adapters / adapter_store / namespace: as for ``LocalHypernetChatModel``; per call,
            ``invoke(msgs, adapters=[...])`` or ``adapter_ids=[...]``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    base_url: str
    model_name: str = Field(alias="model")
    adapter_dir: str = Field(default_factory=lambda: tempfile.mkdtemp(prefix="agenthn-vllm-"))
    server_adapter_dir: str | None = None
    max_lora_rank: int = 16
    max_loaded: int = 8
    max_tokens: int = 64
    temperature: float = 0.0
    timeout: float = 60.0
    api_key: str | None = None
    adapters: list[LoraAdapter] = Field(default_factory=list)
    adapter_store: Any = None
    namespace: str | tuple[str, ...] | None = None

    _loaded: OrderedDict[str, int] = PrivateAttr(default_factory=OrderedDict)  # name -> calls using it now
    _loading: dict[str, threading.Event] = PrivateAttr(default_factory=dict)  # name -> set when its load ends
    _unloading: dict[str, threading.Event] = PrivateAttr(default_factory=dict)  # name -> set when unloaded
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _client: httpx.Client | None = PrivateAttr(default=None)

    def __init__(self, **kwargs: Any) -> None:
        """Validate the fields; a bad one raises :class:`ChatModelConfigError` (a ValueError), not pydantic's."""
        try:
            super().__init__(**kwargs)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'model'}: {err['msg']}" for err in e.errors())
            raise ChatModelConfigError(f"invalid VLLMChatModel settings: {problems}") from e

    def model_post_init(self, context: Any) -> None:
        if self.max_lora_rank not in VLLM_RANKS:
            raise InvalidArgumentError(
                f"max_lora_rank must be one vLLM serves, one of {VLLM_RANKS}, got {self.max_lora_rank}"
            )
        if not isinstance(self.max_loaded, int) or self.max_loaded < 1:
            raise InvalidArgumentError(f"max_loaded must be a positive int, got {self.max_loaded!r}")
        if not self.timeout > 0:
            raise InvalidArgumentError(f"timeout must be positive, got {self.timeout!r}")

    @property
    def _llm_type(self) -> str:
        return "agenthn-vllm"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "model": self.model_name, "max_lora_rank": self.max_lora_rank}

    # ------------------------------------------------------------------ http
    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._client = httpx.Client(
                base_url=self.base_url.rstrip("/") + "/v1", timeout=self.timeout, headers=headers
            )
        return self._client

    def _post(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        try:
            response = self.client.post(path, json=dict(body))
        except httpx.HTTPError as e:
            raise ServerUnavailableError(f"vLLM server at {self.base_url} did not answer {path}: {e}") from e
        return response

    def loaded_adapters(self) -> list[str]:
        """Names of our adapters the server holds, least recently used first."""
        with self._lock:
            return list(self._loaded)

    def load_adapter_dir(self, name: str, path: str | Path) -> None:
        """``POST /v1/load_lora_adapter`` for a PEFT directory already written; refusals are typed."""
        response = self._post("/load_lora_adapter", {"lora_name": name, "lora_path": str(path)})
        if response.status_code >= 400:
            message = _server_message(response)
            if response.status_code in (400, 404, 422):
                raise AdapterRejectedError(f"vLLM refused adapter {name!r}: {message}")
            raise ServingError(f"vLLM failed to load adapter {name!r} (HTTP {response.status_code}): {message}")

    def unload_adapter(self, name: str) -> None:
        response = self._post("/unload_lora_adapter", {"lora_name": name})
        if response.status_code >= 400 and response.status_code != 404:  # 404: already gone
            raise ServingError(
                f"vLLM failed to unload {name!r} (HTTP {response.status_code}): {_server_message(response)}"
            )

    # ------------------------------------------------------------------ adapters
    def _resolve(self, kwargs: dict[str, Any]) -> list[LoraAdapter]:
        refs = kwargs.get("adapters")
        if refs is None and kwargs.get("adapter_ids") is not None:
            refs = kwargs["adapter_ids"]
        if isinstance(refs, (str, LoraAdapter)):
            raise ArgumentTypeError("adapters must be a list of LoraAdapter objects or adapter ids, not a single one")
        out: list[LoraAdapter] = []
        for ref in [*(refs or ()), *self.adapters]:
            if isinstance(ref, LoraAdapter):
                out.append(ref)
                continue
            adapter_id, ns = (ref, kwargs.get("namespace") or self.namespace) if isinstance(ref, str) else (None, None)
            if isinstance(ref, Mapping):
                adapter_id, ns = ref.get("id"), ref.get("namespace")
            if not isinstance(adapter_id, str):
                raise ArgumentTypeError(f"an adapter must be a LoraAdapter or an adapter id, got {ref!r}")
            store = kwargs.get("adapter_store") or self.adapter_store
            if store is None or ns is None:
                raise InvalidArgumentError(f"adapter id {adapter_id!r} needs an adapter_store and a namespace")
            out.append(store.get(adapter_id, namespace=ns if isinstance(ns, str) else tuple(ns)))
        return out

    @contextmanager
    def _served(self, adapters: Sequence[LoraAdapter]) -> Iterator[str]:
        """The name to chat with: the base's, or the composed adapter's, loaded (once) and pinned meanwhile."""
        if not adapters:
            yield self.model_name
            return
        adapter = adapters[0] if len(adapters) == 1 else LoraAdapter.compose(adapters)
        if adapter.rank > self.max_lora_rank:
            raise AdapterRejectedError(
                f"the composed adapter has rank {adapter.rank}, above the server's max_lora_rank {self.max_lora_rank}; "
                "compose fewer adapters or serve with a larger --max-lora-rank"
            )
        name = adapter_name(adapter)
        while True:
            with self._lock:
                unloading = self._unloading.get(name)
                if unloading is None:
                    loading = self._loading.get(name)
                    fresh = name not in self._loaded
                    if fresh:
                        loading = self._loading[name] = threading.Event()
                        self._loaded[name] = 0
                    self._loaded.move_to_end(name)
                    self._loaded[name] += 1  # pinned: no other call evicts it while this one uses it
                    break
            # it is being unloaded by an eviction: load it again only once the server has dropped it
            unloading.wait(self.timeout)
        try:
            if fresh:
                assert loading is not None
                try:
                    self._load(name, adapter)
                except BaseException:
                    with self._lock:
                        self._loaded.pop(name, None)
                    raise
                finally:
                    with self._lock:
                        self._loading.pop(name, None)
                    loading.set()
                self._evict()
            elif loading is not None:  # another call is loading this very adapter: wait for it
                loading.wait(self.timeout)
                with self._lock:
                    if name not in self._loaded or name in self._loading:
                        raise ServingError(f"adapter {name!r} could not be loaded by a concurrent call")
            yield name
        finally:
            with self._lock:
                if name in self._loaded:
                    self._loaded[name] -= 1

    def _load(self, name: str, adapter: LoraAdapter) -> None:
        local = Path(self.adapter_dir) / name
        export_peft(adapter, local, base_model_name_or_path=self.model_name, pad_rank_to=next_vllm_rank(adapter.rank))
        server_path = Path(self.server_adapter_dir) / name if self.server_adapter_dir else local
        try:
            self.load_adapter_dir(name, server_path)
        except BaseException:
            shutil.rmtree(local, ignore_errors=True)
            raise

    def _evict(self) -> None:
        """Unload the least recently used of our adapters beyond ``max_loaded`` (never one in use)."""
        while True:
            with self._lock:
                idle = [n for n, users in self._loaded.items() if users == 0]
                if len(self._loaded) <= self.max_loaded or not idle:
                    return
                victim = idle[0]
                del self._loaded[victim]
                done = self._unloading[victim] = threading.Event()
            try:
                self.unload_adapter(victim)
                shutil.rmtree(Path(self.adapter_dir) / victim, ignore_errors=True)
            finally:
                with self._lock:
                    self._unloading.pop(victim, None)
                done.set()

    # ------------------------------------------------------------------ chat
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        from ..chat_model import to_chat_dicts

        adapters = self._resolve(kwargs)
        body: dict[str, Any] = {
            "messages": to_chat_dicts(messages),
            "max_tokens": int(kwargs.get("max_tokens", self.max_tokens)),
            "temperature": float(kwargs.get("temperature", self.temperature)),
        }
        if stop:
            body["stop"] = list(stop)
        with self._served(adapters) as served:
            response = self._post("/chat/completions", {**body, "model": served})
        if response.status_code >= 400:
            raise ServingError(f"vLLM chat failed (HTTP {response.status_code}): {_server_message(response)}")
        try:
            choice = response.json()["choices"][0]
            text = choice["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise ServingError(f"vLLM answered something that is not a chat completion: {response.text[:200]}") from e
        meta = {"model": served, "adapters_applied": len(adapters), "finish_reason": choice.get("finish_reason")}
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text, response_metadata=meta))])

    def close(self) -> None:
        """Unload our adapters from the server and close the connection."""
        for name in self.loaded_adapters():
            self.unload_adapter(name)
            shutil.rmtree(Path(self.adapter_dir) / name, ignore_errors=True)
        with self._lock:
            self._loaded.clear()
        if self._client is not None:
            self._client.close()
            self._client = None
