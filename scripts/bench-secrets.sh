#!/usr/bin/env bash
# Compares the agent's credential detection with detect-secrets (PyPI) and secretlint (npm)
# on one generated home directory, in one run. Installs the peers under target/bench-tools.
set -euo pipefail
cd "$(dirname "$0")/.."
T="$PWD/target/bench-tools"
mkdir -p "$T"
if [ ! -x /usr/bin/time ]; then apt-get update -qq && apt-get install -y -qq time >/dev/null; fi
if [ ! -x "$T/venv/bin/detect-secrets" ]; then
  python3 -m venv "$T/venv" && "$T/venv/bin/pip" install -q detect-secrets==1.5.0
fi
if [ ! -x "$T/node_modules/.bin/secretlint" ]; then
  (cd "$T" && { [ -f package.json ] || npm init -y >/dev/null; } && npm install --silent secretlint@13 @secretlint/secretlint-rule-preset-recommend@13)
fi
cargo build --release -q -p sightline-agent -p sightline-tests --features sightline-tests/bench \
  --bin sightline-agent --bin sightline-secrets-bench
SIGHTLINE_AGENT="$PWD/target/release/sightline-agent" \
DETECT_SECRETS="$T/venv/bin/detect-secrets" \
SECRETLINT="$T/node_modules/.bin/secretlint" \
  "$PWD/target/release/sightline-secrets-bench"
