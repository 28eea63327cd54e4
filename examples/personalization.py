"""Personalization: a per-user profile adapter, edited as the user talks, used in later sessions.

Run: python examples/personalization.py                   (about 15 s on 2 CPU cores, the embedded default)
     python examples/personalization.py --model smollm2   (SmolLM2-135M-Instruct, English)
"""

from __future__ import annotations

import argparse
import random
import tempfile

from langgraph.checkpoint.memory import InMemorySaver

from agenthn_langgraph import LocalHypernetChatModel
from agenthn_langgraph.models import language_of
from agenthn_langgraph.prebuilt import AgentContext, create_personalized_agent
from agenthn_langgraph.store import AdapterStore

TINY_SESSION = ["my name is ivan .", "i live in lima .", "my pet is a cat .", "i moved to oslo .", "my pet is a frog ."]
TINY_QUESTIONS = [("what is my name ?", "ivan"), ("where do i live ?", "oslo"), ("what pet do i have ?", "frog")]


def english_session(llm: LocalHypernetChatModel) -> tuple[list[str], list[tuple[str, str]]]:
    """Three facts drawn in the model's language, one of them restated later with a new value."""
    language = language_of(llm.engine)
    facts = language.user_facts(random.Random(11), 3)
    every = language.user_facts(random.Random(12), language.max_user_facts)  # a second value per attribute
    moved = next(f for f in every if f.key == facts[1].key and f.answer != facts[1].answer)
    session = [facts[0].statement, facts[1].statement, facts[2].statement, moved.statement]
    return session, [
        (facts[0].question, facts[0].answer),
        (moved.question, moved.answer),
        (facts[2].question, facts[2].answer),
    ]


def main(model: str = "tiny") -> None:
    llm = LocalHypernetChatModel(model=model, max_tokens=4 if model == "tiny" else 16)
    session, questions = (TINY_SESSION, TINY_QUESTIONS) if model == "tiny" else english_session(llm)
    store = AdapterStore.for_model(llm.engine, tempfile.mkdtemp(prefix="agenthn-profile-"))
    agent = create_personalized_agent(llm, adapter_store=store, internalize_every=2, checkpointer=InMemorySaver())
    ivan, bob = AgentContext(user_id="ivan"), AgentContext(user_id="bob")

    print("session 1 (ivan): the profile document after each turn")
    cfg = {"configurable": {"thread_id": "ivan-1"}}
    for text in session:
        out = agent.invoke({"messages": [("user", text)]}, cfg, context=ivan)
        print(
            f"  user: {text:22s} profile: {list(out['profile'].values())}  "
            f"pending edits: {out['profile_pending_edits']}"
        )
    agent.invoke(
        {"messages": [("user", "thanks !" if model == "tiny" else "Thanks!")]},
        {"configurable": {"thread_id": "ivan-1", "internalize_profile": True}},
        context=ivan,
    )
    record = store.get_record("profile", namespace=("profiles", "ivan"))
    print(f"adapters made: profile adapter for ivan ({record.extra['n_facts']} facts), text: {record.text!r}\n")

    print("session 2: a new thread, empty context | question | ivan (profile adapter) | bob (no profile) | expected")
    for question, answer in questions:
        mine = agent.invoke({"messages": [("user", question)]}, {"configurable": {"thread_id": "ivan-2"}}, context=ivan)
        other = agent.invoke({"messages": [("user", question)]}, {"configurable": {"thread_id": "bob-1"}}, context=bob)
        print(
            f"  {question} | {mine['messages'][-1].content} | {other['messages'][-1].content} | {answer}"
            f"  (prompt tokens {mine['messages'][-1].usage_metadata['input_tokens']})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="a registered model name (tiny, smollm2) or a directory")
    main(parser.parse_args().model)
