#!/usr/bin/env python3
"""Short real utterances: spoken digits (FSDD, 8 kHz) through hearken and faster-whisper
on the same Whisper weights, scored by exact-word accuracy.

Clips: the dataset's test split (takes 0-4 of every digit and speaker) of the recordings
in ../shared/data/fsdd/recordings. A clip counts as right when its whole transcript,
lowercased and stripped of punctuation, is its digit as a word or a numeral ("seven",
"7"). Every configuration: Whisper base, greedy (beam 1), English, no timestamps, the
default temperature fallback, 2 threads.

Rows:
- faster-whisper 1.2.1 on the CTranslate2 directory (float32);
- hearken `transcribe --engine ort` on its export of the same weights, with
  `--mel-padding waveform` (OpenAI/transformers) and `--mel-padding features`
  (faster-whisper's), each on the 8 kHz files (hearken resamples with rubato) and on the
  files resampled to 16 kHz by faster-whisper's own decoder (PyAV/libswresample), to tell
  padding and resampling apart.

Usage: .venv/bin/python benches/peers/digits.py [--fsdd DIR] [--limit N]
  (needs `pip install faster-whisper==1.2.1` in .venv and target/release/hearken)
"""
import argparse
import json
import os
import re
import subprocess
import tempfile
import wave

import numpy as np
from faster_whisper import WhisperModel, decode_audio

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def right(digit, text):
    t = re.sub(r"[^a-z0-9 ]", "", text.lower()).strip()
    return t in (WORDS[digit], str(digit))


def clips(fsdd, limit):
    out = []
    for name in sorted(os.listdir(os.path.join(fsdd, "recordings"))):
        m = re.match(r"(\d)_(\w+)_(\d+)\.wav$", name)
        if m and int(m.group(3)) < 5:
            out.append((os.path.join(fsdd, "recordings", name), int(m.group(1))))
    return out[:limit] if limit else out


def hearken(files, padding):
    out = subprocess.run(
        [os.path.join(ROOT, "target/release/hearken"), "transcribe", *files, "--model",
         os.path.join(ROOT, "models/whisper-base"), "--engine", "ort", "--threads", "2",
         "--language", "en", "--beam-size", "1", "--mel-padding", padding,
         "--format", "jsonl"], capture_output=True, text=True, check=True).stdout
    return {json.loads(l)["file"]: json.loads(l)["text"] for l in out.splitlines()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fsdd", default=os.path.join(ROOT, "..", "shared", "data", "fsdd"))
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    items = clips(args.fsdd, args.limit)
    files = [f for f, _ in items]
    results = {}

    model = WhisperModel(os.path.join(ROOT, "models/ct2/whisper-base"), device="cpu",
                         compute_type="float32", cpu_threads=2)
    fw = {}
    for f in files:
        segs, _ = model.transcribe(f, language="en", beam_size=1, without_timestamps=True)
        fw[f] = "".join(s.text for s in segs).strip()
    results["faster-whisper fp32"] = fw

    with tempfile.TemporaryDirectory() as tmp:
        resampled = {}
        for f in files:
            x = decode_audio(f, sampling_rate=16000)
            p = os.path.join(tmp, os.path.basename(f))
            with wave.open(p, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(16000)
                w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
            resampled[p] = f
        for padding in ("waveform", "features"):
            results[f"hearken mel-padding {padding}"] = hearken(files, padding)
            got = hearken(list(resampled), padding)
            results[f"hearken mel-padding {padding}, PyAV-resampled"] = {
                resampled[k]: v for k, v in got.items()}

    print(f"{len(items)} clips (FSDD test split: {args.fsdd})")
    for name, texts in results.items():
        n = sum(right(d, texts.get(f, "")) for f, d in items)
        empty = sum(not texts.get(f, "").strip() for f, _ in items)
        print(f"  {name:45s} {n:4d}/{len(items)} exact ({100 * n / len(items):.1f}%), {empty} empty")
    wrong = {}
    for f, d in items:
        t = results["hearken mel-padding waveform"].get(f, "")
        if not right(d, t):
            wrong[t] = wrong.get(t, 0) + 1
    print("  most frequent wrong answers (hearken, waveform padding):",
          sorted(wrong.items(), key=lambda kv: -kv[1])[:8])


if __name__ == "__main__":
    main()
