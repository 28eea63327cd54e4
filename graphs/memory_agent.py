"""Studio entry: the memory agent on the embedded default (``langgraph dev`` serves ``graph``).

A factory: the model loads on the first run, not when the server imports this file.
"""

from agenthn_langgraph.studio import graph_factory

graph = graph_factory("memory_agent", max_turns=4, keep_turns=2)
