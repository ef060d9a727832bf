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

PEFT adapters (tests/fixtures/lora/peft/<name>/: adapter_config.json + adapter_model.safetensors,
as PEFT saves them, written here with numpy and a plain safetensors writer) for the committed tiny
llama, qwen2 and gemma3 models, in BF16, F32 and F16, rank 4 (one module at rank 2 through
rank_pattern), every attention and FFN projection. llama.cpp's own converter,
convert_lora_to_gguf.py from the same source package, converts each (--outtype f32, f16, bf16 and q8_0; a
config.json for the base is written from the tiny model's metadata) and what it wrote — per tensor
name, ggml type, shape and SHA-256 of the data, and adapter.lora.alpha — goes to
tests/fixtures/lora/peft/expected.json, which `glassbox lora convert` must reproduce; llama.cpp's
log-probabilities with its F32 conversion of the llama one applied: kld/tiny-llama31-peft.kld.

How to regenerate (llama.cpp built as scripts/gen_fixtures.py says; LLAMA_CPP_BIN set):
  python3 scripts/fetch_models.py --all
  python3 -m venv /tmp/fixvenv && /tmp/fixvenv/bin/pip install gguf==0.19.0 numpy
  /tmp/fixvenv/bin/python scripts/gen_lora.py [adapters kld peft]
The peft part also needs the converter's own requirements in that venv (torch 2.15.0 CPU with
--no-deps, transformers 5.24.0, safetensors 0.8.0) and LLAMA_CPP_SRC set to the source package's
vendor/llama.cpp folder (its convert_lora_to_gguf.py, conversion/ and gguf-py/).
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


PEFT_DIR = FIX / "lora" / "peft"
HF_MODULES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
              "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
              "ffn_down": "mlp.down_proj"}
HF_ARCH = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "gemma3": "Gemma3ForCausalLM"}
PEFT = {
    # name: (tiny base, dtype in the safetensors file, rank, alpha, seed)
    "tiny-llama31": ("tiny-llama31.gguf", "BF16", 4, 16.0, 11),
    "tiny-qwen2": ("tiny-qwen2-f32.gguf", "F32", 4, 8.0, 12),
    "tiny-gemma3": ("tiny-gemma3.gguf", "F16", 4, 4.0, 13),
}


def bf16_bytes(x: np.ndarray) -> bytes:
    """float32 -> bfloat16, round to nearest even (as torch's .to(torch.bfloat16))."""
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16).tobytes()


def save_safetensors(path: Path, tensors: dict, dtype: str) -> None:
    header, blobs, off = {}, [], 0
    for name, x in tensors.items():
        b = bf16_bytes(x) if dtype == "BF16" else x.astype(np.float16 if dtype == "F16" else np.float32).tobytes()
        header[name] = {"dtype": dtype, "shape": list(x.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def tiny_meta(base: Path) -> tuple[str, dict, list]:
    import gguf
    r = gguf.GGUFReader(str(base))
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    def u(k):
        f = r.fields.get(f"{arch}.{k}")
        return None if f is None else f.parts[f.data[0]].tolist()[0]
    return arch, {k: u(k) for k in ("embedding_length", "feed_forward_length", "block_count", "attention.head_count",
                                    "attention.head_count_kv", "attention.key_length", "context_length")}, r.tensors


def synth_peft(name: str) -> None:
    base_file, dtype, rank, alpha, seed = PEFT[name]
    arch, _, tensors = tiny_meta(FIX / "tiny" / base_file)
    rng = np.random.default_rng(seed)
    out = PEFT_DIR / name
    out.mkdir(parents=True, exist_ok=True)
    ts, rank_pattern = {}, {}
    for t in sorted(tensors, key=lambda t: t.name):
        parts = t.name.split(".")
        if len(parts) != 4 or parts[0] != "blk" or parts[2] not in HF_MODULES or parts[3] != "weight":
            continue
        n_in, n_out = int(t.shape[0]), int(t.shape[1])
        module = f"model.layers.{parts[1]}.{HF_MODULES[parts[2]]}"
        r = rank
        if parts[1] == "1" and parts[2] == "attn_k":  # one module at another rank, as rank_pattern allows
            r = 2
            rank_pattern[module] = r
        ts[f"base_model.model.{module}.lora_A.weight"] = rng.standard_normal((r, n_in)).astype(np.float32) / np.sqrt(n_in)
        ts[f"base_model.model.{module}.lora_B.weight"] = rng.standard_normal((n_out, r)).astype(np.float32) * 0.05
    save_safetensors(out / "adapter_model.safetensors", ts, dtype)
    config = {"alpha_pattern": {}, "base_model_name_or_path": f"glassbox-tests/{name}", "bias": "none",
              "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True,
              "layers_to_transform": None, "lora_alpha": alpha, "lora_dropout": 0.0, "modules_to_save": None,
              "peft_type": "LORA", "r": rank, "rank_pattern": rank_pattern,
              "target_modules": sorted(m.split(".")[-1] for m in HF_MODULES.values()),
              "task_type": "CAUSAL_LM", "use_dora": False, "use_rslora": False}
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}: {len(ts) // 2} pairs, {dtype}", file=sys.stderr)


def hf_config(base: Path) -> dict:
    arch, m, _ = tiny_meta(base)
    c = {"architectures": [HF_ARCH[arch]], "model_type": arch, "hidden_size": m["embedding_length"],
         "intermediate_size": m["feed_forward_length"], "num_hidden_layers": m["block_count"],
         "num_attention_heads": m["attention.head_count"], "num_key_value_heads": m["attention.head_count_kv"],
         "max_position_embeddings": m["context_length"], "rms_norm_eps": 1e-6, "vocab_size": 32, "torch_dtype": "float32"}
    if m["attention.key_length"]:
        c["head_dim"] = m["attention.key_length"]
    return c


def convert_peft() -> None:
    """Each PEFT fixture through llama.cpp's convert_lora_to_gguf.py; what it wrote, tensor by tensor."""
    import gguf, hashlib, subprocess, tempfile
    src = Path(os.environ["LLAMA_CPP_SRC"])
    expected = {"reference": "llama.cpp 0c1e570 (llama-cpp-python 0.3.36 sdist) convert_lora_to_gguf.py "
                             "--base <config.json from the tiny model> --outtype {f32,f16,bf16,q8_0}", "adapters": {}}
    env = {**os.environ, "PYTHONPATH": str(src / "gguf-py") + os.pathsep + str(src)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (base_file, *_rest) in PEFT.items():
            cfg = Path(tmp) / name
            cfg.mkdir()
            (cfg / "config.json").write_text(json.dumps(hf_config(FIX / "tiny" / base_file)))
            outs = {}
            for outtype in ("f32", "f16", "bf16", "q8_0"):
                out = Path(tmp) / f"{name}-{outtype}.gguf"
                subprocess.run([sys.executable, str(src / "convert_lora_to_gguf.py"), "--base", str(cfg),
                                "--outtype", outtype, "--outfile", str(out), str(PEFT_DIR / name)],
                               check=True, env=env, capture_output=True)
                r = gguf.GGUFReader(str(out))
                outs[outtype] = {
                    "alpha": float(r.fields["adapter.lora.alpha"].parts[-1][0]),
                    "tensors": [{"name": t.name, "type": t.tensor_type.name, "dims": [int(d) for d in t.shape],
                                 "sha256": hashlib.sha256(t.data.tobytes()).hexdigest()}
                                for t in sorted(r.tensors, key=lambda t: t.name)]}
            expected["adapters"][name] = {"base": f"tests/fixtures/tiny/{base_file}", **outs}
            if name == "tiny-llama31":
                # llama.cpp applying its own conversion (llama: B's q/k rows permuted) for the end-to-end test.
                kld = FIX / "kld" / "tiny-llama31-peft.kld"
                llama_tool(["-m", str(FIX / "tiny" / base_file), "--lora", str(Path(tmp) / f"{name}-f32.gguf"),
                            "-f", str(ROOT / KLD_TEXT_FILE), "-c", "32", "-b", "32", "-t", "2", "--chunks", "8",
                            "--kl-divergence-base", str(kld)])
                print(f"wrote {kld.relative_to(ROOT)}", file=sys.stderr)
    write("lora/peft/expected.json", expected)


def main() -> None:
    parts = sys.argv[1:] or ["adapters", "kld", "peft"]
    for part in parts:
        if part == "adapters":
            for name, (b, out, rank, alpha, sigma, dtype, seed, targets) in ADAPTERS.items():
                synth(base_path(b), out, rank, alpha, sigma, dtype, seed, targets)
        elif part == "kld":
            kld_tiny()
            kld_top_with("smollm2")
        elif part == "peft":
            for name in PEFT:
                synth_peft(name)
            convert_peft()
        else:
            sys.exit(f"error: unknown part {part!r} (adapters, kld, peft)")


if __name__ == "__main__":
    main()
