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
from typing import TYPE_CHECKING, Any

from .errors import AgenthnError

if TYPE_CHECKING:
    from .data.language import Language
    from .engine import WeightMemoryModel

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
# The English part: a real sentence, remembered by SmolLM2-135M-Instruct from weights alone
ENGLISH_TEXT = (
    "User: Hi! I just got back from the market.\nAssistant: Sounds fun!\n"
    "User: My sister Maria moved to Barcelona last spring.\nAssistant: Got it.\n"
    "User: I work as a dental hygienist.\nAssistant: Good to know."
)
ENGLISH_QUESTIONS = [("Which city does my sister live in?", "Barcelona"), ("What is my job?", "dental hygienist")]


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, as ``ArgumentDefaultsHelpFormatter`` writes it,
    except where there is none worth showing (``None``, a flag's ``True``/``False``, ``""``) or the
    help already says it; a list default is written as it is typed (``0 1 2`` or ``5,10,20``). The
    epilog keeps its line breaks (the exit codes' table)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or default is None
            or isinstance(default, bool)
            or default in ("", argparse.SUPPRESS)
            or "default" in text
        ):
            return text
        if isinstance(default, list | tuple):
            shown = (" " if action.nargs in ("+", "*") else ",").join(str(v) for v in default)
        else:
            shown = str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


class _Parser(argparse.ArgumentParser):
    """No abbreviated options: before Python 3.12, ``agenthn train hypernet --base`` was refused as an
    ambiguous abbreviation of ``train``'s own ``--base-steps`` / ``--base-seed`` / ``--base-lr``.
    Every parser, subcommands' included (``add_subparsers`` makes them of this class), shows the
    defaults in its help (:class:`_HelpFormatter`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _command(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    """A subcommand whose one-line help (in its parent's list) is also its own ``--help``'s description."""
    return sub.add_parser(name, help=help_text, description=help_text)


def _version() -> str:
    """The installed distribution's version, else the package's own ``__version__``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agenthn-langgraph")
    except PackageNotFoundError:  # run from a source tree that was never installed
        import importlib

        return str(getattr(importlib.import_module(__package__ or "agenthn_langgraph"), "__version__", "unknown"))


EXIT_CODES = """\
exit codes:
  0    success
  1    a command that could not finish (e.g. a missing example script), or an unexpected error (with a traceback)
  2    a usage error: bad options or arguments, or input the command cannot use ("agenthn: error: ...")
  130  interrupted (Ctrl-C)"""


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
    """The engine demo, then each example script (one per application) in this process; on the
    tiny default, a short English part on SmolLM2 at the end."""
    import runpy

    import torch

    torch.set_num_threads(args.threads)
    chosen = args.only or ["engine", *EXAMPLES, *(["english"] if args.model == "tiny" else [])]
    for name in chosen:
        t0 = time.perf_counter()
        print(f"\n{'=' * 24} {name} {'=' * 24}", flush=True)
        if name == "engine":
            demo_engine(args.model)
        elif name == "english":
            demo_english()
        else:
            script = EXAMPLES_DIR / f"{name}.py"
            if not script.is_file():
                print(f"examples/{name}.py not found (the examples ship with a source checkout)", file=sys.stderr)
                return 1
            argv, sys.argv = sys.argv, [str(script), "--model", args.model]
            try:
                runpy.run_path(str(script), run_name="__main__")
            finally:
                sys.argv = argv
        print(f"[{name}: {time.perf_counter() - t0:.1f} s]", flush=True)
    return 0


def demo_english() -> None:
    """SmolLM2: an English fact internalized, answered from weights with an empty context, missed without."""
    from .errors import CheckpointError, ModelNotFoundError
    from .models.registry import load_default

    try:
        model = load_default("smollm2")
    except (ModelNotFoundError, CheckpointError) as e:  # the model is an extra: say how to get it
        print(f"skipped: {e}")
        return
    if model.hypernet is None:  # a checkout without the shipped checkpoint: the base alone cannot remember
        print(f"skipped: {model.hypernet_note}")
        return
    show_memory(model, ENGLISH_TEXT, ENGLISH_QUESTIONS, max_new_tokens=16)


def demo_engine(name: str = "tiny") -> None:
    from .models.registry import language_of, load_default

    model = load_default(name)
    if name == "tiny":
        text, questions = DEMO_TEXT, DEMO_QUESTIONS
    else:  # a conversation drawn in the model's own language
        example = language_of(model).examples(1, 4242, n_facts=4, genres=["profile"])[0]
        text, questions = example.context, [(p.question, p.answer) for p in example.qa]
    show_memory(model, text, questions, max_new_tokens=4 if name == "tiny" else 16)


def show_memory(model: Any, text: str, questions: list[tuple[str, str]], *, max_new_tokens: int) -> None:
    """Internalize ``text``; answer each question with its adapter (empty context), without, and in context."""
    from .evals.recall import recalled

    print(f"model: {model}")
    print(f"\ntext to remember ({len(model.encode(text))} tokens):\n  " + text.replace("\n", "\n  ") + "\n")
    t0 = time.perf_counter()
    adapter = model.internalize(text, kind="segment")
    ms = (time.perf_counter() - t0) * 1000
    print(f"internalized in {ms:.1f} ms (one forward pass) -> {adapter}, {adapter.nbytes:,} bytes\n")
    hits = {"adapter": 0, "none": 0, "context": 0}
    for q, expected in questions:
        with_adapter = model.generate(q, adapters=[adapter], max_new_tokens=max_new_tokens)
        without = model.generate(q, max_new_tokens=max_new_tokens)
        in_context = model.generate_ids([model.prompts.teacher_ids(text, q)], max_new_tokens=max_new_tokens)[0]
        hits["adapter"] += recalled(with_adapter, expected)
        hits["none"] += recalled(without, expected)
        hits["context"] += recalled(in_context, expected)
        print(f"question: {q}   (expected: {expected})")
        print(f"  adapter, empty context: {with_adapter!r}\n  no memory:              {without!r}")
        print(f"  text in context:        {in_context!r}")
    q = questions[0][0]
    n = len(questions)
    print(
        f"\nprompt tokens: {model.count_tokens(q)} with the adapter vs "
        f"{len(model.prompts.teacher_ids(text, q))} with the text in context"
    )
    print(f"correct: adapter {hits['adapter']}/{n}, no memory {hits['none']}/{n}, in context {hits['context']}/{n}")


def cmd_train(args: argparse.Namespace) -> int:
    """The tiny default: base LM (from scratch or ``--init-from``), then its hypernetwork, evaluated."""
    import torch

    from .engine import WeightMemoryModel
    from .evals.recall import evaluate_recall
    from .hypernet.config import ChatFormat
    from .hypernet.train import HypernetTrainConfig, train_hypernet
    from .tiny_default import CHECKPOINT_DIR, tiny_language
    from .tiny_default.base import BaseTrainConfig, train_base

    torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.out)
    t0 = time.time()
    base_cfg = BaseTrainConfig(
        steps=args.base_steps,
        seed=args.seed if args.base_seed is None else args.base_seed,
        lr=args.base_lr,
        warmup=50 if args.init_from else 100,
        curriculum_offset=0.35 if args.init_from else 0.0,  # a warm start skips the 1-2 fact stages
        multi_product=args.base_multi_product,
    )
    base_dir = out / "base" if args.skip_base else train_base(base_cfg, out, device=device, init_from=args.init_from)
    t_base = time.time() - t0
    model = WeightMemoryModel.from_pretrained(base_dir, device=device, name="agenthn-tiny-default")
    train, val = tiny_hypernet_data(args.train_texts, args.seed)
    hn_cfg = HypernetTrainConfig(
        steps=args.hypernet_steps,
        seed=args.seed,
        lr=args.hypernet_lr,
        warmup=_warmup(args.hypernet_warmup, args.hypernet_steps),
        rank=2,  # the least rank: a text's gates decide how many pieces it keeps
        window=512,
        # retrieval composes texts of any genre: by default half the distractors from the target's
        # own genre (shared attributes, the hard case), half from any; N = 8 drawn twice as often
        same_genre=args.same_genre,
        distractors=tuple(args.distractors),
        chat=ChatFormat(context="prefix"),
        eval_every=50,
        eval_batches=6,
        checkpoint_every=50,
    )
    t1 = time.time()
    hn_dir = train_hypernet(
        model,
        train,
        val,
        hn_cfg,
        out,
        init_from=args.hypernet_init_from,
        init_base_changed=args.hypernet_init_base_changed,
    )
    t_hn = time.time() - t1
    engine = WeightMemoryModel.from_pretrained(base_dir, hn_dir, device=device, name="agenthn-tiny-default")
    report = evaluate_recall(engine, tiny_language(engine), n_docs=args.eval_docs, progress=True)
    print(report.table())
    record = {
        "command": " ".join(sys.argv),
        "seed": args.seed,
        "device": device,
        "hardware": _hardware(),
        "base": {"config": base_cfg.__dict__, "init_from": args.init_from, "seconds_this_run": round(t_base, 1)},
        "hypernet": {
            "config": hn_cfg.to_dict(),
            "init_from": args.hypernet_init_from,
            "seconds_this_run": round(t_hn, 1),
        },
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


def _warmup(warmup: int, steps: int) -> int:
    """A short run's warmup is at most a tenth of it (a 20-step smoke run does not warm up for 100)."""
    return min(warmup, max(steps // 10, 1))


def tiny_hypernet_data(n_train: int, seed: int) -> tuple[list, list]:
    """The tiny default's hypernetwork data: half short texts (1-6 facts), half up to 16 facts."""
    from .tiny_default.data import TinyLanguage

    language, half = TinyLanguage(), n_train // 2
    train = language.examples(half, seed=100 + seed + 1, n_facts=(1, 6))
    train += language.examples(n_train - half, seed=100 + seed + 2, n_facts=(1, 16))
    val = language.examples(128, seed=100 + seed + 3, n_facts=(1, 6))
    val += language.examples(128, seed=100 + seed + 4, n_facts=(1, 16))
    return train, val


def cmd_train_hypernet(args: argparse.Namespace) -> int:
    """A hypernetwork for any local Hugging Face causal LM, from a QA JSONL file."""
    import torch

    from .data.qa import read_jsonl, split_examples
    from .engine import WeightMemoryModel
    from .hypernet.config import ChatFormat
    from .hypernet.train import HypernetTrainConfig, prepare_run, profile_training, train_hypernet
    from .training import frozen_base_dtype

    torch.set_num_threads(args.threads)
    examples = read_jsonl(args.data)
    if args.val_data:
        train, val = examples, read_jsonl(args.val_data)
    else:
        train, val = split_examples(examples, val_fraction=args.val_fraction)
    if not val:
        raise AgenthnError("the validation split is empty: pass --val-data or a larger --val-fraction")
    model = WeightMemoryModel.from_pretrained(args.base, device=args.device, targets=args.targets, layers=args.layers)
    dtype = frozen_base_dtype(args.base_dtype, model.device)
    model.base.to(dtype)  # the frozen base only; the hypernetwork and the adapters' math stay fp32
    cfg = HypernetTrainConfig(
        steps=args.steps,
        seed=args.seed,
        lr=args.lr,
        warmup=_warmup(args.warmup, args.steps),
        targets=args.batch_texts,
        width=args.width,
        mixer_layers=args.mixer_layers,
        rank=args.rank,
        window=args.window,
        read_layers=None if args.read_layers is None else tuple(args.read_layers),
        eval_every=args.eval_every,
        checkpoint_every=args.eval_every,
        chat=ChatFormat(
            context=args.context,
            system=args.system,
            adapter_on_prompt=not args.answer_only,
            answer_prefix=args.answer_prefix,
            memory_format=args.memory_format,
        ),
        questions_per_text=args.questions_per_text,
        kl_weight=args.kl_weight,
        in_batch_distractors=args.in_batch_distractors,
        soft_and_hard=args.soft_and_hard,
        distractors=tuple(args.distractors),
    )
    cache = _feature_cache(args, cfg)
    max_bytes = int(args.feature_cache_max_gb * 2**30)
    if args.profile:
        run = prepare_run(model, train, val, cfg, feature_cache=cache, feature_cache_max_bytes=max_bytes,
                          init_from=args.init_from, init_base_changed=args.init_base_changed,
                          progress=not args.quiet)  # fmt: skip
        report = profile_training(run, args.profile, warmup_steps=args.profile_warmup)
        report.config.update(base_dtype=str(dtype).removeprefix("torch."), feature_cache=cache is not None)
        print(json.dumps(report.to_dict()) if args.json else report.table())
        return 0
    t0, c0 = time.time(), time.process_time()
    best = train_hypernet(
        model,
        train,
        val,
        cfg,
        args.out,
        progress=not args.quiet,
        max_steps_this_run=args.max_steps_this_run,
        init_from=args.init_from,
        init_base_changed=args.init_base_changed,
        feature_cache=cache,
        feature_cache_max_bytes=max_bytes,
    )
    record = {
        "command": " ".join(sys.argv),
        "base": str(args.base),
        "data": str(args.data),
        "n_train": len(train),
        "n_val": len(val),
        "init_from": args.init_from,
        "seconds_this_run": round(time.time() - t0, 1),
        "cpu_seconds_this_run": round(time.process_time() - c0, 1),
        "base_dtype": str(dtype).removeprefix("torch."),
        "feature_cache": None if cache is None else str(cache),
        "hardware": _hardware(),
        "config": cfg.to_dict(),
    }
    runs = Path(args.out) / "runs.jsonl"  # one line per invocation: a resumed run keeps its history
    with runs.open("a") as fh:
        fh.write(json.dumps(record, default=str) + "\n")
    (Path(args.out) / "training.json").write_text(json.dumps(record, indent=2, default=str))
    print(f"best hypernetwork: {best}")
    return 0


def _feature_cache(args: argparse.Namespace, cfg: Any) -> Path | None:
    """``--feature-cache``: a directory, ``none``, or ``auto`` (``$AGENTHN_CACHE/features`` when the
    run can use one: an answer-only adapter trained on gold answers, kl 0)."""
    if args.feature_cache == "none":
        return None
    cacheable = not cfg.chat.adapter_on_prompt and cfg.kl_weight == 0
    if args.feature_cache == "auto":
        if not cacheable:
            return None
        root = Path(os.environ.get("AGENTHN_CACHE", Path.home() / ".cache" / "agenthn"))
        return root / "features"
    if not cacheable:
        raise AgenthnError("--feature-cache needs --answer-only and --kl-weight 0 (it stores no teacher)")
    return Path(args.feature_cache)


def cmd_data_english(args: argparse.Namespace) -> int:
    from .data.english import generate_english
    from .data.qa import write_jsonl

    examples = generate_english(
        args.n, args.seed, n_facts=args.facts, genres=args.genres, heldout_phrasing=args.heldout_phrasing
    )
    path = write_jsonl(examples, args.out)
    print(f"wrote {len(examples)} examples ({sum(e.n_facts for e in examples)} facts) to {path}")
    return 0


def _engine_for(args: argparse.Namespace):  # noqa: ANN202 - the engine type is imported lazily
    if args.base:
        from .engine import WeightMemoryModel

        base_alone = getattr(args, "reading_only", False) or not getattr(args, "needs_hypernet", True)
        if not args.hypernet and not base_alone:
            raise AgenthnError("--base needs --hypernet (a hypernetwork checkpoint directory), or --reading-only")
        model = WeightMemoryModel.from_pretrained(args.base, args.hypernet)
        if not args.hypernet and getattr(args, "system", None):
            # no checkpoint to say how prompts were built: the reading benchmark's own instruction
            from .hypernet.config import ChatFormat

            model.prompts.chat = ChatFormat(context="user", system=args.system)
        return model
    from .models.registry import load_default

    return load_default(args.model)


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from .evals.recall import evaluate_recall, strict_json

    torch.set_num_threads(args.threads)
    model = _engine_for(args)
    if args.data:
        from .data.language import DatasetLanguage
        from .data.qa import read_jsonl

        language = DatasetLanguage(read_jsonl(args.data), name=Path(args.data).name)
        n_facts: int | tuple[int, int] = (1, 10_000)
    else:
        language, n_facts = _generated_language(args.language, model), args.facts
    if args.reading_only:
        from .evals.recall import reading_recall

        reading = reading_recall(model, language, n_docs=args.n_docs, seed=args.seed, n_facts=n_facts, no_memory=True)
        if args.json:
            print(strict_json({"seed": args.seed, "n_docs": args.n_docs, **reading}))
        else:
            print(
                f"seed {args.seed}: {reading['n_questions']:.0f} questions; in_context {reading['in_context']:.4f} "
                f"(95% {reading['in_context_low']:.3f}-{reading['in_context_high']:.3f}); "
                f"no_memory {reading['no_memory']:.4f}"
            )
        return 0
    finetune_docs = min(args.finetune_docs, args.n_docs) if "finetune" in args.baselines else 0
    report = evaluate_recall(
        model,
        language,
        n_docs=args.n_docs,
        seed=args.seed,
        n_facts=n_facts,
        compose_ns=args.compose,
        docs_per_n_facts=args.docs_per_n_facts,
        heldout_docs=args.heldout_docs,
        finetune_docs=finetune_docs,
        finetune_steps=args.finetune_steps,
        progress=not args.json,
    )
    if args.plot:
        report.plot(args.plot)
    if args.json:
        print(report.to_json())
    else:
        print(report.table())
        if args.plot:
            print(f"plot: {args.plot}")
    return 0


def _generated_language(which: str, model: WeightMemoryModel) -> Language:
    """The generated held-out data a benchmark runs on: the model's registered language, English,
    or the tiny default's little language (a retrained tiny hypernetwork, before it is installed)."""
    if which == "english":
        from .data.english import EnglishLanguage

        return EnglishLanguage()
    if which == "tiny":
        from .tiny_default import tiny_language

        return tiny_language(model)
    from .models.registry import language_of

    return language_of(model)


def cmd_eval_binding(args: argparse.Namespace) -> int:
    import torch

    from .evals.binding import evaluate_binding
    from .evals.recall import strict_json

    torch.set_num_threads(args.threads)
    model = _engine_for(args)
    language = _generated_language(args.language, model)
    try:
        report = evaluate_binding(
            model, language, n_docs=args.n_docs, seed=args.seed, n_facts=args.facts, n_paired=args.pairs
        )
    except ValueError as e:  # too few subjects in the texts to pair: input this benchmark cannot use
        raise AgenthnError(f"eval binding: {e}") from e
    print(strict_json(report.to_dict()) if args.json else report.table())
    return 0


def cmd_eval_memory(args: argparse.Namespace) -> int:
    import torch

    from .evals.memory import evaluate_memory
    from .evals.recall import strict_json

    torch.set_num_threads(args.threads)
    from .chat_model import LocalHypernetChatModel

    seeds = [args.seed + k for k in range(args.seeds)]
    report = evaluate_memory(
        LocalHypernetChatModel(model=args.model, max_tokens=8 if args.model == "tiny" else 16),
        turns=args.turns,
        seeds=seeds,
        threads=args.n_threads,
        n_facts=args.facts,
        n_updates=args.updates,
        max_turns=args.max_turns,
        keep_turns=args.keep_turns,
        grow_segments=args.grow_segments,
        follow_up_docs=args.follow_up_docs,
        cartridge_tokens=args.cartridge_tokens,
        cartridge_epochs=args.cartridge_epochs,
        cartridge_budget_s=args.cartridge_budget_s,
        progress=not args.json,
    )
    if args.plot:
        report.plot(args.plot)
    print(strict_json(report.to_dict()) if args.json else report.table())
    return 0


def _benchmark_model(args: argparse.Namespace):  # noqa: ANN202 - the chat model is imported lazily
    """The chat model an application benchmark runs (short replies; a real model gets more room)."""
    import torch

    from .chat_model import LocalHypernetChatModel

    torch.set_num_threads(args.threads)
    return LocalHypernetChatModel(model=args.model, max_tokens=8 if args.model == "tiny" else 16)


def _print_report(args: argparse.Namespace, report: Any) -> int:
    if args.plot:
        report.plot(args.plot)
    print(json.dumps(report.to_dict()) if args.json else report.table())
    return 0


def cmd_eval_skills(args: argparse.Namespace) -> int:
    from .evals.skills import evaluate_skills

    llm = _benchmark_model(args)
    seeds = [args.seed + k for k in range(args.seeds)]
    report = evaluate_skills(llm, seeds=seeds, sheets=args.sheets, facts=args.facts, progress=not args.json)
    return _print_report(args, report)


def cmd_eval_self_improve(args: argparse.Namespace) -> int:
    from .evals.self_improve import evaluate_self_improve

    llm = _benchmark_model(args)
    seeds = [args.seed + k for k in range(args.seeds)]
    report = evaluate_self_improve(
        llm, seeds=seeds, rounds=args.rounds, sheets=args.sheets, facts=args.facts, progress=not args.json
    )
    return _print_report(args, report)


def cmd_eval_personalization(args: argparse.Namespace) -> int:
    from .evals.personalization import evaluate_personalization

    llm = _benchmark_model(args)
    seeds = [args.seed + k for k in range(args.seeds)]
    report = evaluate_personalization(llm, seeds=seeds, users=args.users, facts=args.facts, progress=not args.json)
    return _print_report(args, report)


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
            graph = factory(adapter_store=tmp)
            print(f"### {graph.name}\n\n```mermaid\n{graph.get_graph().draw_mermaid()}```\n")
        graph = create_self_improvement_graph(adapter_store=tmp)
        print(f"### {graph.name}\n\n```mermaid\n{graph.get_graph().draw_mermaid()}```\n")
    return 0


def cmd_convert_d2l(args: argparse.Namespace) -> int:
    import warnings

    from .hypernet.d2l import convert_d2l_checkpoint

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = convert_d2l_checkpoint(
            args.checkpoint,
            args.base,
            args.out,
            trust_pickle=args.trust_pickle,
            chunk_tokens=args.chunk_tokens or None,
        )
    for w in caught:
        print(f"agenthn: warning: {w.message}", file=sys.stderr)
    print(
        f"wrote a d2l hypernetwork to {out} (safetensors + JSON); load it with "
        f"LocalHypernetChatModel.from_pretrained({args.base!r}, hypernet={str(out)!r})"
    )
    return 0


def cmd_convert_dtype(args: argparse.Namespace) -> int:
    """A trained checkpoint in another dtype (bf16 halves it), with the run's record beside it."""
    import shutil

    import torch

    from .hypernet.model import Hypernetwork

    src, out = Path(args.checkpoint), Path(args.out)
    if src.resolve() == out.resolve():
        raise ValueError("--out must differ from the checkpoint it converts")
    hypernet = Hypernetwork.load(src)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    hypernet.save(tmp, dtype=getattr(torch, args.dtype))
    run_dir = src.parent  # `train hypernet` writes OUT/hypernet beside OUT/runs.jsonl and OUT/train_log.jsonl
    record: dict[str, Any] = {"from": str(src), "dtype": args.dtype}
    if (run_dir / "runs.jsonl").is_file():
        record["runs"] = [json.loads(line) for line in (run_dir / "runs.jsonl").read_text().splitlines() if line]
    if (run_dir / "train_log.jsonl").is_file():
        log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines() if line]
        record["log"] = [{k: r[k] for k in ("step", "questions", "seconds", "cpu_seconds", "best")} | {
            "val_acc_hard": r["val"].get("acc_hard"), "val_loss": r["val"].get("loss")} for r in log]  # fmt: skip
    if args.note:
        record["note"] = args.note
    (tmp / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"wrote {out} ({args.dtype}, {size / 2**20:.1f} MiB) with its training record (training.json)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .models.registry import load_default
    from .tiny_default import CHECKPOINT_DIR, training_record

    model = load_default("tiny")
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


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _at_least_two(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be an integer >= 2, got {text}")
    return value


def _int_list(text: str) -> list[int]:
    """``"16,64,256"`` -> ``[16, 64, 256]``: positive ints, comma-separated."""
    try:
        return [_positive_int(part) for part in text.split(",") if part.strip()] or _fail(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}") from e


def _fail(text: str) -> list[int]:
    raise argparse.ArgumentTypeError(f"expected at least one positive integer, got {text!r}")


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _span(text: str) -> tuple[int, int]:
    """``"4"`` -> (4, 4), ``"1-16"`` -> (1, 16); ValueError when not integers."""
    lo, dash, hi = text.partition("-")
    return int(lo), int(hi) if dash else int(lo)


def _layer_list(text: str) -> list[int]:
    """``"10-29"`` or ``"0,4,8"`` (or both, comma-separated) -> decoder-layer numbers."""
    layers: list[int] = []
    try:
        for part in text.split(","):
            first, last = _span(part.strip())
            if first < 0 or last < first:
                raise ValueError
            layers += range(first, last + 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a layer list (e.g. 10-29 or 0,4,8): {text!r}") from None
    return sorted(set(layers))


def _state_list(text: str) -> list[int]:
    """Hidden-state indices (``0,8,16,24,30`` or spans): as ``--layers``, 0 allowed."""
    return _layer_list(text)


def _fact_range(text: str) -> tuple[int, int]:
    """``"4"`` or ``"1-16"`` -> (lo, hi)."""
    try:
        first, last = _span(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"facts per text: N or LO-HI (e.g. 4 or 1-16), got {text!r}") from None
    if not 1 <= first <= last:
        raise argparse.ArgumentTypeError(f"facts per text: 1 <= LO <= HI, got {text!r}")
    return first, last


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _application_options(parser: argparse.ArgumentParser, *, seed: int) -> None:
    """What every application benchmark takes: the model, seeds, torch threads, --json, --plot."""
    parser.add_argument("--model", default="tiny", help="a registered model (default: the embedded tiny one)")
    parser.add_argument("--seeds", type=_positive_int, default=3, help="how many seeds: --seed, --seed+1, ...")
    parser.add_argument("--seed", type=int, default=seed, help="the first seed")
    parser.add_argument("--torch-threads", dest="threads", type=_positive_int, default=2, help="torch CPU threads")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line instead of a table")
    parser.add_argument("--plot", default=None, help="also write a chart (PNG) to this path")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="agenthn", description=__doc__, epilog=EXIT_CODES)
    p.add_argument("--version", action="version", version=f"agenthn {_version()}", help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True)

    d = _command(sub, "demo", "the engine demo and every example (memory, profile, skills, self-improvement)")
    d.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    d.add_argument(
        "--only",
        nargs="+",
        choices=["engine", *EXAMPLES, "english"],
        help="run just these parts (default: engine, every example, and english with --model tiny)",
    )
    d.add_argument(
        "--model",
        default="tiny",
        help="the model to run every part on: a registered name (tiny, smollm2) or a directory",
    )
    d.set_defaults(func=cmd_demo)

    t = _command(sub, "train", "train the tiny default (base + hypernetwork); `train hypernet` for any model")
    t.add_argument(
        "--out", default="runs/default", help="run directory: base/, hypernet/, training.json (rerun to resume)"
    )
    t.add_argument("--base-steps", type=int, default=1600, help="training steps of the base LM")
    t.add_argument("--hypernet-steps", type=int, default=1500, help="training steps of the hypernetwork")
    t.add_argument("--train-texts", type=int, default=40_000, help="generated training texts for the hypernetwork")
    t.add_argument("--init-from", default=None, help="warm-start the base from this earlier tiny base directory")
    t.add_argument("--skip-base", action="store_true", help="reuse OUT/base instead of training the base")
    t.add_argument(
        "--hypernet-init-from",
        default=None,
        help="warm-start the hypernetwork from this checkpoint directory (fine-tune an earlier one)",
    )
    t.add_argument(
        "--hypernet-init-base-changed",
        action="store_true",
        help="--hypernet-init-from was made for another base of the same shape (the base before a fine-tune)",
    )
    t.add_argument(
        "--base-multi-product",
        type=_fraction,
        default=0.0,
        help="share of the base's product rows with 2-3 product documents in one context "
        "(to make it read the subject; check with eval binding)",
    )
    t.add_argument(
        "--hypernet-lr",
        type=_positive_float,
        default=1e-3,
        help="peak learning rate of the hypernetwork (linear warmup, then cosine decay)",
    )
    t.add_argument(
        "--hypernet-warmup",
        type=_positive_int,
        default=100,
        help="warmup steps of the hypernetwork (at most a tenth of --hypernet-steps)",
    )
    t.add_argument("--same-genre", type=_fraction, default=0.5, help="share of distractors from the target's genre")
    t.add_argument(
        "--distractors",
        type=_non_negative_int,
        nargs="+",
        default=[0, 1, 2, 4, 8, 8],
        help="how many unrelated texts are composed with a target: one of these, drawn per target (repeat a "
        "number to draw it more often)",
    )
    t.add_argument(
        "--seed", type=int, default=0, help="seed of the base (unless --base-seed), the hypernetwork and their data"
    )
    t.add_argument("--base-seed", type=int, default=None, help="the base's data seed (default: --seed)")
    t.add_argument(
        "--base-lr", type=float, default=2e-3, help="peak learning rate of the base (linear warmup, then cosine decay)"
    )
    t.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    t.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    t.add_argument("--eval-docs", type=int, default=200, help="held-out texts of the recall evaluation after training")
    t.add_argument("--install", action="store_true", help="copy the result into the package as the default")
    t.set_defaults(func=cmd_train)
    tsub = t.add_subparsers(dest="train_what")
    h = _command(tsub, "hypernet", "train a hypernetwork for any local Hugging Face causal LM")
    h.add_argument("--base", required=True, help="local directory of the base model (+ tokenizer)")
    h.add_argument("--data", required=True, help="QA JSONL file (`agenthn data english` writes one)")
    h.add_argument("--val-data", default=None, help="validation JSONL (default: a hashed split of --data)")
    h.add_argument(
        "--val-fraction",
        type=_fraction,
        default=0.05,
        help="share of --data held out for validation when there is no --val-data (by a hash of each example's id)",
    )
    h.add_argument(
        "--out",
        required=True,
        help="run directory: hypernet/ (the best checkpoint), ckpt.pt (rerun to resume), train_log.jsonl, "
        "runs.jsonl, training.json",
    )
    h.add_argument("--steps", type=_positive_int, default=1500, help="training steps in all (a resumed run included)")
    h.add_argument(
        "--seed", type=int, default=0, help="seed of the hypernetwork's initialization and of every step's data"
    )
    h.add_argument("--device", choices=["cpu", "cuda"], default=None, help="cpu or cuda (default: cuda when present)")
    h.add_argument("--threads", type=_positive_int, default=2, help="torch CPU threads")
    h.add_argument(
        "--lr", type=_positive_float, default=1e-3, help="peak learning rate (linear warmup, then cosine decay)"
    )
    h.add_argument("--warmup", type=_positive_int, default=100, help="warmup steps (at most a tenth of --steps)")
    h.add_argument("--batch-texts", type=_positive_int, default=8, help="target texts per step")
    h.add_argument("--width", type=_positive_int, default=256, help="the hypernetwork's width (features per token)")
    h.add_argument(
        "--mixer-layers", type=_positive_int, default=2, help="transformer layers of the mixer across a text's tokens"
    )
    h.add_argument("--rank", type=_positive_int, default=8, help="least rank of an adapter")
    h.add_argument(
        "--window", type=_positive_int, default=256, help="encoder window in tokens (longer texts are chunked)"
    )
    h.add_argument("--targets", nargs="+", default=None, help="module suffixes (default: mlp.down_proj)")
    h.add_argument(
        "--context",
        choices=["user", "prefix"],
        default="user",
        help="where the teacher sees the text: in the user's message before the question, or raw before the "
        "conversation",
    )
    h.add_argument("--system", default=None, help="a system instruction in every prompt")
    h.add_argument(
        "--layers", type=_layer_list, default=None, help="decoder layers to adapt: 10-29 or 0,4,8 (default: all)"
    )
    h.add_argument(
        "--answer-only",
        action="store_true",
        help="the adapter acts on the answer only, not on the prompt (cheaper training; stored in the checkpoint)",
    )
    h.add_argument(
        "--answer-prefix",
        default="",
        choices=["", " "],
        help="' ': answers start with a space, so a byte-level BPE tokenizes them as the text does (default: '', none)",
    )
    h.add_argument(
        "--memory-format",
        choices=["chat_template", "transcript"],
        default="chat_template",
        help="how the memory nodes write a conversation to internalize: as the data's texts are written "
        "(`agenthn data english` writes 'User: ... Assistant: ...' transcripts)",
    )
    h.add_argument(
        "--questions-per-text", type=_positive_int, default=4, help="questions asked about each target text per step"
    )
    h.add_argument(
        "--kl-weight",
        type=_non_negative_float,
        default=1.0,
        help="weight of the teacher's KL term beside the gold answers' cross-entropy (0: gold answers only, "
        "no teacher pass)",
    )
    h.add_argument(
        "--distractors",
        type=_non_negative_int,
        nargs="+",
        default=[0, 1, 2, 4, 8],
        help="how many unrelated texts are composed with a target: one of these, drawn per target (repeat a "
        "number to draw it more often)",
    )
    h.add_argument(
        "--in-batch-distractors",
        type=_non_negative_int,
        default=None,
        help="draw distractors from the step's own texts plus this many extra (default: fresh texts per target)",
    )
    h.add_argument(
        "--soft-and-hard",
        choices=["both", "alternate", "hard"],
        default="both",
        help="which adapters each question trains: its soft (all-token) and hard (selected) one, the two in "
        "turn, or the hard one only (far cheaper on a large base)",
    )
    h.add_argument(
        "--max-steps-this-run",
        type=_positive_int,
        default=None,
        help="stop (checkpointed, resumable) after this many steps (default: run to --steps)",
    )
    h.add_argument(
        "--init-from",
        default=None,
        help="warm-start from this hypernetwork checkpoint (same base and shape; a new schedule)",
    )
    h.add_argument(
        "--init-base-changed",
        action="store_true",
        help="--init-from was made for another base of the same shape (the base before a fine-tune)",
    )
    h.add_argument(
        "--eval-every",
        type=_positive_int,
        default=100,
        help="validate, keep the best hypernetwork and checkpoint every this many steps",
    )
    h.add_argument(
        "--read-layers",
        type=_state_list,
        default=None,
        help="hidden states the hypernetwork reads: 0 = embeddings, i = output of layer i-1 (e.g. 0,8,16,24,30; "
        "default: all)",
    )
    h.add_argument(
        "--feature-cache",
        default="auto",
        help="where the frozen base's features of the data are cached once and reused every epoch: a directory, "
        "'auto' ($AGENTHN_CACHE/features when the run is answer-only with --kl-weight 0) or 'none'",
    )
    h.add_argument(
        "--feature-cache-max-gb",
        type=_positive_float,
        default=40.0,
        help="refuse to build a feature cache larger than this many GiB (the build says what it would take)",
    )
    h.add_argument(
        "--base-dtype",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="dtype of the frozen base while training: auto = bfloat16 on CUDA, and on a CPU only where a "
        "bf16 matmul measures faster than fp32 (AVX-512 BF16 / AMX)",
    )
    h.add_argument(
        "--profile",
        type=_positive_int,
        default=None,
        metavar="N",
        help="time N steps (after --profile-warmup steps) by phase and print questions per CPU-second; saves nothing",
    )
    h.add_argument(
        "--profile-warmup",
        type=_positive_int,
        default=20,
        metavar="W",
        help="steps run before --profile starts timing (default 20: a fresh hypernetwork's gates keep every token "
        "for its first ~10 steps, so early steps cost several times a trained one's; with --init-from 1 is enough)",
    )
    h.add_argument("--json", action="store_true", help="with --profile: one JSON line instead of the table")
    h.add_argument("--quiet", action="store_true", help="no progress bars")
    h.set_defaults(func=cmd_train_hypernet)

    data = _command(sub, "data", "generate training and evaluation data")
    dsub = data.add_subparsers(dest="data_what", required=True)
    en = _command(dsub, "english", "English QA examples with random facts (JSONL)")
    en.add_argument("--n", type=_non_negative_int, required=True, help="how many examples to write")
    en.add_argument("--seed", type=int, required=True, help="random seed (the same seed and options: the same file)")
    en.add_argument("--out", required=True, help="the JSONL file to write")
    en.add_argument(
        "--facts",
        type=_fact_range,
        default=(1, 8),
        help="facts per text: N, or LO-HI drawn uniformly per text (e.g. 1-16; default: 1-8)",
    )
    en.add_argument(
        "--genres",
        nargs="+",
        default=None,
        choices=["profile", "preference", "product", "procedure"],
        help="genres, cycled in this order (default: all four)",
    )
    en.add_argument(
        "--heldout-phrasing",
        action="store_true",
        help="only phrasings training never sees (the examples are marked so that no trainer uses them)",
    )
    en.set_defaults(func=cmd_data_english)

    e = _command(sub, "eval", "benchmarks")
    esub = e.add_subparsers(dest="benchmark", required=True)
    r = _command(esub, "recall", "recall of internalized facts (adapter vs in-context vs none)")
    r.add_argument("--model", default="tiny", help="a registered model (default: the embedded tiny one)")
    r.add_argument("--base", default=None, help="a local HF base model directory instead of --model")
    r.add_argument("--hypernet", default=None, help="with --base: its hypernetwork checkpoint directory")
    r.add_argument("--data", default=None, help="evaluate on this QA JSONL file (held-out examples)")
    r.add_argument(
        "--language",
        choices=["model", "english", "tiny"],
        default="model",
        help="generated data to use without --data: the model's registered language, English, or the tiny "
        "default's (for a tiny checkpoint directory)",
    )
    r.add_argument("--facts", type=_positive_int, default=4, help="facts per held-out text (generated data)")
    r.add_argument("--n-docs", type=_positive_int, default=200, help="held-out texts (every question of each is asked)")
    r.add_argument("--seed", type=int, default=20261123, help="seed of the held-out texts")
    r.add_argument("--json", action="store_true", help="print the report as one JSON line instead of a table")
    r.add_argument(
        "--compose",
        type=_positive_int,
        nargs="+",
        default=[2, 4, 8],
        help="numbers of unrelated adapters composed with the target, a row each",
    )
    r.add_argument(
        "--docs-per-n-facts",
        type=_non_negative_int,
        default=None,
        help="texts for each by_n_facts row (1-16 facts; default n-docs/4, 0 skips the rows)",
    )
    r.add_argument(
        "--heldout-docs",
        type=_non_negative_int,
        default=None,
        help="held-out-phrasing texts (default n-docs/2, 0 skips)",
    )
    r.add_argument("--threads", type=_positive_int, default=2, help="torch CPU threads")
    r.add_argument("--plot", default=None, help="also write a chart (PNG) to this path")
    r.add_argument(
        "--baselines",
        nargs="+",
        choices=["finetune"],
        default=[],
        help="finetune: also fit a LoRA per text by gradient descent on the text alone, side by side (default: none)",
    )
    r.add_argument("--finetune-docs", type=_positive_int, default=20, help="texts the fine-tuning baseline fits")
    r.add_argument(
        "--finetune-steps",
        type=_int_list,
        default=[5, 10, 20, 40, 80],
        help="steps at which it is evaluated, comma-separated",
    )
    r.add_argument(
        "--reading-only",
        action="store_true",
        help="only the base's own reading: in_context and no_memory (cheap enough for thousands of questions)",
    )
    r.add_argument("--system", default=None, help="with --base and no --hypernet: a system instruction in every prompt")
    r.set_defaults(func=cmd_eval)

    bd = _command(
        esub,
        "binding",
        "per target module: do a question's activations tell two subjects apart (why composition fails)?",
    )
    bd.add_argument("--model", default="tiny", help="a registered model (default: the embedded tiny one)")
    bd.add_argument("--base", default=None, help="a local HF base model directory instead of --model")
    bd.add_argument("--hypernet", default=None, help="its hypernetwork (its targets and prompts; optional)")
    bd.add_argument(
        "--language",
        choices=["model", "english", "tiny"],
        default="model",
        help="generated data to use: the model's registered language, English, or the tiny default's",
    )
    bd.add_argument("--facts", type=_positive_int, default=4, help="facts per held-out text")
    bd.add_argument("--n-docs", type=_positive_int, default=100, help="held-out texts whose questions are read")
    bd.add_argument(
        "--pairs", type=_non_negative_int, default=200, help="two-subject contexts to read (0: activations only)"
    )
    bd.add_argument("--seed", type=int, default=20261123, help="seed of the held-out texts")
    bd.add_argument("--threads", type=_positive_int, default=2, help="torch CPU threads")
    bd.add_argument("--json", action="store_true", help="print the report as one JSON line instead of a table")
    bd.add_argument(
        "--system", default=None, help="with --base and no --hypernet: a system instruction in every prompt"
    )
    bd.set_defaults(func=cmd_eval_binding, needs_hypernet=False)

    m = _command(
        esub,
        "memory",
        "long threads: weight memory vs text RAG, compose-all, latest-only, a window, none (side by side)",
    )
    m.add_argument("--model", default="tiny", help="a registered model (default: the embedded tiny one)")
    m.add_argument(
        "--turns", type=_int_list, default=[16, 64, 256, 1024], help="thread lengths in turns, comma-separated"
    )
    m.add_argument("--seeds", type=_positive_int, default=3, help="how many seeds: --seed, --seed+1, ...")
    m.add_argument("--seed", type=int, default=424242, help="the first seed")
    m.add_argument(
        "--threads",
        dest="n_threads",
        type=_positive_int,
        default=4,
        help="conversation threads per seed and length (torch CPU threads: --torch-threads)",
    )
    m.add_argument("--facts", type=_positive_int, default=6, help="facts planted in a thread's first 20 user turns")
    m.add_argument("--updates", type=_non_negative_int, default=2, help="facts restated later with a new value")
    m.add_argument(
        "--max-turns",
        dest="max_turns",
        type=_positive_int,
        default=2,
        help="the memory agent compacts once more than this many turns are un-compacted",
    )
    m.add_argument(
        "--keep-turns",
        dest="keep_turns",
        type=_positive_int,
        default=1,
        help="turns the memory agent leaves in context after compacting",
    )
    m.add_argument(
        "--no-grow-segments",
        dest="grow_segments",
        action="store_false",
        help="each compaction makes its own segment instead of growing the thread's newest one (ablation)",
    )
    m.add_argument(
        "--follow-up-docs",
        dest="follow_up_docs",
        type=_non_negative_int,
        default=100,
        help="product documents whose second question is asked after the first in one conversation (0: none)",
    )
    m.add_argument(
        "--cartridge-tokens", type=_positive_int, default=96, help="virtual tokens of the cartridges row's KV prefix"
    )
    m.add_argument("--cartridge-epochs", type=_positive_int, default=60, help="the cartridges row's training epochs")
    m.add_argument(
        "--cartridge-budget-s",
        type=_non_negative_float,
        default=300.0,
        help="seconds a thread's cartridge may train; lengths past it are skipped (0: no cartridges)",
    )
    m.add_argument("--json", action="store_true", help="print the report as one JSON line instead of a table")
    m.add_argument("--plot", default=None, help="also draw recall and prompt tokens against thread length (PNG)")
    m.add_argument("--torch-threads", dest="threads", type=_positive_int, default=2, help="torch CPU threads")
    m.set_defaults(func=cmd_eval_memory)

    sk = _command(
        esub, "skills", "reference sheets: base vs sheet in context vs internalized skill adapter (with/without nudge)"
    )
    _application_options(sk, seed=515151)
    sk.add_argument("--sheets", type=_positive_int, default=8, help="reference sheets per seed (one subject each)")
    sk.add_argument("--facts", type=_positive_int, default=None, help="facts per sheet (default: the most one holds)")
    sk.set_defaults(func=cmd_eval_skills)

    si = _command(
        esub, "self-improve", "the self-improvement graph: accuracy per round (attempt, reflect, re-internalize)"
    )
    _application_options(si, seed=777)
    si.add_argument("--rounds", type=_positive_int, default=3, help="reflections at most (the graph's max_rounds)")
    si.add_argument("--sheets", type=_positive_int, default=3, help="reference sheets in the study material")
    si.add_argument("--facts", type=_positive_int, default=4, help="facts per sheet (one question each)")
    si.set_defaults(func=cmd_eval_self_improve)

    pz = _command(
        esub, "personalization", "profiles edited over sessions: profile adapter vs profile as text vs off, leakage"
    )
    _application_options(pz, seed=626262)
    pz.add_argument("--users", type=_at_least_two, default=6, help="users per seed (their values differ per topic)")
    pz.add_argument(
        "--facts", type=_at_least_two, default=4, help="facts stated in session 1 (then 1 updated, 1 added, 1 removed)"
    )
    pz.set_defaults(func=cmd_eval_personalization)

    c = _command(sub, "convert", "convert other hypernetworks' checkpoints to ours (safetensors + JSON)")
    csub = c.add_subparsers(dest="convert_what", required=True)
    cd = _command(csub, "d2l", "a Sakana AI Doc-to-LoRA checkpoint (pytorch_model.bin, a pickle)")
    cd.add_argument("checkpoint", help="the released pytorch_model.bin")
    cd.add_argument("--base", required=True, help="local directory of the base model it was trained on")
    cd.add_argument("--out", required=True, help="directory to write the converted hypernetwork to")
    cd.add_argument(
        "--trust-pickle",
        action="store_true",
        help="unpickle the checkpoint (a pickle can run code: only for checkpoints from a source you trust)",
    )
    cd.add_argument(
        "--chunk-tokens",
        type=_non_negative_int,
        default=8192,
        help="longest context chunk in tokens (the reference's evaluation uses 8192; 0: never chunk)",
    )
    cd.set_defaults(func=cmd_convert_d2l)
    ct = _command(csub, "dtype", "one of our checkpoints in another dtype (bfloat16 to ship), with its record")
    ct.add_argument("checkpoint", help="a hypernetwork directory (e.g. a run's OUT/hypernet)")
    ct.add_argument("--out", required=True, help="directory to write (replaced if it exists)")
    ct.add_argument(
        "--dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16", help="the dtype to write"
    )
    ct.add_argument("--note", default="", help="a line for the record (e.g. the ship test's figures)")
    ct.set_defaults(func=cmd_convert_dtype)

    g = _command(sub, "graphs", "print each prebuilt graph as a Mermaid drawing")
    g.set_defaults(func=cmd_graphs)

    i = _command(sub, "info", "describe the embedded default model")
    i.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``agenthn``; returns the exit code (:data:`EXIT_CODES`). Errors in the options exit 2
    from the parser (``SystemExit``); ``--help`` and ``--version`` exit 0 the same way."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AgenthnError as e:  # a clear message, not a traceback, for input the user can fix
        print(f"agenthn: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, and the shell's code for SIGINT (128 + 2)
        print("agenthn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
