#!/usr/bin/env bash
# Whisper log-mel: hearken (criterion, benches/logmel.rs) vs transformers'
# WhisperFeatureExtractor (numpy path, benches/peers/logmel.py) on the same audio.
#
# Usage, from anywhere in the repository: bash benches/peers/logmel.sh [criterion args]
# Creates the project venv (.venv, transformers + numpy) if it is missing.
set -euo pipefail
cd "$(git rev-parse --show-toplevel 2>/dev/null || dirname "$0")"
cd "$(cargo locate-project --workspace --message-format plain | xargs dirname)"

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet transformers numpy
fi

cargo bench --bench bench_main -- logmel "$@"

target_dir="$(cargo metadata --format-version 1 --no-deps \
    | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
echo
.venv/bin/python benches/peers/logmel.py --criterion "$target_dir/criterion"
