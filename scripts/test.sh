#!/usr/bin/env bash
# The test suite, exactly as CI runs it: fetch + verify every pinned test model (SHA-256), then
# one release build of the whole workspace and all its tests (real-model tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/fetch_models.py --all
cargo test --release --locked --workspace
