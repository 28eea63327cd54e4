"""Add weight memory to an existing LangChain/LangGraph agent: one middleware line.

Run: python examples/existing_agent.py   (about 10 s on 2 CPU cores with the embedded default)
"""

from __future__ import annotations

import tempfile

from langchain.agents import create_agent
from langgraph.checkpoint.memory import InMemorySaver

from agenthn_langgraph import LocalHypernetChatModel
from agenthn_langgraph.prebuilt import WeightMemoryMiddleware
from agenthn_langgraph.store import AdapterStore


def main() -> None:
    llm = LocalHypernetChatModel(max_tokens=4)
    store = AdapterStore.for_model(llm.engine, tempfile.mkdtemp(prefix="agenthn-middleware-"))

    # your agent, as it was ...
    plain = create_agent(llm, tools=[], checkpointer=InMemorySaver())
    # ... and with weight memory: the only change is the middleware
    with_memory = create_agent(
        llm,
        tools=[],
        middleware=[WeightMemoryMiddleware(llm, adapter_store=store, max_turns=2, keep_turns=1)],
        checkpointer=InMemorySaver(),
    )
    talk = ["my pet is a frog .", "i live in lima .", "i play golf ."]
    questions = [("what pet do i have ?", "frog"), ("where do i live ?", "lima"), ("what sport do i play ?", "golf")]
    for name, agent in (("plain create_agent", plain), ("with WeightMemoryMiddleware", with_memory)):
        cfg = {"configurable": {"thread_id": name.split()[0] + "-thread"}}
        for text in talk:
            agent.invoke({"messages": [("user", text)]}, cfg)
        print(f"{name}:")
        for question, answer in questions:
            out = agent.invoke({"messages": [("user", question)]}, cfg)
            reply = out["messages"][-1]
            print(
                f"  {question} -> {reply.content!r} (expected {answer}; prompt tokens "
                f"{reply.usage_metadata['input_tokens']}, messages in state {len(out['messages'])}, "
                f"segment adapters {len(out.get('memory_segments', []))})"
            )


if __name__ == "__main__":
    main()
