"""The markdown-notes baseline: the agent keeps its own notes file about the user, in the prompt.

After each compaction, the user's statements in the evicted turns are written into a notes
document, one line per topic, by the same diff-style edits the profile node uses
(:class:`~agenthn_langgraph.nodes.profile.RuleProfileExtractor` and
:func:`~agenthn_langgraph.nodes.profile.apply_edits`, or any
:class:`~agenthn_langgraph.nodes.profile.ProfileExtractor`): a new topic adds a line, a
restatement rewrites its line, "forget my ..." removes it. At question time the whole document
goes into the prompt as a system message, before the turns still in context.

>>> notes = MarkdownNotes(extractor=lambda messages, facts: [])
>>> notes.document()
''
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from ..chat_model import LocalHypernetChatModel
from ..nodes.profile import ProfileExtractor, RuleProfileExtractor, apply_edits

NOTES_HEADER = "notes :"


class MarkdownNotes:
    """One thread's notes file; ``write`` the evicted turns, read ``document()`` / ``messages()``."""

    def __init__(self, model: LocalHypernetChatModel | None = None, *, extractor: ProfileExtractor | None = None):
        if extractor is None and model is None:
            raise ValueError("MarkdownNotes needs a model (for its language's statement patterns) or an extractor")
        self.extractor: ProfileExtractor = extractor or RuleProfileExtractor(model=model)
        self.facts: dict[str, str] = {}
        self.edits = 0  # edits that changed the notes (adds, rewrites, removals)

    def write(self, messages: Sequence[BaseMessage]) -> None:
        """Write the user's statements in ``messages`` (the turns a compaction evicted) into the notes."""
        for m in messages:
            if isinstance(m, HumanMessage):
                self.facts, applied = apply_edits(self.facts, self.extractor([m], self.facts))
                self.edits += len(applied)

    def document(self) -> str:
        """The notes as a markdown list under a header ('' while there are none)."""
        if not self.facts:
            return ""
        return "\n".join([NOTES_HEADER, *(f"- {line}" for line in self.facts.values())])

    def messages(self) -> list[BaseMessage]:
        """What goes into the prompt: the document as a system message (nothing while empty)."""
        doc = self.document()
        return [SystemMessage(doc)] if doc else []
