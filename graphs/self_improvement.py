"""Studio entry: the self-improvement loop (input: study_material + questions)."""

from agenthn_langgraph.prebuilt import create_self_improvement_graph

graph = create_self_improvement_graph(max_rounds=3)
