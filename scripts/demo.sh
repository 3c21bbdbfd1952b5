#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the main job on its embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. .venv/bin/activate
python examples/quickstart/quickstart.py
