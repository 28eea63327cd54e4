"""Studio entry: the personalized agent (set ``user_id`` in the run's context or configurable).

A factory: the model loads on the first run, not when the server imports this file.
"""

from agenthn_langgraph.studio import graph_factory

graph = graph_factory("personalized_agent", internalize_every=1)
