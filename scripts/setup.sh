#!/usr/bin/env bash
# Create .venv (if missing) and install every distribution of the monorepo in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
args=(-e "agentlightning_core[openai,server,client,jinja]")
for dist in plugins/*/ agentlightning_*/; do
  [ -f "$dist/pyproject.toml" ] && [ "$dist" != "agentlightning_core/" ] && args+=(-e "$dist")
done
python -m pip install -q "${args[@]}" -r requirements-dev.txt
# The embedded-model tests run on the 0.5B catalogue model (a no-op when already installed).
agl local install qwen2.5-coder-0.5b
