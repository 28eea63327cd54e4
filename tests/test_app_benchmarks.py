"""``agenthn eval skills | self-improve | personalization``: their data, their logic, and real runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agenthn_langgraph.data.language import DatasetLanguage
from agenthn_langgraph.data.qa import QAExample, QAPair
from agenthn_langgraph.errors import InvalidArgumentError
from agenthn_langgraph.evals.personalization import _stated, _topic, draw_users
from agenthn_langgraph.evals.recall import normalize
from agenthn_langgraph.evals.self_improve import _kept
from agenthn_langgraph.evals.skills import check_held_out, draw_sheets, subject_of
from agenthn_langgraph.tiny_default.data import TinyLanguage

LANGUAGE = TinyLanguage()  # the tests may name the tiny language; generic code gets it from the registry


def test_sheets_have_different_subjects_and_never_hold_their_tasks():
    sheets = draw_sheets(LANGUAGE, 3, 8, 10)
    assert len(sheets) == 8 and len({subject_of(s) for s in sheets}) == 8
    assert all(len(s.qa) == 10 for s in sheets)
    for sheet in sheets:
        check_held_out(sheet)  # raises if a task's question is in its sheet
    leaky = QAExample(
        context="zorp is a gadget . who makes zorp ? acme .", qa=(QAPair(question="who makes zorp ?", answer="acme"),)
    )
    with pytest.raises(ValueError, match="appears in its own sheet"):
        check_held_out(leaky)


def test_sheets_refuse_what_the_language_cannot_hold():
    with pytest.raises(InvalidArgumentError, match="at most 10 facts"):
        draw_sheets(LANGUAGE, 3, 2, 11)
    chats = DatasetLanguage([QAExample(context="<user> hi", qa=(QAPair(question="q ?", answer="a"),), genre="profile")])
    with pytest.raises(InvalidArgumentError, match="no reference-document genre"):
        draw_sheets(chats, 3, 1, 1)


def test_users_state_update_add_and_forget_with_values_no_other_user_has():
    users = draw_users(LANGUAGE, 11, 6, 4)
    for u in users:
        assert len(u.profile) == 4 and len(u.updated) == 1 and len(u.removed) == 1
        first, second = u.sessions
        assert len(first) == 8 and second[-1] == f"forget my {_topic(u.removed[0])} ."
        assert _topic(u.removed[0]) not in u.profile
        ((topic, old),) = u.updated.items()
        assert normalize(u.profile[topic].answer) != normalize(old)
    for topic in {t for u in users for t in _stated(u)}:
        said = [v for u in users for v in _stated(u).get(topic, set())]
        assert len(said) == len(set(said)), topic  # a value names exactly one user


def test_kept_is_the_best_round_so_far_and_carries_after_a_stop():
    rounds = [[False, False], [True, False], [False, False]]  # 0.0, 0.5, then a worse round 2
    kept = _kept(rounds, 4)
    assert [sum(k) for k in kept] == [0, 1, 1, 1, 1]
    assert kept[2] is rounds[1]  # round 2 attempted worse: round 1's adapter is still the one held
    tie = _kept([[True, False], [False, True]], 1)
    assert tie[1] is tie[0]  # ties keep the earlier round, as the grade node does


def _agenthn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agenthn_langgraph.cli", *args], capture_output=True, text=True, timeout=900, check=False
    )


@pytest.mark.parametrize(
    "args, option",
    [
        (("skills", "--sheets", "0"), "--sheets"),
        (("skills", "--facts", "x"), "--facts"),
        (("self-improve", "--rounds", "-1"), "--rounds"),
        (("self-improve", "--seeds", "0"), "--seeds"),
        (("personalization", "--users", "1"), "--users"),
        (("personalization", "--facts", "1"), "--facts"),
        (("personalization", "--torch-threads", "0"), "--torch-threads"),
    ],
)
def test_application_benchmarks_refuse_bad_options(args, option):
    proc = _agenthn("eval", *args)
    assert proc.returncode == 2 and f"argument {option}" in proc.stderr, proc.stderr


def _json(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_eval_skills_internalized_sheets_answer_held_out_tasks(tmp_path):
    report = _json(
        _agenthn("eval", "skills", "--seeds", "3", "--sheets", "2", "--json", "--plot", str(tmp_path / "s.png"))
    )
    assert report["n_tasks"] == 3 * 2 * 10 and set(report["by_seed"]) == {"515151", "515152", "515153"}
    a, tok = report["accuracy"], report["prompt_tokens_median"]
    # measured (3 seeds x 2 sheets): base 0.05, in context 0.85, internalized 0.92, without the nudge 0.92;
    # the full run (3 x 8 sheets) in docs/benchmarks.md agrees. Margins of 0.15 and more
    assert a["in_context"] >= a["base"] + 0.5 and a["internalized_no_nudge"] >= a["base"] + 0.5, a
    assert a["internalized_no_nudge"] >= a["in_context"] - 0.15, a
    assert tok["internalized_no_nudge"] < tok["in_context"] / 5 < tok["in_context"], tok  # measured 8 vs 75
    assert report["skill_matched"] >= 0.9  # measured 1.0
    assert (tmp_path / "s.png").stat().st_size > 10_000


@pytest.mark.slow
def test_eval_self_improve_gains_over_rounds_and_never_gets_worse(tmp_path):
    report = _json(_agenthn("eval", "self-improve", "--seeds", "3", "--json", "--plot", str(tmp_path / "si.png")))
    kept = report["kept"]
    assert len(kept) == 4 and report["questions_per_seed"] == 12
    assert all(later >= earlier for earlier, later in zip(kept, kept[1:], strict=False)), kept
    # measured on seeds 777-779: 0.00 -> 0.58 -> 0.64 -> 0.64 (+0.64); the target is +0.40
    assert kept[-1] >= kept[0] + 0.4, kept
    assert report["never_worse"] and report["best_reasked"], report
    assert report["prompt_tokens_adapter_median"] < report["prompt_tokens_notes_in_context_median"]
    assert (tmp_path / "si.png").stat().st_size > 10_000


@pytest.mark.slow
def test_eval_personalization_profile_adapter_alone_and_no_leakage(tmp_path):
    report = _json(
        _agenthn("eval", "personalization", "--seeds", "2", "--users", "3", "--json", "--plot", str(tmp_path / "p.png"))
    )
    a = report["accuracy"]
    assert report["n_questions"] == 2 * 3 * 4 and report["profile_facts_median"] == 4
    # measured: adapter 1.00, as text 1.00, off = no memory 0.25 (seed 626262, 3 users)
    assert a["profile_adapter"] >= 0.9 * a["profile_as_text"] and a["profile_adapter"] >= a["no_memory"] + 0.4, a
    assert a["adapter_off"] == a["no_memory"], a  # off, the agent is the base: the same replies
    assert report["off_adapters_applied"] == 0
    assert report["leak_adapters"] == report["leak_profile_facts"] == report["other_user_value"] == 0, report
    assert report["removed_recalled"]["profile_adapter"] <= 0.5, report["removed_recalled"]
    assert (tmp_path / "p.png").stat().st_size > 10_000
