#!/usr/bin/env python3
"""Synthesise LoRA adapters for the pinned test bases and llama.cpp's outputs with them.

No adapter for our pinned bases is published in any registry package, so this script makes them:
random low-rank updates (seeded numpy; A ~ N(0, 1/in), B ~ N(0, sigma^2)) of chosen rank and
alpha on chosen matrices, written in llama.cpp's adapter format with the `gguf` package
(general.type = adapter, adapter.type = lora, adapter.lora.alpha, <tensor>.lora_a / .lora_b,
A stored [in, rank] and B [rank, out] in ggml order). Then llama.cpp itself (llama-perplexity
--lora, the same build the other fixtures use) writes its log-probabilities with the adapter
applied, for tests/fixtures/kld/.

Fixtures (tests/fixtures/lora/ and tests/fixtures/kld/):
  tiny-qwen2-lora.gguf      rank 4, alpha 8, F32, every attention and FFN matrix of the F32
                            tiny-qwen2 model; llama.cpp's base file over it: kld/tiny-qwen2-lora.kld
  smollm2-lora.gguf         rank 4, alpha 8, F16, attn_q and attn_v (PEFT's default targets) of
                            SmolLM2-135M (the pinned Q4_1 file); llama.cpp's top-64 log-probs with it:
                            kld/smollm2-lora-top64.json (and without it: kld/smollm2-top64.json)

How to regenerate (llama.cpp built as scripts/gen_fixtures.py says; LLAMA_CPP_BIN set):
  python3 scripts/fetch_models.py --all
  python3 -m venv /tmp/fixvenv && /tmp/fixvenv/bin/pip install gguf==0.19.0 numpy
  /tmp/fixvenv/bin/python scripts/gen_lora.py [adapters kld]
"""
import json, os, sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(ROOT / "scripts"))
from fetch_models import default_cache  # noqa: E402
from gen_fixtures import KLD_TEXT_FILE, KLD_TOP, kld_top_rows, llama_tool, write  # noqa: E402

SLOTS = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]

ADAPTERS = {
    # name: (base file, output, rank, alpha, sigma of B, dtype, seed, target matrices)
    "tiny-qwen2": (FIX / "tiny" / "tiny-qwen2-f32.gguf", FIX / "lora" / "tiny-qwen2-lora.gguf", 4, 8.0, 0.05, np.float32, 1, SLOTS),
    # PEFT's default targets for llama-style models (q_proj, v_proj).
    "smollm2": ("SmolLM2-135M-Instruct.Q4_1.gguf", FIX / "lora" / "smollm2-lora.gguf", 4, 8.0, 0.02, np.float16, 2, ["attn_q", "attn_v"]),
}


def base_path(b) -> Path:
    return b if isinstance(b, Path) else default_cache() / b


def synth(base: Path, out: Path, rank: int, alpha: float, sigma: float, dtype, seed: int, targets: list) -> None:
    import gguf
    r = gguf.GGUFReader(str(base))
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    rng = np.random.default_rng(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(out), arch)
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    w.add_name(f"glassbox synthetic LoRA for {base.name} (rank {rank}, alpha {alpha}, seed {seed})")
    n = 0
    for t in sorted(r.tensors, key=lambda t: t.name):
        parts = t.name.split(".")
        if len(parts) != 4 or parts[0] != "blk" or parts[2] not in targets or parts[3] != "weight":
            continue
        n_in, n_out = int(t.shape[0]), int(t.shape[1])  # ggml order: [in, out]
        a = (rng.standard_normal((rank, n_in)) / np.sqrt(n_in)).astype(dtype)   # ggml [in, rank]
        b = (rng.standard_normal((n_out, rank)) * sigma).astype(dtype)           # ggml [rank, out]
        w.add_tensor(t.name + ".lora_a", a)
        w.add_tensor(t.name + ".lora_b", b)
        n += 1
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {out.relative_to(ROOT)}: {n} pairs, rank {rank}, alpha {alpha}", file=sys.stderr)


def kld_tiny() -> None:
    base, out = ADAPTERS["tiny-qwen2"][0], ADAPTERS["tiny-qwen2"][1]
    common = ["-c", "32", "-b", "32", "-t", "2", "--chunks", "8"]
    kld = FIX / "kld" / "tiny-qwen2-lora.kld"
    llama_tool(["-m", str(base), "--lora", str(out), "-f", str(ROOT / KLD_TEXT_FILE), *common, "--kl-divergence-base", str(kld)])
    print(f"wrote {kld.relative_to(ROOT)}", file=sys.stderr)


def kld_top_with(name: str) -> None:
    """As gen_fixtures.gen_kld_top, with the adapter applied by llama.cpp."""
    base, out = base_path(ADAPTERS[name][0]), ADAPTERS[name][1]
    r = kld_top_rows(base, ("--lora", str(out)))
    write(f"kld/{name}-lora-top{KLD_TOP}.json", {
        "reference": f"llama-perplexity 0c1e570 --lora {out.name} -c {r['n_ctx']} -b {r['n_ctx']} --chunks {r['chunks']} "
                     "--kl-divergence-base (16-bit log-probs, top tokens kept)",
        "model": base.name, "adapter": out.name, **r})


def main() -> None:
    parts = sys.argv[1:] or ["adapters", "kld"]
    for part in parts:
        if part == "adapters":
            for name, (b, out, rank, alpha, sigma, dtype, seed, targets) in ADAPTERS.items():
                synth(base_path(b), out, rank, alpha, sigma, dtype, seed, targets)
        elif part == "kld":
            kld_tiny()
            kld_top_with("smollm2")
        else:
            sys.exit(f"error: unknown part {part!r} (adapters, kld)")


if __name__ == "__main__":
    main()
