#!/usr/bin/env bash
# hearken vs faster-whisper on the same Whisper base weights (the CTranslate2 directory
# models/setup.sh assembles, and hearken's fp32 ONNX export of it), the same audio, the
# same threads, warm-up and timed runs, greedy and beam 5, measured side by side in one
# invocation: faster-whisper float32 and int8 (benches/peers/whisper_fw.py) and
# `hearken bench` on ONNX Runtime (CPU) and tract. Every transcript is scored by
# `hearken eval --hypotheses` against tests/fixtures/speech/manifest.jsonl, and one table
# gives p50 wall time, RTF, peak RSS, load time and WER per run, with hearken /
# faster-whisper ratios of time and memory (benches/peers/whisper_compare.py).
#
# Runs on a fresh checkout after the README setup: it re-runs models/setup.sh (a no-op
# when done), creates the project-local .venv and installs faster-whisper there if
# missing, and builds hearken.
#
# usage: bash benches/peers/whisper.sh [AUDIO...]
#   default audio: models/assets/beckett.wav and the 73 s long-form fixture
#   env: RUNS (timed runs, 3), WARMUP (1), THREADS (2), BEAMS (1,5),
#        HEARKEN (a hearken binary to use instead of building target/release/hearken),
#        SAVE (also write the raw results to this JSON file),
#        SETUP=0 (skip models/setup.sh, e.g. while editing the exporter, whose changes
#        would make it re-export the models)
set -euo pipefail
# Paths given on the command line are relative to where it was typed.
audio=()
for a in "$@"; do audio+=("$(realpath -- "$a")"); done
[ -z "${HEARKEN:-}" ] || HEARKEN=$(realpath -- "$HEARKEN")
cd "$(dirname "$0")/../.."
[ "${SETUP:-1}" = 0 ] || bash models/setup.sh >/dev/null
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c 'import faster_whisper' 2>/dev/null \
  || .venv/bin/pip install --quiet faster-whisper==1.2.1
if [ -z "${HEARKEN:-}" ]; then
  cargo build --release --quiet -p hearken --bin hearken
  HEARKEN=target/release/hearken
fi
if ! "$HEARKEN" bench --help >/dev/null 2>&1; then
  echo "whisper.sh: $HEARKEN has no \`bench\` subcommand; rebuild it" >&2
  exit 1
fi
# hearken's int8 export (MatMul weights per channel, dynamic activations), made once.
if [ ! -f models/whisper-base-int8/decoder.onnx ]; then
  cargo run --release --quiet -p hearken-export -- convert models/ct2/whisper-base \
    --out models/whisper-base-int8 --precision int8 \
    --parity-audio models/assets/beckett.wav \
    --wer-manifest tests/fixtures/speech/manifest.jsonl >&2
fi
[ ${#audio[@]} -gt 0 ] || audio=(models/assets/beckett.wav tests/fixtures/speech/longform.ogg)
exec .venv/bin/python benches/peers/whisper_compare.py \
  --hearken "$HEARKEN" --runs "${RUNS:-3}" --warmup "${WARMUP:-1}" \
  --threads "${THREADS:-2}" --beams "${BEAMS:-1,5}" ${SAVE:+--save "$SAVE"} "${audio[@]}"
