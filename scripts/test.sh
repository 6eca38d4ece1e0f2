#!/usr/bin/env bash
# Runs every test Herald has: format and lint checks, the Rust unit, conformance and
# end-to-end tests, the official Svix Python SDK against a real Herald, Schemathesis
# fuzzing the API from its OpenAPI document (bounded; scripts/fuzz.sh runs the longer
# cargo-fuzz targets, outside this script), and the console and portal in a real browser.
# Installs what it needs (Debian's rabbitmq-server, postgresql and chromium, a Python
# virtualenv with the SDK, Schemathesis and Playwright) and starts and stops every server
# itself (a RabbitMQ node and a throwaway PostgreSQL cluster, both on loopback). Works on a
# fresh machine with the Rust toolchain and Python 3.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/rabbitmq.sh
source scripts/postgres.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
if ! command -v promtool >/dev/null; then
  echo "== installing promtool (Debian's prometheus), which checks the alert rules"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
start_rabbitmq
start_postgres
trap 'stop_postgres; stop_rabbitmq' EXIT
echo "== cargo test"
cargo test --workspace --locked
echo "== Svix Python SDK conformance"
cargo build --locked -p herald
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt \
  -r tests/fuzz/requirements.txt
HERALD_BIN="$PWD/target/debug/herald" .venv/bin/python -m pytest -q -p no:cacheprovider tests/sdk
echo "== API fuzzing (Schemathesis, from the OpenAPI document)"
HERALD_BIN="$PWD/target/debug/herald" .venv/bin/python -m pytest -q -p no:cacheprovider tests/fuzz
echo "== Browser tests (Playwright driving Debian's Chromium)"
if [ ! -x /usr/bin/chromium ]; then
  echo "== installing chromium"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/ui/requirements.txt
HERALD_BIN="$PWD/target/debug/herald" .venv/bin/python -m pytest -q -p no:cacheprovider tests/ui
