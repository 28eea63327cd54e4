"""Studio entry: the self-improvement loop (input: study_material + questions).

A factory: the model loads on the first run, not when the server imports this file.
"""

from agenthn_langgraph.studio import graph_factory

graph = graph_factory("self_improvement", max_rounds=3)
