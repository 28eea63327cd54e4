"""Per-call weight injection: where generated LoRA deltas enter a Hugging Face model's forward.

:class:`LoraInjector` registers one forward hook per target ``nn.Linear`` *once*. A hook adds a
delta only while an :class:`InjectionPlan` is active in the **current context**
(:mod:`contextvars`): each thread and each asyncio task has its own, so two requests generating
at the same time on one model never see each other's adapters, and there is no process-global
"active adapter". Outside a ``with injector.apply(...)`` block the hooks return ``None`` and the
model's outputs are bit-for-bit those of the base.

Rows of one batch may carry different adapters: the plan concatenates every adapter's ranks and a
``row_mask [rows, R]`` says which ranks each row uses (generation with several return sequences
per prompt repeats the mask row-wise).

Two places run a forward pass outside the context that entered the plan, and both are handled:

* **another thread** (the Hugging Face ``TextIteratorStreamer`` pattern runs ``model.generate`` in a
  worker thread). A new thread starts with an empty context, so it sees *no* plan -- that is the
  isolation guarantee. To hand a plan over on purpose, run the target through
  :meth:`LoraInjector.bind` (``Thread(target=injector.bind(model.generate), ...)``), or through
  ``contextvars.copy_context().run``.
* **gradient checkpointing**: ``torch.utils.checkpoint`` recomputes a checkpointed block's forward
  during ``backward()``, which usually runs after the ``with`` block has exited (and on CUDA, in
  an autograd worker thread). Hugging Face models checkpointed with
  ``gradient_checkpointing_enable()`` need nothing: the injector wraps each layer's checkpointing
  function so the recomputation runs under the plan of the original forward (reentrant and
  non-reentrant alike). A block checkpointed by hand is wrapped the same way:
  ``checkpoint(injector.bind(block), x, use_reentrant=False)``.
"""

from __future__ import annotations

import contextvars
import functools
import re
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import torch
from torch import nn

from .adapter import LoraAdapter

P = ParamSpec("P")
R = TypeVar("R")
_CURRENT: Any = object()  # bind()'s default: the plan active when bind() is called
_CKPT_ATTR = "_gradient_checkpointing_func"  # where Hugging Face keeps a layer's checkpoint function


@dataclass
class InjectionPlan:
    """Deltas to add for one call, scaling folded into B.

    ``weights[m]`` is either shared ``(A [R, d_in], B [d_out, R])`` -- optionally with a
    ``row_mask [rows, R]`` choosing each row's ranks -- or per-row ``(A [rows, R, d_in],
    B [rows, d_out, R])``, where each batch row has its own (zero-padded) adapter stack.

    ``token_mask [rows, T]`` (optional) restricts the delta to some positions of the pass: a
    hypernetwork trained to act on the answer only (``ChatFormat.adapter_on_prompt=False``) gets
    it on the position that predicts the first answer token and after, never on the prompt before.
    """

    weights: Mapping[str, tuple[torch.Tensor, torch.Tensor]]
    row_mask: torch.Tensor | None = None
    token_mask: torch.Tensor | None = None

    def at_positions(self, token_mask: torch.Tensor | None) -> InjectionPlan:
        """The same deltas, acting only where ``token_mask`` [rows, T] is 1."""
        return InjectionPlan(self.weights, self.row_mask, token_mask)

    def for_rows(self, rows: torch.Tensor) -> InjectionPlan:
        """The plan of a batch's rows ``rows`` only (a pass over some of the rows)."""
        weights = {n: (a[rows], b[rows]) if a.ndim == 3 else (a, b) for n, (a, b) in self.weights.items()}
        return InjectionPlan(
            weights,
            None if self.row_mask is None else self.row_mask[rows],
            None if self.token_mask is None else self.token_mask[rows],
        )


_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)\.")


def layer_index(name: str) -> int | None:
    """The decoder-layer number in a module name (``model.layers.12.mlp.down_proj`` -> 12), if any."""
    m = _LAYER_INDEX.search(name)
    return int(m.group(1)) if m else None


def find_target_modules(
    model: nn.Module, suffixes: Sequence[str], layers: Collection[int] | None = None
) -> dict[str, nn.Linear]:
    """Full names of the ``nn.Linear`` modules whose name ends with one of ``suffixes``.

    ``["mlp.down_proj"]`` finds every layer's down projection in Llama, Qwen2, Gemma and Mistral.
    ``layers`` keeps those of some decoder layers only (peft's ``layers_to_transform``).
    """
    found = {
        name: mod
        for name, mod in model.named_modules()
        if isinstance(mod, nn.Linear)
        and any(name == s or name.endswith("." + s) for s in suffixes)
        and (layers is None or layer_index(name) in layers)
    }
    if not found:
        where = "" if layers is None else f" in layers {sorted(layers)}"
        raise ValueError(f"no nn.Linear module of the model ends with any of {list(suffixes)}{where}")
    return found


class _PlanCarryingCheckpoint:
    """A Hugging Face layer's checkpointing function, made to carry the caller's plan into backward.

    ``torch.utils.checkpoint`` re-runs ``function`` during ``backward()``; the ContextVar that held
    the plan in the original forward is usually gone by then, and the recomputation would run
    without the delta (reentrant: silently wrong gradients; non-reentrant: a CheckpointError).
    Binding ``function`` to the plan active *now* makes both passes identical.
    """

    def __init__(self, inner: Callable[..., Any], injector: LoraInjector) -> None:
        self.inner = inner
        self.injector = injector

    def __call__(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        plan = self.injector.active_plan()
        if plan is not None:
            function = self.injector.bind(function, plan)
        return self.inner(function, *args, **kwargs)


def _carriers(func: object) -> Iterator[_PlanCarryingCheckpoint]:
    while isinstance(func, _PlanCarryingCheckpoint):
        yield func
        func = func.inner


def _fit_rows(t: torch.Tensor, rows: int, what: str) -> torch.Tensor:
    """``t`` [rows', ...] repeated row-wise to ``rows`` (generation with several sequences per prompt)."""
    if t.shape[0] == rows:
        return t
    if rows % t.shape[0]:
        raise RuntimeError(f"batch of {rows} rows does not fit a {what} for {t.shape[0]} rows")
    return t.repeat_interleave(rows // t.shape[0], dim=0)


def _delta_at_positions(
    output: torch.Tensor, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, plan: InjectionPlan
) -> torch.Tensor:
    """``output`` plus the plan's delta at the positions its ``token_mask`` selects, and nowhere else.

    Only the selected positions are multiplied (answer tokens are a few of a prompt's many), so a
    training step pays for the answer, not for the prompt.
    """
    assert plan.token_mask is not None
    if x.ndim != 3 or plan.token_mask.shape[-1] != x.shape[1]:
        raise RuntimeError(
            f"a token mask of shape {tuple(plan.token_mask.shape)} does not fit a pass of {tuple(x.shape)}"
        )
    rows = x.shape[0]
    row_idx, pos_idx = _fit_rows(plan.token_mask, rows, "token mask").nonzero(as_tuple=True)
    xs = x[row_idx, pos_idx].to(a.dtype)  # [P, d_in]
    if a.ndim == 3:  # per-row stacks
        a_rows, b_rows = _fit_rows(a, rows, "plan")[row_idx], _fit_rows(b, rows, "plan")[row_idx]
        delta = torch.einsum("pr,por->po", torch.einsum("pd,prd->pr", xs, a_rows), b_rows)
    else:
        h = xs @ a.T
        if plan.row_mask is not None:
            h = h * _fit_rows(plan.row_mask, rows, "plan")[row_idx]
        delta = h @ b.T
    return output.index_put((row_idx, pos_idx), delta.to(output.dtype), accumulate=True)


class LoraInjector:
    """Adds LoRA deltas to a model's target modules for the duration of a call.

    Example:
        >>> from transformers import LlamaConfig, LlamaForCausalLM
        >>> model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
        ...     num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
        >>> injector = LoraInjector(model, ["mlp.down_proj"])
        >>> injector.target_modules
        ['model.layers.0.mlp.down_proj']
    """

    def __init__(
        self,
        model: nn.Module,
        target_suffixes: Sequence[str] = ("mlp.down_proj",),
        *,
        layers: Collection[int] | None = None,
    ) -> None:
        self.model = model
        self.modules = find_target_modules(model, target_suffixes, layers)
        # one ContextVar per injector: plans of one model never reach another model's hooks
        self._plan: contextvars.ContextVar[InjectionPlan | None] = contextvars.ContextVar(
            f"agenthn_injection_{id(self)}", default=None
        )
        self._capture: contextvars.ContextVar[dict[str, torch.Tensor] | None] = contextvars.ContextVar(
            f"agenthn_capture_{id(self)}", default=None
        )
        self._handles = [mod.register_forward_hook(self._hook_for(name)) for name, mod in self.modules.items()]
        # Modules Hugging Face may checkpoint (layers, and models that checkpoint their layers
        # themselves): a pre-hook wraps their checkpointing function on first use under a plan.
        self._checkpointed = [m for m in model.modules() if hasattr(m, "gradient_checkpointing")]
        # (a plain function, not a bound method: deepcopy of the model copies hooks, and would copy
        # a bound method's injector, ContextVars and all)
        carry = self._carry_plan_into_checkpoint

        def carry_hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            carry(module, args)

        self._handles += [m.register_forward_pre_hook(carry_hook) for m in self._checkpointed]
        self._wrap_lock = threading.Lock()

    @property
    def target_modules(self) -> list[str]:
        return list(self.modules)

    def module_shapes(self) -> dict[str, tuple[int, int]]:
        return {n: (m.in_features, m.out_features) for n, m in self.modules.items()}

    def weight_norms(self) -> dict[str, float]:
        return {n: float(m.weight.detach().float().norm()) for n, m in self.modules.items()}

    def _hook_for(self, name: str):  # noqa: ANN202 - torch hook signature
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor | None:
            captured = self._capture.get()
            if captured is not None:
                captured[name] = inputs[0]
            plan = self._plan.get()
            if plan is None or name not in plan.weights:
                return None
            a, b = plan.weights[name]
            if plan.token_mask is not None:
                return _delta_at_positions(output, inputs[0], a, b, plan)
            x = inputs[0].to(a.dtype)
            if a.ndim == 3:  # per-row stacks
                a, b = _fit_rows(a, x.shape[0], "plan"), _fit_rows(b, x.shape[0], "plan")
                h = torch.einsum("btd,brd->btr", x, a)
                return output + torch.einsum("btr,bor->bto", h, b).to(output.dtype)
            h = x @ a.T  # [..., R]
            if plan.row_mask is not None:
                rows = h.shape[0]
                mask = _fit_rows(plan.row_mask, rows, "plan")
                h = h * mask.view(rows, *([1] * (h.ndim - 2)), mask.shape[-1])
            return output + (h @ b.T).to(output.dtype)

        return hook

    def _carry_plan_into_checkpoint(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        """Forward pre-hook: wrap ``module``'s checkpointing function once, if it checkpoints under a plan."""
        if not (getattr(module, "gradient_checkpointing", False) and module.training and self._plan.get() is not None):
            return
        with self._wrap_lock:
            func = module.__dict__.get(_CKPT_ATTR)
            if func is not None and not any(c.injector is self for c in _carriers(func)):
                setattr(module, _CKPT_ATTR, _PlanCarryingCheckpoint(func, self))

    def _unwrap_checkpointing(self) -> None:
        """Take this injector's wrappers out of every checkpointing function (others' stay)."""
        with self._wrap_lock:
            for module in self._checkpointed:
                func = module.__dict__.get(_CKPT_ATTR)
                outer: _PlanCarryingCheckpoint | None = None
                for carrier in list(_carriers(func)):
                    if carrier.injector is self:
                        if outer is None:
                            setattr(module, _CKPT_ATTR, carrier.inner)
                        else:
                            outer.inner = carrier.inner
                        break
                    outer = carrier

    # ------------------------------------------------------------------ plans
    def plan_for(
        self,
        adapters: Sequence[LoraAdapter] = (),
        *,
        per_row: Sequence[Sequence[LoraAdapter]] | None = None,
        weights: Sequence[float] | None = None,
    ) -> InjectionPlan | None:
        """Build a plan: the same adapters for every row, or ``per_row`` adapter lists."""
        param = next(self.model.parameters())
        if per_row is None:
            if not adapters:
                return None
            composite = (
                adapters[0] if len(adapters) == 1 and weights is None else LoraAdapter.compose(adapters, weights)
            )
            return InjectionPlan(
                {
                    n: (a.to(param.device, param.dtype), (b * composite.scaling).to(param.device, param.dtype))
                    for n, (a, b) in composite.weights.items()
                }
            )
        if weights is not None:
            raise ValueError("weights apply to shared adapters; give per-row weights by composing first")
        unique: list[LoraAdapter] = []
        for row in per_row:
            for ad in row:
                if not any(ad is u for u in unique):
                    unique.append(ad)
        if not unique:
            return None
        composite = LoraAdapter.compose(unique)
        # each unique adapter's rank span inside the composite; valid because every adapter has one
        # rank for all its modules (checked below against the composite's width)
        spans, start = [], 0
        for ad in unique:
            spans.append((start, start + ad.rank))
            start += ad.rank
        mask = torch.zeros(len(per_row), start, device=param.device, dtype=param.dtype)
        for i, row in enumerate(per_row):
            for ad in row:
                j = next(k for k, u in enumerate(unique) if u is ad)
                mask[i, spans[j][0] : spans[j][1]] = 1.0
        plan_weights = {}
        for n, (a, b) in composite.weights.items():
            if a.shape[0] != start:
                raise ValueError("per-row plans need every adapter to target every module with one rank")
            plan_weights[n] = (a.to(param.device, param.dtype), b.to(param.device, param.dtype))
        return InjectionPlan(plan_weights, mask)

    @contextmanager
    def apply(
        self,
        adapters: Sequence[LoraAdapter] = (),
        *,
        per_row: Sequence[Sequence[LoraAdapter]] | None = None,
        weights: Sequence[float] | None = None,
    ) -> Iterator[InjectionPlan | None]:
        """Inject adapters for the body of the ``with`` block, in this context only."""
        with self.use_plan(self.plan_for(adapters, per_row=per_row, weights=weights)) as plan:
            yield plan

    @contextmanager
    def use_plan(self, plan: InjectionPlan | None) -> Iterator[InjectionPlan | None]:
        """Activate a prepared plan (also differentiable ones, as in hypernetwork training)."""
        token = self._plan.set(plan)
        try:
            yield plan
        finally:
            self._plan.reset(token)

    @contextmanager
    def capture_inputs(self) -> Iterator[dict[str, torch.Tensor]]:
        """Record each target module's input during the block (in this context only).

        The hypernetwork uses what a module sees at each text token as that token's default key.
        """
        store: dict[str, torch.Tensor] = {}
        token = self._capture.set(store)
        try:
            yield store
        finally:
            self._capture.reset(token)

    def active_plan(self) -> InjectionPlan | None:
        """The plan active in the current context (``None``: the base model)."""
        return self._plan.get()

    def bind(self, fn: Callable[P, R], plan: InjectionPlan | None = _CURRENT) -> Callable[P, R]:
        """``fn`` made to run under ``plan`` wherever it is called; default: the plan active now.

        Plans live in the current context, and a new thread starts with an empty one; this is the
        supported way to hand a plan to code that runs elsewhere -- a worker thread (the
        ``TextIteratorStreamer`` pattern), or a block checkpointed by hand, whose forward is
        recomputed during ``backward()``::

            with injector.apply([memory]):
                Thread(target=injector.bind(model.generate), kwargs={..., "streamer": streamer}).start()
            y = checkpoint(injector.bind(block), x, use_reentrant=False)
        """
        chosen: InjectionPlan | None = self._plan.get() if plan is _CURRENT else plan

        @functools.wraps(fn)
        def bound(*args: P.args, **kwargs: P.kwargs) -> R:
            with self.use_plan(chosen):
                return fn(*args, **kwargs)

        return bound

    @property
    def removed(self) -> bool:
        """Whether :meth:`remove` has detached the hooks."""
        return not self._handles

    def remove(self) -> None:
        """Detach every hook and checkpoint wrapper this injector put on the model, for good."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._unwrap_checkpointing()
