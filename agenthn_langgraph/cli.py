"""``agenthn``: demo, training, evaluation and info for the weight-memory engine and its agents."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

# offline and quiet before transformers is imported anywhere
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

DEMO_TEXT = (
    "<user> hello ! <assistant> hi , how can i help ? <end> "
    "<user> my pet is a frog . <assistant> nice ! <end> "
    "<user> i live in lima . <assistant> got it . <end> "
    "<user> nice weather today . <assistant> yes , it is sunny . <end> "
    "<user> i work as a pilot . <assistant> cool . <end> "
    "<user> i love cocoa . <assistant> good to know . <end>"
)
DEMO_QUESTIONS = [
    ("what pet do i have ?", "frog"),
    ("where do i live ?", "lima"),
    ("what is my job ?", "pilot"),
    ("what should i drink ?", "cocoa"),
]


def _hardware() -> dict[str, object]:
    import torch

    info: dict[str, object] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = ("long_memory", "personalization", "skills", "self_improvement", "existing_agent")


def cmd_demo(args: argparse.Namespace) -> int:
    """The engine demo, then each example script (one per application) in this process."""
    import runpy

    import torch

    torch.set_num_threads(args.threads)
    chosen = args.only or ["engine", *EXAMPLES]
    for name in chosen:
        t0 = time.perf_counter()
        print(f"\n{'=' * 24} {name} {'=' * 24}", flush=True)
        if name == "engine":
            demo_engine()
        else:
            script = EXAMPLES_DIR / f"{name}.py"
            if not script.is_file():
                print(f"examples/{name}.py not found (the examples ship with a source checkout)", file=sys.stderr)
                return 1
            runpy.run_path(str(script), run_name="__main__")
        print(f"[{name}: {time.perf_counter() - t0:.1f} s]", flush=True)
    return 0


def demo_engine() -> None:
    from .tiny_default import load_default
    from .tiny_default.language import render_prompt

    model = load_default()

    def n_tokens(text: str) -> int:
        return len(model.tokenizer(text, add_special_tokens=False)["input_ids"])

    print(f"model: {model}")
    print(f"\ntext to remember ({n_tokens(DEMO_TEXT)} tokens):\n  {DEMO_TEXT}\n")
    t0 = time.perf_counter()
    adapter = model.internalize(DEMO_TEXT, kind="segment")
    ms = (time.perf_counter() - t0) * 1000
    print(f"internalized in {ms:.1f} ms (one forward pass) -> {adapter}, {adapter.nbytes:,} bytes\n")
    header = (
        f"{'question':<24} {'expected':<9} {'adapter, empty context':<23} {'no memory':<11} {'text in context':<15}"
    )
    print(header)
    hits = {"adapter": 0, "none": 0, "context": 0}
    for q, expected in DEMO_QUESTIONS:
        with_adapter = model.generate(q, adapters=[adapter], max_new_tokens=4)
        without = model.generate(q, max_new_tokens=4)
        ctx_logits = model.next_token_logits([render_prompt(q, DEMO_TEXT)], raw=True)
        ctx_answer = model.tokenizer.convert_ids_to_tokens(int(ctx_logits.argmax(-1)))
        hits["adapter"] += with_adapter.split()[:1] == [expected]
        hits["none"] += without.split()[:1] == [expected]
        hits["context"] += ctx_answer == expected
        print(f"{q:<24} {expected:<9} {with_adapter:<23} {without:<11} {ctx_answer:<15}")
    q = DEMO_QUESTIONS[0][0]
    n = len(DEMO_QUESTIONS)
    print(
        f"\nprompt tokens: {model.count_tokens(q)} with the adapter vs {n_tokens(render_prompt(q, DEMO_TEXT))} "
        "with the text in context"
    )
    print(f"correct: adapter {hits['adapter']}/{n}, no memory {hits['none']}/{n}, in context {hits['context']}/{n}")


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .engine import WeightMemoryModel
    from .evals.recall import evaluate_recall
    from .hypernet.train import HypernetTrainConfig, train_hypernet
    from .tiny_default import CHECKPOINT_DIR
    from .tiny_default.base import BaseTrainConfig, train_base

    torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.out)
    t0 = time.time()
    base_cfg = BaseTrainConfig(steps=args.base_steps, seed=args.seed)
    base_dir = train_base(base_cfg, out, device=device)
    t_base = time.time() - t0
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = WeightMemoryModel(
        AutoModelForCausalLM.from_pretrained(base_dir).to(device),
        AutoTokenizer.from_pretrained(base_dir),
        name="agenthn-tiny-default",
    )
    hn_cfg = HypernetTrainConfig(steps=args.hypernet_steps, seed=args.seed)
    t1 = time.time()
    hn_dir = train_hypernet(model, hn_cfg, out)
    t_hn = time.time() - t1
    report = evaluate_recall(model, n_docs=args.eval_docs, progress=True)
    print(report.table())
    record = {
        "command": " ".join(sys.argv),
        "seed": args.seed,
        "device": device,
        "hardware": _hardware(),
        "base": {"config": base_cfg.__dict__, "seconds_this_run": round(t_base, 1)},
        "hypernet": {"config": hn_cfg.__dict__, "seconds_this_run": round(t_hn, 1)},
        "recall": report.to_dict(),
    }
    (out / "training.json").write_text(json.dumps(record, indent=2))
    if args.install:
        for sub in ("base", "hypernet"):
            shutil.rmtree(CHECKPOINT_DIR / sub, ignore_errors=True)
        shutil.copytree(base_dir, CHECKPOINT_DIR / "base")
        shutil.copytree(hn_dir, CHECKPOINT_DIR / "hypernet")
        shutil.copy(out / "training.json", CHECKPOINT_DIR / "training.json")
        print(f"installed as the embedded default in {CHECKPOINT_DIR}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from .evals.recall import evaluate_recall

    torch.set_num_threads(args.threads)
    if args.base:
        from .engine import WeightMemoryModel

        model = WeightMemoryModel.from_pretrained(args.base, args.hypernet)
    else:
        from .tiny_default import load_default

        model = load_default()
    report = evaluate_recall(model, n_docs=args.n_docs, seed=args.seed, progress=not args.json)
    if args.plot:
        report.plot(args.plot)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(report.table())
        if args.plot:
            print(f"plot: {args.plot}")
    return 0


def cmd_eval_memory(args: argparse.Namespace) -> int:
    import torch

    from .evals.memory import evaluate_memory

    torch.set_num_threads(args.threads)
    report = evaluate_memory(
        threads=args.n_threads, turns=args.turns, n_facts=args.facts, seed=args.seed, progress=not args.json
    )
    if args.plot:
        report.plot(args.plot)
    print(json.dumps(report.to_dict()) if args.json else report.table())
    return 0


def cmd_graphs(args: argparse.Namespace) -> int:
    """Mermaid source of each prebuilt graph (what Studio draws), offline."""
    import tempfile

    from .prebuilt import (
        create_memory_agent,
        create_personalized_agent,
        create_self_improvement_graph,
        create_skill_agent,
    )

    with tempfile.TemporaryDirectory() as tmp:
        for factory in (create_memory_agent, create_personalized_agent, create_skill_agent):
            graph = factory(store=tmp)
            print(f"### {graph.name}\n\n```mermaid\n{graph.get_graph().draw_mermaid()}```\n")
        graph = create_self_improvement_graph(store=tmp)
        print(f"### {graph.name}\n\n```mermaid\n{graph.get_graph().draw_mermaid()}```\n")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .tiny_default import CHECKPOINT_DIR, load_default, training_record

    model = load_default()
    n_base = sum(p.numel() for p in model.base.parameters())
    n_hn = sum(p.numel() for p in model.hypernet.parameters()) if model.hypernet else 0
    size = sum(p.stat().st_size for p in CHECKPOINT_DIR.rglob("*") if p.is_file())
    print(
        json.dumps(
            {
                "model": repr(model),
                "base_parameters": n_base,
                "hypernet_parameters": n_hn,
                "checkpoint_bytes": size,
                "fingerprint": model.fingerprint,
                "targets": model.injector.target_modules,
                "training": {k: v for k, v in training_record().items() if k != "recall"},
            },
            indent=2,
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agenthn", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="the engine demo and every example (memory, profile, skills, self-improvement)")
    d.add_argument("--threads", type=int, default=2)
    d.add_argument("--only", nargs="+", choices=["engine", *EXAMPLES], help="run just these parts")
    d.set_defaults(func=cmd_demo)

    t = sub.add_parser("train", help="train the tiny base and meta-train its hypernetwork")
    t.add_argument("--out", default="runs/default")
    t.add_argument("--base-steps", type=int, default=1100)
    t.add_argument("--hypernet-steps", type=int, default=1400)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--eval-docs", type=int, default=200)
    t.add_argument("--install", action="store_true", help="copy the result into the package as the default")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="benchmarks")
    esub = e.add_subparsers(dest="benchmark", required=True)
    r = esub.add_parser("recall", help="recall of internalized facts (adapter vs in-context vs none)")
    r.add_argument("--n-docs", type=int, default=200)
    r.add_argument("--seed", type=int, default=20261123)
    r.add_argument("--json", action="store_true")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--plot", default=None, help="also write a bar chart (PNG) to this path")
    r.add_argument("--base", default=None, help="a local HF base model directory (default: the embedded tiny one)")
    r.add_argument("--hypernet", default=None, help="its hypernetwork checkpoint directory")
    r.set_defaults(func=cmd_eval)

    m = esub.add_parser("memory", help="long threads: compacted weight memory vs full context vs a window vs none")
    m.add_argument("--threads", dest="n_threads", type=int, default=6)
    m.add_argument("--turns", type=int, default=16)
    m.add_argument("--facts", type=int, default=8)
    m.add_argument("--seed", type=int, default=424242)
    m.add_argument("--json", action="store_true")
    m.add_argument("--plot", default=None, help="also write a bar chart (PNG) to this path")
    m.add_argument("--torch-threads", dest="threads", type=int, default=2)
    m.set_defaults(func=cmd_eval_memory)

    g = sub.add_parser("graphs", help="print each prebuilt graph as a Mermaid drawing")
    g.set_defaults(func=cmd_graphs)

    i = sub.add_parser("info", help="describe the embedded default model")
    i.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
