"""Self-improvement: attempt, grade, reflect, rewrite notes, re-internalize, retry.

Run: python examples/self_improvement.py                   (about 20 s on 2 CPU cores, the embedded default)
     python examples/self_improvement.py --model smollm2   (SmolLM2-135M-Instruct, English product sheets)
"""

from __future__ import annotations

import argparse
import random
import tempfile

from agenthn_langgraph import LocalHypernetChatModel
from agenthn_langgraph.evals.recall import recalled
from agenthn_langgraph.models import language_of
from agenthn_langgraph.nodes.reflect import exact_match_grader
from agenthn_langgraph.prebuilt import create_self_improvement_graph
from agenthn_langgraph.store import AdapterStore

SEED = 777


def study_material(llm: LocalHypernetChatModel, model: str) -> tuple[str, list[dict[str, str]]]:
    """Three product sheets of 4 facts each in the model's language, and a question per fact."""
    if model == "tiny":
        from agenthn_langgraph.tiny_default.language import Corpus  # the tiny default's little language

        docs = Corpus(seed=SEED, attributes=llm.engine.language.attributes).group(3, 4, genre="product")
        rng = random.Random(SEED)
        return " ".join(d.text for d in docs), [
            {"question": f.question(rng), "answer": f.value} for d in docs for f in d.facts
        ]
    sheets = language_of(llm.engine).examples(3, SEED, n_facts=4, genres=["product"])
    return "\n\n".join(d.context for d in sheets), [
        {"question": p.question, "answer": p.answer} for d in sheets for p in d.qa
    ]


def main(model: str = "tiny") -> None:
    llm = LocalHypernetChatModel(model=model, max_tokens=4 if model == "tiny" else 16)
    store = AdapterStore.for_model(llm.engine, tempfile.mkdtemp(prefix="agenthn-self-improve-"))
    material, questions = study_material(llm, model)
    # a model that answers in sentences is graded on the value in its first sentence
    grader = exact_match_grader if model == "tiny" else (lambda _q, expected, predicted: recalled(predicted, expected))
    graph = create_self_improvement_graph(llm, adapter_store=store, max_rounds=3, grader=grader)
    print(f"study material ({llm.get_num_tokens(material)} tokens): {material}\n")
    state = {"study_material": material, "questions": questions}
    cfg = {"configurable": {"thread_id": "self-improve"}}
    final: dict = {}
    for mode, chunk in graph.stream(state, cfg, stream_mode=["updates", "values"]):
        if mode == "values":
            final = chunk
            continue
        for node, change in chunk.items():
            if node == "grade":
                print(
                    f"grade: score {change['scores'][-1]:.2f}"
                    + (f"  <- new best ({change['best_score']:.2f})" if "best_score" in change else "")
                )
            elif node == "reflect":
                if "notes" in change:
                    print(
                        f"reflect (round {change['round']}): {len(change['notes'])} note chunks -> adapter "
                        f"{change['candidate_adapter']['id']}"
                    )
                else:
                    print(f"reflect (round {change['round']}): {change.get('stop_reason')}")
    made = store.list(namespace=("notes", "self-improve"), kind="notes")
    print(
        f"\nscores by round: {[round(s, 2) for s in final['scores']]}; best {final['best_score']:.2f} "
        f"({final['best_adapter']['id'] if final['best_adapter'] else 'no notes'}); {len(made)} notes adapters made"
    )
    print("\nquestion | with the best notes adapter | base alone | expected")
    adapters = [final["best_adapter"]] if final["best_adapter"] else []
    for q in questions[:6]:
        with_notes = llm.invoke(q["question"], adapters=adapters, adapter_store=store).content
        print(f"{q['question']} | {with_notes} | {llm.invoke(q['question']).content} | {q['answer']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="a registered model name (tiny, smollm2) or a directory")
    main(parser.parse_args().model)
