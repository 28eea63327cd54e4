"""Checks of generation options, shared by the engine, the chat model and the nodes.

Every generation path (``generate``, ``generate_batch``, ``generate_ids``, ``stream``, the chat
model) goes through :func:`check_generation_options`: nothing is coerced (``"7"`` is not 7), and a
value that would silently mean something else (a negative temperature read as greedy,
``max_tokens=0`` answering "") is refused with a typed error. No torch import: the LangGraph nodes
use these checks at graph-build time.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from .errors import ArgumentTypeError, InvalidArgumentError

_SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.Generator.manual_seed accepts


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int_option(name: str, value: object, *, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``; a str, float or bool is refused, not converted."""
    if not _is_int(value):
        raise ArgumentTypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if int(value) < minimum:  # type: ignore[call-overload]
        raise InvalidArgumentError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def check_real_option(
    name: str, value: object, *, minimum: float = 0.0, maximum: float = math.inf, allow_inf: bool = False
) -> float:
    """``value`` as a finite float in [minimum, maximum]; NaN (and inf unless allowed) refused."""
    if not _is_real(value):
        raise ArgumentTypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    out = float(value)  # type: ignore[arg-type]
    if math.isnan(out) or (math.isinf(out) and not allow_inf) or not minimum <= out <= maximum:
        bounds = f">= {minimum}" if maximum == math.inf else f"in [{minimum}, {maximum}]"
        raise InvalidArgumentError(f"{name} must be a finite number {bounds}, got {value!r}")
    return out


def check_generation_options(
    *,
    max_new_tokens: object,
    temperature: object,
    top_p: object,
    seed: object = None,
    stop: object = None,
    adapter_tokens: object = "default",
    timeout: object = None,
) -> None:
    """Refuse generation options of the wrong type (:class:`ArgumentTypeError`, a TypeError) or
    outside their range (:class:`InvalidArgumentError`, a ValueError).

    ``max_new_tokens`` >= 1; ``temperature`` finite and >= 0 (0 = greedy); ``top_p`` in [0, 1]
    (0 keeps only the most likely token); ``seed`` an int torch accepts, or None; ``stop`` a list
    of strings (a bare string is refused: it would be read as one stop per character);
    ``adapter_tokens`` an int >= 1, None (all tokens) or "default"; ``timeout`` > 0 or None.
    """
    check_int_option("max_new_tokens", max_new_tokens)
    check_real_option("temperature", temperature)
    check_real_option("top_p", top_p, maximum=1.0)
    if seed is not None:
        if not _is_int(seed):
            raise ArgumentTypeError(f"seed must be an int or None, got {type(seed).__name__} {seed!r}")
        if not _SEED_RANGE[0] <= int(seed) <= _SEED_RANGE[1]:  # type: ignore[call-overload]
            raise InvalidArgumentError(f"seed must be in [-2**63, 2**64 - 1], got {seed!r}")
    if stop is not None:
        if isinstance(stop, str) or not isinstance(stop, Sequence):
            raise ArgumentTypeError(f"stop must be a list of strings, got {type(stop).__name__} {stop!r}")
        for s in stop:
            if not isinstance(s, str):
                raise ArgumentTypeError(f"stop strings must be str, got {type(s).__name__} {s!r}")
    if adapter_tokens is not None and adapter_tokens != "default":
        check_int_option("adapter_tokens", adapter_tokens)
    if timeout is not None:
        check_real_option("timeout", timeout, minimum=1e-9)
