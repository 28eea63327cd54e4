"""Personalization: a per-user profile adapter, edited as the user talks, used in later sessions.

Run: python examples/personalization.py   (about 15 s on 2 CPU cores with the embedded default)
"""

from __future__ import annotations

import tempfile

from langgraph.checkpoint.memory import InMemorySaver

from agenthn_langgraph import LocalHypernetChatModel
from agenthn_langgraph.prebuilt import AgentContext, create_personalized_agent
from agenthn_langgraph.store import AdapterStore

SESSION_1 = ["my name is ivan .", "i live in lima .", "my pet is a cat .", "i moved to oslo .", "my pet is a frog ."]
QUESTIONS = [("what is my name ?", "ivan"), ("where do i live ?", "oslo"), ("what pet do i have ?", "frog")]


def main() -> None:
    llm = LocalHypernetChatModel(max_tokens=4)
    store = AdapterStore.for_model(llm.engine, tempfile.mkdtemp(prefix="agenthn-profile-"))
    agent = create_personalized_agent(llm, adapter_store=store, internalize_every=2, checkpointer=InMemorySaver())
    ivan, bob = AgentContext(user_id="ivan"), AgentContext(user_id="bob")

    print("session 1 (ivan): the profile document after each turn")
    cfg = {"configurable": {"thread_id": "ivan-1"}}
    for text in SESSION_1:
        out = agent.invoke({"messages": [("user", text)]}, cfg, context=ivan)
        print(
            f"  user: {text:22s} profile: {list(out['profile'].values())}  pending edits: "
            f"{out['profile_pending_edits']}"
        )
    agent.invoke(
        {"messages": [("user", "thanks !")]},
        {"configurable": {"thread_id": "ivan-1", "internalize_profile": True}},
        context=ivan,
    )
    record = store.get_record("profile", namespace=("profiles", "ivan"))
    print(f"adapters made: profile adapter for ivan ({record.extra['n_facts']} facts), text: {record.text!r}\n")

    print("session 2: a new thread, empty context | question | ivan (profile adapter) | bob (no profile) | expected")
    for question, answer in QUESTIONS:
        mine = agent.invoke({"messages": [("user", question)]}, {"configurable": {"thread_id": "ivan-2"}}, context=ivan)
        other = agent.invoke({"messages": [("user", question)]}, {"configurable": {"thread_id": "bob-1"}}, context=bob)
        print(
            f"  {question} | {mine['messages'][-1].content} | {other['messages'][-1].content} | {answer}"
            f"  (prompt tokens {mine['messages'][-1].usage_metadata['input_tokens']})"
        )


if __name__ == "__main__":
    main()
