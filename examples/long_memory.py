"""Long-horizon memory: a thread far longer than the prompt, old turns living in adapters.

Run: python examples/long_memory.py                   (about 20 s on 2 CPU cores, the embedded default)
     python examples/long_memory.py --model smollm2   (SmolLM2-135M-Instruct, English; about 2 min)
"""

from __future__ import annotations

import argparse
import random
import tempfile

from langgraph.checkpoint.memory import InMemorySaver

from agenthn_langgraph import LocalHypernetChatModel
from agenthn_langgraph.data import Fact
from agenthn_langgraph.evals.recall import recalled
from agenthn_langgraph.models import language_of
from agenthn_langgraph.prebuilt import create_memory_agent
from agenthn_langgraph.store import AdapterStore

TINY_FACTS = [  # the tiny default's little language, written out
    Fact("user/name", "my name is ivan .", "what is my name ?", "ivan"),
    Fact("user/city", "i live in lima .", "where do i live ?", "lima"),
    Fact("user/pet", "my pet is a frog .", "what pet do i have ?", "frog"),
    Fact("user/job", "i work as a nurse .", "what is my job ?", "nurse"),
    Fact("user/sport", "i play golf .", "what sport do i play ?", "golf"),
    Fact("user/language", "i speak greek .", "what language do i speak ?", "greek"),
    Fact("user/color", "my favorite color is pink .", "what is my favorite color ?", "pink"),
    Fact("user/drink", "i love tea .", "what should i drink ?", "tea"),
]


def main(model: str = "tiny") -> None:
    llm = LocalHypernetChatModel(model=model, max_tokens=4 if model == "tiny" else 16)
    # any other model: facts drawn at random in its own language (English for SmolLM2)
    facts = TINY_FACTS if model == "tiny" else language_of(llm.engine).user_facts(random.Random(7), 8)
    store = AdapterStore.for_model(llm.engine, tempfile.mkdtemp(prefix="agenthn-long-memory-"))
    agent = create_memory_agent(llm, adapter_store=store, max_turns=4, keep_turns=1, checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "long-thread"}}
    full_history: list[tuple[str, str]] = []

    print("turn | prompt tokens (agent) | prompt tokens (whole thread) | segments | reply")
    for i, fact in enumerate(facts):
        out = agent.invoke({"messages": [("user", fact.statement)]}, cfg)
        reply = out["messages"][-1]
        full_history += [("user", fact.statement), ("assistant", reply.content)]
        whole = llm.get_num_tokens_from_messages(full_history)
        print(
            f"{i:4d} | {reply.usage_metadata['input_tokens']:21d} | {whole:28d} | "
            f"{len(out.get('memory_segments', [])):8d} | {reply.content}"
        )

    print("\nquestion | with weight memory | base model alone (no memory) | expected")
    hits = base_hits = 0
    for fact in facts:
        out = agent.invoke({"messages": [("user", fact.question)]}, cfg)
        with_memory = out["messages"][-1].content
        alone = llm.invoke(fact.question).content
        hits += recalled(with_memory, fact.answer)  # the value in the reply's first sentence
        base_hits += recalled(alone, fact.answer)
        print(f"{fact.question} | {with_memory} | {alone} | {fact.answer}")
    segments = store.list(namespace=("memories", "long-thread"), kind="segment")
    print(
        f"\nadapters made: {len(segments)} segment adapters, turns "
        + ", ".join(f"{r.turn_start}-{r.turn_end}" for r in segments)
    )
    print(
        f"recall from weights: {hits}/{len(facts)}; base alone: {base_hits}/{len(facts)}; "
        f"messages left in the thread: {len(out['messages'])}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="a registered model name (tiny, smollm2) or a directory")
    main(parser.parse_args().model)
