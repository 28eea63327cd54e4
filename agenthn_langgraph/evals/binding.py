"""``agenthn eval binding``: can a target module tell two subjects' questions apart?

A generated adapter is a linear associative memory: its delta at a question is
``sum_t b_t (a_t . x)``, where ``x`` is what the target module sees where the answer is due. When
adapters of unrelated texts are composed, a question about one product also meets the other
products' pieces for the same attribute ("which color is flonk ?" against vexlo's colour). Only the
part of ``x`` that depends on the *subject* can keep them apart; if a module's ``x`` is the same
for "which color is flonk ?" and "which color is vexlo ?", no key that module's adapter holds can
separate them, however the hypernetwork is trained.

This benchmark measures that, per target module, on the base alone (no hypernetwork needed, so it
also helps choose ``--layers``/``--targets`` before training one). From held-out questions whose
keys name a subject and an attribute (``"flonk/color"``), at the last prompt token:

* ``same_attribute`` -- mean cosine between questions of the same attribute about *different*
  subjects (pairs that composition puts in competition; 1.0: the module cannot tell them apart);
* ``same_subject`` -- mean cosine between questions about the same subject and *different*
  attributes (the attribute is what a module can always read; the reference).

Activations are centred on the mean over all sampled questions first: every question shares a
large common component (the chat template, "what is"), which would make every cosine near 1.

Beside the activations, one behavioural check of the same property, on the base reading text:
two held-out texts about *different* subjects that state the *same* attribute are put in one
context, and the base is asked that attribute of one of them (``paired_in_context``), and how
often it answers with the other subject's value instead (``paired_confused``). A reader that finds
the answer by the attribute alone scores about 0.5 and 0.5. (Single-text reading never needs the
subject: one text names one product, so the attribute alone finds its value.)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..data.language import Language
from ..data.qa import QAExample, QAPair
from ..engine import WeightMemoryModel
from .recall import ReplyRunner, recalled


class _Asked(NamedTuple):
    """A held-out question about a named subject, and the text (index into the docs) stating it."""

    doc: int
    subject: str
    attribute: str
    pair: QAPair


@dataclass
class BindingReport:
    model: str
    language: str
    seed: int
    n_questions: int
    n_subjects: int
    same_attribute: dict[str, float]  # per target module
    same_subject: dict[str, float]
    n_paired: int = 0  # two-subject contexts read (module docstring)
    paired_in_context: float = float("nan")
    paired_confused: float = float("nan")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def table(self) -> str:
        lines = [
            f"{self.model} ({self.language}): {self.n_questions} questions about {self.n_subjects} subjects, "
            f"seed {self.seed}; centred cosine at the last prompt token",
            "",
            "| target module | same attribute, other subject | same subject, other attribute |",
            "|---|---|---|",
        ]
        for name in self.same_attribute:
            lines.append(f"| {name} | {self.same_attribute[name]:.3f} | {self.same_subject[name]:.3f} |")
        if self.n_paired:
            lines += [
                "",
                f"Two texts about different subjects in one context, asked the attribute both state "
                f"({self.n_paired} questions): answered {self.paired_in_context:.3f}, gave the other "
                f"subject's value {self.paired_confused:.3f} (a reader blind to the subject: about 0.5 and 0.5)",
            ]
        return "\n".join(lines)


def _split_key(key: str | None) -> tuple[str, str] | None:
    if not key or "/" not in key:
        return None
    subject, attribute = key.rsplit("/", 1)
    return subject, attribute


def _mean_pair_cosine(x: torch.Tensor, pairs: Sequence[tuple[int, int]]) -> float:
    if not pairs:
        return float("nan")
    i, j = (torch.tensor(p) for p in zip(*pairs, strict=True))
    return F.cosine_similarity(x[i], x[j], dim=-1).mean().item()


@torch.no_grad()
def evaluate_binding(
    model: WeightMemoryModel,
    language: Language,
    *,
    n_docs: int = 100,
    seed: int = 20261123,
    n_facts: int = 4,
    max_pairs: int = 5000,
    n_paired: int = 200,
) -> BindingReport:
    """Run the binding benchmark (module docstring) on ``n_docs`` held-out texts of ``language``.

    Only questions whose key names a subject other than the user count: a user's facts share one
    subject, and two texts about the same user's attribute are never composed as unrelated.
    Raises ``ValueError`` when the texts hold too few such subjects to form both kinds of pair.
    ``n_paired`` two-subject contexts are read for the behavioural check (0: skip it).
    """
    docs = language.examples(n_docs, seed, n_facts=n_facts)
    asked: list[_Asked] = []
    for i, d in enumerate(docs):
        for p in d.qa:
            split = _split_key(p.key)
            if split is not None and split[0] != "user":
                asked.append(_Asked(i, *split, p))
    questions = [(a.subject, a.attribute, a.pair.question) for a in asked]
    subjects = {s for s, _, _ in questions}
    if len(subjects) < 2:
        raise ValueError(
            f"{len(questions)} questions about {len(subjects)} subjects: binding needs keys 'subject/attribute' "
            "about two or more subjects (product or procedure texts)"
        )
    features: dict[str, list[torch.Tensor]] = {}
    for _, _, question in questions:
        ids = model.prompts.student_ids(question)
        with model.injector.capture_inputs() as captured:  # the decoder alone: no logits needed
            model.base.base_model(input_ids=torch.tensor([ids], device=model.device), use_cache=False)
        for name, x in captured.items():
            features.setdefault(name, []).append(x[0, -1].float().cpu())
    same_attr: list[tuple[int, int]] = []
    same_subj: list[tuple[int, int]] = []
    for i, (subject_i, attribute_i, _) in enumerate(questions):
        for j in range(i + 1, len(questions)):
            subject_j, attribute_j, _ = questions[j]
            if attribute_i == attribute_j and subject_i != subject_j:
                same_attr.append((i, j))
            elif subject_i == subject_j and attribute_i != attribute_j:
                same_subj.append((i, j))
    rng = random.Random(seed)
    same_attr = rng.sample(same_attr, min(max_pairs, len(same_attr)))
    same_subj = rng.sample(same_subj, min(max_pairs, len(same_subj)))
    if not same_attr or not same_subj:
        raise ValueError("the sampled questions form no pair of one kind; raise n_docs")
    attr_cos, subj_cos = {}, {}
    for name, xs in features.items():
        x = torch.stack(xs)
        x = x - x.mean(0, keepdim=True)
        attr_cos[name] = _mean_pair_cosine(x, same_attr)
        subj_cos[name] = _mean_pair_cosine(x, same_subj)
    paired = _paired_reading(model, docs, asked, n_paired, rng) if n_paired else (0, float("nan"), float("nan"))
    return BindingReport(
        model=model.name,
        language=language.name,
        seed=seed,
        n_questions=len(questions),
        n_subjects=len(subjects),
        same_attribute=attr_cos,
        same_subject=subj_cos,
        n_paired=paired[0],
        paired_in_context=paired[1],
        paired_confused=paired[2],
    )


def _paired_reading(
    model: WeightMemoryModel, docs: Sequence[QAExample], asked: Sequence[_Asked], n: int, rng: random.Random
) -> tuple[int, float, float]:
    """(questions, answered, confused): reading two texts about different subjects at once."""
    by_attribute: dict[str, list[_Asked]] = {}
    for a in asked:
        by_attribute.setdefault(a.attribute, []).append(a)
    candidates = [
        (x, y)
        for entries in by_attribute.values()
        for x in entries
        for y in entries
        # another text about another subject, whose value differs (else "confused" is unobservable)
        if x.doc != y.doc
        and x.subject != y.subject
        and not recalled(y.pair.answer, x.pair.answer)
        and not recalled(x.pair.answer, y.pair.answer)
    ]
    if not candidates:
        return 0, float("nan"), float("nan")
    chosen = rng.sample(candidates, min(n, len(candidates)))
    prompts, answer_len = [], 0
    for x, y in chosen:
        first, second = (docs[x.doc], docs[y.doc]) if rng.random() < 0.5 else (docs[y.doc], docs[x.doc])
        prompts.append(model.prompts.teacher_ids(f"{first.context} {second.context}", x.pair.question))
        answer_len = max(answer_len, len(model.prompts.answer_ids(x.pair.question, x.pair.answer)))
    replies = ReplyRunner(model, 64, answer_len + 6).replies(prompts, None)
    answered = [recalled(r, x.pair.answer) for r, (x, _) in zip(replies, chosen, strict=True)]
    confused = [
        recalled(r, y.pair.answer) and not hit for r, (_, y), hit in zip(replies, chosen, answered, strict=True)
    ]
    return len(chosen), sum(answered) / len(chosen), sum(confused) / len(chosen)
