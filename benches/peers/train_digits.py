#!/usr/bin/env python3
"""Trains a HuBERT digit classifier from scratch with PyTorch + transformers, on CPU threads.

The peer of `hearken-export train classify` for a side-by-side benchmark: the same data, the
same protocol, the same model configuration and the same optimizer settings, so that the
numbers below can sit in one table with the Rust trainer's.

Usage, from the repository root (the data lives beside the project, in ../shared/data/fsdd):

    .venv/bin/python benches/peers/train_digits.py --json target/peer_train_digits.json

    # a quick smoke test (one epoch over 64 training clips, 20 of each evaluation set):
    .venv/bin/python benches/peers/train_digits.py --epochs 1 --limit-train 64 --limit-eval 20

Needs torch and transformers (checked with torch 2.15 CPU, transformers 4.57.6), numpy,
and scipy for the resampler (`.venv/bin/pip install scipy`; without it a linear
interpolation is used, with a warning, and the report says so).

What it measures (printed, and written to `--json OUT`):
- per optimizer step, the wall time of forward + loss + backward + gradient clipping +
  AdamW step + scheduler step + zero_grad (`time.perf_counter`), as mean and p50 over
  all steps but the first `--warmup-steps-excluded` (5); batch preparation is not in it;
- the total training wall time (every epoch, batch preparation and logging included,
  evaluation excluded);
- the peak RSS of the process (`resource.getrusage(RUSAGE_SELF).ru_maxrss`, MiB): the
  data set in memory, torch and transformers included;
- accuracy and macro-F1 (over the 10 digits) on the test split and on the held-out
  speaker, with the confusion matrices in the JSON;
- the parameter count, torch / transformers versions, threads and the command line.

Protocol (Free Spoken Digit Dataset, `recordings/{digit}_{speaker}_{index}.wav`, 8 kHz):
- held-out speaker (`--holdout`, default yweweler): never seen in training;
- train: takes 5-49 of the other speakers (the dataset's training split), 1350 clips;
- eval ("test split"): takes 0-4 of the other speakers, 150 clips;
- unseen-speaker test: all 50 takes of every digit of the held-out speaker, 500 clips;
- labels: the digit strings "0".."9", sorted, id = index.

Audio: 8 kHz -> 16 kHz with `scipy.signal.resample_poly(x, 2, 1)` (polyphase, scipy's
default Kaiser window, beta 5.0), done once when loading. Clips longer than
`--max-duration` (1.0 s) are cropped: training takes a window at a uniformly random offset
in 0..=len-N drawn from the seeded data generator (as hearken does; transformers'
`random_subsample` draws 0..=len-N-1), evaluation takes the first N samples (what
`truncation=True` keeps). Optional training augmentation, as hearken's flags of the same
names: `--augment-speed MIN:MAX[:P]` reads the whole clip as recorded at
`round(16000 f / 80) * 80` Hz (f uniform, chance P) and resamples it to 16 kHz with
`resample_poly` before the crop; `--augment-noise MIN:MAX[:P]` adds white Gaussian noise at
an SNR uniform in MIN..MAX dB of the clip's mean power after it (the draws come from the
data generator, so they are not hearken's draws, only the same distributions). Then
`Wav2Vec2FeatureExtractor` semantics with
`do_normalize=True`: each clip alone, over its real samples, `(x - mean) /
sqrt(var + 1e-7)` (population variance), then zero padding to the longest clip of the
batch, and an attention mask (1 = real sample) that is given to the model.

Model: `transformers.HubertForSequenceClassification` built from `--config` (default
`benches/peers/hubert_tiny_config.json`, written from the embedded copy of hearken's
`Preset::Tiny` when missing), initialized by transformers' `_init_weights` after
`torch.manual_seed(seed)`. Dropouts and SpecAugment are those of the config (the model is
in train mode while training, eval mode while evaluating). `--override KEY=JSON` changes
one configuration field (e.g. `--override apply_spec_augment=false`).
Note on the preset's SpecAugment here: FSDD clips are short (median 0.39 s, about 20
frames of 320 samples), and `mask_time_min_masks` 2 spans of `mask_time_length` 10 are
drawn whatever `mask_time_prob` says, so training masks about 70 % of a clip's frames on
average (89 % of clips have half or more masked; measured with transformers'
`_compute_mask_indices` over random batches of the training split).

Training: a plain loop (no HF Trainer), so that the step timing is the model's step.
`torch.optim.AdamW` with TrainingArguments' defaults (betas 0.9/0.999, eps 1e-8; the fused
CPU implementation, HF's default optimizer `adamw_torch_fused` for torch >= 2.8; `--optim
adamw_torch` for the foreach one), lr 5e-4, weight decay 0.0 (when set, it skips biases
and norm weights as HF Trainer does), `get_linear_schedule_with_warmup` with
ceil(0.1 * total steps) warm-up steps, batch size 16 (the last batch of an epoch may be
smaller; no accumulation), 20 epochs, `clip_grad_norm_` 1.0, and a seeded shuffle each
epoch. Seeds: `random`, `numpy` (SpecAugment's masks draw from numpy's global generator)
and `torch` get `--seed`; the data order and crops come from `numpy.random.default_rng(seed)`.
`torch.set_num_threads(--threads)` (and the inter-op pool to the same number).
"""

import argparse
import json
import math
import platform
import random
import resource
import shlex
import statistics
import sys
import time
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "benches" / "peers" / "hubert_tiny_config.json"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "fsdd"
LABELS = [str(d) for d in range(10)]
SR_OUT = 16_000

# hearken's `Preset::Tiny` (export/src/wav2vec2/init.rs) for the HuBERT family, with the
# classification head as `Wav2Vec2Config::set_head` adds it (10 digit labels,
# transformers' default `classifier_proj_size` 256, no weighted layer sum).
TINY_CONFIG = {
    "model_type": "hubert",
    "architectures": ["HubertForSequenceClassification"],
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 256,
    "hidden_act": "gelu",
    "feat_extract_activation": "gelu",
    "layer_norm_eps": 1e-5,
    "conv_dim": [32] * 7,
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_bias": False,
    "feat_extract_norm": "group",
    "do_stable_layer_norm": False,
    "feat_proj_layer_norm": True,
    "num_conv_pos_embeddings": 32,
    "num_conv_pos_embedding_groups": 4,
    "num_feat_extract_layers": 7,
    "hidden_dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.1,
    "feat_proj_dropout": 0.1,
    "final_dropout": 0.1,
    "layerdrop": 0.0,
    "apply_spec_augment": True,
    "mask_time_prob": 0.05,
    "mask_time_length": 10,
    "mask_time_min_masks": 2,
    "mask_feature_prob": 0.0,
    "mask_feature_length": 10,
    "mask_feature_min_masks": 0,
    "initializer_range": 0.02,
    "vocab_size": 32,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "ctc_loss_reduction": "sum",
    "ctc_zero_infinity": False,
    "num_labels": len(LABELS),
    "id2label": {str(i): label for i, label in enumerate(LABELS)},
    "label2id": {label: i for i, label in enumerate(LABELS)},
    "classifier_proj_size": 256,
    "use_weighted_layer_sum": False,
}


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="FSDD folder (holds recordings/)")
    ap.add_argument("--holdout", default="yweweler", help="speaker never trained on")
    ap.add_argument("--test-takes", type=int, default=5, help="takes below this are the test split")
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="model config.json")
    ap.add_argument("--override", action="append", default=[], metavar="KEY=JSON", help="change a config field")
    ap.add_argument("--max-duration", type=float, default=1.0, help="crop length, seconds")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--eval-batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--warmup-ratio", type=float, default=0.1)
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--optim", choices=["adamw_torch_fused", "adamw_torch"], default="adamw_torch_fused")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=20, help="progress line every N steps")
    ap.add_argument("--eval-every", type=int, default=0, help="evaluate every N epochs (0: at the end only)")
    ap.add_argument("--warmup-steps-excluded", type=int, default=5, help="first steps left out of the timing")
    ap.add_argument("--limit-train", type=int, default=0, help="train on a seeded subset of N clips")
    ap.add_argument("--limit-eval", type=int, default=0, help="evaluate on a seeded subset of N clips of each set")
    ap.add_argument("--augment-speed", type=aug_range, metavar="MIN:MAX[:P]",
                    help="speed perturbation in training, as hearken's --augment-speed")
    ap.add_argument("--augment-noise", type=aug_range, metavar="MIN:MAX[:P]",
                    help="white noise at an SNR (dB) in training, as hearken's --augment-noise")
    ap.add_argument("--json", type=Path, help="write the report here")
    return ap.parse_args(argv)


# ---------------------------------------------------------------- data


def aug_range(text):
    parts = [float(t) for t in text.split(":")]
    if len(parts) not in (2, 3) or parts[0] > parts[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: expected MIN:MAX or MIN:MAX:P")
    return (parts[0], parts[1], parts[2] if len(parts) == 3 else 1.0)


def speed_perturb(x, speed, rng):
    """hearken's speed perturbation: read the clip as recorded at round(16000 f / 80) * 80 Hz
    (f uniform in MIN..MAX, with chance P) and resample it to 16 kHz."""
    lo, hi, p = speed
    if rng.random() >= p:
        return x
    from_hz = int(round(SR_OUT * rng.uniform(lo, hi) / 80.0)) * 80
    if from_hz == SR_OUT:
        return x
    from scipy.signal import resample_poly

    g = math.gcd(SR_OUT, from_hz)
    return resample_poly(x, SR_OUT // g, from_hz // g).astype(np.float32)


def add_noise(x, noise, rng):
    """White Gaussian noise at an SNR uniform in MIN..MAX dB of the clip's mean power, chance P."""
    lo, hi, p = noise
    if rng.random() >= p:
        return x
    power = float(np.mean(x.astype(np.float64) ** 2))
    if power == 0.0:
        return x
    std = math.sqrt(power / 10 ** (rng.uniform(lo, hi) / 10))
    return (x + rng.normal(0.0, std, size=len(x))).astype(np.float32)


def read_wav(path: Path):
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise SystemExit(f"{path}: expected 16-bit PCM")
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        pcm = pcm.reshape(-1, channels).mean(axis=1)
    return pcm, rate


def make_resampler():
    try:
        from scipy.signal import resample_poly
    except ImportError:
        print("warning: scipy missing, resampling by linear interpolation", file=sys.stderr)

        def linear(x, rate):
            n_out = int(round(len(x) * SR_OUT / rate))
            return np.interp(np.arange(n_out) * (rate / SR_OUT), np.arange(len(x)), x).astype(np.float32)

        return linear, "numpy.interp (linear; scipy missing)"

    def poly(x, rate):
        if rate == SR_OUT:
            return x
        g = math.gcd(SR_OUT, rate)
        return resample_poly(x, SR_OUT // g, rate // g).astype(np.float32)

    return poly, "scipy.signal.resample_poly(x, 2, 1) (Kaiser window, beta 5.0)"


def load_sets(args):
    rec = args.data / "recordings"
    files = sorted(rec.glob("*.wav"))
    if not files:
        raise SystemExit(f"no recordings in {rec}")
    resample, resampler = make_resampler()
    label_id = {label: i for i, label in enumerate(LABELS)}
    sets = {"train": [], "test": [], "holdout": []}
    for path in files:
        digit, speaker, take = path.stem.split("_")
        if speaker == args.holdout:
            name = "holdout"
        else:
            name = "test" if int(take) < args.test_takes else "train"
        pcm, rate = read_wav(path)
        sets[name].append((resample(pcm, rate), label_id[digit], path.name))
    if not sets["holdout"]:
        raise SystemExit(f"no recordings of the held-out speaker {args.holdout!r}")
    rng = np.random.default_rng(args.seed)
    for name, limit in (("train", args.limit_train), ("test", args.limit_eval), ("holdout", args.limit_eval)):
        if limit and limit < len(sets[name]):
            keep = sorted(rng.permutation(len(sets[name]))[:limit])
            sets[name] = [sets[name][i] for i in keep]
    return sets, resampler


def make_batch(clips, max_samples, rng, speed=None, noise=None):
    """Speed-perturb (training, optional), crop (random with `rng`, else the start), add noise
    (training, optional), normalize each clip alone, zero-pad, mask."""
    cropped = []
    for x in clips:
        if rng is not None and speed:
            x = speed_perturb(x, speed, rng)
        if max_samples and len(x) > max_samples:
            start = int(rng.integers(0, len(x) - max_samples + 1)) if rng is not None else 0
            x = x[start : start + max_samples]
        if rng is not None and noise:
            x = add_noise(x, noise, rng)
        x = x.astype(np.float64)  # the extractor normalizes in float64 (np.var of a float32 list)
        cropped.append(((x - x.mean()) / np.sqrt(x.var() + 1e-7)).astype(np.float32))
    n = max(len(x) for x in cropped)
    values = np.zeros((len(cropped), n), dtype=np.float32)
    mask = np.zeros((len(cropped), n), dtype=np.int64)
    for i, x in enumerate(cropped):
        values[i, : len(x)] = x
        mask[i, : len(x)] = 1
    return values, mask


# ---------------------------------------------------------------- metrics


def metrics(y_true, y_pred, n_classes):
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        cm[t, p] += 1
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0  # sklearn's macro: labels in y_true or y_pred
    return {
        "n": int(cm.sum()),
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "confusion": cm.tolist(),
    }


def evaluate(model, data, args, torch):
    model.eval()
    max_samples = int(round(args.max_duration * SR_OUT)) if args.max_duration > 0 else 0
    preds, truth, losses = [], [], []
    with torch.no_grad():
        for i in range(0, len(data), args.eval_batch_size):
            chunk = data[i : i + args.eval_batch_size]
            values, mask = make_batch([c[0] for c in chunk], max_samples, None)
            labels = torch.tensor([c[1] for c in chunk])
            out = model(torch.from_numpy(values), attention_mask=torch.from_numpy(mask), labels=labels)
            losses.append(out.loss.item() * len(chunk))
            preds += out.logits.argmax(-1).tolist()
            truth += labels.tolist()
    model.train()
    m = metrics(truth, preds, len(LABELS))
    m["loss"] = sum(losses) / max(len(data), 1)
    return m


# ---------------------------------------------------------------- main


def load_config(args, HubertConfig):
    if args.config == DEFAULT_CONFIG and not args.config.exists():
        args.config.write_text(json.dumps(TINY_CONFIG, indent=2) + "\n")
    raw = json.loads(args.config.read_text())
    for item in args.override:
        key, _, value = item.partition("=")
        raw[key] = json.loads(value)
    if raw.get("num_labels", len(LABELS)) != len(LABELS):
        raise SystemExit(f"{args.config}: num_labels must be {len(LABELS)}")
    raw.update(
        num_labels=len(LABELS),
        id2label={str(i): label for i, label in enumerate(LABELS)},
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    return HubertConfig(**raw), raw


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = shlex.join([Path(sys.executable).name] + sys.argv)

    import torch

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(args.threads)
    except RuntimeError:
        pass
    import transformers
    from transformers import HubertConfig, HubertForSequenceClassification, get_linear_schedule_with_warmup

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    t_load = time.perf_counter()
    sets, resampler = load_sets(args)
    load_s = time.perf_counter() - t_load
    train, test, holdout = sets["train"], sets["test"], sets["holdout"]
    print(
        f"data: train {len(train)}, test split {len(test)}, held-out speaker {args.holdout} {len(holdout)} "
        f"(loaded and resampled in {load_s:.1f} s)"
    )

    config, raw_config = load_config(args, HubertConfig)
    torch.manual_seed(args.seed)
    model = HubertForSequenceClassification(config)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"model: {config.num_hidden_layers} layers x {config.hidden_size}, {n_params:,} parameters")

    from transformers.trainer_pt_utils import get_parameter_names

    decay = set(
        get_parameter_names(
            model, [torch.nn.LayerNorm], [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]
        )
    )
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if n in decay], "weight_decay": args.weight_decay},
        {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(
        groups, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, fused=args.optim == "adamw_torch_fused"
    )
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    warmup_steps = math.ceil(total_steps * args.warmup_ratio)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    print(
        f"training: {args.epochs} epochs x {steps_per_epoch} steps = {total_steps} steps "
        f"({warmup_steps} warm-up), batch {args.batch_size}, lr {args.lr}, {args.threads} threads, "
        f"torch {torch.__version__}, transformers {transformers.__version__}"
    )

    data_rng = np.random.default_rng(args.seed)
    max_samples = int(round(args.max_duration * SR_OUT)) if args.max_duration > 0 else 0
    step_times, losses, history = [], [], []
    eval_s = 0.0
    step = 0
    t_train = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = data_rng.permutation(len(train))
        for b in range(steps_per_epoch):
            idx = order[b * args.batch_size : (b + 1) * args.batch_size]
            values, mask = make_batch(
                [train[i][0] for i in idx], max_samples, data_rng, args.augment_speed, args.augment_noise
            )
            x, m = torch.from_numpy(values), torch.from_numpy(mask)
            y = torch.tensor([train[i][1] for i in idx])

            t0 = time.perf_counter()
            loss = model(x, attention_mask=m, labels=y).loss
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step_times.append(time.perf_counter() - t0)

            step += 1
            losses.append(loss.item())
            if step % args.log_every == 0 or step == total_steps:
                recent = losses[-args.log_every :]
                timed = step_times[args.warmup_steps_excluded :] or step_times
                print(
                    f"step {step:>5}/{total_steps} epoch {epoch:>2} loss {sum(recent) / len(recent):.4f} "
                    f"grad_norm {float(grad_norm):.3f} lr {scheduler.get_last_lr()[0]:.2e} "
                    f"step {step_times[-1] * 1e3:.1f} ms (mean {statistics.fmean(timed) * 1e3:.1f} ms) "
                    f"elapsed {time.perf_counter() - t_train - eval_s:.1f} s",
                    flush=True,
                )
        if args.eval_every and epoch % args.eval_every == 0 and epoch != args.epochs:
            t_eval = time.perf_counter()
            e_test, e_hold = evaluate(model, test, args, torch), evaluate(model, holdout, args, torch)
            eval_s += time.perf_counter() - t_eval
            history.append({"epoch": epoch, "test": e_test, "holdout": e_hold})
            print(
                f"epoch {epoch}: test split acc {e_test['accuracy']:.4f} f1 {e_test['macro_f1']:.4f} | "
                f"{args.holdout} acc {e_hold['accuracy']:.4f} f1 {e_hold['macro_f1']:.4f}",
                flush=True,
            )
    train_s = time.perf_counter() - t_train - eval_s

    t_eval = time.perf_counter()
    e_test, e_hold = evaluate(model, test, args, torch), evaluate(model, holdout, args, torch)
    final_eval_s = time.perf_counter() - t_eval
    timed = step_times[args.warmup_steps_excluded :] or step_times
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    report = {
        "framework": "pytorch+transformers",
        "command": command,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "threads": args.threads,
        "interop_threads": torch.get_num_interop_threads(),
        "seed": args.seed,
        "resampler": resampler,
        "config_file": str(args.config),
        "config_overrides": args.override,
        "parameters": n_params,
        "trainable_parameters": n_trainable,
        "n_train": len(train),
        "n_test": len(test),
        "n_holdout": len(holdout),
        "holdout_speaker": args.holdout,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "steps": total_steps,
        "warmup_steps": warmup_steps,
        "optimizer": args.optim,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "max_grad_norm": args.max_grad_norm,
        "max_duration_s": args.max_duration,
        "augment_speed": args.augment_speed,
        "augment_noise": args.augment_noise,
        "step_time_mean_s": statistics.fmean(timed),
        "step_time_p50_s": statistics.median(timed),
        "step_times_excluded": min(args.warmup_steps_excluded, len(step_times) - len(timed)),
        "train_wall_s": train_s,
        "data_load_s": load_s,
        "final_eval_s": final_eval_s,
        "peak_rss_mib": peak_rss_mib,
        "final_train_loss": statistics.fmean(losses[-steps_per_epoch:]),
        "test": e_test,
        "holdout": e_hold,
        "history": history,
    }
    print()
    print(f"command:              {command}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} threads")
    print(f"parameters:           {n_params:,}")
    print(f"steps:                {total_steps} ({args.epochs} epochs x {steps_per_epoch})")
    print(
        f"step time:            mean {report['step_time_mean_s'] * 1e3:.1f} ms, "
        f"p50 {report['step_time_p50_s'] * 1e3:.1f} ms (first {report['step_times_excluded']} steps excluded)"
    )
    print(f"training wall time:   {train_s:.1f} s")
    print(f"peak RSS:             {peak_rss_mib:.0f} MiB")
    print(f"final train loss:     {report['final_train_loss']:.4f} (mean of the last epoch)")
    print(f"test split:           accuracy {e_test['accuracy']:.4f}, macro-F1 {e_test['macro_f1']:.4f} (n={e_test['n']})")
    print(
        f"held-out {args.holdout + ':':<12} accuracy {e_hold['accuracy']:.4f}, "
        f"macro-F1 {e_hold['macro_f1']:.4f} (n={e_hold['n']})"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"report:               {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
