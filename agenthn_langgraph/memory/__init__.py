"""Long-horizon weight memory: what is indexed, how it is found, and when it is used.

* :mod:`.signals` -- what the model itself says about a text: the values it states (the
  hypernetwork's gate) and how surely a base that reads a remembered statement answers a question
  with its value (the reader score);
* :mod:`.retrieval` -- the index entries of a segment and the retriever that ranks them:
  candidates by dense + lexical similarity, re-ranked by the reader, used only when confident,
  the newest of equally good statements first.

The nodes that use them are :class:`~agenthn_langgraph.nodes.CompactNode` (where memory is
compacted) and :class:`~agenthn_langgraph.nodes.MemoryRecallNode` (where it is recalled).
"""

from .retrieval import MemoryEntry, Recalled, SegmentRetriever
from .signals import reader_logprobs, stated_values

__all__ = ["MemoryEntry", "Recalled", "SegmentRetriever", "reader_logprobs", "stated_values"]
