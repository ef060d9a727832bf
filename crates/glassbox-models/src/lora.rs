//! LoRA adapters applied without merging. After an adapted matrix's product, each token row
//! whose sequence uses an adapter gets s·B(A·x) added (before any bias, as llama.cpp's
//! `build_lora_mm`): A and B are multiplied by the same kernels as the base weights — F16 ones
//! widened to F32 with their inputs rounded to f16, which is what ggml's F16 product computes. Several adapters
//! add up, in the order they were attached. An adapter is attached once to the model
//! ([`Model::add_adapter`]) and then used by every sequence ([`Model::set_active_adapters`]) or
//! by the sequences whose cache names it ([`KvCache::set_adapter`]), so sequences using
//! different adapters share one batch and one pass over the base weights.

use std::sync::Arc;

use glassbox_kernels::{ActBuf, Isa, MatmulJob, QType, ThreadPool, matmul_many};

use crate::weights::Mat;
use crate::{Error, KvCache, Model, Result};

/// One matrix of an adapter's pair, as stored: `rows` × `cols` values of type `ty`.
#[derive(Clone, Debug)]
pub struct LoraPart {
    pub ty: QType,
    pub rows: usize,
    pub cols: usize,
    pub bytes: Arc<[u8]>,
}

/// A low-rank update of the base tensor `target` (e.g. `blk.3.attn_q.weight`): ΔW = scale·B·A,
/// A `rank` × in, B out × `rank`.
#[derive(Clone, Debug)]
pub struct LoraTensor {
    pub target: String,
    pub a: LoraPart,
    pub b: LoraPart,
    pub scale: f32,
}

/// The matrices of a block an adapter can update, in [`SLOTS`] order.
pub(crate) const SLOTS: [&str; 7] = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];
pub(crate) const Q: usize = 0;
pub(crate) const K: usize = 1;
pub(crate) const V: usize = 2;
pub(crate) const O: usize = 3;
pub(crate) const GATE: usize = 4;
pub(crate) const UP: usize = 5;
pub(crate) const DOWN: usize = 6;

/// How B·t is computed.
enum BProduct {
    /// B transposed (rank rows of `out`), when B is F32 or F16: B·t becomes `rank` scaled row
    /// additions, far cheaper than `out` dot products of length `rank`.
    Rows(Vec<f32>),
    /// Any other type: the kernels' product.
    Kernel(Mat),
}

pub(crate) struct LoraMat {
    a: Mat,
    b: BProduct,
    /// Rows of B (the adapted matrix's outputs) and the rank.
    out: usize,
    rank: usize,
    scale: f32,
    /// A and B were F16, held as F32: their inputs are rounded to f16 first, as ggml's F16
    /// product rounds them (f16 × f16 products are exact in f32, so the F32 kernel then computes
    /// what ggml's does, up to the order of the sums).
    a_f16: bool,
    b_f16: bool,
}

/// An attached adapter: per layer, per slot, its update if it has one.
pub(crate) struct AdapterWeights {
    layers: Vec<[Option<LoraMat>; 7]>,
}

/// Buffers for the low-rank products (allocation-free steady state).
#[derive(Default)]
pub struct LoraScratch {
    acts: ActBuf,
    xg: Vec<f32>,
    t: Vec<f32>,
    z: Vec<f32>,
    /// Per attached adapter, the token rows of the batch that use it (all of them, in order,
    /// for an adapter every sequence uses).
    pub(crate) rows: Vec<Vec<usize>>,
    /// A one-thread pool (runs inline): small low-rank products cost less than waking threads.
    inline: Option<ThreadPool>,
}

/// Multiply-adds of one adapted product below which it runs on the calling thread alone.
const INLINE_MACS: usize = 1 << 22;

/// The part as a matrix the kernels multiply: F16 widened to F32 (the SIMD F32 kernel; see
/// [`LoraMat`]), every other type as stored. Returns whether it was F16.
fn part_mat(p: &LoraPart, what: &str) -> Result<(Mat, bool)> {
    let rb = p.ty.row_bytes(p.cols).ok_or_else(|| Error::Lora(format!("{what}: rows of {} do not fit {}", p.cols, p.ty.name())))?;
    if rb.checked_mul(p.rows) != Some(p.bytes.len()) || p.rows == 0 {
        return Err(Error::Lora(format!("{what}: {} bytes for {} × {} {}", p.bytes.len(), p.rows, p.cols, p.ty.name())));
    }
    if p.ty == QType::F16 {
        let mut row = vec![0f32; p.cols];
        let mut f = Vec::with_capacity(p.rows * p.cols * 4);
        for src in p.bytes.chunks_exact(rb) {
            glassbox_kernels::dequantize_row(QType::F16, src, &mut row);
            f.extend(row.iter().flat_map(|v| v.to_le_bytes()));
        }
        return Ok((Mat { ty: QType::F32, rows: p.rows, cols: p.cols, range: 0..0, packed: None, owned: Some(f.into()) }, true));
    }
    Ok((Mat { ty: p.ty, rows: p.rows, cols: p.cols, range: 0..0, packed: None, owned: Some(p.bytes.clone()) }, false))
}

impl Model {
    /// Attach an adapter (its tensors checked against this model's matrices); returns its
    /// index for [`Model::set_active_adapters`] and [`KvCache::set_adapter`].
    pub fn add_adapter(&mut self, tensors: &[LoraTensor]) -> Result<usize> {
        let mut layers: Vec<[Option<LoraMat>; 7]> = (0..self.layers.len()).map(|_| Default::default()).collect();
        for t in tensors {
            let bad = |m: String| Error::Lora(format!("{}: {m}", t.target));
            let (il, slot) = target_slot(&t.target).ok_or_else(|| bad("not a matrix an adapter can update".into()))?;
            let layer = self.layers.get(il).ok_or_else(|| bad(format!("the model has {} layers", self.layers.len())))?;
            let base = [&layer.wq, &layer.wk, &layer.wv, &layer.wo, &layer.w_gate, &layer.w_up, &layer.w_down][slot];
            if t.a.cols != base.cols || t.b.rows != base.rows || t.a.rows != t.b.cols {
                return Err(bad(format!("A {} × {} and B {} × {} do not update a {} × {} matrix", t.a.rows, t.a.cols, t.b.rows, t.b.cols, base.rows, base.cols)));
            }
            if !t.scale.is_finite() {
                return Err(bad(format!("scale {} is not finite", t.scale)));
            }
            if layers[il][slot].is_some() {
                return Err(bad("updated twice by one adapter".into()));
            }
            let (a, a_f16) = part_mat(&t.a, &format!("{}.lora_a", t.target))?;
            let (b, b_f16) = part_mat(&t.b, &format!("{}.lora_b", t.target))?;
            let (out, rank) = (b.rows, b.cols);
            let b = if b.ty == QType::F32 {
                let v: Vec<f32> = b.owned.as_deref().unwrap_or(&[]).chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                BProduct::Rows((0..rank * out).map(|k| v[(k % out) * rank + k / out]).collect())
            } else {
                BProduct::Kernel(b)
            };
            layers[il][slot] = Some(LoraMat { a, b, out, rank, scale: t.scale, a_f16, b_f16 });
        }
        self.adapters.push(AdapterWeights { layers });
        Ok(self.adapters.len() - 1)
    }

    /// Adapters applied to every sequence, in this order (besides each sequence's own).
    pub fn set_active_adapters(&mut self, ids: &[usize]) -> Result<()> {
        if let Some(&bad) = ids.iter().find(|&&i| i >= self.adapters.len()) {
            return Err(Error::Lora(format!("no adapter {bad} (attached: {})", self.adapters.len())));
        }
        self.active = ids.to_vec();
        Ok(())
    }

    /// The adapters every sequence uses, in order.
    pub fn active_adapters(&self) -> &[usize] {
        &self.active
    }

    /// Which token rows use which adapter, for a batch whose sequences have the given caches and
    /// token counts. Refuses a cache naming an adapter this model does not have.
    pub(crate) fn lora_rows<'a>(&self, seqs: impl Iterator<Item = (&'a KvCache, usize)>, out: &mut Vec<Vec<usize>>) -> Result<()> {
        out.resize_with(self.adapters.len(), Vec::new);
        out.iter_mut().for_each(Vec::clear);
        let mut t0 = 0;
        for (cache, n) in seqs {
            for &a in &self.active {
                out[a].extend(t0..t0 + n);
            }
            if let Some(a) = cache.adapter {
                let rows = out.get_mut(a).ok_or_else(|| Error::Lora(format!("a sequence uses adapter {a}; {} are attached", self.adapters.len())))?;
                if !self.active.contains(&a) {
                    rows.extend(t0..t0 + n);
                }
            }
            t0 += n;
        }
        Ok(())
    }

    /// y += s·B(A·x) for slot `slot` of layer `il`, for the token rows each adapter covers
    /// (`x`: token rows of `cols`; `y`: token rows of the base matrix's outputs).
    #[allow(clippy::too_many_arguments)] // the product's place (layer, slot), its input and output, and the buffers
    pub(crate) fn apply_loras(&self, pool: &ThreadPool, isa: Isa, il: usize, slot: usize, x: &[f32], cols: usize, y: &mut [f32], ls: &mut LoraScratch) {
        for (ad, rows) in self.adapters.iter().zip(&ls.rows) {
            let Some(m) = &ad.layers[il][slot] else { continue };
            if rows.is_empty() {
                continue;
            }
            let (n, all) = (rows.len(), rows.len() == x.len() / cols);
            let xs: &[f32] = if all && !m.a_f16 {
                x
            } else {
                ls.xg.clear();
                if all {
                    ls.xg.extend_from_slice(x);
                } else {
                    rows.iter().for_each(|&t| ls.xg.extend_from_slice(&x[t * cols..(t + 1) * cols]));
                }
                if m.a_f16 {
                    glassbox_kernels::ops::round_to_f16_inplace(isa, &mut ls.xg);
                }
                &ls.xg
            };
            let (rank, out) = (m.rank, m.out);
            let inline = ls.inline.get_or_insert_with(|| ThreadPool::new(1));
            let pool = if rank * (cols + out) * n < INLINE_MACS { &*inline } else { pool };
            ls.t.clear();
            ls.t.resize(n * rank, 0.0);
            ls.acts.fill(isa, m.a.ty.act_format(), xs, cols);
            matmul_many(pool, isa, &mut [MatmulJob { w: self.w(&m.a), x: &ls.acts, y: &mut ls.t }]);
            if m.b_f16 {
                glassbox_kernels::ops::round_to_f16_inplace(isa, &mut ls.t);
            }
            match &m.b {
                BProduct::Rows(bt) => {
                    // y += Σ_r (s·t_r)·Bᵀ[r]: one pass per rank over each token's output row.
                    for (i, t) in ls.t.chunks_exact(rank).enumerate() {
                        let row = if all { i } else { rows[i] };
                        let y = &mut y[row * out..(row + 1) * out];
                        for (&tr, b) in t.iter().zip(bt.chunks_exact(out)) {
                            let c = m.scale * tr;
                            y.iter_mut().zip(b).for_each(|(y, &b)| *y += c * b);
                        }
                    }
                }
                BProduct::Kernel(b) => {
                    ls.z.clear();
                    ls.z.resize(n * out, 0.0);
                    ls.acts.fill(isa, b.ty.act_format(), &ls.t, rank);
                    matmul_many(pool, isa, &mut [MatmulJob { w: self.w(b), x: &ls.acts, y: &mut ls.z }]);
                    for (i, z) in ls.z.chunks_exact(out).enumerate() {
                        let t = if all { i } else { rows[i] };
                        y[t * out..(t + 1) * out].iter_mut().zip(z).for_each(|(y, &z)| *y += m.scale * z);
                    }
                }
            }
        }
    }
}

/// `blk.N.<slot>.weight` → (N, slot index).
fn target_slot(target: &str) -> Option<(usize, usize)> {
    let rest = target.strip_prefix("blk.")?;
    let (layer, tail) = rest.split_once('.')?;
    let il = layer.parse().ok()?;
    let slot = SLOTS.iter().position(|s| tail.strip_prefix(s) == Some(".weight"))?;
    Some((il, slot))
}

impl KvCache {
    /// The adapter (an index from [`Model::add_adapter`]) this sequence uses besides the ones
    /// every sequence uses; `None` for none. Its K/V entries depend on it: set it before the
    /// first token.
    pub fn set_adapter(&mut self, adapter: Option<usize>) {
        self.adapter = adapter;
    }

    pub fn adapter(&self) -> Option<usize> {
        self.adapter
    }
}
