"""Skills: reference sheets internalized once; the matching one is applied per question.

Run: python examples/skills.py                   (about 10 s on 2 CPU cores, the embedded default)
     python examples/skills.py --model smollm2   (SmolLM2-135M-Instruct, English product and procedure sheets)
"""

from __future__ import annotations

import argparse
import tempfile

from agenthn_langgraph import LocalHypernetChatModel
from agenthn_langgraph.evals.recall import recalled
from agenthn_langgraph.models import language_of
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


def generated_skills(llm: LocalHypernetChatModel) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Three reference sheets drawn in the model's language (fictional products and procedures)."""
    docs = language_of(llm.engine).examples(3, 5, n_facts=2, genres=["product", "procedure"])
    skills = {f"{d.qa[0].key.split('/')[0]} sheet": d.context for d in docs}  # keys are "<subject>/<attribute>"
    return skills, [(p.question, p.answer) for d in docs for p in d.qa]


def main(model: str = "tiny") -> None:
    llm = LocalHypernetChatModel(model=model, max_tokens=4 if model == "tiny" else 16)
    skills, questions = (SKILLS, QUESTIONS) if model == "tiny" else generated_skills(llm)
    store = AdapterStore.for_model(llm.engine, tempfile.mkdtemp(prefix="agenthn-skills-"))
    agent = create_skill_agent(llm, adapter_store=store, skills=skills)
    print(f"adapters made: {store.count(namespace=('skills',))} skill adapters ({', '.join(skills)})\n")
    print("question | skill picked | with skill adapter | base alone | expected | prompt tokens")
    hits = 0
    for question, answer in questions:
        out = agent.invoke({"messages": [("user", question)]})
        reply = out["messages"][-1]
        print(
            f"{question} | {out.get('skill')} | {reply.content} | {llm.invoke(question).content} | {answer} | "
            f"{reply.usage_metadata['input_tokens']} (the sheet in context would add "
            f"{llm.get_num_tokens(skills[out['skill']]) if out.get('skill') else 0})"
        )
        hits += recalled(reply.content, answer)
    print(f"\nanswered from the skill adapters: {hits}/{len(questions)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="a registered model name (tiny, smollm2) or a directory")
    main(parser.parse_args().model)
