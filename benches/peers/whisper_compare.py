#!/usr/bin/env python3
"""hearken vs faster-whisper on the same audio, side by side, for benches/peers/whisper.sh.

For each audio file and search (greedy, beam 5) it runs faster-whisper float32 and int8
(benches/peers/whisper_fw.py, one process per configuration) and `hearken bench` with
ONNX Runtime (CPU) and tract, with the same threads, warm-up and timed runs; scores every
transcript with `hearken eval --hypotheses` (the project's English normalizer, so both
sides are normalized alike) against tests/fixtures/speech/manifest.jsonl; and prints one
table with hearken / faster-whisper ratios of p50 wall time and peak memory.

usage: whisper_compare.py [--hearken BIN] [--runs N] [--warmup N] [--threads N] AUDIO...
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FW_CONFIGS = [("float32", "fp32"), ("int8", "int8")]
HEARKEN_ENGINES = ["ort", "tract"]


def log(msg):
    print(f"whisper_compare: {msg}", file=sys.stderr, flush=True)


def search_label(beam):
    """The label `hearken bench` gives a search (and whisper_fw.py copies)."""
    return "greedy" if beam == 1 else f"beam{beam}"


def load_references(manifest):
    """Resolved audio path -> reference text, from a JSONL manifest (paths relative to it)."""
    refs = {}
    with open(manifest) as f:
        for line in f:
            if line.strip():
                entry = json.loads(line)
                path = (manifest.parent / entry["audio"]).resolve()
                refs[path] = entry["text"]
    return refs


def run_json(cmd):
    """Runs `cmd`; returns (parsed stdout JSON or None, error text or None)."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    try:
        out = json.loads(p.stdout)
    except json.JSONDecodeError:
        out = None
    if out is None:
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"exit {p.returncode}: {tail}"
    return out, None


def run_faster_whisper(args, audio, beam, compute_type):
    cmd = [sys.executable, str(HERE / "whisper_fw.py"), str(args.ct2_model), str(audio),
           "--beam", str(beam), "--compute-type", compute_type, "--threads", str(args.threads),
           "--runs", str(args.runs), "--warmup", str(args.warmup), "--language", args.language]
    out, err = run_json(cmd)
    return out or {"error": err}


def run_hearken_bench(args, audio, beam, model=None, engines=HEARKEN_ENGINES):
    """`hearken bench` rows by engine, and its machine description."""
    cmd = [args.hearken, "bench", "--model", str(model or args.hearken_model)]
    for e in engines:
        cmd += ["--engine", e]
    cmd += ["--ep", "cpu", "--threads", str(args.threads), "--audio", str(audio),
            "--runs", str(args.runs), "--warmup", str(args.warmup), "--beam", str(beam),
            "--language", args.language, "--format", "json"]
    out, err = run_json(cmd)
    if out is None:
        return {e: {"error": err} for e in engines}, None
    rows = {}
    for r in out.get("results", []):
        if r.get("status", "ok") != "ok":
            r = {"error": f"{r.get('status')}: {r.get('reason')}"}
        rows[r.get("engine")] = r
    for e in engines:
        rows.setdefault(e, {"error": "no result row"})
    return rows, out.get("machine")


def score(hearken, tmp, references, texts):
    """Per-audio WER (a fraction) of `texts` (audio -> hypothesis) through `hearken eval`.

    Audio without a reference, or without a transcript, gets None.
    """
    scored = [(a, t) for a, t in texts.items() if a in references and t is not None]
    if not scored:
        return {}
    manifest, hyps = tmp / "manifest.jsonl", tmp / "hypotheses.jsonl"
    with open(manifest, "w") as m, open(hyps, "w") as h:
        for audio, text in scored:
            m.write(json.dumps({"audio": str(audio), "text": references[audio]}) + "\n")
            h.write(json.dumps({"audio": str(audio), "text": text}) + "\n")
    out, err = run_json([hearken, "eval", "--manifest", str(manifest),
                         "--hypotheses", str(hyps), "--format", "json"])
    if out is None:
        log(f"hearken eval failed: {err}")
        return {}
    return {a: u["wer"] for (a, _), u in zip(scored, out["per_utterance"])}


def machine_line(machine, fw_versions):
    if machine:
        parts = [f"{machine.get('cpu')}, {machine.get('logical_cores')} logical cores",
                 f"{machine.get('os')} (kernel {machine.get('kernel')}, {machine.get('arch')})"]
        if machine.get("gpu"):
            parts.append(f"GPU {machine['gpu']}")
        parts.append(f"hearken {machine.get('hearken')}, onnxruntime {machine.get('onnxruntime')}, "
                     f"tract {machine.get('tract')}")
    else:
        parts = [f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores",
                 platform.platform()]
    if fw_versions:
        parts.append(f"faster-whisper {fw_versions.get('faster_whisper')}, "
                     f"ctranslate2 {fw_versions.get('ctranslate2')}")
    return "; ".join(parts)


def fmt(x, spec, width):
    return f"{'-' if x is None else format(x, spec):>{width}}"


def ratio(a, b):
    return a / b if a is not None and b else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("audio", nargs="+", type=Path)
    ap.add_argument("--hearken", default=str(ROOT / "target/release/hearken"))
    ap.add_argument("--hearken-model", type=Path, default=ROOT / "models/whisper-base")
    ap.add_argument("--hearken-int8-model", type=Path,
                    default=ROOT / "models/whisper-base-int8",
                    help="hearken int8 export, run on ONNX Runtime when present")
    ap.add_argument("--ct2-model", type=Path, default=ROOT / "models/ct2/whisper-base")
    ap.add_argument("--references", type=Path,
                    default=ROOT / "tests/fixtures/speech/manifest.jsonl")
    ap.add_argument("--beams", default="1,5", help="comma-separated beam sizes (1: greedy)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--language", default="en")
    ap.add_argument("--save", type=Path, help="also write every raw result here (JSON)")
    args = ap.parse_args()
    beams = [int(b) for b in args.beams.split(",")]
    audios = [a.resolve() for a in args.audio]
    for a in audios:
        if not a.is_file():
            ap.error(f"{a}: no such file")
    references = load_references(args.references)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    # (audio, beam) -> run name -> result dict (faster-whisper or hearken bench row).
    results, machine, fw_versions = {}, None, None
    for audio in audios:
        for beam in beams:
            runs = {}
            for compute_type, short in FW_CONFIGS:
                log(f"{audio.name} {search_label(beam)}: faster-whisper {compute_type}")
                r = run_faster_whisper(args, audio, beam, compute_type)
                fw_versions = fw_versions or r.get("versions")
                runs[f"faster-whisper {short}"] = r
            log(f"{audio.name} {search_label(beam)}: hearken bench ({', '.join(HEARKEN_ENGINES)})")
            rows, m = run_hearken_bench(args, audio, beam)
            machine = machine or m
            for e in HEARKEN_ENGINES:
                runs[f"hearken {e}"] = rows[e]
            if (args.hearken_int8_model / "decoder.onnx").is_file():
                # int8 pays off on ONNX Runtime only (tract's integer kernels are slower
                # than its f32 ones), so it runs there.
                log(f"{audio.name} {search_label(beam)}: hearken bench int8 (ort)")
                rows8, _ = run_hearken_bench(args, audio, beam, args.hearken_int8_model, ["ort"])
                runs["hearken ort int8"] = rows8["ort"]
            results[(audio, beam)] = runs

    # WER: one `hearken eval` per run name and search, over every audio with a reference.
    with tempfile.TemporaryDirectory() as tmp:
        for beam in beams:
            for name in results[(audios[0], beam)]:
                texts = {a: results[(a, beam)][name].get("text") for a in audios}
                for a, w in score(args.hearken, Path(tmp), references, texts).items():
                    results[(a, beam)][name]["wer"] = w

    print(f"date: {date}")
    print(f"machine: {machine_line(machine, fw_versions)}")
    print(f"settings: hearken {args.hearken_model.name} fp32 ONNX (and its int8 export, "
          f"if present, on ort) vs faster-whisper on the "
          f"CTranslate2 {args.ct2_model.name} it was exported from; {args.threads} threads; "
          f"language {args.language}; {args.warmup} warm-up + {args.runs} timed run(s), p50 "
          f"shown; load excluded; RSS = peak of the configuration's process")
    print()
    header = (f"{'audio':<16} {'search':<7} {'run':<20} {'p50 ms':>9} {'RTF':>6} "
              f"{'RSS MB':>7} {'load ms':>8} {'WER %':>6} | "
              f"{'time/fp32':>9} {'RSS/fp32':>8} {'time/int8':>9} {'RSS/int8':>8}")
    print(header)
    print("-" * len(header))
    for audio in audios:
        for beam in beams:
            runs = results[(audio, beam)]
            fw32, fw8 = runs["faster-whisper fp32"], runs["faster-whisper int8"]
            first = True
            for name, r in runs.items():
                label = (f"{audio.name[:16]:<16} {search_label(beam):<7}" if first
                         else " " * 24)
                first = False
                if "error" in r:
                    print(f"{label} {name:<20} error: {r['error']}")
                    continue
                p50 = r["total_ms"]["p50"]
                wer = None if r.get("wer") is None else 100 * r["wer"]
                line = (f"{label} {name:<20} {fmt(p50, '.0f', 9)} "
                        f"{fmt(r['rtf']['p50'], '.3f', 6)} {fmt(r.get('peak_rss_mb'), '.0f', 7)} "
                        f"{fmt(r.get('load_ms'), '.0f', 8)} {fmt(wer, '.1f', 6)} |")
                if name.startswith("hearken"):
                    for fw in (fw32, fw8):
                        ok = "error" not in fw
                        t = ratio(p50, fw["total_ms"]["p50"]) if ok else None
                        m = ratio(r.get("peak_rss_mb"), fw.get("peak_rss_mb")) if ok else None
                        line += f" {fmt(t, '.2f', 9)} {fmt(m, '.2f', 8)}"
                print(line)
    print()
    print("time/... and RSS/...: hearken over faster-whisper fp32 or int8, same audio and "
          "search (below 1: hearken is faster or smaller). WER: `hearken eval --hypotheses`, "
          f"references from {os.path.relpath(args.references, ROOT)}.")

    if args.save:
        raw = [{"audio": str(a), "search": search_label(b), "runs": r}
               for (a, b), r in results.items()]
        args.save.write_text(json.dumps({"date": date, "machine": machine, "results": raw},
                                        indent=1))


if __name__ == "__main__":
    main()
