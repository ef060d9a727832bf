#!/usr/bin/env bash
# Side-by-side speed: `glassbox bench` and llama.cpp's `llama-bench` on the same file, same
# threads, same session; prints both and the ratio (glassbox / llama.cpp). Not part of CI.
#
# Usage: LLAMA_BENCH=/path/to/llama-bench scripts/bench_vs_llama.sh [MODEL.gguf ...]
# Build llama-bench as docs/test-models (shared) describes: from the llama-cpp-python 0.3.36
# sdist, cmake in vendor/llama.cpp (use -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=ON
# -DGGML_AVX512_VNNI=ON -DGGML_AVX_VNNI=ON on VMs without AMX). Default: both pinned models.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${LLAMA_BENCH:?set LLAMA_BENCH to a llama-bench binary}"
THREADS=${THREADS:-2}; PP=${PP:-512}; TG=${TG:-128}; REPS=${REPS:-3}
cargo build --release --locked -p glassbox >&2
if [ $# -eq 0 ]; then
  cache=$(python3 -c 'import sys; sys.path.insert(0,"scripts"); from fetch_models import default_cache; print(default_cache())')
  set -- "$cache/SmolLM2-135M-Instruct.Q4_1.gguf" "$cache/gemma-3-270m-q4_k_m.gguf"
fi
export LD_LIBRARY_PATH="$(dirname "$LLAMA_BENCH")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
printf '%-36s %10s %10s %10s %10s %8s %8s\n' model gb_pp lc_pp gb_tg lc_tg pp_ratio tg_ratio
for m in "$@"; do
  gb=$(target/release/glassbox bench "$m" -t "$THREADS" --prompt-tokens "$PP" --gen-tokens "$TG" -r "$REPS" --json)
  lc=$("$LLAMA_BENCH" -m "$m" -t "$THREADS" -p "$PP" -n "$TG" -r "$REPS" -o json 2>/dev/null)
  python3 - "$m" "$gb" "$lc" <<'PY'
import json, os, sys
m, gb, lc = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
pp = next(r["avg_ts"] for r in lc if r["n_prompt"] > 0)
tg = next(r["avg_ts"] for r in lc if r["n_gen"] > 0)
print(f'{os.path.basename(m)[:36]:36} {gb["prefill_tok_s"]:10.1f} {pp:10.1f} {gb["decode_tok_s"]:10.1f} {tg:10.1f} '
      f'{gb["prefill_tok_s"]/pp:8.2f} {gb["decode_tok_s"]/tg:8.2f}')
PY
done
