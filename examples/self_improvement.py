"""Self-improvement: attempt, grade, reflect, rewrite notes, re-internalize, retry.

Run: python examples/self_improvement.py   (about 20 s on 2 CPU cores with the embedded default)
"""

from __future__ import annotations

import random
import tempfile

from agenthn_langgraph import LocalHypernetChatModel
from agenthn_langgraph.prebuilt import create_self_improvement_graph
from agenthn_langgraph.store import AdapterStore
from agenthn_langgraph.tiny_default.language import Corpus  # the example speaks the tiny default's language

SEED = 777


def main() -> None:
    llm = LocalHypernetChatModel(max_tokens=4)
    store = AdapterStore.for_model(llm.engine, tempfile.mkdtemp(prefix="agenthn-self-improve-"))
    docs = Corpus(seed=SEED, attributes=llm.engine.language.attributes).group(
        3, 4, genre="product"
    )  # three product sheets, 12 facts
    material = " ".join(d.text for d in docs)
    rng = random.Random(SEED)
    questions = [{"question": f.question(rng), "answer": f.value} for d in docs for f in d.facts]
    graph = create_self_improvement_graph(llm, adapter_store=store, max_rounds=3)
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
    main()
