//! Perplexity and KL divergence the way llama.cpp's `llama-perplexity` computes them, so a
//! number from glassbox and one from llama.cpp mean the same thing.
//!
//! - [`base`]: the `--kl-divergence-base` file: a header (`_logits_`, n_ctx, n_vocab, n_chunk,
//!   the evaluation tokens) and, for every scored position, the reference model's log-softmax
//!   quantised to 16 bits. Files written here are read by llama.cpp and the other way round.
//! - [`stats`]: accumulators for perplexity (with its uncertainty) and for KL divergence
//!   against a base row: mean/median/max KLD, same-top-token rate, RMS of Δp, PPL ratio.
//!
//! Scoring follows llama-perplexity: the tokens are cut into chunks of `n_ctx`, the first token
//! of each chunk is replaced by BOS when the model adds one, and only positions from `n_ctx / 2`
//! on are scored (`n_ctx - 1 - n_ctx / 2` per chunk), each predicting the next token.
//!
//! This crate runs no model: callers hand it logits rows.

pub mod base;
pub mod stats;

pub use base::{BaseReader, BaseWriter, Header};
pub use stats::{KldAccumulator, KldSummary, PplAccumulator, PplSummary};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not a llama.cpp log-probability file (it does not start with \"_logits_\")")]
    NotABaseFile { path: String },
    #[error("{path}: {msg}")]
    Corrupt { path: String, msg: String },
    #[error("{0}")]
    Mismatch(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Positions scored in each chunk of `n_ctx` tokens: from `n_ctx / 2` up to the next-to-last.
pub fn scored_per_chunk(n_ctx: usize) -> usize {
    n_ctx.saturating_sub(1 + n_ctx / 2)
}
