"""Graph nodes that give any LangGraph agent weight-based memory.

- :class:`CompactNode` / :class:`MemoryRecallNode`: long-horizon memory (``compact.py``)
- :class:`ProfileUpdateNode`: personalization (``profile.py``)
- :class:`SkillRecallNode` + :class:`SkillLibrary`: skills (``skill.py``)
- :class:`AttemptNode`, :class:`GradeNode`, :class:`ReflectNode`: self-improvement (``reflect.py``)
- :class:`CallModelNode`: the model call that applies the recalled adapters (``agent.py``)
"""

from .agent import CallModelNode
from .compact import CompactNode, MemoryRecallNode, split_turns
from .profile import (
    ChatModelProfileExtractor,
    ProfileEdit,
    ProfileUpdateNode,
    RuleProfileExtractor,
    apply_edits,
)
from .reflect import (
    AttemptNode,
    ChatModelReflector,
    GradeNode,
    PassageReflector,
    ReflectNode,
    SelfImproveState,
    exact_match_grader,
)
from .skill import DEFAULT_NUDGE, SkillLibrary, SkillNotFoundError, SkillRecallNode
from .state import AdapterRef, NamespaceTemplate, WeightMemoryState

__all__ = [
    "DEFAULT_NUDGE",
    "AdapterRef",
    "AttemptNode",
    "CallModelNode",
    "ChatModelProfileExtractor",
    "ChatModelReflector",
    "CompactNode",
    "GradeNode",
    "MemoryRecallNode",
    "NamespaceTemplate",
    "PassageReflector",
    "ProfileEdit",
    "ProfileUpdateNode",
    "ReflectNode",
    "RuleProfileExtractor",
    "SelfImproveState",
    "SkillLibrary",
    "SkillNotFoundError",
    "SkillRecallNode",
    "WeightMemoryState",
    "apply_edits",
    "exact_match_grader",
    "split_turns",
]
