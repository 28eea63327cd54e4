"""Serve internalized adapters with a real vLLM server (a GPU machine with vLLM installed).

Start vLLM on the base the engine uses (for the tiny default, its checkpoint directory) with LoRA
and runtime loading enabled, then run this script against it::

    VLLM_ALLOW_RUNTIME_LORA_UPDATING=True vllm serve agenthn_langgraph/tiny_default/checkpoint/base \\
        --served-model-name agenthn-tiny --enable-lora --max-lora-rank 16 --max-loras 4 --port 8000
    python examples/vllm_gpu_check.py --base-url http://127.0.0.1:8000 --model agenthn-tiny

Or, on a machine without vLLM, against the loopback stand-in the tests use (not vLLM)::

    python examples/vllm_gpu_check.py --standin

It internalizes facts locally (one hypernetwork pass each), serves each adapter through vLLM's
runtime LoRA API, asks about each fact with and without its adapter, and prints a table: recall
with / without, the median time to load an adapter (first call) and to answer (later calls).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

FACTS = [
    ("<user> my pet is a frog . <assistant> nice ! <end>", "what pet do i have ?", "frog"),
    ("<user> i live in lima . <assistant> cool ! <end>", "where do i live ?", "lima"),
    ("<user> my pet is a cat . <assistant> nice ! <end>", "what pet do i have ?", "cat"),
    ("<user> i live in oslo . <assistant> cool ! <end>", "where do i live ?", "oslo"),
]
BASE_DIR = Path(__file__).resolve().parents[1] / "agenthn_langgraph" / "tiny_default" / "checkpoint" / "base"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="agenthn-tiny", help="the base's name as the server serves it")
    parser.add_argument("--adapter-dir", default=None, help="a directory the server can read (default: a temp dir)")
    parser.add_argument("--max-lora-rank", type=int, default=16)
    parser.add_argument("--standin", action="store_true", help="run against the loopback stand-in, not vLLM")
    args = parser.parse_args()

    from agenthn_langgraph import load_default
    from agenthn_langgraph.serving import VLLMChatModel

    engine = load_default()
    with contextlib.ExitStack() as stack:
        base_url = args.base_url
        if args.standin:
            from agenthn_langgraph.testing.vllm_standin import VLLMStandIn

            base_url = stack.enter_context(VLLMStandIn(BASE_DIR, args.model, max_lora_rank=args.max_lora_rank)).url
        adapter_dir = args.adapter_dir or stack.enter_context(tempfile.TemporaryDirectory())
        llm = VLLMChatModel(
            base_url=base_url, model=args.model, adapter_dir=adapter_dir, max_lora_rank=args.max_lora_rank, max_tokens=6
        )
        stack.callback(llm.close)
        hits = {"adapter": 0, "base": 0}
        first_ms, later_ms = [], []
        for text, question, value in FACTS:
            adapter = engine.internalize(text)
            t0 = time.perf_counter()
            reply = llm.invoke([("user", question)], adapters=[adapter]).content
            first_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            llm.invoke([("user", question)], adapters=[adapter])
            later_ms.append((time.perf_counter() - t0) * 1000)
            base = llm.invoke([("user", question)]).content
            hits["adapter"] += reply.split()[:1] == [value]
            hits["base"] += base.split()[:1] == [value]
            print(f"{question!r}: with adapter {reply!r}, without {base!r} (want {value!r})")
        n = len(FACTS)
        server = "stand-in (not vLLM)" if args.standin else base_url
        print("\n| server | recall with adapter | without | load + answer ms (median) | answer ms (median) |")
        print("|---|---|---|---|---|")
        print(
            f"| {server} | {hits['adapter']}/{n} | {hits['base']}/{n} | {statistics.median(first_ms):.0f} "
            f"| {statistics.median(later_ms):.0f} |"
        )


if __name__ == "__main__":
    main()
