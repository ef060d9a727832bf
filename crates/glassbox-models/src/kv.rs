use glassbox_kernels::{CacheRows, Isa, Q8_0_BLOCK, ops, quantize_row_q8_0};

use crate::{Config, Error, Result};

/// How a cache stores K or V rows, as llama.cpp's `--cache-type-k` / `--cache-type-v`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KvType {
    /// f16, as llama.cpp stores it by default.
    #[default]
    F16,
    /// ggml `block_q8_0`: 34 bytes per 32 values (47 % smaller than f16).
    Q8_0,
    /// f32, twice f16's size: llama.cpp's exact path (`-ctk f32 -ctv f32`), nothing rounded
    /// in attention (Q, K, V and the softmax stay f32) — for fidelity checks.
    F32,
}

impl KvType {
    pub fn name(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::Q8_0 => "q8_0",
            KvType::F32 => "f32",
        }
    }
    /// Parse a name as llama.cpp writes it (`f16`, `q8_0`, `f32`; ASCII case ignored).
    pub fn from_name(s: &str) -> Option<KvType> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f16" => Some(KvType::F16),
            "q8_0" => Some(KvType::Q8_0),
            "f32" => Some(KvType::F32),
            _ => None,
        }
    }
}

/// One layer's K or V rows.
pub(crate) enum Rows {
    F16(Vec<u16>),
    Q8_0(Vec<u8>),
    F32(Vec<f32>),
}

impl Rows {
    fn new(ty: KvType, elems: usize) -> Rows {
        match ty {
            KvType::F16 => Rows::F16(vec![0; elems]),
            KvType::Q8_0 => Rows::Q8_0(vec![0; elems / 32 * Q8_0_BLOCK]),
            KvType::F32 => Rows::F32(vec![0.0; elems]),
        }
    }
    fn bytes(&self) -> usize {
        match self {
            Rows::F16(v) => v.len() * 2,
            Rows::Q8_0(v) => v.len(),
            Rows::F32(v) => v.len() * 4,
        }
    }
    /// Row `pos` (`x.len()` values wide) := `x`, in this storage.
    pub(crate) fn write(&mut self, isa: Isa, pos: usize, x: &[f32]) {
        let w = x.len();
        match self {
            Rows::F16(v) => ops::f32_to_f16(isa, x, &mut v[pos * w..(pos + 1) * w]),
            Rows::Q8_0(v) => quantize_row_q8_0(x, &mut v[pos * w / 32 * Q8_0_BLOCK..(pos + 1) * w / 32 * Q8_0_BLOCK]),
            Rows::F32(v) => v[pos * w..(pos + 1) * w].copy_from_slice(x),
        }
    }
    /// The first `elems` values := `src`'s (same storage type; checked by the caller).
    fn copy_prefix(&mut self, src: &Rows, elems: usize) {
        match (self, src) {
            (Rows::F16(d), Rows::F16(s)) => d[..elems].copy_from_slice(&s[..elems]),
            (Rows::F32(d), Rows::F32(s)) => d[..elems].copy_from_slice(&s[..elems]),
            (Rows::Q8_0(d), Rows::Q8_0(s)) => {
                let n = elems / 32 * Q8_0_BLOCK;
                d[..n].copy_from_slice(&s[..n])
            }
            _ => unreachable!("storage types are checked equal before copying"),
        }
    }
    pub(crate) fn view(&self) -> CacheRows<'_> {
        match self {
            Rows::F16(v) => CacheRows::F16(v),
            Rows::Q8_0(v) => CacheRows::Q8_0(v),
            Rows::F32(v) => CacheRows::F32(v),
        }
    }
}

/// The key/value cache of one sequence, in f16 (as llama.cpp stores it) or q8_0 as the model's
/// [`Config::cache_k`] / [`Config::cache_v`] say, sized by the requested context rather than the
/// model's maximum.
pub struct KvCache {
    pub(crate) capacity: usize,
    pub(crate) len: usize,
    pub(crate) kv_dim: usize,
    pub(crate) kv_dim_v: usize,
    pub(crate) types: (KvType, KvType),
    /// Per layer: `capacity × kv_dim` values.
    pub(crate) k: Vec<Rows>,
    pub(crate) v: Vec<Rows>,
    /// The LoRA adapter this sequence uses besides the model's active ones (lora.rs).
    pub(crate) adapter: Option<usize>,
}

impl KvCache {
    pub fn new(cfg: &Config, capacity: usize) -> KvCache {
        let (kv_dim, kv_dim_v) = cfg.kv_widths();
        KvCache {
            capacity,
            len: 0,
            kv_dim,
            kv_dim_v,
            types: (cfg.cache_k, cfg.cache_v),
            k: (0..cfg.n_layers).map(|_| Rows::new(cfg.cache_k, capacity * kv_dim)).collect(),
            v: (0..cfg.n_layers).map(|_| Rows::new(cfg.cache_v, capacity * kv_dim_v)).collect(),
            adapter: None,
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
    /// Make this cache hold `src`'s first `len` positions (a shared prompt prefix computed once,
    /// continued several ways). Fails when the layouts differ or `len` is more than `src` holds
    /// or this cache can take; on error nothing is changed.
    pub fn copy_prefix_from(&mut self, src: &KvCache, len: usize) -> Result<()> {
        if self.types != src.types || self.k.len() != src.k.len() || self.kv_dim != src.kv_dim || self.kv_dim_v != src.kv_dim_v {
            return Err(Error::CacheMismatch("caches of different layouts cannot share a prefix".into()));
        }
        if len > src.len || len > self.capacity {
            return Err(Error::ContextFull { used: 0, new: len, capacity: self.capacity.min(src.len) });
        }
        for (dst, s) in self.k.iter_mut().zip(&src.k) {
            dst.copy_prefix(s, len * self.kv_dim);
        }
        for (dst, s) in self.v.iter_mut().zip(&src.v) {
            dst.copy_prefix(s, len * self.kv_dim_v);
        }
        self.len = len;
        Ok(())
    }
    /// Bytes held by this cache.
    pub fn bytes(&self) -> usize {
        self.k.iter().chain(&self.v).map(Rows::bytes).sum()
    }
    pub(crate) fn check(&self, cfg: &Config, new: usize) -> Result<()> {
        if self.types != (cfg.cache_k, cfg.cache_v) {
            return Err(Error::CacheMismatch(format!(
                "cache stores K/V as {}/{}, the model is set to {}/{}",
                self.types.0.name(), self.types.1.name(), cfg.cache_k.name(), cfg.cache_v.name()
            )));
        }
        if self.k.len() != cfg.n_layers || (self.kv_dim, self.kv_dim_v) != cfg.kv_widths() {
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
