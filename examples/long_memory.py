"""Long-horizon memory: a thread far longer than the prompt, old turns living in adapters.

Run: python examples/long_memory.py   (about 20 s on 2 CPU cores with the embedded default)
"""

from __future__ import annotations

import tempfile

from langgraph.checkpoint.memory import InMemorySaver

from agenthn_langgraph import LocalHypernetChatModel
from agenthn_langgraph.prebuilt import create_memory_agent
from agenthn_langgraph.store import AdapterStore

FACTS = [
    ("my name is ivan .", "what is my name ?", "ivan"),
    ("i live in lima .", "where do i live ?", "lima"),
    ("my pet is a frog .", "what pet do i have ?", "frog"),
    ("i work as a nurse .", "what is my job ?", "nurse"),
    ("i play golf .", "what sport do i play ?", "golf"),
    ("i speak greek .", "what language do i speak ?", "greek"),
    ("my favorite color is pink .", "what is my favorite color ?", "pink"),
    ("i love tea .", "what should i drink ?", "tea"),
]


def main() -> None:
    llm = LocalHypernetChatModel(max_tokens=4)
    store = AdapterStore.for_model(llm.engine, tempfile.mkdtemp(prefix="agenthn-long-memory-"))
    agent = create_memory_agent(llm, adapter_store=store, max_turns=4, keep_turns=1, checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "long-thread"}}
    full_history: list[tuple[str, str]] = []

    print("turn | prompt tokens (agent) | prompt tokens (whole thread) | segments | reply")
    for i, (statement, _, _) in enumerate(FACTS):
        out = agent.invoke({"messages": [("user", statement)]}, cfg)
        reply = out["messages"][-1]
        full_history += [("user", statement), ("assistant", reply.content)]
        whole = llm.get_num_tokens_from_messages(full_history)
        print(
            f"{i:4d} | {reply.usage_metadata['input_tokens']:21d} | {whole:28d} | "
            f"{len(out.get('memory_segments', [])):8d} | {reply.content}"
        )

    print("\nquestion | with weight memory | base model alone (no memory) | expected")
    hits = base_hits = 0
    for _, question, answer in FACTS:
        out = agent.invoke({"messages": [("user", question)]}, cfg)
        with_memory = out["messages"][-1].content
        alone = llm.invoke(question).content
        hits += with_memory.split()[:1] == [answer]
        base_hits += alone.split()[:1] == [answer]
        print(f"{question} | {with_memory} | {alone} | {answer}")
    segments = store.list(namespace=("memories", "long-thread"), kind="segment")
    print(
        f"\nadapters made: {len(segments)} segment adapters, turns "
        + ", ".join(f"{r.turn_start}-{r.turn_end}" for r in segments)
    )
    print(
        f"recall from weights: {hits}/{len(FACTS)}; base alone: {base_hits}/{len(FACTS)}; "
        f"messages left in the thread: {len(out['messages'])}"
    )


if __name__ == "__main__":
    main()
