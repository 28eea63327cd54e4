"""The training and evaluation example: a context text plus question-answer pairs about it.

Every hypernetwork trainer and recall benchmark here reads this one type, whatever the language:

.. code-block:: json

    {"context": "My sister Maria moved to Barcelona last spring.",
     "qa": [{"question": "Where does my sister live?", "answer": "Barcelona", "key": "user/sister_city"}],
     "genre": "profile", "id": "en-000017", "meta": {"split": "train"}}

An answer is any string (several tokens, sub-words, spaces). ``key`` names the fact a pair asks
about; two examples whose keys overlap can answer the same question differently, so they are never
composed as each other's *unrelated* distractors. Examples without keys are all unrelated.

JSONL is read line by line with every problem reported by line number (:class:`DatasetError`);
nothing is unpickled and nothing is silently skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import DatasetError


class QAPair(BaseModel):
    """One question about a context and its gold answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    key: str | None = None
    """The fact asked about (e.g. ``"user/pet"``, ``"zorblax/price"``); ``None`` if unknown."""

    @field_validator("question", "answer")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v


class QAExample(BaseModel):
    """A context to internalize and the questions it answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    context: str = Field(min_length=1)
    qa: tuple[QAPair, ...] = Field(min_length=1)
    genre: str | None = None
    id: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("context")
    @classmethod
    def _context_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(p.key for p in self.qa if p.key is not None)

    @property
    def n_facts(self) -> int:
        return len(self.qa)

    def stable_id(self) -> str:
        """``id`` when given, else a hash of the context (used for deterministic splits)."""
        return self.id or hashlib.sha256(self.context.encode("utf-8")).hexdigest()[:16]

    def unrelated_to(self, other: QAExample) -> bool:
        """True when no question of one can have an answer in the other (disjoint fact keys)."""
        return not (self.keys & other.keys)


def read_jsonl(path: str | os.PathLike[str]) -> list[QAExample]:
    """Read a QA JSONL file; a malformed line raises :class:`DatasetError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such dataset file")
    examples: list[QAExample] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                examples.append(QAExample.model_validate_json(line))
            except ValidationError as e:
                err = e.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                raise DatasetError(f"{path}:{n}: {where}: {err['msg']}") from e
    if not examples:
        raise DatasetError(f"{path}: no examples")
    return examples


def write_jsonl(examples: Iterable[QAExample], path: str | os.PathLike[str]) -> Path:
    """Write examples one JSON object per line (atomically: temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(ex.model_dump(exclude_defaults=True), ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def split_examples(
    examples: Sequence[QAExample], *, val_fraction: float = 0.05, salt: str = "val"
) -> tuple[list[QAExample], list[QAExample]]:
    """(train, validation), by a hash of each example's id: stable across runs and file orders.

    An example whose ``meta["split"]`` is set goes where it says ("train" or "val"; "test" and
    "heldout_phrasing" examples are never trained on and land in neither list).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    train: list[QAExample] = []
    val: list[QAExample] = []
    for ex in examples:
        fixed = ex.meta.get("split")
        if fixed is not None:
            {"train": train, "val": val}.get(fixed, []).append(ex)
            continue
        h = int(hashlib.sha256(f"{salt}:{ex.stable_id()}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (val if h < val_fraction else train).append(ex)
    return train, val
