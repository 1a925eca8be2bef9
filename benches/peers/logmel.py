#!/usr/bin/env python3
"""Times transformers' WhisperFeatureExtractor (numpy path) on the inputs of benches/logmel.rs.

The audio is the same deterministic LCG noise as `bench_audio` in benches/logmel.rs
(seed 0x5EED), bit for bit. Each configuration is timed `--repeats` times after one
warm-up call; the median is reported. With `--criterion DIR` (criterion's output
directory, `target/criterion`), hearken's medians are read from there and printed beside
transformers' with the ratio. Run through benches/peers/logmel.sh.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import transformers
from transformers import WhisperFeatureExtractor
from transformers.utils import is_torch_available

SEED = 0x5EED
SR = 16_000
MASK = (1 << 64) - 1


def bench_audio(n: int, seed: int) -> np.ndarray:
    state = seed
    top = np.empty(n, dtype=np.float32)
    for i in range(n):
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK
        top[i] = state >> 40
    return (top / np.float32(16_777_216.0) - np.float32(0.5)) * np.float32(0.5)


def hearken_median_s(criterion_dir: Path, full_id: str):
    """Median time of one criterion benchmark, in seconds, or None if it has not run."""
    for bench in criterion_dir.glob("**/new/benchmark.json"):
        if json.loads(bench.read_text()).get("full_id") == full_id:
            est = json.loads((bench.parent / "estimates.json").read_text())
            return est["median"]["point_estimate"] * 1e-9
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--criterion", type=Path, help="criterion output directory (target/criterion)")
    args = ap.parse_args()

    if is_torch_available():
        print("note: torch is installed, so transformers uses its torch path, not numpy", file=sys.stderr)
    print(f"transformers {transformers.__version__}, numpy {np.__version__}; medians of {args.repeats} runs")
    header = f"{'benchmark':<26} {'hearken':>10} {'transformers':>13} {'ratio':>7} {'hearken RTF':>12}"
    print(header)
    print("-" * len(header))
    for n_mels in (80, 128):
        fe = WhisperFeatureExtractor(feature_size=n_mels)
        for seconds in (10, 30):
            audio = bench_audio(seconds * SR, SEED)
            for variant, kwargs in (
                ("padded", {}),
                ("unpadded", {"padding": "do_not_pad", "truncation": False}),
            ):
                call = lambda: fe(audio, sampling_rate=SR, return_tensors="np", **kwargs)  # noqa: E731
                call()
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    call()
                    times.append(time.perf_counter() - t0)
                peer = statistics.median(times)
                full_id = f"logmel/{n_mels}/{variant}/{seconds}s"
                ours = hearken_median_s(args.criterion, full_id) if args.criterion else None
                if ours is None:
                    print(f"{full_id:<26} {'-':>10} {peer * 1e3:>10.2f} ms {'-':>7} {'-':>12}")
                else:
                    print(
                        f"{full_id:<26} {ours * 1e3:>7.3f} ms {peer * 1e3:>10.2f} ms "
                        f"{peer / ours:>6.0f}x {seconds / ours:>11.0f}x"
                    )
    print("ratio = transformers / hearken (higher: hearken faster); RTF = audio seconds per compute second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
