"""``agenthn eval personalization``: preferences stated over sessions, answered from the profile adapter.

Per seed, ``users`` users talk to :func:`~agenthn_langgraph.prebuilt.create_personalized_agent`
(``update_profile -> agent``, one real store for all of them) in their own sessions, each on a
thread of its own:

* session 1 states ``facts`` facts about the user (drawn in the model's
  :class:`~agenthn_langgraph.data.language.Language`), each followed by a turn of small talk;
* session 2 edits the profile: restates one fact with a new value (update), states a new one
  (add) and asks to forget another (remove: ``forget my <topic> .``).

Each session's last turn internalizes the profile (``internalize_profile``), as a deployment's
end-of-session hook would: edits still pending then would otherwise stay in that session's thread.

For a given topic every user's value differs from every other user's, so an answer can tell whose
value it is. Then, in a fresh session (a new thread, empty context), every fact of the current
profile is asked under:

* ``profile_adapter`` -- the agent, the user's own context: the profile adapter alone carries the facts;
* ``profile_as_text`` -- the model with the profile in the prompt as text (the conversation the
  adapter was internalized from: one stated fact a turn), no adapter;
* ``adapter_off``     -- the agent after the user's profile adapter is deleted from the store;
* ``no_memory``       -- the agent for a user who never said anything.

Also reported: ``updated_latest`` (updated facts answered with the new value), ``removed_recalled``
(forgotten facts still answered with their value; the adapter was rebuilt without them), and
cross-user leakage: ``leak_adapters`` (calls that applied an adapter from another user's
namespace), ``leak_profile_facts`` (a user's stored profile holding a value only another user
stated) and ``other_user_value`` (an adapter answer that is another user's value for the topic and
not what the model says with no memory), beside ``decoy_value``, the same count for values
nobody stated (what chance gives).
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from ..chat_model import LocalHypernetChatModel
from ..data.facts import Fact
from ..data.language import Language
from ..errors import InvalidArgumentError
from ..models.registry import language_of
from ..nodes.profile import PROFILE_ID
from ..options import check_int_option
from ..prebuilt import AgentContext, create_personalized_agent
from ..store import AdapterStore
from .memory import _restatement
from .recall import normalize, recalled, wilson_interval

DEFAULT_PERSONALIZATION_SEED = 626262
PERSONALIZATION_CONDITIONS = ("profile_adapter", "profile_as_text", "adapter_off", "no_memory")


@dataclass
class User:
    name: str
    sessions: list[list[str]]  # the user's turns, per session
    profile: dict[str, Fact]  # topic -> the fact as it stands after the edits
    updated: dict[str, str]  # topic -> the value it replaced
    removed: list[Fact]


def _topic(fact: Fact) -> str:
    """The profile's key for a fact: its attribute (``"user/pet"`` -> ``"pet"``)."""
    return fact.key.split("/")[-1]


def draw_users(language: Language, seed: int, n_users: int, n_facts: int) -> list[User]:
    """Users whose values differ, topic by topic, from every other user's (and from the decoys')."""
    rng = random.Random(f"{seed}-users")
    used: dict[str, set[str]] = {}  # topic -> values taken

    def fresh(fact: Fact, attempts: int = 200) -> Fact:
        for _ in range(attempts):
            if normalize(fact.answer) not in used.setdefault(_topic(fact), set()):
                used[_topic(fact)].add(normalize(fact.answer))
                return fact
            fact = _restatement(language, rng, fact)
        raise InvalidArgumentError(f"could not draw {n_users} users with different values for {_topic(fact)!r}")

    users = []
    for u in range(n_users):
        facts = [fresh(f) for f in language.user_facts(rng, n_facts + 1)]
        initial, added = facts[:n_facts], facts[n_facts]
        changed, forgotten = rng.sample(initial, 2)
        new = fresh(_restatement(language, rng, changed))
        first: list[str] = []
        for f in initial:
            first += [f.statement, language.small_talk(rng)[0]]
        second = [new.statement, language.small_talk(rng)[0], added.statement, f"forget my {_topic(forgotten)} ."]
        profile = {_topic(f): f for f in initial if f is not forgotten}
        profile[_topic(changed)] = new
        profile[_topic(added)] = added
        users.append(User(f"user{u}", [first, second], profile, {_topic(changed): changed.answer}, [forgotten]))
    return users


@dataclass
class PersonalizationReport:
    model: str
    language: str
    seeds: list[int]
    users_per_seed: int
    facts_per_user: int
    n_questions: int
    accuracy: dict[str, float] = field(default_factory=dict)
    accuracy_ci: dict[str, list[float]] = field(default_factory=dict)
    prompt_tokens_median: dict[str, float] = field(default_factory=dict)
    by_seed: dict[str, dict[str, float]] = field(default_factory=dict)
    updated_latest: dict[str, float] = field(default_factory=dict)  # condition -> rate on updated facts
    removed_recalled: dict[str, float] = field(default_factory=dict)  # condition -> rate on forgotten facts
    n_updated: int = 0
    n_removed: int = 0
    leak_adapters: int = 0
    leak_profile_facts: int = 0
    other_user_value: int = 0
    decoy_value: int = 0
    off_adapters_applied: int = 0  # profile adapters applied after the user's was deleted (must be 0)
    profile_facts_median: float = 0.0
    ms_per_turn_median: float = 0.0
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def targets(self) -> dict[str, bool]:
        a = self.accuracy
        return {
            "profile_adapter >= 0.9 x profile_as_text": a["profile_adapter"] >= 0.9 * a["profile_as_text"],
            "adapter_off <= no_memory + 0.05": a["adapter_off"] <= a["no_memory"] + 0.05
            and self.off_adapters_applied == 0,
            "cross-user leakage 0": self.leak_adapters == self.leak_profile_facts == self.other_user_value == 0,
        }

    def table(self) -> str:
        lines = [
            f"{self.model} ({self.language}): seeds {self.seeds}, {self.users_per_seed} users per seed, "
            f"{self.facts_per_user} facts stated then 1 updated, 1 added, 1 removed (profile of "
            f"{self.profile_facts_median:.0f} facts); {self.n_questions} questions in a fresh session; "
            "accuracy (Wilson 95% interval)",
            "",
            "| condition | accuracy | prompt tokens (median) | updated: new value | forgotten: still said | "
            + " | ".join(f"seed {s}" for s in self.seeds)
            + " |",
            "|---|---|---|---|---|" + "---|" * len(self.seeds),
        ]
        for c in PERSONALIZATION_CONDITIONS:
            lo, hi = self.accuracy_ci[c]
            lines.append(
                f"| {c} | {self.accuracy[c]:.3f} ({lo:.2f}-{hi:.2f}) | {self.prompt_tokens_median[c]:.0f} | "
                f"{self.updated_latest[c]:.3f} (n={self.n_updated}) | {self.removed_recalled[c]:.3f} "
                f"(n={self.n_removed}) | " + " | ".join(f"{self.by_seed[str(s)][c]:.3f}" for s in self.seeds) + " |"
            )
        lines += [
            "",
            f"cross-user leakage: adapters from another user's namespace applied {self.leak_adapters}, stored "
            f"profile facts only another user stated {self.leak_profile_facts}, adapter answers naming another "
            f"user's value for the topic (not the no-memory answer) {self.other_user_value} (values nobody "
            f"stated, the chance count: {self.decoy_value})",
            "targets: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in self.targets().items()),
            f"ms / session turn (median) {self.ms_per_turn_median:.0f}; wall time {self.wall_s:.0f} s",
        ]
        return "\n".join(lines)

    def plot(self, path: str) -> str:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.6))
        xs = list(range(len(PERSONALIZATION_CONDITIONS)))
        acc = [self.accuracy[c] for c in PERSONALIZATION_CONDITIONS]
        err = [
            [max(self.accuracy[c] - self.accuracy_ci[c][0], 0.0) for c in PERSONALIZATION_CONDITIONS],
            [max(self.accuracy_ci[c][1] - self.accuracy[c], 0.0) for c in PERSONALIZATION_CONDITIONS],
        ]
        ax.bar(xs, acc, yerr=err, capsize=3, color=["#58a", "#c77", "#999", "#bbb"])
        ax.set_xticks(xs, [c.replace("_", "\n") for c in PERSONALIZATION_CONDITIONS], fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("accuracy in a fresh session (Wilson 95%)")
        ax.set_title(f"{self.model}: seeds {self.seeds}, {self.n_questions} questions", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def _reply(out: dict[str, Any]) -> tuple[str, int]:
    message = out["messages"][-1]
    return str(message.content), int(message.usage_metadata["input_tokens"])


def _as_text(llm: LocalHypernetChatModel, facts: dict[str, str], question: str) -> list[BaseMessage]:
    """The profile as the conversation it was internalized from (one stated fact a turn), then the question."""
    ack = getattr(getattr(llm.engine, "language", None), "acknowledgement", "ok .")
    turns: list[BaseMessage] = []
    for statement in facts.values():
        turns += [HumanMessage(statement), AIMessage(ack)]
    return [*turns, HumanMessage(question)]


def evaluate_personalization(
    llm: LocalHypernetChatModel | None = None,
    *,
    seeds: Sequence[int] = (DEFAULT_PERSONALIZATION_SEED,),
    users: int = 6,
    facts: int = 4,
    progress: bool = True,
) -> PersonalizationReport:
    """Run the sessions and the fresh-session questions per seed; see the module docstring."""
    from tqdm.auto import tqdm

    check_int_option("users", users, minimum=2)
    if check_int_option("facts", facts) < 2:
        raise InvalidArgumentError("facts must be >= 2: one is updated and another removed")
    if not seeds:
        raise InvalidArgumentError("evaluate_personalization needs at least one seed")
    llm = llm or LocalHypernetChatModel(max_tokens=8)
    language = language_of(llm.engine)
    start = time.perf_counter()
    tally = _Tally()
    by_seed: dict[str, dict[str, float]] = {}
    bar = tqdm(total=len(seeds) * users, desc="eval personalization (users)", disable=not progress)
    with tempfile.TemporaryDirectory(prefix="agenthn-eval-personalization-") as tmp:
        for seed in seeds:
            people = draw_users(language, seed, users, facts)
            store = AdapterStore.for_model(llm.engine, f"{tmp}/seed-{seed}")
            agent = create_personalized_agent(llm, store, checkpointer=InMemorySaver())
            for user in people:
                tally.turn_ms += _talk(agent, user)
            stated = {u.name: _stated(u) for u in people}  # user -> topic -> every value they ever stated
            values: dict[str, set[str]] = {}
            for by_topic in stated.values():
                for topic, said in by_topic.items():
                    values.setdefault(topic, set()).update(said)
            decoys = _decoys(language, seed, values)
            first = len(tally.hits["profile_adapter"])
            for user in people:
                others = {t: v - stated[user.name].get(t, set()) for t, v in values.items()}
                _ask_user(llm, agent, store, user, stated[user.name], others, decoys, tally)
                bar.update(1)
            by_seed[str(seed)] = {c: _rate(v[first:]) for c, v in tally.hits.items()}
    bar.close()
    n = len(tally.hits["profile_adapter"])
    return PersonalizationReport(
        model=llm.engine.name,
        language=language.name,
        seeds=list(seeds),
        users_per_seed=users,
        facts_per_user=facts,
        n_questions=n,
        accuracy={c: _rate(v) for c, v in tally.hits.items()},
        accuracy_ci={c: list(wilson_interval(sum(v), n)) for c, v in tally.hits.items()},
        prompt_tokens_median={c: float(statistics.median(v)) for c, v in tally.tokens.items()},
        by_seed=by_seed,
        updated_latest={c: _rate(v) for c, v in tally.updated.items()},
        removed_recalled={c: _rate(v) for c, v in tally.removed.items()},
        n_updated=len(tally.updated["profile_adapter"]),
        n_removed=len(tally.removed["profile_adapter"]),
        leak_adapters=tally.leak_adapters,
        leak_profile_facts=tally.leak_facts,
        other_user_value=tally.other_value,
        decoy_value=tally.decoy_value,
        off_adapters_applied=tally.off_applied,
        profile_facts_median=float(statistics.median(tally.profile_sizes)),
        ms_per_turn_median=float(statistics.median(tally.turn_ms)),
        wall_s=time.perf_counter() - start,
    )


class _Tally:
    """What the questions accumulate, per condition and overall."""

    def __init__(self) -> None:
        self.hits: dict[str, list[bool]] = {c: [] for c in PERSONALIZATION_CONDITIONS}
        self.tokens: dict[str, list[int]] = {c: [] for c in PERSONALIZATION_CONDITIONS}
        self.updated: dict[str, list[bool]] = {c: [] for c in PERSONALIZATION_CONDITIONS}
        self.removed: dict[str, list[bool]] = {c: [] for c in PERSONALIZATION_CONDITIONS}
        self.leak_adapters = self.leak_facts = self.other_value = self.decoy_value = self.off_applied = 0
        self.profile_sizes: list[int] = []
        self.turn_ms: list[float] = []


def _rate(xs: Sequence[bool]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _talk(agent: Any, user: User) -> list[float]:
    """The user's sessions, each on its own thread. A session's last turn internalizes the profile:
    edits still pending (fewer than ``internalize_every``) live in that thread's state only, and a
    later session on another thread would never see them."""
    ms: list[float] = []
    context = AgentContext(user_id=user.name)
    for s, session in enumerate(user.sessions):
        for k, text in enumerate(session):
            cfg = {"configurable": {"thread_id": f"{user.name}-s{s}", "internalize_profile": k == len(session) - 1}}
            t0 = time.perf_counter()
            agent.invoke({"messages": [("user", text)]}, cfg, context=context)
            ms.append((time.perf_counter() - t0) * 1000)
    return ms


def _ask(agent: Any, user_id: str, thread: str, question: str) -> dict[str, Any]:
    """One question in a fresh session (a thread of its own), profile editing off."""
    cfg = {"configurable": {"thread_id": thread, "profile_updates": False}}
    return agent.invoke({"messages": [("user", question)]}, cfg, context=AgentContext(user_id=user_id))


def _ask_user(
    llm: LocalHypernetChatModel,
    agent: Any,
    store: AdapterStore,
    user: User,
    mine: dict[str, set[str]],
    others: dict[str, set[str]],
    decoys: dict[str, set[str]],
    tally: _Tally,
) -> None:
    """Every probe of one user under every condition; then their adapter is deleted and asked again."""
    namespace = ("profiles", user.name)
    stored = json.loads(str(store.get_record(PROFILE_ID, namespace=namespace).extra["facts"]))
    tally.profile_sizes.append(len(stored))
    own = {v for said in mine.values() for v in said}
    tally.leak_facts += sum(1 for st in stored.values() if not any(f" {v} " in f" {normalize(st)} " for v in own))
    probes = [*user.profile.values(), *user.removed]
    replies: list[dict[str, str]] = []
    for i, f in enumerate(probes):
        out = _ask(agent, user.name, f"{user.name}-fresh-{i}", f.question)
        applied = (out.get("active_adapters") or {}).get("profile", [])
        tally.leak_adapters += sum(1 for r in applied if tuple(r["namespace"]) != namespace)
        as_text = llm.invoke(_as_text(llm, stored, f.question))
        stranger = _ask(agent, f"stranger-{user.name}", f"stranger-{user.name}-{i}", f.question)
        replies.append(
            {
                "profile_adapter": _reply(out)[0],
                "profile_as_text": str(as_text.content),
                "no_memory": _reply(stranger)[0],
            }
        )
        tally.tokens["profile_adapter"].append(_reply(out)[1])
        tally.tokens["profile_as_text"].append(int(as_text.usage_metadata["input_tokens"]))
        tally.tokens["no_memory"].append(_reply(stranger)[1])
    store.delete(PROFILE_ID, namespace=namespace)  # personalization off for this user
    for i, f in enumerate(probes):
        out = _ask(agent, user.name, f"{user.name}-off-{i}", f.question)
        tally.off_applied += len((out.get("active_adapters") or {}).get("profile", []))
        replies[i]["adapter_off"] = _reply(out)[0]
        tally.tokens["adapter_off"].append(_reply(out)[1])
    for f, said in zip(probes, replies, strict=True):
        topic = _topic(f)
        for c in PERSONALIZATION_CONDITIONS:
            ok = recalled(said[c], f.answer)
            if f in user.removed:
                tally.removed[c].append(ok)
                continue
            tally.hits[c].append(ok)
            if topic in user.updated:
                tally.updated[c].append(ok)
        if f not in user.removed:
            # another user's value for this topic in the adapter's answer, where memory-less says otherwise
            answer, bare = said["profile_adapter"], said["no_memory"]
            tally.other_value += any(recalled(answer, v) and not recalled(bare, v) for v in others.get(topic, ()))
            tally.decoy_value += any(recalled(answer, v) and not recalled(bare, v) for v in decoys.get(topic, ()))


def _stated(user: User) -> dict[str, set[str]]:
    """Topic -> every value the user stated for it (current, replaced and forgotten)."""
    out: dict[str, set[str]] = {}
    for f in [*user.profile.values(), *user.removed]:
        out.setdefault(_topic(f), set()).add(normalize(f.answer))
    for topic, old in user.updated.items():
        out.setdefault(topic, set()).add(normalize(old))
    return out


def _decoys(language: Language, seed: int, taken: dict[str, set[str]]) -> dict[str, set[str]]:
    """Per topic, as many values nobody stated as other users stated (the chance control)."""
    rng = random.Random(f"{seed}-decoys")
    out: dict[str, set[str]] = {}
    for _ in range(200):
        for fact in language.user_facts(rng, 1):
            topic, value = _topic(fact), normalize(fact.answer)
            if topic in taken and value not in taken[topic] and len(out.get(topic, set())) < len(taken[topic]) - 1:
                out.setdefault(topic, set()).add(value)
    return out
