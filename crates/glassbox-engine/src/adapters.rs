//! LoRA adapters on a loaded engine: checked against the model's own file, then attached to
//! the model (applied without merging; see glassbox-models' lora.rs).

use glassbox_lora::Adapter;
use glassbox_models::{LoraPart, LoraTensor};

use crate::{Engine, Result};

/// What was attached: enough to name it in records and cache keys.
#[derive(Clone, Debug, PartialEq)]
pub struct Attached {
    pub path: std::path::PathBuf,
    /// SHA-256 of the adapter file, as verified by the caller.
    pub sha256: String,
    pub scale: f32,
    pub alpha: f32,
    pub pairs: usize,
}

/// Open an adapter file only after its bytes match a pin under `policy` (SHA-256 over the very
/// mapping that is then parsed, as for a model). Returns the adapter and the verification.
pub fn open_adapter(path: &std::path::Path, policy: &glassbox_trust::Policy) -> Result<(Adapter, crate::Verification)> {
    let v = glassbox_trust::open_verified(path, policy)?;
    let info = crate::Verification { sha256: v.sha256.clone(), size: v.size, verdict: v.verdict.clone() };
    let file = glassbox_gguf::GgufFile::from_map(path, v.map, &Default::default())?;
    Ok((Adapter::from_file(&file)?, info))
}

fn part(p: &glassbox_lora::Part) -> LoraPart {
    LoraPart { ty: p.ty, rows: p.rows, cols: p.cols, bytes: p.bytes.clone().into() }
}

impl Engine {
    /// Attach `adapter` (its file's verified `sha256`) at `user_scale` — each pair scaled by
    /// `user_scale × alpha / rank`, as llama.cpp — after checking it against this model
    /// (architecture, every target present with the pair's shape; `base_name` names the model in
    /// errors). Returns the adapter's index, for [`Engine::set_active_adapters`].
    pub fn attach_adapter(&mut self, adapter: &Adapter, sha256: &str, user_scale: f32, base_name: &str) -> Result<usize> {
        if !user_scale.is_finite() {
            return Err(crate::Error::Other(format!("adapter {}: scale {user_scale} is not finite", adapter.path.display())));
        }
        adapter.check_base(self.model.file().gguf(), base_name)?;
        let tensors: Vec<LoraTensor> = adapter
            .pairs
            .iter()
            .map(|p| LoraTensor { target: p.target.clone(), a: part(&p.a), b: part(&p.b), scale: adapter.scale(p, user_scale) })
            .collect();
        let id = self.model.add_adapter(&tensors)?;
        self.adapters.push(Attached { path: adapter.path.clone(), sha256: sha256.to_string(), scale: user_scale, alpha: adapter.alpha, pairs: adapter.pairs.len() });
        Ok(id)
    }

    /// Detach adapter `id` (from [`Engine::attach_adapter`]), freeing its weights; no running
    /// sequence may still use it (the scheduler's [`crate::Control::Detach`] waits for that).
    pub fn detach_adapter(&mut self, id: usize) -> Result<()> {
        self.model.remove_adapter(id)?;
        if let Some(a) = self.adapters.get_mut(id) {
            a.pairs = 0;
        }
        Ok(())
    }

    /// The adapters every sequence uses, in order (indices from [`Engine::attach_adapter`]).
    pub fn set_active_adapters(&mut self, ids: &[usize]) -> Result<()> {
        Ok(self.model.set_active_adapters(ids)?)
    }

    /// The adapters every sequence uses.
    pub fn active_adapters(&self) -> impl Iterator<Item = &Attached> {
        self.model.active_adapters().iter().filter_map(|&i| self.adapters.get(i))
    }
}
