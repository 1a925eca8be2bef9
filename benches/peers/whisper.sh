#!/usr/bin/env bash
# hearken vs faster-whisper on the same Whisper base weights (the CTranslate2 directory
# models/setup.sh assembles, and hearken's export of it), the same audio, 2 threads,
# greedy and beam 5, measured side by side in one invocation. Prints one line per run.
#
# usage: bash benches/peers/whisper.sh [AUDIO...]   (default: beckett.wav and the 73 s long-form fixture)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash models/setup.sh >/dev/null
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c 'import faster_whisper' 2>/dev/null || .venv/bin/pip install -q faster-whisper
cargo build --release -q -p hearken
audio=("$@")
[ ${#audio[@]} -gt 0 ] || audio=(models/assets/beckett.wav tests/fixtures/speech/longform.ogg)
printf '%-28s %-22s %8s %8s %8s %9s\n' audio run total_s rtf rss_mb load_s
for a in "${audio[@]}"; do
  # faster-whisper reads OGG through PyAV; give both the same 16 kHz WAV.
  wav=$(mktemp --suffix .wav)
  sox "$a" -r 16000 -c 1 -b 16 "$wav" 2>/dev/null || cp "$a" "$wav"
  for beam in 1 5; do
    for ct in float32 int8; do
      r=$(.venv/bin/python benches/peers/whisper_fw.py models/ct2/whisper-base "$wav" $beam $ct)
      python3 - "$a" "faster-whisper $ct b$beam" "$r" <<'PY'
import json, sys
a, run, r = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
print(f"{a[-28:]:<28} {run:<22} {r['transcribe_s']:8.2f} {r['rtf']:8.3f} {r['peak_rss_mb']:8.0f} {r['load_s']:9.2f}")
PY
    done
    for engine in ort tract; do
      out=$( { /usr/bin/time -f 'RSS_KB=%M' ./target/release/hearken transcribe "$wav" --model models/whisper-base \
              --engine $engine --threads 2 --language en --beam $beam --format json; } 2>&1 )
      python3 - "$a" "hearken $engine fp32 b$beam" "$out" <<'PY'
import json, re, sys
a, run, out = sys.argv[1], sys.argv[2], sys.argv[3]
j = json.loads(out[out.index('{'):out.rindex('}') + 1])
rss = int(re.search(r'RSS_KB=(\d+)', out).group(1)) / 1024
t = j["timing"]
print(f"{a[-28:]:<28} {run:<22} {t['total_ms']/1e3:8.2f} {t['real_time_factor']:8.3f} {rss:8.0f} {j['load_ms']/1e3:9.2f}")
PY
    done
  done
  rm -f "$wav"
done
