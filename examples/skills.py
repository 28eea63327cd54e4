"""Skills: reference sheets internalized once; the matching one is applied per question.

Run: python examples/skills.py   (about 10 s on 2 CPU cores with the embedded default)
"""

from __future__ import annotations

import tempfile

from agenthn_langgraph import LocalHypernetChatModel
from agenthn_langgraph.prebuilt import create_skill_agent
from agenthn_langgraph.store import AdapterStore

SKILLS = {
    "zorblax manual": "this is the manual for zorblax . zorblax is made by acme . the price of zorblax is 7 .",
    "quibbit manual": "this is the manual for quibbit . quibbit is made by globex . quibbit is built in lima .",
    "flonk manual": "meet flonk . the body of flonk is wood . flonk weighs 12 grams .",
}
QUESTIONS = [
    ("who makes zorblax ?", "acme"),
    ("what is the price of zorblax ?", "7"),
    ("who makes quibbit ?", "globex"),
    ("where is quibbit built ?", "lima"),
    ("what is flonk made of ?", "wood"),
]


def main() -> None:
    llm = LocalHypernetChatModel(max_tokens=4)
    store = AdapterStore.for_model(llm.engine, tempfile.mkdtemp(prefix="agenthn-skills-"))
    agent = create_skill_agent(llm, adapter_store=store, skills=SKILLS)
    print(f"adapters made: {store.count(namespace=('skills',))} skill adapters ({', '.join(SKILLS)})\n")
    print("question | skill picked | with skill adapter | base alone | expected | prompt tokens")
    for question, answer in QUESTIONS:
        out = agent.invoke({"messages": [("user", question)]})
        reply = out["messages"][-1]
        print(
            f"{question} | {out.get('skill')} | {reply.content} | {llm.invoke(question).content} | {answer} | "
            f"{reply.usage_metadata['input_tokens']} (the sheet in context would add "
            f"{llm.get_num_tokens(SKILLS[out['skill']]) if out.get('skill') else 0})"
        )


if __name__ == "__main__":
    main()
