#!/usr/bin/env python3
"""Short utterances through hearken and faster-whisper on the same Whisper weights,
scored by exact-word accuracy.

Clips: by default the real recordings of spoken digits (FSDD, 8 kHz), the dataset's test
split (takes 0-4 of every digit and speaker) in ../shared/data/fsdd/recordings; with
--manifest, any JSONL manifest of {"audio", "text"} (e.g. the synthesized commands of
benches/peers/make_commands.sh). A clip counts as right when its whole transcript,
lowercased and stripped of punctuation, is its expected text (for a digit: the word or
the numeral, "seven" or "7"). Every configuration: Whisper base (--model to change),
greedy (beam 1), English, no timestamps, the default temperature fallback, 2 threads.

Rows:
- faster-whisper 1.2.1 on the CTranslate2 directory (float32);
- hearken `transcribe --engine ort` on its export of the same weights, with
  `--mel-padding waveform` (OpenAI/transformers) and `--mel-padding features`
  (faster-whisper's), each on the 8 kHz files (hearken resamples with rubato) and on the
  files resampled to 16 kHz by faster-whisper's own decoder (PyAV/libswresample), to tell
  padding and resampling apart.

Usage: .venv/bin/python benches/peers/short_utterances.py [--fsdd DIR | --manifest FILE]
         [--model NAME] [--limit N] [--temperature 0]
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


def norm(text):
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())


def right(expected, text):
    return norm(text) in expected


def clips(fsdd, limit):
    out = []
    for name in sorted(os.listdir(os.path.join(fsdd, "recordings"))):
        m = re.match(r"(\d)_(\w+)_(\d+)\.wav$", name)
        if m and int(m.group(3)) < 5:
            d = int(m.group(1))
            out.append((os.path.join(fsdd, "recordings", name), (WORDS[d], str(d))))
    return out[:limit] if limit else out


def manifest_clips(path, limit):
    out = []
    with open(path) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                audio = os.path.join(os.path.dirname(os.path.abspath(path)), row["audio"])
                out.append((audio, (norm(row["text"]),)))
    return out[:limit] if limit else out


def hearken(files, padding, model, temperatures):
    out = subprocess.run(
        [os.path.join(ROOT, "target/release/hearken"), "transcribe", *files, "--model",
         os.path.join(ROOT, "models", model), "--engine", "ort", "--threads", "2",
         "--language", "en", "--beam-size", "1", "--mel-padding", padding,
         "--temperature", ",".join(str(t) for t in temperatures),
         "--format", "jsonl"], capture_output=True, text=True, check=True).stdout
    return {json.loads(l)["file"]: json.loads(l)["text"] for l in out.splitlines()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fsdd", default=os.path.join(ROOT, "..", "shared", "data", "fsdd"))
    ap.add_argument("--manifest")
    ap.add_argument("--model", default="whisper-base")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--temperature", default="0,0.2,0.4,0.6,0.8,1.0",
                    help="fallback temperatures for both sides; 0 makes decoding deterministic")
    args = ap.parse_args()
    temps = [float(t) for t in args.temperature.split(",")]
    items = (manifest_clips(args.manifest, args.limit) if args.manifest
             else clips(args.fsdd, args.limit))
    files = [f for f, _ in items]
    results = {}

    model = WhisperModel(os.path.join(ROOT, "models", "ct2", args.model), device="cpu",
                         compute_type="float32", cpu_threads=2)
    fw = {}
    for f in files:
        segs, _ = model.transcribe(f, language="en", beam_size=1, without_timestamps=True,
                                   temperature=temps)
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
        at_16k = all(wave.open(f).getframerate() == 16000 for f in files)
        for padding in ("waveform", "features"):
            results[f"hearken mel-padding {padding}"] = hearken(files, padding, args.model, temps)
            if not at_16k:
                got = hearken(list(resampled), padding, args.model, temps)
                results[f"hearken mel-padding {padding}, PyAV-resampled"] = {
                    resampled[k]: v for k, v in got.items()}

    print(f"{len(items)} clips ({args.manifest or 'FSDD test split: ' + args.fsdd}), "
          f"{args.model}, temperatures {args.temperature}")
    for name, texts in results.items():
        n = sum(right(d, texts.get(f, "")) for f, d in items)
        empty = sum(not texts.get(f, "").strip() for f, _ in items)
        print(f"  {name:45s} {n:4d}/{len(items)} exact ({100 * n / len(items):.1f}%), {empty} empty")
    for name in ("faster-whisper fp32", "hearken mel-padding waveform",
                 "hearken mel-padding features"):
        wrong = {}
        for f, d in items:
            t = results[name].get(f, "")
            if not right(d, t):
                wrong[t] = wrong.get(t, 0) + 1
        print(f"  most frequent wrong answers ({name}):",
              sorted(wrong.items(), key=lambda kv: -kv[1])[:8])


if __name__ == "__main__":
    main()
