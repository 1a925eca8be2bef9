#!/usr/bin/env python3
"""Times faster-whisper on the CTranslate2 Whisper directory that models/setup.sh
assembles, the way `hearken bench` times hearken, for benches/peers/whisper.sh.

One configuration per process, so that peak RSS is that configuration's own. The audio
is decoded once, before any timing (hearken bench also times transcription of decoded
samples); then `--warmup` untimed transcriptions, then `--runs` timed ones. Each timed
run consumes every segment (faster-whisper decodes lazily). Load time is reported apart.

usage: whisper_fw.py MODEL_DIR AUDIO [--beam B] [--compute-type float32|int8]
                     [--threads N] [--runs N] [--warmup N] [--language en]
prints one JSON object: engine, compute_type, search, input, audio_s, load_ms,
total_ms {p50, p90, min, max, mean}, rtf {p50, min}, peak_rss_mb, runs, text, versions.
"""
import argparse
import json
import resource
import statistics
import time

import ctranslate2
import faster_whisper
from faster_whisper import WhisperModel, decode_audio


def percentile(xs, q):
    """Linear-interpolated percentile of a non-empty list (numpy's default method)."""
    xs = sorted(xs)
    k = (len(xs) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("audio")
    ap.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    ap.add_argument("--compute-type", default="float32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--language", default="en")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")

    samples = decode_audio(args.audio, sampling_rate=16000)
    audio_s = len(samples) / 16000

    t0 = time.perf_counter()
    model = WhisperModel(
        args.model_dir,
        device="cpu",
        compute_type=args.compute_type,
        cpu_threads=args.threads,
        num_workers=1,
    )
    load_ms = (time.perf_counter() - t0) * 1e3

    def transcribe():
        segments, _ = model.transcribe(
            samples, beam_size=args.beam, language=args.language, vad_filter=False
        )
        return "".join(s.text for s in segments).strip()

    for _ in range(args.warmup):
        transcribe()
    times_ms, texts = [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        texts.append(transcribe())
        times_ms.append((time.perf_counter() - t0) * 1e3)

    p50 = statistics.median(times_ms)
    print(json.dumps({
        "engine": "faster-whisper",
        "compute_type": args.compute_type,
        "search": "greedy" if args.beam == 1 else f"beam{args.beam}",
        "input": args.audio,
        "audio_s": round(audio_s, 3),
        "load_ms": round(load_ms, 1),
        "total_ms": {
            "p50": round(p50, 1),
            "p90": round(percentile(times_ms, 90), 1),
            "min": round(min(times_ms), 1),
            "max": round(max(times_ms), 1),
            "mean": round(statistics.fmean(times_ms), 1),
        },
        "rtf": {
            "p50": round(p50 / 1e3 / audio_s, 4),
            "min": round(min(times_ms) / 1e3 / audio_s, 4),
        },
        # ru_maxrss is in KiB on Linux: the process's peak, load and runs included.
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "runs": args.runs,
        # Greedy and beam search at temperature 0 are deterministic; a difference here
        # would mean temperature fallback sampled, and the first run's text is reported.
        "texts_agree": len(set(texts)) == 1,
        "text": texts[0],
        "versions": {
            "faster_whisper": faster_whisper.__version__,
            "ctranslate2": ctranslate2.__version__,
        },
    }))


if __name__ == "__main__":
    main()
