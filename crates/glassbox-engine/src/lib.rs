//! The generation engine: a loaded model with its tokenizer and chat template, sampling
//! (temperature, top-k, top-p, min-p, repetition/presence/frequency penalties, seeded), stop
//! strings and end-of-generation tokens, chunked prefill, perplexity and speed benchmarks.
//!
//! The engine owns compute resources (thread pool, scratch buffers) but never touches the
//! network, never prints, and never parses command lines: callers pass plain structs and get
//! plain structs (and streamed text through a callback) back.

mod adapters;
mod batch;
mod constraint;
mod engine;
mod loglik;
mod sampler;
mod scheduler;
mod seq;
pub(crate) mod spec;
mod stop;

pub use constraint::{vocab_index, Constraint};
pub use engine::{BenchResult, Engine, EngineOptions, FinishReason, Frontend, Generation, GenerateRequest, Verification};
pub use scheduler::{Control, EventSink, SchedRequest, Scheduler, SchedulerStats, SeqEvent};
pub use adapters::{Attached, open_adapter};
pub use glassbox_lora::Adapter;
pub use glassbox_models::{KvType, Steering};
pub use loglik::{ContinuationScore, LoglikRequest, token_logprob};
pub use glassbox_template::Message;
pub use glassbox_tokenizer::Tokenizer;
pub use sampler::{Sampler, SamplingParams, argmax};
pub use seq::{SeqState, StepOut, TokenLogprob};
pub use spec::{DraftModel, Drafter, SpecOptions, SpecStats, lookup};
pub use stop::StopMatcher;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Gguf(#[from] glassbox_gguf::Error),
    #[error(transparent)]
    Model(#[from] glassbox_models::Error),
    #[error(transparent)]
    Tokenizer(#[from] glassbox_tokenizer::Error),
    #[error(transparent)]
    Template(#[from] glassbox_template::Error),
    #[error(transparent)]
    Trust(#[from] glassbox_trust::Error),
    #[error(transparent)]
    Perplexity(#[from] glassbox_perplexity::Error),
    #[error(transparent)]
    Lora(#[from] glassbox_lora::Error),
    #[error("prompt is {prompt} tokens; with room for at least one generated token it needs a context of {needed}, but the context size is {ctx}")]
    PromptTooLong { prompt: usize, needed: usize, ctx: usize },
    #[error("this model has no chat template (tokenizer.chat_template); use --raw to send the prompt as plain text")]
    NoChatTemplate,
    #[error("invalid sampling parameter {name}: {msg}")]
    BadParam { name: &'static str, msg: String },
    #[error(transparent)]
    Constrain(#[from] glassbox_constrain::Error),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
