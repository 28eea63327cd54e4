"""Training and evaluation data: QA examples (``qa``), user facts (``facts``), the English generator (``english``)."""

from .facts import Fact
from .qa import QAExample, QAPair, read_jsonl, split_examples, write_jsonl

__all__ = ["Fact", "QAExample", "QAPair", "read_jsonl", "split_examples", "write_jsonl"]
