//! Constrained decoding: the model may only produce text a grammar accepts.
//!
//! A JSON schema (or "any JSON object") is compiled into a byte-level context-free grammar
//! ([`grammar`]); the grammar runs as a pushdown automaton whose configurations (sets of stacks)
//! are interned and whose transitions are filled in lazily, so the automaton turns into a DFA
//! over the bytes actually seen ([`dfa`]). Each step's token mask is a walk of the vocabulary's
//! byte trie through that DFA ([`vocab`]), cached per configuration ([`matcher`]); most steps
//! need no mask at all, because the sampled token is checked first (llama.cpp's order: sample,
//! check, mask and resample only when the choice is not allowed).
//!
//! Invariants: every rule the automaton can enter can still finish (rules that cannot are
//! pruned, and a schema whose root cannot finish is refused), no rule reaches itself without
//! consuming a byte (refused at compile time), and every repetition is bounded (whitespace,
//! digits) unless the schema itself is unbounded — so the decoder never dead-ends while a token
//! for every byte exists, and says so by name when one does not.

pub mod dfa;
pub mod grammar;
pub mod json;
pub mod matcher;
mod range;
pub mod schema;
pub mod vocab;

pub use grammar::Grammar;
pub use matcher::Matcher;
pub use grammar::{lit, Sym};
pub use json::{comma, member};
pub use schema::{compile_schema, json_object, Limits, SchemaGrammar};
pub use vocab::VocabIndex;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The schema uses something this compiler does not enforce.
    #[error("unsupported JSON schema keyword {keyword:?} at {path}")]
    Unsupported { keyword: String, path: String },
    /// The schema is malformed or cannot be satisfied.
    #[error("invalid JSON schema at {path}: {msg}")]
    Invalid { path: String, msg: String },
    /// The schema or its grammar exceeds a limit.
    #[error("JSON schema too large: {0}")]
    TooLarge(String),
    /// The schema is nested deeper than the limit.
    #[error("JSON schema too deep: more than {0} levels of nesting")]
    TooDeep(usize),
    /// No way for generation to finish.
    #[error("recursive JSON schema without a base case: {0}")]
    NoBaseCase(String),
    /// A rule reaches itself before consuming any text.
    #[error("JSON schema refers to itself without consuming text: {0}")]
    LeftRecursive(String),
    /// Decoding reached a point where no token can continue.
    #[error("constrained decoding dead end: no token of the vocabulary can continue the output")]
    DeadEnd,
    /// A token was forced that the grammar does not allow.
    #[error("token {0} is not allowed by the grammar here")]
    NotAllowed(u32),
    /// Forced text the grammar does not allow.
    #[error("text {0:?} is not allowed by the grammar here")]
    TextNotAllowed(String),
    /// The automaton grew past its bound.
    #[error("constrained decoding: {0}")]
    Limit(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
