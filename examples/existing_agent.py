"""Add weight memory to an existing LangChain/LangGraph agent: one middleware line.

Run: python examples/existing_agent.py                   (about 10 s on 2 CPU cores, the embedded default)
     python examples/existing_agent.py --model smollm2   (SmolLM2-135M-Instruct, English)
"""

from __future__ import annotations

import argparse
import random
import tempfile

from langchain.agents import create_agent
from langgraph.checkpoint.memory import InMemorySaver

from agenthn_langgraph import LocalHypernetChatModel
from agenthn_langgraph.models import language_of
from agenthn_langgraph.prebuilt import WeightMemoryMiddleware
from agenthn_langgraph.store import AdapterStore


def main(model: str = "tiny") -> None:
    llm = LocalHypernetChatModel(model=model, max_tokens=4 if model == "tiny" else 16)
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
    if model != "tiny":  # three facts drawn in the model's own language
        facts = language_of(llm.engine).user_facts(random.Random(3), 3)
        talk, questions = [f.statement for f in facts], [(f.question, f.answer) for f in facts]
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="a registered model name (tiny, smollm2) or a directory")
    main(parser.parse_args().model)
