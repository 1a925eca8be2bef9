#!/usr/bin/env python3
"""Live (`hearken listen --input`) against offline (`hearken eval --model`) on a corpus.

For each file of MANIFEST (JSON lines {"audio", "text"}, as benches/stream/make_corpus.sh
writes), runs `hearken listen --input FILE --format jsonl` with the given extra flags,
joins the finals into the live transcript, and scores both the live and the offline
transcripts with `hearken eval` (one normalizer for both). With `--realtime` among the
flags it also pools the latency of every final (wall - end) and of the first partial of
each speech segment (wall - speech start), and reports p50/p95, compute RTF and lag.

Usage: benches/stream/listen_eval.py HEARKEN MODEL MANIFEST [listen flags...]
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    rank = p / 100 * (len(v) - 1)
    lo = int(rank)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (rank - lo)


def main():
    hearken, model, manifest = sys.argv[1:4]
    flags = sys.argv[4:]
    base = os.path.dirname(os.path.abspath(manifest))
    lines = [json.loads(l) for l in open(manifest) if l.strip()]
    hyps, finals_lat, first_partial, rtfs, lags, dupes = [], [], [], [], [], 0
    n_finals = n_partials = skipped = 0
    audio_s = 0.0
    for entry in lines:
        path = os.path.join(base, entry["audio"])
        out = subprocess.run(
            [hearken, "listen", "--model", model, "--input", path, "--format", "jsonl"] + flags,
            capture_output=True, text=True, check=True)
        events = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
        finals = [e for e in events if e["event"] == "final"]
        hyps.append({"audio": path, "text": " ".join(e["text"] for e in finals)})
        n_finals += len(finals)
        n_partials += sum(e["event"] == "partial" for e in events)
        finals_lat += [e["wall"] - e["end"] for e in finals]
        start = None
        for e in events:
            if e["event"] == "speech_start":
                start = e["start"]
            elif e["event"] == "partial" and start is not None:
                first_partial.append(e["wall"] - start)
                start = None
        summary = out.stderr.strip().splitlines()[-1]
        if "compute RTF" in summary:
            rtfs.append(float(summary.split("compute RTF ")[1].split(";")[0]))
            lags.append(float(summary.split("lag max ")[1].split(" s")[0]))
            skipped += int(summary.split("partials skipped ")[1].split(";")[0])
            audio_s += float(summary.split(" s of audio")[0].split(";")[-1].strip())
    with tempfile.TemporaryDirectory() as tmp:
        hyp_path = os.path.join(tmp, "hyp.jsonl")
        with open(hyp_path, "w") as f:
            for h in hyps:
                f.write(json.dumps(h) + "\n")
        live = json.loads(subprocess.run(
            [hearken, "eval", "--manifest", manifest, "--hypotheses", hyp_path,
             "--format", "json"], capture_output=True, text=True, check=True).stdout)
    engine = [f for f in flags if f in ("ort", "tract")]
    offline_flags = []
    for i, f in enumerate(flags):
        if f in ("--engine", "--threads", "--language", "--mel-padding", "--beam-size"):
            offline_flags += [f, flags[i + 1]]
    if os.environ.get("OFFLINE") == "0":
        offline = {"wer": float("nan")}
    else:
      offline = json.loads(subprocess.run(
          [hearken, "eval", "--model", model, "--manifest", manifest, "--format", "json"]
          + offline_flags, capture_output=True, text=True, check=True).stdout)
    ms = lambda v: f"{1000 * v:.0f} ms"
    print(f"model {model}, flags {' '.join(flags) or '(none)'}")
    print(f"  WER live {100 * live['wer']:.2f}% vs offline {100 * offline['wer']:.2f}% "
          f"({live['n_ref_words']} words, {len(lines)} files, {audio_s:.0f} s)")
    print(f"  {n_finals} finals, {n_partials} partials")
    if "--realtime" in flags:
        print(f"  final latency (wall - end): p50 {ms(pct(finals_lat, 50))}, "
              f"p95 {ms(pct(finals_lat, 95))}; first partial after speech start: "
              f"p50 {ms(pct(first_partial, 50))}")
        print(f"  compute RTF median {statistics.median(rtfs):.3f}, max lag {max(lags):.2f} s, "
              f"partials skipped {skipped}")


if __name__ == "__main__":
    main()
