#!/usr/bin/env python3
"""Times pyctcdecode's CTC beam search on the inputs of benches/ctc.rs.

`cargo bench --bench bench_main -- ctc` writes its inputs to `<target>/tmp/ctc_bench/`
(log_probs.npy: (500, 32) float32 log-probabilities; vocab.json; lm.arpa, a 3-gram model;
hearken_texts.json, hearken's transcripts). This script decodes the same matrix with
pyctcdecode at beam widths 8, 16 and 32, without an LM and with the same ARPA model
through KenLM (alpha 0.5, beta 1.0, pyctcdecode's defaults otherwise: token_min_logp -5,
beam_prune_logp -10, unk_score_offset -10), times each configuration `--repeats` times after
one warm-up call, and prints the medians beside hearken's (read from criterion's output
with `--criterion`): hearken with its default pruning and with pyctcdecode's (the
`*_pyctc_pruning` benchmarks, the like-for-like comparison the ratio uses), and whether the
transcripts are the same.

Setup: `.venv/bin/pip install pyctcdecode kenlm` (kenlm builds from source; without it
only the no-LM rows run). pyctcdecode pins numpy<2 but runs with numpy 2.

Usage, from the repository root:
    cargo bench --bench bench_main -- ctc
    .venv/bin/python benches/peers/ctc_pyctcdecode.py --criterion target/criterion
"""

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def hearken_median_s(criterion_dir: Path, full_id: str):
    """Median time of one criterion benchmark, in seconds, or None if it has not run."""
    for bench in criterion_dir.glob("**/new/benchmark.json"):
        if json.loads(bench.read_text()).get("full_id") == full_id:
            est = json.loads((bench.parent / "estimates.json").read_text())
            return est["median"]["point_estimate"] * 1e-9
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("target/tmp/ctc_bench"), help="inputs written by the bench")
    ap.add_argument("--criterion", type=Path, help="criterion output directory (target/criterion)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    import pyctcdecode
    from pyctcdecode import build_ctcdecoder

    log_probs = np.load(args.data / "log_probs.npy")
    labels = json.loads((args.data / "vocab.json").read_text())
    ours_text = json.loads((args.data / "hearken_texts.json").read_text())
    n_frames = log_probs.shape[0]

    decoders = {"no_lm": build_ctcdecoder(labels)}
    try:
        import kenlm  # noqa: F401

        decoders["lm3"] = build_ctcdecoder(
            labels, kenlm_model_path=str(args.data / "lm.arpa"), alpha=0.5, beta=1.0
        )
    except ImportError:
        print("note: kenlm is not installed; LM rows skipped", file=sys.stderr)

    print(f"pyctcdecode {pyctcdecode.__version__ if hasattr(pyctcdecode, '__version__') else ''}, "
          f"numpy {np.__version__}; {n_frames} frames; medians of {args.repeats} runs")
    header = (
        f"{'benchmark':<18} {'hearken':>9} {'pyctc-pruned':>13} {'pyctcdecode':>12} "
        f"{'ratio':>6} {'frames/s (pruned)':>18} {'same text':>10}"
    )
    print(header)
    print("-" * len(header))
    for width in (8, 16, 32):
        for name, decoder in decoders.items():
            call = lambda: decoder.decode(log_probs, beam_width=width)  # noqa: E731
            text = call()
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                call()
                times.append(time.perf_counter() - t0)
            peer = statistics.median(times)
            full_id = f"ctc/beam/{width}/{name}"
            pruned_id = f"{full_id}_pyctc_pruning"
            ours = hearken_median_s(args.criterion, full_id) if args.criterion else None
            pruned = hearken_median_s(args.criterion, pruned_id) if args.criterion else None
            same = "/".join(
                "yes" if ours_text.get(i) == text else "no" for i in (full_id, pruned_id)
            )
            ms = lambda t: f"{t * 1e3:.2f} ms" if t is not None else "-"  # noqa: E731
            ratio = f"{peer / pruned:.0f}x" if pruned else "-"
            rate = f"{n_frames / pruned:.0f}" if pruned else "-"
            print(
                f"{full_id:<18} {ms(ours):>9} {ms(pruned):>13} {ms(peer):>12} {ratio:>6} "
                f"{rate:>18} {same:>10}"
            )
            for i in (full_id, pruned_id):
                if ours_text.get(i) != text:
                    print(f"    hearken {i}: {ours_text.get(i)!r}\n    pyctcdecode: {text!r}")
    print("ratio = pyctcdecode / hearken with pyctcdecode's pruning (higher: hearken faster); "
          "same text: hearken default / pyctc-pruned against pyctcdecode")
    return 0


if __name__ == "__main__":
    sys.exit(main())
