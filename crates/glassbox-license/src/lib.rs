//! Licence knowledge, offline: identify a licence text (model licences from our registry with
//! version-telling phrases, the rest from the SPDX list), interpret stated licence names (HF
//! short names, SPDX expressions), and give each licence's clause table — what it says on
//! commercial use, derivatives, training other models on outputs, user caps, use policies,
//! attribution, naming, distribution, remote restriction, termination and governing law, each
//! with the licence's own sentence as evidence.
//!
//! This crate reads no files and never touches the network: callers hand it text.

pub mod identify;
pub mod names;
pub mod normalize;
pub mod registry;

pub use identify::{Closest, Identification, identify};
pub use names::{Named, parse_name};
pub use normalize::{Format, to_plain, words};
pub use registry::{Category, Clause, Entry, Topic, Verdict, builtin, by_key};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{name}: {bytes} bytes is over the {limit}-byte limit for a licence text")]
    TooLarge { name: String, bytes: usize, limit: usize },
    #[error("{name}: not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 { name: String, offset: usize },
    #[error("built-in licence data {key}: {msg}")]
    Data { key: String, msg: String },
}

/// Where in a licence text a quote sits: 1-based line number, when found.
pub fn find_quote(text: &str, quote: &str) -> Option<usize> {
    let q = words(quote);
    if q.is_empty() {
        return None;
    }
    // Quotes may span lines: search the word form of the whole text, then map back.
    let mut acc = String::new();
    let mut starts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let w = words(line);
        if w.is_empty() {
            continue;
        }
        if !acc.is_empty() {
            acc.push(' ');
        }
        starts.push((acc.len(), i + 1));
        acc.push_str(&w);
    }
    let at = acc.find(&q)?;
    starts.iter().rev().find(|(s, _)| *s <= at).map(|(_, line)| *line)
}
