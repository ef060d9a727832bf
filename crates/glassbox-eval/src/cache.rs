//! Results cached by everything that determines them: the model's SHA-256, the task data's
//! SHA-256 (or, for needle tests, the haystack's), the options (limit, shots, seed; lengths,
//! depths, samples) and the engine (version, instruction set, exact mode, output layer), so an
//! unchanged rerun is instant and a changed input never reuses a stale score. Any result type
//! that serializes can be cached: multiple-choice, closed-book QA and needle grids are. A
//! cache file that cannot be read back is a miss, never an error.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::catalog::hex;
use crate::run::{EvalOptions, TaskResult};

use crate::{Error, Result};

/// What the engine contributes to a result: the glassbox version, the kernel path and mode.
pub fn engine_id(isa: &str, exact: bool, fast_logits: bool) -> String {
    format!("glassbox {} isa={isa} exact={exact} fast_logits={fast_logits} logits=2pass-head8", env!("CARGO_PKG_VERSION"))
}

/// The key of a multiple-choice (or closed-book QA) result.
pub fn key(model_sha256: &str, data_sha256: &str, opts: &EvalOptions, engine: &str) -> String {
    key_of(&serde_json::json!({
        "model": model_sha256, "data": data_sha256, "limit": opts.limit, "shots": opts.shots,
        "seed": opts.seed, "engine": engine, "format": 2,
    }))
}

/// The key of any result: the SHA-256 of its inputs written as canonical JSON (object keys
/// sorted, as serde_json's map writes them).
pub fn key_of(inputs: &serde_json::Value) -> String {
    hex(&Sha256::digest(inputs.to_string().as_bytes()))
}

fn path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.json"))
}

/// A cached multiple-choice result, marked as cached.
pub fn get(dir: &Path, key: &str) -> Option<TaskResult> {
    let mut r: TaskResult = get_any(dir, key)?;
    r.cached = true;
    Some(r)
}

/// A cached result of any kind.
pub fn get_any<T: serde::de::DeserializeOwned>(dir: &Path, key: &str) -> Option<T> {
    let bytes = std::fs::read(path(dir, key)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The cached result under `key`, or `run`'s, stored (unless `off`); and whether it was cached.
pub fn get_or_run<T, E>(off: bool, dir: &Path, key: &str, run: impl FnOnce() -> Result<T, E>) -> Result<(T, bool), E>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
    E: From<Error>,
{
    if !off && let Some(r) = get_any::<T>(dir, key) {
        return Ok((r, true));
    }
    let r = run()?;
    if !off {
        put(dir, key, &r)?;
    }
    Ok((r, false))
}

pub fn put<T: serde::Serialize>(dir: &Path, key: &str, r: &T) -> Result<()> {
    let io = |e: std::io::Error| Error::Usage(format!("cannot write the results cache {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(".{key}.{}.partial", std::process::id()));
    let text = serde_json::to_vec(r).map_err(|e| Error::Usage(format!("cannot encode a result: {e}")))?;
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path(dir, key)).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Estimate;

    #[test]
    fn a_result_comes_back_only_for_the_same_inputs() {
        let dir = std::env::temp_dir().join(format!("glassbox-eval-cache-{}", std::process::id()));
        let o = EvalOptions::default();
        let e = Estimate { value: 0.5, stderr: 0.1, ci95: [0.3, 0.7] };
        let r = TaskResult { n: 2, acc: e, acc_norm: e, shots: 0, ece: 0.1, seconds: 1.0, items: vec![], cached: false };
        let k = key("m", "d", &o, &engine_id("avx2", false, false));
        assert!(get(&dir, &k).is_none());
        put(&dir, &k, &r).unwrap();
        let back = get(&dir, &k).unwrap();
        assert!(back.cached && back.acc == e && back.n == 2);
        for other in [
            key("m2", "d", &o, &engine_id("avx2", false, false)),
            key("m", "d2", &o, &engine_id("avx2", false, false)),
            key("m", "d", &EvalOptions { shots: 1, ..o.clone() }, &engine_id("avx2", false, false)),
            key("m", "d", &EvalOptions { limit: Some(1), ..o.clone() }, &engine_id("avx2", false, false)),
            key("m", "d", &o, &engine_id("scalar", false, false)),
            key("m", "d", &o, &engine_id("avx2", true, false)),
            key("m", "d", &o, &engine_id("avx2", false, true)),
        ] {
            assert_ne!(other, k);
            assert!(get(&dir, &other).is_none());
        }
        std::fs::write(dir.join(format!("{k}.json")), b"{broken").unwrap();
        assert!(get(&dir, &k).is_none());
        std::fs::remove_dir_all(&dir).ok();
    }
}
