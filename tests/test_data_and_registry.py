"""QA data files, the dataset language, the model registry and the shared training schedule."""

from __future__ import annotations

import random

import pytest
import torch

from agenthn_langgraph.data import QAExample, QAPair, read_jsonl, split_examples, write_jsonl
from agenthn_langgraph.data.english import EnglishLanguage
from agenthn_langgraph.data.language import DatasetLanguage
from agenthn_langgraph.errors import DatasetError, ModelNotFoundError
from agenthn_langgraph.models import ModelSpec, available_models, get_model_spec, load_default, register_model
from agenthn_langgraph.training import CosineSchedule, load_checkpoint, save_checkpoint, step_seed


def _ex(i: int, n: int = 2, genre: str = "profile", **meta) -> QAExample:
    qa = [QAPair(question=f"q{i}-{j}?", answer=f"a{i}-{j}", key=f"s{i}/k{j}") for j in range(n)]
    return QAExample(context=f"text {i}", qa=qa, genre=genre, id=f"ex-{i}", meta=meta)


def test_jsonl_round_trip_and_errors_name_the_line(tmp_path):
    examples = [_ex(i) for i in range(5)]
    path = write_jsonl(examples, tmp_path / "d.jsonl")
    assert read_jsonl(path) == examples
    path.write_text(path.read_text() + '{"context": "x", "qa": [{"question": "q", "answer": " "}]}\n')
    with pytest.raises(DatasetError, match=r"d.jsonl:6: qa.0.answer") as err:
        read_jsonl(path)
    assert isinstance(err.value, ValueError)
    with pytest.raises(DatasetError, match="no such"):
        read_jsonl(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DatasetError, match="no examples"):
        read_jsonl(tmp_path / "empty.jsonl")


def test_split_is_stable_and_honours_pinned_examples():
    examples = [_ex(i) for i in range(400)] + [_ex(900, split="val"), _ex(901, split="heldout_phrasing")]
    train, val = split_examples(examples, val_fraction=0.1)
    again_train, again_val = split_examples(list(reversed(examples)), val_fraction=0.1)
    assert {e.id for e in val} == {e.id for e in again_val} and len(train) == len(again_train)
    assert 20 <= len(val) <= 60  # ~10% of 400 by hash, plus the pinned one
    assert "ex-900" in {e.id for e in val} and "ex-901" not in {e.id for e in train + val}
    with pytest.raises(ValueError, match="val_fraction"):
        split_examples(examples, val_fraction=1.0)


def test_unrelated_means_disjoint_keys():
    a, b = _ex(1), _ex(2)
    shared = QAExample(context="t", qa=[QAPair(question="q", answer="a", key="s1/k0")])
    assert a.unrelated_to(b) and not a.unrelated_to(shared)
    keyless = QAExample(context="t", qa=[QAPair(question="q", answer="a")])
    assert keyless.unrelated_to(a) and keyless.unrelated_to(keyless)


def test_dataset_language_samples_what_matches():
    lang = DatasetLanguage([_ex(i, n=1 + i % 4) for i in range(40)] + [_ex(99, n=2, split="heldout_phrasing")])
    twos = lang.examples(100, seed=3, n_facts=2)
    assert len(twos) == 10 and all(e.n_facts == 2 for e in twos)
    assert lang.examples(5, seed=3, n_facts=2) == lang.examples(5, seed=3, n_facts=2)
    assert [e.id for e in lang.examples(5, seed=1, heldout_phrasing=True)] == ["ex-99"]
    assert lang.max_facts("profile") == 4 and lang.max_facts("product") == 0
    with pytest.raises(ValueError, match="no generator"):
        lang.user_facts(random.Random(0), 1)


def test_english_language_is_a_language():
    lang = EnglishLanguage()
    examples = lang.examples(8, seed=5, n_facts=(2, 3))
    assert len(examples) == 8 and {e.genre for e in examples} == set(lang.genres)
    assert all(p.answer in e.context for e in examples for p in e.qa)
    facts = lang.user_facts(random.Random(1), 5)
    assert len({f.key for f in facts}) == 5 and all(f.answer in f.statement for f in facts)


def test_registry_by_name_by_path_and_errors(tmp_path):
    assert "tiny" in available_models()
    model = load_default("tiny")
    assert load_default() is model and model.language is not None  # cached per process; language attached
    with pytest.raises(ModelNotFoundError, match="no model named 'nope'"):
        load_default("nope")
    with pytest.raises(ModelNotFoundError, match="not a model directory"):
        load_default(str(tmp_path))

    spec = ModelSpec(name="tiny-again", load=lambda device=None: model, description="the same engine")
    register_model(spec)
    assert get_model_spec("tiny-again") is spec and load_default("tiny-again") is model
    with pytest.raises(ValueError, match="already registered"):
        register_model(spec)
    register_model(spec, replace=True)
    # the engine it shares keeps what its own spec set (a spec without a judge must not reset it)
    assert model.recall_judge == "reader"


def test_schedule_and_checkpoints(tmp_path):
    s = CosineSchedule(lr=1.0, warmup=10, steps=110, floor=0.1)
    values = [s(i) for i in range(120)]
    assert values[9] == 1.0 and values[110] == pytest.approx(0.1) and values[119] == pytest.approx(0.1)
    assert all(b <= a + 1e-12 for a, b in zip(values[9:], values[10:], strict=False))  # never rises after warm-up
    assert step_seed(1, 5) != step_seed(1, 5, stream=1) and step_seed(1, 5) != step_seed(2, 5)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW([{"params": model.parameters(), "lr_scale": 0.5}], lr=1.0)
    assert s.apply(opt, 50) == s(50) and opt.param_groups[0]["lr"] == pytest.approx(0.5 * s(50))
    save_checkpoint(tmp_path / "c.pt", model=model, optimizer=opt, step=7, extra={"best": 1.5})
    other = torch.nn.Linear(3, 2)
    step, extra = load_checkpoint(tmp_path / "c.pt", model=other)
    assert step == 7 and extra == {"best": 1.5} and torch.equal(other.weight, model.weight)
