use crate::{Config, Error, Result};

/// The key/value cache of one sequence, in f16 (as llama.cpp stores it), sized by the
/// requested context rather than the model's maximum.
pub struct KvCache {
    pub(crate) capacity: usize,
    pub(crate) len: usize,
    pub(crate) kv_dim: usize,
    pub(crate) kv_dim_v: usize,
    /// Per layer: `capacity × kv_dim` f16 bits.
    pub(crate) k: Vec<Vec<u16>>,
    pub(crate) v: Vec<Vec<u16>>,
}

impl KvCache {
    pub fn new(cfg: &Config, capacity: usize) -> KvCache {
        let kv_dim = cfg.n_head_kv * cfg.head_dim;
        let kv_dim_v = cfg.n_head_kv * cfg.head_dim_v;
        KvCache {
            capacity,
            len: 0,
            kv_dim,
            kv_dim_v,
            k: (0..cfg.n_layers).map(|_| vec![0u16; capacity * kv_dim]).collect(),
            v: (0..cfg.n_layers).map(|_| vec![0u16; capacity * kv_dim_v]).collect(),
        }
    }
    /// Tokens currently cached (= the position of the next token).
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    /// Forget everything from position `len` on (e.g. to reuse a shared prompt prefix).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
    pub fn clear(&mut self) {
        self.len = 0;
    }
    /// Bytes held by this cache.
    pub fn bytes(&self) -> usize {
        (self.k.iter().map(Vec::len).sum::<usize>() + self.v.iter().map(Vec::len).sum::<usize>()) * 2
    }
    pub(crate) fn check(&self, cfg: &Config, new: usize) -> Result<()> {
        if self.k.len() != cfg.n_layers || self.kv_dim != cfg.n_head_kv * cfg.head_dim || self.kv_dim_v != cfg.n_head_kv * cfg.head_dim_v {
            return Err(Error::CacheMismatch(format!(
                "cache has {} layers of width {}, model {} of width {}",
                self.k.len(), self.kv_dim, cfg.n_layers, cfg.n_head_kv * cfg.head_dim
            )));
        }
        if self.len + new > self.capacity {
            return Err(Error::ContextFull { used: self.len, new, capacity: self.capacity });
        }
        Ok(())
    }
}
