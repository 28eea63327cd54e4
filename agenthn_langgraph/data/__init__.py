"""Training and evaluation data: the QA example type (``qa``) and the English generator (``english``)."""

from .qa import QAExample, QAPair, read_jsonl, split_examples, write_jsonl

__all__ = ["QAExample", "QAPair", "read_jsonl", "split_examples", "write_jsonl"]
