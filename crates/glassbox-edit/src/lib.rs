//! Editing a model with a record. First piece: **directions** — what separates two sets of
//! prompts in the residual stream (Arditi et al. 2024: the mean activation on harmful prompts
//! minus the mean on harmless ones, at positions after the instruction, per layer), found on our
//! own engine and written as a GGUF file that names the model and data it came from. Second:
//! **orthogonalisation** of the weights that write to the residual stream against a direction
//! (`ablate`), re-quantised to their own types.

pub mod ablate;
pub mod direction;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Engine(#[from] glassbox_engine::Error),
    #[error("direction file {path}: {msg}")]
    File { path: String, msg: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
