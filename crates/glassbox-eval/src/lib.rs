//! Evaluations of how a model behaves, with numbers that agree with the tools the field trusts.
//!
//! - [`task`]: the multiple-choice task format (JSONL) and its parser (untrusted input: limits,
//!   errors naming file and line).
//! - [`catalog`]: the built-in tasks (`evals/tasks.toml`: pinned data, SHA-256, licence).
//! - [`prompt`]: lm-evaluation-harness's prompt assembly (description, few-shot examples) and
//!   its `_encode_pair` context/continuation split.
//! - [`metrics`]: `acc`, `acc_norm`, lm-eval's stderr, bootstrap 95 % intervals.
//! - [`cache`]: results keyed by model, data, options and engine, so a rerun is instant.
//! - [`niah`]: needle in a haystack over lengths × depths (RULER's task forms), with
//!   [`heatmap`] pictures (SVG, PNG) and the effective context length.
//! - [`bias`]: BBQ accuracy and bias scores, CrowS-Pairs stereotype preference.
//! - [`qa`]: hallucination as closed-book QA (correct / abstained / confidently wrong).
//! - [`refusal`]: whether a response refuses (documented markers, validated against human labels).
//! - [`judge`]: relevance of a response to its request under a local model (pointwise mutual
//!   information), for the refusals markers cannot see.
//! - [`pii`]: PII leakage: ProPILE-style probes over synthetic identities, answers read by
//!   `glassbox-redact`'s recognisers.
//! - [`compare`]: base vs derived: paired differences, first-token KL, verdicts.
//! - [`canary`]: exposure of secrets (Carlini et al.'s "Secret Sharer"): rank among the
//!   strings of their format, sampled and extrapolated (skew-normal).
//! - [`run`]: scoring a task through the engine (shared contexts computed once, choices and
//!   questions batched).
//!
//! No network: task data is fetched and verified by `scripts/fetch_eval_data.py` beforehand.

pub mod bias;
pub mod cache;
pub mod canary;
pub mod compare;
pub mod catalog;
pub mod heatmap;
pub mod judge;
pub mod metrics;
pub mod niah;
pub mod pii;
pub mod prompt;
pub mod qa;
pub mod refusal;
pub mod run;
pub mod task;

pub use catalog::TaskSpec;
pub use metrics::Estimate;
pub use run::{EvalOptions, ItemResult, TaskResult, evaluate};
pub use task::McItem;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}:{line}: {msg}")]
    Task { file: String, line: usize, msg: String },
    #[error("unknown task {name:?} (known: {known})")]
    UnknownTask { name: String, known: String },
    #[error("task {task}: cannot read {path} ({msg}); fetch it with scripts/fetch_eval_data.py {task}")]
    MissingData { task: String, path: String, msg: String },
    #[error("{path}: sha256 {got} does not match the pinned {want}; refetch it with scripts/fetch_eval_data.py")]
    DataMismatch { path: String, got: String, want: String },
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Engine(#[from] glassbox_engine::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
