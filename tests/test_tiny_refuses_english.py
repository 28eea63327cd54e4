"""The tiny default refuses what it cannot read (any word outside its little language), by name,
pointing to the English model; a refused user message stays in the agent's thread."""

from __future__ import annotations

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from agenthn_langgraph import LocalHypernetChatModel
from agenthn_langgraph.errors import AgenthnError, OutOfVocabularyError
from agenthn_langgraph.prebuilt.agents import create_memory_agent


def test_internalize_names_the_unknown_word_and_points_to_smollm2(default_model):
    with pytest.raises(OutOfVocabularyError, match=r"'biscuit'.*smollm2") as err:
        default_model.internalize("My dog is called Biscuit.")
    assert isinstance(err.value, AgenthnError) and isinstance(err.value, ValueError)
    adapter = default_model.internalize("My dog is called Biscuit.", allow_unknown=True)  # the old behaviour
    assert adapter.rank > 0


def test_a_refused_message_is_kept_in_the_thread():
    agent = create_memory_agent(LocalHypernetChatModel(), checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "oov"}}
    agent.invoke({"messages": [("user", "my pet is a frog .")]}, config)
    with pytest.raises(OutOfVocabularyError, match="'biscuit'"):
        agent.invoke({"messages": [("user", "My dog is called Biscuit.")]}, config)
    kept = [m.content for m in agent.get_state(config).values["messages"]]
    assert kept[0] == "my pet is a frog ." and kept[-1] == "My dog is called Biscuit.", kept
    allowing = LocalHypernetChatModel(allow_unknown=True)
    assert isinstance(allowing.invoke("My dog is called Biscuit.").content, str)
