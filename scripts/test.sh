#!/usr/bin/env bash
# The test suite, exactly as CI runs it: fetch + verify every pinned test model (SHA-256), one
# release build of the whole workspace and all its tests (real-model tests included), then the
# official `openai` Python client against a live `glassbox serve`, and OpenSSF model-signing
# interop with the `model-signing` Python package (both directions, offline), and our AI-BOMs
# through CycloneDX's own validator (cyclonedx-python-lib, schema 1.6).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/fetch_models.py --all
cargo test --release --locked --workspace   # also builds target/release/glassbox (CLI tests use it)
test -x target/release/glassbox
# Lints: clippy on every crate and target; a warning fails the run.
cargo clippy --release --locked --workspace --all-targets -- -D warnings
# Dependency policy (deny.toml): permissive licences only, no OpenSSL, crates.io only.
command -v cargo-deny >/dev/null || cargo install --locked --quiet cargo-deny --version 0.18.9
cargo deny --locked --log-level error check licenses bans sources
# The run above used the best instruction set this CPU has. Model parity (greedy vs llama.cpp,
# batching bit-identity) again on every lower one it supports, so no kernel path
# ships untested; GLASSBOX_ISA only ever lowers the choice, and the kernels test fails if it
# names a path the CPU lacks. (The kernels test itself compares every path in every run.)
isas=$(cargo test -q --release --locked -p glassbox-kernels --test kernels -- --ignored --exact list_supported_isas --nocapture | sed -n 's/^glassbox-isa: //p')
case " $(echo $isas) " in *" scalar "*) ;; *) echo "error: could not list the supported ISAs" >&2; exit 1 ;; esac
best=$(echo $isas | awk '{print $NF}')
for isa in $isas; do
  [ "$isa" = "$best" ] && continue
  echo "== GLASSBOX_ISA=$isa"
  GLASSBOX_ISA=$isa cargo test --release --locked -p glassbox-kernels -p glassbox-models
done
venv=target/py-test-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# Every Python package by version and SHA-256 (scripts/requirements-test.txt, compiled from
# requirements-test.in): pip refuses anything else.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r scripts/requirements-test.txt
# lm-evaluation-harness without its model back ends (torch etc.): its gguf and
# local-completions clients are all we use.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r scripts/requirements-lm-eval.txt
"$venv/bin/python" -m pytest -q tests/openai tests/signing tests/bom
