"""What the model itself says about a text, used to index and to gate weight memory.

* :func:`stated_values`: the spans the hypernetwork's gate fires on. The gate was trained to pick
  the tokens of the values a text states (they become the adapter's rank), so ``"i have a pet cat
  ."`` gives ``["cat"]`` and ``"how are you ?"`` gives ``[]``: small talk states nothing lasting,
  and is neither indexed nor a question to memory. ``None`` for hypernetworks without a trained
  gate (D2L checkpoints, ``top_r`` selection): callers then treat every message as stating
  something.
* :func:`reader_logprobs`: log P(answer | context, question) under the base model reading the
  context in its prompt, the distillation teacher's own prompt. A remembered statement that really
  answers a question makes its value likely; small talk or an unrelated statement does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..engine import pad_sequences


def _gated(engine: Any) -> bool:
    hn = engine.hypernet
    return hn is not None and hn.config.kind != "d2l" and hn.config.selection == "gated"


@torch.no_grad()
def stated_values(
    engine: Any, texts: Sequence[str], *, threshold: float | None = None, batch_size: int = 16
) -> list[list[str]] | None:
    """Per text, the values it states (gated token runs, decoded); ``None`` without a trained gate.

    ``threshold``: the gate value a token needs (default: the hypernetwork's own selection
    threshold, the one that decides an adapter's rank).

    Texts longer than the hypernetwork's window are read up to the window (user messages are
    short; a long one states at least what its head states).
    """
    if not _gated(engine):
        return None
    hn = engine.hypernet
    tok = engine.tokenizer
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    window = hn.config.window - len(bos)
    out: list[list[str]] = []
    for s in range(0, len(texts), batch_size):
        encoded = [engine.encode(t)[:window] for t in texts[s : s + batch_size]]
        ids, mask = pad_sequences([bos + e for e in encoded], tok.pad_token_id or 0, device=engine.device)
        with engine._internalize_lock:
            states = engine.base.base_model(
                input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False
            ).hidden_states
            gates = hn.token_gates(states, mask).float().cpu()
        for row, e in zip(gates, encoded, strict=True):
            fired = (row[len(bos) : len(bos) + len(e)] >= (threshold or hn.config.gate_threshold)).tolist()
            runs: list[list[int]] = []
            for i, on in enumerate(fired):
                if on:
                    if runs and runs[-1][-1] == i - 1:
                        runs[-1].append(i)
                    else:
                        runs.append([i])
            with engine._tok_lock:
                values = [tok.decode([e[i] for i in run]).strip() for run in runs]
            out.append([v for v in values if v])
    return out


@torch.no_grad()
def reader_logprobs(engine: Any, items: Sequence[tuple[str, str, str]], *, batch_size: int = 16) -> list[float]:
    """For each ``(context, question, answer)``: log P(answer's tokens | context, question).

    The prompt is the teacher's (the context in the conversation, then the question) and the
    answer is scored from the assistant's first token through the answer's last token (the
    template's end-of-turn token is not required: a value may be followed by more words). The base
    runs without adapters. Items too long for the base's context window score ``-inf``.

    The answer's probability is summed over how the assistant may start it: after the format's
    ``answer_prefix`` (how the hypernetwork was trained to answer) and right at the turn's start
    (how a chat model starts a reply on its own: SmolLM2 gives "Biscuit" 0.26 there and
    " Biscuit" 2e-6), so the reader judges the value, not its leading space.
    """
    prompts = engine.prompts
    prefixes = list(dict.fromkeys([prompts.chat.answer_prefix, ""]))
    window = getattr(engine.base.config, "max_position_embeddings", None)
    seqs: list[list[int]] = []
    spans: list[tuple[int, int]] = []
    owner: list[int] = []
    for n, (context, question, answer) in enumerate(items):
        prompt = prompts.teacher_ids(context, question)
        for prefix in prefixes:
            ids, chars = prompts.answer_tokens(question, answer, prefix=prefix)
            last = max((i for i, c in enumerate(chars) if c is not None), default=len(ids) - 1)
            seq = prompt + ids[: last + 1]
            seqs.append(seq)
            spans.append((len(prompt), len(seq)))
            owner.append(n)
    scores = [float("-inf")] * len(items)
    fits = [i for i, seq in enumerate(seqs) if not window or len(seq) <= window]
    for s in range(0, len(fits), batch_size):
        rows = fits[s : s + batch_size]
        ids, mask = pad_sequences([seqs[i] for i in rows], engine.tokenizer.pad_token_id or 0, device=engine.device)
        with engine.injector.use_plan(None):
            logp = torch.log_softmax(engine.base(input_ids=ids, attention_mask=mask).logits.float(), -1)
        for j, i in enumerate(rows):
            a, b = spans[i]
            targets = ids[j, a:b]
            score = float(logp[j, a - 1 : b - 1].gather(-1, targets[:, None]).sum())
            scores[owner[i]] = float(np.logaddexp(scores[owner[i]], score))
    return scores
