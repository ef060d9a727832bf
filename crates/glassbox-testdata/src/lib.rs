//! Test support only (a dev-dependency): where the pinned test models and committed fixtures
//! live. Models are fetched and SHA-256-verified by `scripts/fetch_models.py`; this crate never
//! downloads anything and never hides a missing model: it panics with the command to run.

use std::path::PathBuf;

pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";
/// Qwen2.5-Coder-0.5B-Instruct (mostly Q5_0, untied Q8_0 output): the draft for the 1.5B, in CI.
pub const QWEN05: &str = "qwen2.5-coder-0.5b-instruct-q5_0.gguf";
/// Qwen2.5-Coder-1.5B-Instruct Q4_K_M: benchmarks and opt-in tests (`--ignored`), not CI.
pub const QWEN15: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";

/// The model cache (`$GLASSBOX_MODEL_CACHE`, else `$XDG_CACHE_HOME/glassbox/models`, else
/// `~/.cache/glassbox/models`), the same rule as the fetch script.
pub fn model_cache() -> PathBuf {
    if let Some(p) = std::env::var_os("GLASSBOX_MODEL_CACHE") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
    base.join("glassbox").join("models")
}

/// Path of a pinned test model; panics with instructions when it has not been fetched.
pub fn model(file: &str) -> PathBuf {
    let p = model_cache().join(file);
    assert!(
        p.is_file(),
        "test model {} is missing: run `python3 scripts/fetch_models.py --all` first",
        p.display()
    );
    p
}

/// A file of llama.cpp's tokenizer test vectors (`ggml-vocab-NAME.gguf`, `.inp`, `.out`), fetched
/// by `scripts/fetch_models.py --all` into `<cache>/llama-vocab/`.
pub fn llama_vocab(file: &str) -> PathBuf {
    model(&format!("llama-vocab/{file}"))
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// A committed fixture under `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    repo_root().join("tests").join("fixtures").join(rel)
}

/// A vendored public test corpus under `tests/corpora/` (provenance in its README). Tests read
/// nothing outside the repository.
pub fn corpus(rel: &str) -> PathBuf {
    repo_root().join("tests").join("corpora").join(rel)
}
