"""``LocalHypernetChatModel``: a LangChain chat model over a local causal LM with per-call adapters.

The weight-injection hook: every call may carry LoRA adapters (objects, or ids resolved through an
:class:`~agenthn_langgraph.store.AdapterStore`). They are applied to that call only -- through a
``contextvars`` plan, never a process-global "active adapter" -- so many LangGraph threads can
share one model. Adapters reach a call in four ways, first match wins:

1. call kwargs: ``model.invoke(msgs, adapters=[memory])`` or ``model.bind(adapters=[...])``;
2. the run config: ``config={"configurable": {"adapter_ids": [...], "namespace": "alice"}}``
   (``adapter_store`` too, unless the model has one), given to ``invoke`` / ``stream`` (and their
   async and batch twins) directly or read from the enclosing runnable's config, e.g. a LangGraph
   node's;
3. the model's own fields ``adapters`` / ``adapter_ids``;
4. none: the base model.

Example:
    >>> from agenthn_langgraph import LocalHypernetChatModel
    >>> llm = LocalHypernetChatModel()  # the embedded tiny default, offline
    >>> memory = llm.internalize("<user> my pet is a frog . <assistant> nice ! <end>")
    >>> llm.invoke("what pet do i have ?", adapters=[memory]).content.split()[0]
    'frog'

``adapter_tokens`` limits how many generated tokens the adapters act on; a hypernetwork stores its
own default in its chat format (the tiny default's is unset: it was trained on whole answers and
their end-of-turn token, so the adapter stays on for the whole reply).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import (
    ConfigurableField,
    Runnable,
    RunnableConfig,
    RunnableSerializable,
    ensure_config,
)
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator

from ._cache import LRUCache
from .errors import (
    ArgumentTypeError,
    ChatModelConfigError,
    EmptyConversationError,
    EngineClosedError,
    InvalidArgumentError,
    MessageFormatError,
    MessageTypeError,
    ModelNotFoundError,
)
from .lora.adapter import AdapterKind, LoraAdapter
from .options import check_generation_options, check_int_option, check_real_option

if TYPE_CHECKING:
    from .engine import WeightMemoryModel
    from .store import AdapterStore

AdapterRef = LoraAdapter | str | Mapping[str, Any]
"""An adapter object, an id (in the call's namespace) or ``{"id": ..., "namespace": [...]}``."""
DEFAULT_MODEL_NAME = "agenthn-tiny"
# Hermes / Qwen convention for tool calls in generated text; the template decides whether a model
# was trained to emit them.
_TOOL_CALL_RE = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)

# Engines loaded from a directory, by (base, hypernet, device): bounded, least recently used
# evicted first (a chat model holding an evicted engine keeps it; the next new one reloads).
# Registered models are cached by the registry (also bounded).
_ENGINES: LRUCache[tuple[str, str | None, str | None], WeightMemoryModel] = LRUCache()
_ENGINES_LOCK = threading.Lock()
# Engines handed to from_engine, by a key unique to the engine (never id(), which a new object
# reuses once the old one dies). Weak: the chat model that wraps an engine keeps it alive; the
# registry only lets LangChain's copies of that chat model find it again.
_FROM_ENGINE: weakref.WeakValueDictionary[str, WeightMemoryModel] = weakref.WeakValueDictionary()
_FROM_ENGINE_PREFIX = "engine:"


def _shared_engine(
    base_path: str | None, hypernet_path: str | None, device: str | None, model_name: str = DEFAULT_MODEL_NAME
) -> WeightMemoryModel:
    """One loaded model per (base, hypernet, device) per process: chat models are cheap views on it.

    Without a ``base_path`` the model comes from the registry by ``model_name`` (``"tiny"``, or
    any registered name); the default name means the embedded tiny model.
    """
    if base_path is not None and base_path.startswith(_FROM_ENGINE_PREFIX):
        engine = _FROM_ENGINE.get(base_path)
        if engine is None:
            raise ModelNotFoundError(
                f"{base_path} names an engine given to from_engine that no longer exists (garbage-collected, "
                "or registered in another process); wrap a live engine again"
            )
        return engine
    if base_path is None:
        from .models.registry import load_default

        return load_default("tiny" if model_name == DEFAULT_MODEL_NAME else model_name, device=device)
    key = (base_path, hypernet_path, device)
    with _ENGINES_LOCK:
        cached = _ENGINES.get(key)
        if cached is None or cached.closed:
            from .engine import WeightMemoryModel

            cached = _ENGINES.put(key, WeightMemoryModel.from_pretrained(base_path, hypernet_path, device=device))
        return cached


def clear_engine_cache() -> None:
    """Drop every cached engine reference (chat models that hold one keep it)."""
    from .models import registry

    _ENGINES.clear()
    registry._engines.clear()


def _text_of(content: str | list[Any]) -> str:
    """Text of a message's content; non-text blocks (images, audio) are refused, not dropped."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, Mapping) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif isinstance(block, Mapping) and block.get("type") in ("tool_use", "tool_call", "reasoning"):
            continue  # carried in tool_calls / not part of the visible text
        else:
            kind = block.get("type") if isinstance(block, Mapping) else type(block).__name__
            raise MessageTypeError(f"content block of type {kind!r} is not supported by this text-only model")
    return " ".join(p for p in parts if p)


def _ref_key(ref: object, namespace: object) -> object:
    if isinstance(ref, str):
        return (ref, _ns_key(namespace))
    if isinstance(ref, Mapping):
        return (ref.get("id"), _ns_key(ref.get("namespace")))
    return id(ref)


def _ns_key(namespace: object) -> object:
    if namespace is None or isinstance(namespace, str):
        return (namespace,) if isinstance(namespace, str) else None
    return tuple(namespace) if isinstance(namespace, (list, tuple)) else namespace


def to_chat_dicts(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages -> the role/content dicts a Hugging Face chat template expects."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if isinstance(m, HumanMessage):
            out.append({"role": "user", "content": _text_of(m.content)})
        elif isinstance(m, AIMessage):
            entry: dict[str, Any] = {"role": "assistant", "content": _text_of(m.content)}
            if m.tool_calls:
                entry["tool_calls"] = [
                    {"id": tc.get("id"), "type": "function", "function": {"name": tc["name"], "arguments": tc["args"]}}
                    for tc in m.tool_calls
                ]
            out.append(entry)
        elif isinstance(m, SystemMessage):
            out.append({"role": "system", "content": _text_of(m.content)})
        elif isinstance(m, ToolMessage):
            out.append({"role": "tool", "content": _text_of(m.content), "tool_call_id": m.tool_call_id})
        elif isinstance(m, ChatMessage):
            out.append({"role": m.role, "content": _text_of(m.content)})
        else:
            raise MessageTypeError(
                f"message of type {type(m).__name__} is not supported "
                "(use HumanMessage, AIMessage, SystemMessage, ToolMessage or ChatMessage)"
            )
    return out


def parse_tool_calls(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Split ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` blocks out of generated text."""
    calls = []
    for match in _TOOL_CALL_RE.finditer(text):
        try:
            payload = json.loads(match.group(1))
        except json.JSONDecodeError:
            continue  # malformed: left in the text for the caller to see
        if isinstance(payload, dict) and isinstance(payload.get("name"), str):
            args = payload.get("arguments", payload.get("parameters", {}))
            calls.append({"name": payload["name"], "args": args if isinstance(args, dict) else {}, "id": None})
    if calls:
        text = _TOOL_CALL_RE.sub("", text).strip()
    for call in calls:
        call["id"] = f"call_{uuid.uuid4().hex[:24]}"
    return text, calls


class LocalHypernetChatModel(BaseChatModel):
    """A LangChain chat model over a local Hugging Face causal LM + hypernetwork.

    With no arguments it runs the embedded tiny default on CPU. For a real model use
    :meth:`from_pretrained` (a GPU is used when present). Loaded weights are shared by every
    instance with the same ``model_path`` / ``hypernet_path`` / ``device``, so instances are cheap.

    Example:
        >>> llm = LocalHypernetChatModel(max_tokens=8)
        >>> llm.invoke("hello , how are you ?").content
        'i am fine , thanks .'
        >>> llm.get_num_tokens_from_messages([("human", "hello , how are you ?")])
        9
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True, extra="forbid")

    model_name: str = Field(default=DEFAULT_MODEL_NAME, alias="model")
    """A registered model (``"tiny"``, or any name in ``agenthn_langgraph.models.available_models()``),
    loaded when ``model_path`` is not given; also the name reported to tracing. The default,
    ``agenthn-tiny``, is the embedded tiny model."""
    model_path: str | None = None
    """Local directory of a Hugging Face causal LM (+ tokenizer); ``None`` = the registered ``model``."""
    hypernet_path: str | None = None
    """Local directory of an agenthn hypernetwork checkpoint for ``model_path``."""
    device: str | None = None
    """``cpu``, ``cuda``, ...; ``None`` = cuda when present for ``model_path``, cpu for the default."""
    temperature: float = 0.0
    max_tokens: int = 64
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    timeout: float | None = None
    """Seconds one generation may take before ``TimeoutError``."""
    max_retries: int = 0
    """Accepted for interface compatibility; local generation has nothing to retry."""
    api_key: SecretStr | None = None
    """Accepted for interface compatibility (a LangChain standard parameter); a local model needs
    no key and never reads it. Any other unknown field is refused (:class:`ChatModelConfigError`)."""
    streaming: bool = False
    adapter_tokens: int | None | Literal["default"] = "default"
    """Generated tokens the adapters act on (``None``: all). ``"default"``: what the checkpoint
    recommends -- 1 for the embedded tiny model, whose hypernetwork was trained on the first
    answer token only; left on longer, its delta keeps repeating the remembered value."""
    allow_unknown: bool = False
    """Accept words a closed-vocabulary model cannot read (the tiny default reads them as ``<unk>``
    and answers with a confident guess); by default they raise :class:`OutOfVocabularyError`."""
    adapters: list[LoraAdapter] = Field(default_factory=list)
    """Adapters applied to every call of this instance (after any chosen per call)."""
    adapter_ids: list[str] = Field(default_factory=list)
    """Ids resolved through ``adapter_store`` in ``namespace`` and applied to every call."""
    adapter_store: Any = None
    """An :class:`~agenthn_langgraph.store.AdapterStore` used to resolve adapter ids."""
    namespace: str | tuple[str, ...] | None = None
    """Default namespace for adapter ids (a user, a team...)."""

    _engine: WeightMemoryModel | None = PrivateAttr(default=None)

    # ------------------------------------------------------------------ construction
    def __init__(self, **kwargs: Any) -> None:
        """Validate the fields; a bad one raises a typed error instead of pydantic's.

        A value of the wrong type for a generation option raises :class:`ArgumentTypeError` (a
        TypeError, nothing is coerced: ``max_tokens="7"`` is refused); any other invalid field
        (out of range, unknown name, wrong type for a plain field) raises
        :class:`ChatModelConfigError` (a ValueError, as pydantic's ValidationError was), with
        pydantic's error as its cause.
        """
        try:
            super().__init__(**kwargs)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'model'}: {err['msg']}" for err in e.errors())
            raise ChatModelConfigError(f"invalid LocalHypernetChatModel settings: {problems}") from e

    @field_validator("max_tokens", mode="before")
    @classmethod
    def _check_max_tokens(cls, value: object) -> int:
        return check_int_option("max_tokens", value)

    @field_validator("temperature", mode="before")
    @classmethod
    def _check_temperature(cls, value: object) -> float:
        return check_real_option("temperature", value)

    @field_validator("top_p", mode="before")
    @classmethod
    def _check_top_p(cls, value: object) -> float:
        return check_real_option("top_p", value, maximum=1.0)

    @field_validator("seed", "timeout", "adapter_tokens", mode="before")
    @classmethod
    def _check_optional(cls, value: object, info: Any) -> object:
        if value is not None:
            check_generation_options(max_new_tokens=1, temperature=0.0, top_p=1.0, **{info.field_name: value})
        return value

    @field_validator("max_retries", mode="before")
    @classmethod
    def _check_max_retries(cls, value: object) -> int:
        return check_int_option("max_retries", value, minimum=0)

    @classmethod
    def from_pretrained(
        cls,
        model_path: str,
        hypernet: str | None = None,
        *,
        device: str | None = None,
        **kwargs: Any,
    ) -> LocalHypernetChatModel:
        """A chat model over a local base model directory and its hypernetwork checkpoint."""
        hypernet_path = str(hypernet) if hypernet else None
        return cls(model_path=str(model_path), hypernet_path=hypernet_path, device=device, **kwargs)

    @classmethod
    def from_engine(cls, engine: WeightMemoryModel, **kwargs: Any) -> LocalHypernetChatModel:
        """Wrap an already loaded :class:`~agenthn_langgraph.engine.WeightMemoryModel`.

        The engine is registered (weakly) under a key unique to it and kept in the public
        ``model_path`` field, so the copies LangChain makes of this model (``configurable_fields``,
        ``with_config``) find the same engine instead of loading the default; once no chat model
        holds the engine any more, it and its registration go away.
        """
        if engine.closed:
            raise EngineClosedError(f"{engine.name}: cannot wrap a closed engine")
        key = f"{_FROM_ENGINE_PREFIX}{engine.name}@{engine.uid}"
        _FROM_ENGINE[key] = engine
        model = cls(model_name=kwargs.pop("model_name", engine.name), model_path=key, **kwargs)
        model._engine = engine
        return model

    @property
    def engine(self) -> WeightMemoryModel:
        """The loaded model (loaded on first use, shared across instances)."""
        if self._engine is None:
            self._engine = _shared_engine(self.model_path, self.hypernet_path, self.device, self.model_name)
        return self._engine

    @property
    def _llm_type(self) -> str:
        return "agenthn-local-hypernet"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_path": self.model_path,
            "hypernet_path": self.hypernet_path,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "agenthn"
        params["ls_model_name"] = kwargs.get("model", self.model_name)
        params["ls_model_type"] = "chat"
        params["ls_temperature"] = kwargs.get("temperature", self.temperature)
        params["ls_max_tokens"] = kwargs.get("max_tokens", self.max_tokens)
        if stop or self.stop:
            # checked here already: LangChain asks for these tracing params before _generate runs
            check_generation_options(max_new_tokens=1, temperature=0.0, top_p=1.0, stop=stop or self.stop)
            params["ls_stop"] = list(stop or self.stop or [])
        return params

    # ------------------------------------------------------------------ weight memory
    def internalize(
        self,
        text: str,
        *,
        kind: AdapterKind = "document",
        extra: Mapping[str, str | int | float | bool | None] | None = None,
    ) -> LoraAdapter:
        """Write ``text`` into a LoRA adapter in one hypernetwork forward pass (``allow_unknown`` as in chat)."""
        return self.engine.internalize(text, kind=kind, extra=extra, allow_unknown=self.allow_unknown)

    def configurable_adapters(self) -> RunnableSerializable[LanguageModelInput, BaseMessage]:
        """This model with ``adapter_ids`` and ``namespace`` settable from ``config["configurable"]``.

        >>> llm = LocalHypernetChatModel().configurable_adapters()
        >>> llm.invoke("hi", config={"configurable": {"adapter_ids": []}}).type
        'ai'
        """
        return self.configurable_fields(
            adapter_ids=ConfigurableField(id="adapter_ids", name="Adapter ids", description="adapters for this run"),
            namespace=ConfigurableField(id="namespace", name="Namespace", description="namespace of adapter_ids"),
        )

    def resolve_adapters(
        self,
        refs: Sequence[AdapterRef] | None = None,
        *,
        namespace: str | tuple[str, ...] | None = None,
        store: AdapterStore | None = None,
    ) -> list[LoraAdapter]:
        """Adapter objects for a call: the given refs (or the run config's), then the instance's."""
        configurable = ensure_config().get("configurable", {})
        if refs is None:
            refs = configurable.get("adapter_ids") or configurable.get("adapters")
        if isinstance(refs, (str, LoraAdapter)):
            raise ArgumentTypeError("adapters must be a list of LoraAdapter objects or adapter ids, not a single one")
        namespace = namespace or configurable.get("namespace") or self.namespace
        store = store or configurable.get("adapter_store") or self.adapter_store
        chosen: list[AdapterRef] = [*(refs or ()), *self.adapters, *self.adapter_ids]
        out: list[LoraAdapter] = []
        seen: set[object] = set()
        for ref in chosen:
            # the same adapter named twice (say, by the run config and by configurable_fields,
            # which copies that config into the instance) is applied once
            key = _ref_key(ref, namespace)
            if key in seen:
                continue
            seen.add(key)
            if isinstance(ref, LoraAdapter):
                out.append(ref)
            elif isinstance(ref, (str, Mapping)):
                adapter_id, ns = (ref, namespace) if isinstance(ref, str) else (ref.get("id"), ref.get("namespace"))
                if not isinstance(adapter_id, str):
                    raise ArgumentTypeError(f"an adapter ref needs a string 'id', got {ref!r}")
                if store is None:
                    raise InvalidArgumentError(f"adapter id {adapter_id!r} given but no adapter_store to resolve it")
                if ns is None:
                    raise InvalidArgumentError(f"adapter id {adapter_id!r} given without a namespace")
                ns = ns if isinstance(ns, str) else tuple(ns)
                out.append(self.engine.check_adapter(store.get(adapter_id, namespace=ns)))
            else:
                raise ArgumentTypeError(f"an adapter must be a LoraAdapter or an adapter id, got {type(ref).__name__}")
        return out

    # ------------------------------------------------------------------ generation
    @staticmethod
    def _adapter_kwargs(config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``kwargs`` plus the adapter settings of ``config["configurable"]`` that the call does not set.

        LangChain's ``invoke`` hands ``config`` to callbacks only; without this, ``adapter_ids`` in
        the config of a direct call would be ignored (the model only saw an enclosing runnable's).
        Call kwargs win, then the config, then the model's fields (see :meth:`resolve_adapters`).
        """
        configurable = ensure_config(config).get("configurable") or {}
        out = dict(kwargs)
        if "adapters" not in out and "adapter_ids" not in out:
            if configurable.get("adapter_ids"):
                out["adapter_ids"] = configurable["adapter_ids"]
            elif configurable.get("adapters"):
                out["adapters"] = configurable["adapters"]
        for key in ("namespace", "adapter_store"):
            if out.get(key) is None and configurable.get(key) is not None:
                out[key] = configurable[key]
        return out

    def invoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> BaseMessage:
        return super().invoke(input, config, stop=stop, **self._adapter_kwargs(config, kwargs))

    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> BaseMessage:
        return await super().ainvoke(input, config, stop=stop, **self._adapter_kwargs(config, kwargs))

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        return super().stream(input, config, stop=stop, **self._adapter_kwargs(config, kwargs))

    def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        return super().astream(input, config, stop=stop, **self._adapter_kwargs(config, kwargs))

    def _convert_input(self, model_input: LanguageModelInput) -> PromptValue:
        """LangChain's input conversion, with its errors typed: a value that is not a message
        (``invoke(["hi", 5])``, ``invoke(None)``) raises :class:`MessageTypeError` (a TypeError),
        a malformed one (an unknown role, a dict without ``content``) :class:`MessageFormatError`."""
        if isinstance(model_input, (PromptValue, str)):
            return super()._convert_input(model_input)
        if not isinstance(model_input, Sequence):
            raise MessageTypeError(
                f"input must be a str, a PromptValue or a list of messages, got {type(model_input).__name__}"
            )
        for m in model_input:
            if not isinstance(m, (BaseMessage, str, list, tuple, Mapping)):
                raise MessageTypeError(
                    f"a message must be a LangChain message, a str, a (role, content) pair or a dict, "
                    f"got {type(m).__name__}: {m!r}"
                )
        try:
            return super()._convert_input(model_input)
        except NotImplementedError as e:
            raise MessageTypeError(str(e).split("\n")[0]) from e
        except (ValueError, TypeError) as e:
            raise MessageFormatError(str(e).split("\n")[0]) from e

    def _decode_options(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(kwargs) - {
            "adapters",
            "adapter_ids",
            "namespace",
            "adapter_store",
            "temperature",
            "max_tokens",
            "top_p",
            "seed",
            "tools",
            "tool_choice",
            "model",
            "timeout",
            "ls_structured_output_format",
            "adapter_tokens",
            "allow_unknown",
        }
        if unknown:
            raise ArgumentTypeError(f"unexpected generation options: {sorted(unknown)}")
        refs = kwargs.get("adapters")
        if refs is None and kwargs.get("adapter_ids") is not None:
            if isinstance(kwargs["adapter_ids"], str) or not isinstance(kwargs["adapter_ids"], Sequence):
                raise ArgumentTypeError("adapter_ids must be a list of ids, not a single string")
            refs = list(kwargs["adapter_ids"])
        return {
            "adapters": self.resolve_adapters(
                refs, namespace=kwargs.get("namespace"), store=kwargs.get("adapter_store")
            ),
            # passed as given: the engine checks them and coerces nothing ("7" is not 7)
            "max_new_tokens": kwargs.get("max_tokens", self.max_tokens),
            "temperature": kwargs.get("temperature", self.temperature),
            "top_p": kwargs.get("top_p", self.top_p),
            "seed": kwargs.get("seed", self.seed),
            "stop": stop if stop is not None else self.stop,
            "tools": kwargs.get("tools"),
            "timeout": kwargs.get("timeout", self.timeout),
            "adapter_tokens": kwargs.get("adapter_tokens", self.adapter_tokens),
            "allow_unknown": kwargs.get("allow_unknown", self.allow_unknown),
        }

    def _finish_metadata(self, event: Any, n_adapters: int, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {
            "model_name": kwargs.get("model", self.model_name),
            "finish_reason": event.finish_reason,
            "model_provider": "agenthn",
            "adapters_applied": n_adapters,
        }

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        options = self._decode_options(stop, kwargs)
        if not messages:
            raise EmptyConversationError("no messages to answer")
        text, last = "", None
        for event in self.engine.stream(to_chat_dicts(messages), **options):
            text += event.text
            last = event
        assert last is not None  # stream() always ends with its finish record
        content, calls = parse_tool_calls(text) if options["tools"] else (text, [])
        usage = UsageMetadata(
            input_tokens=last.input_tokens,
            output_tokens=last.output_tokens,
            total_tokens=last.input_tokens + last.output_tokens,
        )
        message = AIMessage(
            content=content,
            tool_calls=calls,
            usage_metadata=usage,
            response_metadata=self._finish_metadata(last, len(options["adapters"]), kwargs),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        options = self._decode_options(stop, kwargs)
        if not messages:
            raise EmptyConversationError("no messages to answer")
        with_tools = bool(options["tools"])
        text = ""
        for event in self.engine.stream(to_chat_dicts(messages), **options):
            if event.finish_reason is None:
                text += event.text
                if with_tools:
                    continue  # tool-call markup is parsed once the text is complete
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=event.text))
                if run_manager:
                    run_manager.on_llm_new_token(event.text, chunk=chunk)
                yield chunk
                continue
            content, calls = parse_tool_calls(text) if with_tools else ("", [])
            usage = UsageMetadata(
                input_tokens=event.input_tokens,
                output_tokens=event.output_tokens,
                total_tokens=event.input_tokens + event.output_tokens,
            )
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content=content,
                    usage_metadata=usage,
                    tool_call_chunks=[
                        tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
                        for i, c in enumerate(calls)
                    ],
                    response_metadata=self._finish_metadata(event, len(options["adapters"]), kwargs),
                    chunk_position="last",
                )
            )

    # ------------------------------------------------------------------ tools and tokens
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | Literal["auto", "any", "none"] | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer tools through the tokenizer's chat template (its ``tools`` variable).

        Calls are parsed from ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` blocks,
        the format Qwen / Hermes style templates teach. ``tool_choice`` is recorded for the
        template; a local model cannot be forced to call a tool. The embedded tiny model was not
        trained on tools and will not call them.
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return super().bind(tools=formatted, **kwargs)

    def get_num_tokens(self, text: str) -> int:
        """Tokens in ``text`` by the model's own tokenizer (never a download)."""
        return len(self.engine.encode(text))

    def get_num_tokens_from_messages(
        self,
        messages: list[BaseMessage],
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool] | None = None,
    ) -> int:
        """Prompt tokens for ``messages`` after the chat template, by the model's own tokenizer."""
        from langchain_core.messages import convert_to_messages

        dicts = to_chat_dicts(convert_to_messages(messages))
        formatted = [convert_to_openai_tool(t) for t in tools] if tools else None
        return len(self.engine.encode(self.engine.render(dicts, tools=formatted)))
