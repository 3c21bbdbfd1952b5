#!/usr/bin/env bash
# Create .venv (if missing) and install every distribution of the monorepo in editable mode.
# Skipped when .venv was already installed from the same pyproject files and requirements
# (a stamp in .venv keyed on their hash and the Python version); AGL_FORCE_SETUP=1 reinstalls.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
STAMP=.venv/.agl-setup-stamp

# The dashboard's browser tests (tests/test_dashboard_browser.py) drive Debian's chromium.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium package for the dashboard's browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: chromium is missing and this is not root on Debian: the dashboard's browser tests" \
      "will fail until it is installed (Debian: sudo apt-get install chromium)" >&2
  fi
fi

dists=()
for dist in plugins/*/ agentlightning_*/; do
  [ -f "$dist/pyproject.toml" ] && [ "$dist" != "agentlightning_core/" ] && dists+=("${dist%/}")
done
inputs=(pyproject.toml requirements-dev.txt agentlightning_core/pyproject.toml)
for dist in "${dists[@]}"; do inputs+=("$dist/pyproject.toml"); done
key=$({ "$PYTHON" --version 2>&1; for f in "${inputs[@]}"; do echo "== $f"; cat "$f"; done; } | sha256sum | cut -d' ' -f1)

# The PostgreSQL store's tests start a throw-away server (initdb + pg_ctl): install Debian's
# server package when no initdb is found (never on a machine that has one).
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing the PostgreSQL server (apt-get install postgresql) for the postgres store's tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  else
    echo "setup: PostgreSQL's initdb not found: the postgres store's tests will fail until the server package" \
      "is installed (Debian/Ubuntu: sudo apt-get install postgresql) or AGL_POSTGRES_BIN names its bin directory" >&2
  fi
fi

if [ -x .venv/bin/python ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$key" ] && [ -z "${AGL_FORCE_SETUP:-}" ]; then
  echo "setup: .venv is up to date (pyproject files and requirements unchanged); AGL_FORCE_SETUP=1 reinstalls"
  exit 0
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
echo "setup: installing into .venv (editable): agentlightning_core[openai,server,client,jinja,metrics,yaml] ${dists[*]}" \
  "and the development tools of requirements-dev.txt; the first run takes a minute or two"
python -m pip install -q --upgrade pip
args=(-e "agentlightning_core[openai,server,client,jinja,metrics,yaml]")
for dist in "${dists[@]}"; do args+=(-e "$dist"); done
python -m pip install -q "${args[@]}" -r requirements-dev.txt
# The embedded-model tests run on the 0.5B catalogue model (a no-op when already installed).
agl local install qwen2.5-coder-0.5b
echo "$key" > "$STAMP"
echo "setup: done"
