#!/usr/bin/env bash
# Runs every test Herald has: format and lint checks, the Rust unit, conformance and
# end-to-end tests, the official Svix Python SDK against a real Herald, and Schemathesis
# fuzzing the API from its OpenAPI document (bounded; scripts/fuzz.sh runs the longer
# cargo-fuzz targets, outside this script).
# Installs what it needs (Debian's rabbitmq-server and postgresql, a Python virtualenv with
# the SDK and Schemathesis) and starts and stops every server itself (a RabbitMQ node and
# a throwaway PostgreSQL cluster, both on loopback). Works on a fresh machine with
# the Rust toolchain and Python 3.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/rabbitmq.sh
source scripts/postgres.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
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
