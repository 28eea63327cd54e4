"""How questions, contexts and answers become token ids for one base model and one chat format.

Teacher and student prompts are built with the base's own tokenizer and chat template, the same
way at training and at inference:

* **student**: the question alone (plus the format's system instruction); the adapter carries the text;
* **teacher**: the same conversation with the text in it -- in the user's message before the
  question (``context="user"``), or raw right after BOS (``context="prefix"``);
* **answer**: the tokens the assistant writes, up to and including the template's end-of-turn
  token, so training teaches answers that are whole and stop.

Templates without a system role (Gemma's raise on one) get the system text folded into the first
user turn. Stopping honours every end id a model declares (``generation_config.eos_token_id`` may
be a list: Gemma ends turns with ``<end_of_turn>``, Qwen with ``<|im_end|>``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jinja2.exceptions import TemplateError
from transformers import PreTrainedTokenizerBase

from .hypernet.config import ChatFormat

Message = Mapping[str, Any]


def end_of_turn_ids(tokenizer: PreTrainedTokenizerBase, *configs: Any) -> frozenset[int]:
    """Every token id that ends generation: the tokenizer's EOS and each config's ``eos_token_id``."""
    ids: set[int] = set()
    for source in (tokenizer, *configs):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, Iterable):
            ids.update(int(v) for v in value if v is not None)
    return frozenset(ids)


class PromptBuilder:
    """Renders chat messages for one tokenizer + chat format; thread-safe.

    Fast tokenizers are not safe to call from several threads at once ("Already borrowed"), so
    every call goes through one lock.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, chat: ChatFormat, end_ids: frozenset[int]) -> None:
        self.tokenizer = tokenizer
        self.chat = chat
        self.end_ids = end_ids
        self.lock = threading.Lock()
        self._system_supported: bool | None = None

    # ------------------------------------------------------------------ rendering
    def with_system(self, messages: Sequence[Message]) -> list[dict[str, Any]]:
        """The format's system instruction merged into (or put before) the conversation."""
        msgs = [dict(m) for m in messages]
        if self.chat.system:
            if msgs and msgs[0].get("role") == "system":
                msgs[0]["content"] = f"{self.chat.system}\n\n{msgs[0]['content']}"
            else:
                msgs.insert(0, {"role": "system", "content": self.chat.system})
        return msgs

    def render(
        self,
        messages: Sequence[Message],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        msgs = self.with_system(messages)
        with self.lock:
            if self._system_supported is False:
                msgs = fold_system(msgs)
            try:
                text = self._apply(msgs, add_generation_prompt, tools)
                if any(m.get("role") == "system" for m in msgs):
                    self._system_supported = True
            except TemplateError:
                if not any(m.get("role") == "system" for m in msgs):
                    raise
                self._system_supported = False
                text = self._apply(fold_system(msgs), add_generation_prompt, tools)
        return text

    def _apply(self, msgs: list[dict[str, Any]], add_generation_prompt: bool, tools: Any) -> str:
        return self.tokenizer.apply_chat_template(
            msgs, tools=list(tools) if tools else None, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def encode(self, text: str) -> list[int]:
        with self.lock:
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # ------------------------------------------------------------------ training / evaluation prompts
    def context_ids(self, text: str) -> list[int]:
        """What the hypernetwork reads: ``[BOS] + text`` (BOS when the tokenizer has one)."""
        bos = self.tokenizer.bos_token_id
        return ([bos] if bos is not None else []) + self.encode(text)

    def student_ids(self, question: str) -> list[int]:
        return self.encode(self.render([{"role": "user", "content": question}]))

    def teacher_ids(self, context: str, question: str) -> list[int]:
        if self.chat.context == "user":
            return self.encode(self.render([{"role": "user", "content": f"{context}\n\n{question}"}]))
        student = self.student_ids(question)
        bos = self.tokenizer.bos_token_id
        if bos is not None and student[:1] == [bos]:
            student = student[1:]
        return self.context_ids(context) + student

    def answer_ids(self, question: str, answer: str) -> list[int]:
        """The assistant's tokens for ``answer``, through the template's end-of-turn token."""
        return self.answer_tokens(question, answer)[0]

    def answer_tokens(
        self, question: str, answer: str, *, prefix: str | None = None
    ) -> tuple[list[int], list[int | None]]:
        """(ids, chars): the assistant's tokens for ``answer`` and, per token, the offset of its
        first character inside ``answer`` (``None`` for tokens that are not part of it).

        ``prefix``: what the assistant's turn starts with before ``answer`` (default: the format's
        ``answer_prefix``, the one the hypernetwork was trained with).

        Rendered as the template writes a finished assistant turn, minus the generation prompt;
        cut after the first end id (templates add a newline after it), or, for a template whose
        turn end is not an end id, stripped of trailing whitespace and closed with EOS.
        """
        user = [{"role": "user", "content": question}]
        prompt = self.render(user)
        content = (self.chat.answer_prefix if prefix is None else prefix) + answer
        full = self.render([*user, {"role": "assistant", "content": content}], add_generation_prompt=False)
        if not full.startswith(prompt):
            raise ValueError("the chat template does not render an answer as a continuation of its prompt")
        suffix = full[len(prompt) :]
        with self.lock:
            enc = self.tokenizer(suffix, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
        cut = next((i + 1 for i, t in enumerate(ids) if t in self.end_ids), None)
        if cut is not None:
            ids, offsets = ids[:cut], offsets[:cut]
        else:
            with self.lock:
                while ids and not self.tokenizer.decode(ids[-1:]).strip():
                    ids.pop()
                    offsets.pop()
            if self.tokenizer.eos_token_id is not None:
                ids.append(self.tokenizer.eos_token_id)
                offsets.append((len(suffix), len(suffix)))
        base = suffix.find(answer)
        chars: list[int | None] = []
        for a, b in offsets:
            while a < b and suffix[a].isspace():  # byte-level BPE offsets may include the leading space
                a += 1
            rel = a - base
            chars.append(rel if base >= 0 and a < b and 0 <= rel < len(answer) else None)
        return ids, chars


def fold_system(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Merge system messages into the first user turn (for templates without a system role).

    >>> fold_system([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    [{'role': 'user', 'content': 'Be brief.\\n\\nHi'}]
    """
    system = "\n\n".join(str(m["content"]) for m in messages if m.get("role") == "system")
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    if not system:
        return rest
    for m in rest:
        if m.get("role") == "user":
            m["content"] = f"{system}\n\n{m['content']}"
            return rest
    return [{"role": "user", "content": system}, *rest]
