"""Where a hypernetwork training step spends its time: seconds per phase, questions per CPU-second.

``agenthn train hypernet ... --profile N`` runs N steps after one warm-up step and prints a
:class:`StepProfile`. Each phase is timed twice: wall-clock seconds, and CPU seconds of the whole
process (every thread's user + system time), so a figure stays comparable on a machine whose
other work comes and goes -- the cost of a step is its CPU time, whatever else the cores do.

The training loop marks phases with :meth:`StepProfiler.phase`; outside a profile it gets
:data:`NO_PROFILER`, whose phases cost nothing.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

PHASES = (
    "batch",  # drawing and tokenizing the step's texts and questions (or reading them from a cache)
    "text_reads",  # the frozen base over the texts: hidden states and target-module inputs
    "teacher",  # the frozen base reading the text before each question (KL term)
    "hypernetwork",  # encode, gates, selected pieces, the student's injection plan
    "student_prompt",  # the question prompts into a KV cache, the plain pass over the answers
    "student_answer",  # the adapted pass over the answer tokens and the LM head there
    "losses",  # distillation, gate and key losses
    "backward",
    "optimizer",
)


def _peak_rss_bytes() -> int:
    """The process's peak resident memory (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


@dataclass
class StepProfile:
    """Seconds per step by phase (medians over the profiled steps), throughput, and peak memory."""

    steps: int
    questions_per_step: float
    wall: dict[str, float]
    cpu: dict[str, float]
    wall_per_step: float
    cpu_per_step: float
    peak_rss_bytes: int
    peak_cuda_bytes: int | None = None
    threads: int = field(default_factory=torch.get_num_threads)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def questions_per_cpu_second(self) -> float:
        return self.questions_per_step / self.cpu_per_step if self.cpu_per_step > 0 else float("nan")

    @property
    def questions_per_second(self) -> float:
        return self.questions_per_step / self.wall_per_step if self.wall_per_step > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "questions_per_step": self.questions_per_step,
            "wall_s": self.wall,
            "cpu_s": self.cpu,
            "wall_per_step_s": self.wall_per_step,
            "cpu_per_step_s": self.cpu_per_step,
            "questions_per_cpu_second": self.questions_per_cpu_second,
            "questions_per_second": self.questions_per_second,
            "peak_rss_bytes": self.peak_rss_bytes,
            "peak_cuda_bytes": self.peak_cuda_bytes,
            "threads": self.threads,
            "config": self.config,
        }

    def table(self) -> str:
        lines = [f"{'phase':<16} {'wall s':>8} {'cpu s':>8} {'share':>6}"]
        for name in PHASES:
            if name in self.wall:
                share = self.wall[name] / self.wall_per_step if self.wall_per_step else 0.0
                lines.append(f"{name:<16} {self.wall[name]:>8.3f} {self.cpu[name]:>8.3f} {share:>6.0%}")
        lines.append(f"{'whole step':<16} {self.wall_per_step:>8.3f} {self.cpu_per_step:>8.3f}")
        lines.append(
            f"questions/step {self.questions_per_step:.1f}; questions per CPU-second "
            f"{self.questions_per_cpu_second:.2f} (per wall second {self.questions_per_second:.2f}, "
            f"{self.threads} threads); peak RSS {self.peak_rss_bytes / 2**30:.2f} GiB"
            + ("" if self.peak_cuda_bytes is None else f"; peak CUDA {self.peak_cuda_bytes / 2**30:.2f} GiB")
            + f"; medians of {self.steps} steps"
        )
        return "\n".join(lines)


class StepProfiler:
    """Collects per-phase wall and CPU seconds for each step (see the module docstring)."""

    def __init__(self) -> None:
        self._steps: list[tuple[dict[str, float], dict[str, float], int]] = []
        self._wall: dict[str, float] = {}
        self._cpu: dict[str, float] = {}
        self._start = (time.perf_counter(), time.process_time())

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}; one of {PHASES}")
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self._wall[name] = self._wall.get(name, 0.0) + time.perf_counter() - wall
            self._cpu[name] = self._cpu.get(name, 0.0) + time.process_time() - cpu

    def start_step(self) -> None:
        self._wall, self._cpu = {}, {}
        self._start = (time.perf_counter(), time.process_time())

    def end_step(self, questions: int) -> None:
        """Close the step; time outside any phase is added to no phase but counts in the whole step."""
        wall, cpu = time.perf_counter() - self._start[0], time.process_time() - self._start[1]
        self._steps.append(({**self._wall, "_step": wall}, {**self._cpu, "_step": cpu}, questions))

    def report(self, *, skip: int = 1, config: dict[str, Any] | None = None) -> StepProfile:
        """Medians over the steps after the first ``skip`` (warm-up: allocations, lazy caches)."""
        steps = self._steps[skip:] or self._steps
        if not steps:
            raise ValueError("no step was profiled")
        names = [p for p in PHASES if any(p in w for w, _, _ in steps)]

        def med(which: int, key: str) -> float:
            return statistics.median(s[which].get(key, 0.0) for s in steps)

        peak_cuda = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
        return StepProfile(
            steps=len(steps),
            questions_per_step=statistics.mean(q for _, _, q in steps),
            wall={n: med(0, n) for n in names},
            cpu={n: med(1, n) for n in names},
            wall_per_step=med(0, "_step"),
            cpu_per_step=med(1, "_step"),
            peak_rss_bytes=_peak_rss_bytes(),
            peak_cuda_bytes=peak_cuda,
            config=dict(config or {}),
        )


class _NoProfiler:
    """Phases that cost nothing: what the training loop uses outside a profile."""

    def phase(self, name: str) -> AbstractContextManager[None]:
        return nullcontext()


NO_PROFILER: Any = _NoProfiler()
