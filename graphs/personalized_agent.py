"""Studio entry: the personalized agent (set ``user_id`` in the run's context or configurable)."""

from agenthn_langgraph.prebuilt import create_personalized_agent

graph = create_personalized_agent(internalize_every=1)
