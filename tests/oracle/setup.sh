#!/usr/bin/env bash
# Creates the Python oracle's venv (tests only) in a cache folder that survives between CI runs.
# Prints the venv's python path on its last line.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${PEFT_STUDIO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/peft-studio}"
venv="$cache/oracle-venv"
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
  echo "oracle: creating $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q -r "$here/requirements.txt" >&2
  cp "$here/requirements.txt" "$stamp"
fi
echo "$venv/bin/python"
