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
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..data.language import Language
from ..engine import WeightMemoryModel


@dataclass
class BindingReport:
    model: str
    language: str
    seed: int
    n_questions: int
    n_subjects: int
    same_attribute: dict[str, float]  # per target module
    same_subject: dict[str, float]

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
) -> BindingReport:
    """Run the binding benchmark (module docstring) on ``n_docs`` held-out texts of ``language``.

    Only questions whose key names a subject other than the user count: a user's facts share one
    subject, and two texts about the same user's attribute are never composed as unrelated.
    Raises ``ValueError`` when the texts hold too few such subjects to form both kinds of pair.
    """
    docs = language.examples(n_docs, seed, n_facts=n_facts)
    questions: list[tuple[str, str, str]] = []  # (subject, attribute, question)
    for d in docs:
        for p in d.qa:
            split = _split_key(p.key)
            if split is not None and split[0] != "user":
                questions.append((*split, p.question))
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
    return BindingReport(
        model=model.name,
        language=language.name,
        seed=seed,
        n_questions=len(questions),
        n_subjects=len(subjects),
        same_attribute=attr_cos,
        same_subject=subj_cos,
    )
