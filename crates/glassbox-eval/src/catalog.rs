//! The built-in tasks: `evals/tasks.toml`, compiled in. Each names its converted data file in
//! the evaluation cache and that file's SHA-256; a task's data is read only after its bytes
//! match (`scripts/fetch_eval_data.py` puts it there).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{Error, Result, task};

const TASKS_TOML: &str = include_str!("../../../evals/tasks.toml");

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub package: String,
    pub version: String,
    pub wheel_sha256: String,
    pub member: String,
    pub convert: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub name: String,
    pub description: String,
    pub citation: String,
    pub split: String,
    pub file: String,
    pub items: usize,
    pub sha256: String,
    pub licence: String,
    pub non_commercial: bool,
    /// `acc` or `acc_norm` (multiple choice), `accuracy` (closed-book QA): the score quoted.
    pub metric: String,
    /// `mc` (multiple choice, the default), `qa` (closed-book questions with answer aliases),
    /// the bias tasks scored from multiple-choice results (`bbq`, `crows`), the generation
    /// tasks (`refusal`, `overrefusal`: prompts) and `pii_leak` (synthetic identities).
    #[serde(default = "mc")]
    pub format: String,
    pub source: Source,
}

fn mc() -> String {
    "mc".into()
}

impl TaskSpec {
    /// Where the data comes from: `package==version member`.
    pub fn source_label(&self) -> String {
        format!("{}=={} {}", self.source.package, self.source.version, self.source.member)
    }
}

#[derive(Deserialize)]
struct Catalog {
    task: Vec<TaskSpec>,
}

/// Every built-in task, in the catalog's order.
pub fn tasks() -> Vec<TaskSpec> {
    // The catalog is compiled in and checked by a unit test, so this cannot fail at run time.
    toml::from_str::<Catalog>(TASKS_TOML).map(|c| c.task).unwrap_or_default()
}

pub fn find(name: &str) -> Result<TaskSpec> {
    let all = tasks();
    all.iter().find(|t| t.name == name).cloned().ok_or_else(|| {
        Error::UnknownTask { name: name.to_string(), known: all.iter().map(|t| t.name.clone()).collect::<Vec<_>>().join(", ") }
    })
}

/// `$GLASSBOX_EVAL_CACHE`, else `$XDG_CACHE_HOME/glassbox/eval`, else `~/.cache/glassbox/eval`.
pub fn default_cache() -> PathBuf {
    if let Some(p) = std::env::var_os("GLASSBOX_EVAL_CACHE") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".cache"));
    base.join("glassbox").join("eval")
}

/// Read a task's bytes from `cache`, refusing them unless their SHA-256 matches the pin.
pub fn load_bytes(spec: &TaskSpec, cache: &Path) -> Result<(String, Vec<u8>)> {
    let path = cache.join(&spec.file);
    let bytes = std::fs::read(&path).map_err(|e| Error::MissingData {
        task: spec.name.clone(),
        path: path.display().to_string(),
        msg: e.to_string(),
    })?;
    let got = hex(&Sha256::digest(&bytes));
    if got != spec.sha256 {
        return Err(Error::DataMismatch { path: path.display().to_string(), got, want: spec.sha256.clone() });
    }
    Ok((path.display().to_string(), bytes))
}

fn check_count(spec: &TaskSpec, file: &str, n: usize) -> Result<()> {
    if n != spec.items {
        return Err(Error::Task { file: file.to_string(), line: 0, msg: format!("{n} questions, the pin says {}", spec.items) });
    }
    Ok(())
}

/// A multiple-choice task's questions (checked against the pin).
pub fn load(spec: &TaskSpec, cache: &Path) -> Result<Vec<task::McItem>> {
    let (file, bytes) = load_bytes(spec, cache)?;
    let items = task::parse_jsonl(&file, &bytes)?;
    check_count(spec, &file, items.len())?;
    Ok(items)
}

/// A prompt set's prompts (refusal, over-refusal; checked against the pin).
pub fn load_prompts(spec: &TaskSpec, cache: &Path) -> Result<Vec<task::PromptItem>> {
    let (file, bytes) = load_bytes(spec, cache)?;
    let items = task::parse_prompt_jsonl(&file, &bytes)?;
    check_count(spec, &file, items.len())?;
    Ok(items)
}

/// A PII-leakage task's identities (checked against the pin).
pub fn load_identities(spec: &TaskSpec, cache: &Path) -> Result<Vec<crate::pii::Identity>> {
    let (file, bytes) = load_bytes(spec, cache)?;
    let items = crate::pii::parse_identities(&file, &bytes)?;
    check_count(spec, &file, items.len())?;
    Ok(items)
}

/// A closed-book QA task's questions (checked against the pin).
pub fn load_qa(spec: &TaskSpec, cache: &Path) -> Result<Vec<task::QaItem>> {
    let (file, bytes) = load_bytes(spec, cache)?;
    let items = task::parse_qa_jsonl(&file, &bytes)?;
    check_count(spec, &file, items.len())?;
    Ok(items)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_parses_and_is_complete() {
        let c: Catalog = toml::from_str(TASKS_TOML).expect("evals/tasks.toml parses");
        assert!(c.task.len() >= 10);
        let mut names = std::collections::HashSet::new();
        for t in &c.task {
            assert!(names.insert(t.name.clone()), "{} twice", t.name);
            assert_eq!(t.sha256.len(), 64, "{}", t.name);
            assert!(t.items > 0 && ["acc", "acc_norm", "accuracy", "pct_stereotype", "refusal_rate", "overrefusal_rate", "pii_leak_rate"].contains(&t.metric.as_str()), "{}", t.name);
            assert!(["mc", "qa", "bbq", "crows", "refusal", "overrefusal", "pii_leak"].contains(&t.format.as_str()), "{}", t.name);
            assert!(spdx::Expression::parse(&t.licence).is_ok(), "{}: {}", t.name, t.licence);
            assert_eq!(t.non_commercial, t.licence.contains("-NC"), "{}", t.name);
        }
        for n in ["arc_easy", "arc_challenge", "hellaswag", "mmlu"] {
            assert!(find(n).is_ok());
        }
        assert!(find("nope").unwrap_err().to_string().contains("arc_challenge"));
    }

    #[test]
    fn data_is_refused_unless_it_matches_its_pin() {
        let dir = std::env::temp_dir().join(format!("glassbox-eval-pin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut spec = find("arc_easy").unwrap();
        let e = load(&spec, &dir).unwrap_err().to_string();
        assert!(e.contains("fetch_eval_data.py") && e.contains("arc_easy"), "{e}");
        let line = b"{\"id\": 1, \"context\": \"c\", \"choices\": [\" a\", \" b\"], \"gold\": 0}\n";
        std::fs::write(dir.join(&spec.file), line).unwrap();
        assert!(load(&spec, &dir).unwrap_err().to_string().contains("sha256"));
        spec.sha256 = hex(&Sha256::digest(line));
        spec.items = 1;
        assert_eq!(load(&spec, &dir).unwrap().len(), 1);
        spec.items = 2;
        assert!(load(&spec, &dir).unwrap_err().to_string().contains("pin says 2"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
