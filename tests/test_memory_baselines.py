"""The markdown-notes and Cartridges baselines of ``agenthn eval memory``, on the tiny default."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
import torch
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from agenthn_langgraph import LocalHypernetChatModel
from agenthn_langgraph.chat_model import to_chat_dicts
from agenthn_langgraph.errors import ArgumentTypeError, EmptyConversationError, InvalidArgumentError
from agenthn_langgraph.evals.cartridges import (
    CartridgeOverBudgetError,
    answer,
    kv_bytes_per_token,
    self_study_questions,
    train_cartridge,
)
from agenthn_langgraph.evals.notes import NOTES_HEADER, MarkdownNotes
from agenthn_langgraph.evals.recall import recalled
from agenthn_langgraph.models.registry import language_of


@pytest.fixture(scope="module")
def llm() -> LocalHypernetChatModel:
    return LocalHypernetChatModel(max_tokens=8)


def test_notes_add_rewrite_and_forget_lines(llm):
    notes = MarkdownNotes(llm)
    notes.write([HumanMessage("my pet is a cat ."), AIMessage("nice !"), HumanMessage("i live in lima .")])
    notes.write([HumanMessage("hello !"), AIMessage("hi , how can i help ?"), HumanMessage("my pet is a frog .")])
    assert notes.document() == f"{NOTES_HEADER}\n- my pet is a frog .\n- i live in lima .", notes.document()
    assert notes.edits == 3  # add, add, rewrite; small talk and the assistant's words are never noted
    notes.write([HumanMessage("forget my pet .")])
    assert notes.document() == f"{NOTES_HEADER}\n- i live in lima ."
    assert isinstance(notes.messages()[0], SystemMessage)
    assert MarkdownNotes(llm).messages() == []  # nothing noted: nothing in the prompt


def test_notes_in_the_prompt_answer_what_the_base_cannot(llm):
    language = language_of(llm.engine)
    noted = bare = n = 0
    # 4 facts a seed; measured on seeds 0-7: notes 28/32 (3-4 a seed), the base alone 2/32 (0-1 a seed).
    # Here seeds 0-2: notes 12/12 and the base 1/12 when measured; bounds leave 3 and 2 of margin
    for seed in range(3):
        facts = language.user_facts(random.Random(seed), 4)
        notes = MarkdownNotes(llm)
        notes.write([HumanMessage(f.statement) for f in facts])
        for f in facts:
            noted += recalled(llm.invoke([*notes.messages(), HumanMessage(f.question)]).content, f.answer)
            bare += recalled(llm.invoke([HumanMessage(f.question)]).content, f.answer)
            n += 1
    assert noted >= n - 3 and bare <= 3, (noted, bare, n)


def test_a_cartridge_distils_evicted_turns_into_a_kv_prefix(llm):
    language = language_of(llm.engine)
    questions = self_study_questions(language)
    assert len(questions) == len(set(questions)) >= 20  # every phrasing of every user attribute the language asks
    hits = bare = n = 0
    for seed in range(3):  # measured on 6 seeds: cartridge 12/12, the base alone 0/12 (margins 1 and 1)
        facts = language.user_facts(random.Random(seed), 2)
        turns = [[HumanMessage(f.statement), AIMessage("ok .")] for f in facts]
        cartridge = train_cartridge(llm, turns, questions, n_tokens=16, epochs=20)
        assert cartridge.n_tokens == 16 and cartridge.n_pairs >= 2 and cartridge.train_s > 0
        assert cartridge.nbytes == 16 * kv_bytes_per_token(llm)
        for f in facts:
            text, tokens = answer(llm, cartridge, [HumanMessage(f.question)])
            assert tokens == llm.get_num_tokens_from_messages([HumanMessage(f.question)]) + 16
            hits += recalled(text, f.answer)
            bare += recalled(llm.invoke([HumanMessage(f.question)]).content, f.answer)
            n += 1
    assert hits >= n - 1 and bare <= 1, (hits, bare, n)


def test_the_teacher_reads_a_chunk_once_as_it_reads_it_in_every_prompt(llm):
    from agenthn_langgraph.evals.cartridges import _context_cache, greedy

    chunk = [
        HumanMessage("my pet is a frog ."),
        AIMessage("nice !"),
        HumanMessage("i live in lima ."),
        AIMessage("ok ."),
    ]
    questions = ["what pet do i have ?", "where do i live ?", "how are you ?"]
    prompts = [llm.engine.encode(llm.engine.render(to_chat_dicts([*chunk, HumanMessage(q)]))) for q in questions]
    full, full_p = greedy(llm, prompts, 6)
    context = _context_cache(llm, prompts)
    assert 10 < context.n_tokens < min(len(p) for p in prompts)
    cached, cached_p = greedy(llm, [p[context.n_tokens :] for p in prompts], 6, context)
    assert cached == full and full[0][:1] == llm.engine.encode("frog")
    for a, b in zip(full_p, cached_p, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_kv_bytes_per_token_of_the_tiny_base(llm):
    # 4 layers x (K, V) x 8 KV heads x 32 dims x 4 bytes (fp32)
    assert kv_bytes_per_token(llm) == 4 * 2 * 8 * 32 * 4


def test_cartridge_training_refuses_bad_input_and_stops_at_its_budget(llm):
    turns = [[HumanMessage("my pet is a frog ."), AIMessage("nice !")]]
    with pytest.raises(InvalidArgumentError):
        train_cartridge(llm, turns, ["what pet do i have ?"], n_tokens=0)
    with pytest.raises(ArgumentTypeError):
        train_cartridge(llm, turns, ["what pet do i have ?"], epochs="3")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        train_cartridge(llm, turns, ["what pet do i have ?"], budget_s=float("nan"))
    with pytest.raises(EmptyConversationError):
        train_cartridge(llm, [], ["what pet do i have ?"])
    with pytest.raises(EmptyConversationError):
        train_cartridge(llm, turns, [])
    with pytest.raises(CartridgeOverBudgetError) as over:
        train_cartridge(llm, turns, ["what pet do i have ?"], budget_s=1e-9)
    assert isinstance(over.value, TimeoutError)


def _agenthn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agenthn_langgraph.cli", *args], capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.parametrize(
    "option, value", [("--cartridge-tokens", "0"), ("--cartridge-epochs", "-1"), ("--cartridge-budget-s", "nan")]
)
def test_eval_memory_refuses_bad_cartridge_options(option, value):
    proc = _agenthn("eval", "memory", option, value)
    assert proc.returncode == 2 and f"argument {option}" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_eval_memory_has_the_notes_and_cartridges_rows_and_reports_skips():
    args = ("eval", "memory", "--turns", "16,24", "--seeds", "1", "--threads", "1", "--follow-up-docs", "0")
    proc = _agenthn(*args, "--cartridge-tokens", "32", "--cartridge-epochs", "20", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for row in ("markdown_notes", "cartridges"):
        assert report["questions_by_condition"][row] == {"16": 6, "24": 6}, report["questions_by_condition"]
        assert report["recall"][row]["24"] is not None
    # a cartridge's virtual tokens count as prompt tokens, and its KV is the prompt's
    assert report["prompt_tokens_median"]["cartridges"]["24"] > 32
    per_token = report["kv_bytes_per_token"]
    assert report["kv_bytes_median"]["text_rag"]["24"] == report["prompt_tokens_median"]["text_rag"]["24"] * per_token
    assert report["adapter_bytes_median"]["weight_memory"]["24"] > 0 == report["adapter_bytes_median"]["text_rag"]["24"]
    assert len(report["cartridge_train_s"]["16"]) == 1 and report["cartridge_skipped"] == {"16": 0, "24": 0}
    skipped = _agenthn(*args, "--cartridge-budget-s", "0")
    assert skipped.returncode == 0, skipped.stderr
    row = next(line for line in skipped.stdout.splitlines() if line.startswith("| cartridges |"))
    assert row.count("skipped (over 0 s budget)") == 2, row
