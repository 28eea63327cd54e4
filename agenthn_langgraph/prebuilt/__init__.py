"""Prebuilt weight-memory graphs and the ``create_agent`` middleware."""

from ._common import AgentContext
from .agents import create_memory_agent, create_personalized_agent, create_skill_agent
from .middleware import WeightMemoryMiddleware
from .self_improvement import create_self_improvement_graph

__all__ = [
    "AgentContext",
    "WeightMemoryMiddleware",
    "create_memory_agent",
    "create_personalized_agent",
    "create_self_improvement_graph",
    "create_skill_agent",
]
