"""Studio entry: the memory agent on the embedded default (``langgraph dev`` serves ``graph``)."""

from agenthn_langgraph.prebuilt import create_memory_agent

graph = create_memory_agent(max_turns=4, keep_turns=2)
