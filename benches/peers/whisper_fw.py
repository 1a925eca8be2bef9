#!/usr/bin/env python3
"""Times faster-whisper on the CTranslate2 Whisper directory that models/setup.sh
assembles, for benches/peers/whisper.sh. One configuration per process so that peak RSS
is that configuration's own.

usage: whisper_fw.py MODEL_DIR AUDIO BEAM COMPUTE_TYPE
prints one JSON line: load_s, transcribe_s, audio_s, rtf, peak_rss_mb, text
"""
import json
import resource
import sys
import time

from faster_whisper import WhisperModel

model_dir, audio, beam, compute_type = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
t0 = time.perf_counter()
model = WhisperModel(model_dir, device="cpu", compute_type=compute_type, cpu_threads=2, num_workers=1)
load_s = time.perf_counter() - t0
t0 = time.perf_counter()
segments, info = model.transcribe(audio, beam_size=beam, language="en", vad_filter=False)
text = "".join(s.text for s in segments)
transcribe_s = time.perf_counter() - t0
print(json.dumps({
    "load_s": round(load_s, 3),
    "transcribe_s": round(transcribe_s, 3),
    "audio_s": round(info.duration, 2),
    "rtf": round(transcribe_s / info.duration, 4),
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    "text": text.strip(),
}))
