"""Studio entry: the skill agent with two product reference sheets as skills."""

from agenthn_langgraph.studio import graph_factory

SKILLS = {
    "zorblax manual": "this is the manual for zorblax . zorblax is made by acme . the price of zorblax is 7 .",
    "quibbit manual": "this is the manual for quibbit . quibbit is made by globex . the price of quibbit is 3 .",
}

graph = graph_factory("skill_agent", skills=SKILLS)
