//! LoRA adapters applied without merging. After an adapted matrix's product, each token row
//! whose sequence uses an adapter gets s·B(A·x) added (before any bias, as llama.cpp's
//! `build_lora_mm`). F16 and F32 parts are multiplied with llama.cpp's own arithmetic
//! (`glassbox_kernels::lowrank`: tinyBLAS's lane order, inputs of F16 parts rounded to f16, A·x
//! rounded to f16 before an F16 B, B·t summed as ggml sums it), so an adapter adds no divergence of
//! its own; parts of other types go through the kernels the base weights use. Several adapters
//! add up, in the order they were attached. An adapter is attached once to the model
//! ([`Model::add_adapter`]) and then used by every sequence ([`Model::set_active_adapters`]) or
//! by the sequences whose cache names it ([`KvCache::set_adapter`]), so sequences using
//! different adapters share one batch and one pass over the base weights.

use std::sync::Arc;

use glassbox_kernels::{ActBuf, Isa, MatmulJob, QType, ThreadPool, lowrank, matmul_many};

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

/// A part of an F16 or F32 adapter, kept as stored (B transposed: rank rows of `out`).
enum Lanes {
    F16(Arc<[u8]>),
    F32(Vec<f32>),
}

impl Lanes {
    fn part(&self) -> lowrank::Part<'_> {
        match self {
            Lanes::F16(b) => lowrank::Part::F16(b),
            Lanes::F32(v) => lowrank::Part::F32(v),
        }
    }

    fn is_f16(&self) -> bool {
        matches!(self, Lanes::F16(_))
    }
}

/// How one side of the low-rank product is computed.
enum Side {
    /// F16 / F32: llama.cpp's arithmetic (`lowrank`).
    Lanes(Lanes),
    /// Any other type: the kernels' product, as ggml multiplies such a matrix.
    Kernel(Mat),
}

pub(crate) struct LoraMat {
    a: Side,
    /// B as stored for the kernels, or transposed for `lowrank`.
    b: Side,
    /// Rows of B (the adapted matrix's outputs) and the rank.
    out: usize,
    rank: usize,
    scale: f32,
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

/// Multiply-adds of one side of an adapted product below which it runs on the calling thread.
const INLINE_MACS: usize = 1 << 14;

/// The part for `lowrank` when it is F16 or F32 (`transpose`: B, kept as rank rows of `out`),
/// else as a matrix the kernels multiply.
fn side(p: &LoraPart, what: &str, transpose: bool) -> Result<Side> {
    let rb = p.ty.row_bytes(p.cols).ok_or_else(|| Error::Lora(format!("{what}: rows of {} do not fit {}", p.cols, p.ty.name())))?;
    if rb.checked_mul(p.rows) != Some(p.bytes.len()) || p.rows == 0 {
        return Err(Error::Lora(format!("{what}: {} bytes for {} × {} {}", p.bytes.len(), p.rows, p.cols, p.ty.name())));
    }
    let (rows, cols, b) = (p.rows, p.cols, &p.bytes);
    Ok(match p.ty {
        QType::F16 if !transpose => Side::Lanes(Lanes::F16(b.clone())),
        QType::F16 => Side::Lanes(Lanes::F16((0..rows * cols).flat_map(|k| { let e = (k % rows) * cols + k / rows; [b[2 * e], b[2 * e + 1]] }).collect())),
        QType::F32 => {
            let v: Vec<f32> = b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            Side::Lanes(Lanes::F32(if transpose { (0..rows * cols).map(|k| v[(k % rows) * cols + k / rows]).collect() } else { v }))
        }
        _ => Side::Kernel(Mat { ty: p.ty, rows, cols, range: 0..0, packed: None, owned: Some(b.clone()) }),
    })
}

/// Walk the slots `range` of a row-major array with rows of `width` (`part` holds exactly those
/// slots) in runs that stay within one row: `f(row, c0, c1, the run's slots)`.
/// What `runs` calls per run: (first row, row offset, count, the run's output rows).
type RunFn<'a> = dyn FnMut(usize, usize, usize, &mut [f32]) + 'a;

fn runs(range: std::ops::Range<usize>, width: usize, part: &mut [f32], f: &mut RunFn) {
    let (mut k, mut rest) = (range.start, part);
    while k < range.end {
        let (i, c0) = (k / width, k % width);
        let c1 = width.min(c0 + (range.end - k));
        let (now, r) = rest.split_at_mut(c1 - c0);
        f(i, c0, c1, now);
        rest = r;
        k += c1 - c0;
    }
}

/// `f(range, part)` for contiguous parts of `data` over the pool's threads (the calling thread
/// alone for small work).
fn par_parts(pool: &ThreadPool, data: &mut [f32], f: &(dyn Fn(std::ops::Range<usize>, &mut [f32]) + Sync)) {
    let nt = pool.n_threads().max(1);
    if nt == 1 || data.len() < 2 {
        return f(0..data.len(), data);
    }
    let per = data.len().div_ceil(nt);
    let parts: Vec<std::sync::Mutex<(usize, &mut [f32])>> = data.chunks_mut(per).enumerate().map(|(k, c)| std::sync::Mutex::new((k * per, c))).collect();
    pool.run(&|tid| {
        if let Some(p) = parts.get(tid) {
            let mut g = p.lock().unwrap_or_else(|e| e.into_inner());
            let (start, part) = &mut *g;
            let n = part.len();
            f(*start..*start + n, part);
        }
    });
}

impl Model {
    /// Attach an adapter (its tensors checked against this model's matrices); returns its
    /// index for [`Model::set_active_adapters`] and [`KvCache::set_adapter`].
    pub fn add_adapter(&mut self, tensors: &[LoraTensor]) -> Result<usize> {
        if self.config.mla.is_some() || self.config.moe.is_some() {
            // Their q/k/v are latent projections and their FFNs experts: an adapter's targets
            // would not mean what they say.
            return Err(Error::Lora(format!("adapters on {} (latent attention, experts) are not implemented", self.config.arch.name())));
        }
        if self.config.arch == crate::Arch::Phi3 {
            // Its Q/K/V and gate/up are views of fused tensors: an adapter of the fused tensor is
            // not split here yet.
            return Err(Error::Lora("adapters on phi3 (fused QKV and gate/up projections) are not implemented".into()));
        }
        let mut layers: Vec<[Option<LoraMat>; 7]> = (0..self.layers.len()).map(|_| Default::default()).collect();
        for t in tensors {
            let bad = |m: String| Error::Lora(format!("{}: {m}", t.target));
            let (il, slot) = target_slot(&t.target).ok_or_else(|| bad("not a matrix an adapter can update".into()))?;
            let layer = self.layers.get(il).ok_or_else(|| bad(format!("the model has {} layers", self.layers.len())))?;
            let base = [Some(&layer.wq), Some(&layer.wk), layer.wv.as_ref(), Some(&layer.wo), layer.w_gate.as_ref(), layer.w_up.as_ref(), layer.w_down.as_ref()][slot]
                .ok_or_else(|| bad("this model's FFN has no gate".into()))?;
            if t.a.cols != base.cols || t.b.rows != base.rows || t.a.rows != t.b.cols {
                return Err(bad(format!("A {} × {} and B {} × {} do not update a {} × {} matrix", t.a.rows, t.a.cols, t.b.rows, t.b.cols, base.rows, base.cols)));
            }
            if !t.scale.is_finite() {
                return Err(bad(format!("scale {} is not finite", t.scale)));
            }
            if layers[il][slot].is_some() {
                return Err(bad("updated twice by one adapter".into()));
            }
            let a = side(&t.a, &format!("{}.lora_a", t.target), false)?;
            let b = side(&t.b, &format!("{}.lora_b", t.target), true)?;
            layers[il][slot] = Some(LoraMat { a, b, out: t.b.rows, rank: t.b.cols, scale: t.scale });
        }
        self.adapters.push(AdapterWeights { layers });
        Ok(self.adapters.len() - 1)
    }

    /// Free an attached adapter's weights (its index stays taken, so other indices keep their
    /// meaning). Refused while every sequence uses it; a sequence whose cache names it must be
    /// gone first (the scheduler waits for that).
    pub fn remove_adapter(&mut self, id: usize) -> Result<()> {
        if self.active.contains(&id) {
            return Err(Error::Lora(format!("adapter {id} is applied to every sequence and cannot be removed")));
        }
        let ad = self.adapters.get_mut(id).ok_or_else(|| Error::Lora(format!("no adapter {id}")))?;
        ad.layers = Vec::new();
        Ok(())
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
            let Some(m) = ad.layers.get(il).and_then(|l| l[slot].as_ref()) else { continue };
            if rows.is_empty() {
                continue;
            }
            let (n, all) = (rows.len(), rows.len() == x.len() / cols);
            let round_x = matches!(&m.a, Side::Lanes(l) if l.is_f16());
            let xs: &[f32] = if all && !round_x {
                x
            } else {
                ls.xg.clear();
                if all {
                    ls.xg.extend_from_slice(x);
                } else {
                    rows.iter().for_each(|&t| ls.xg.extend_from_slice(&x[t * cols..(t + 1) * cols]));
                }
                if round_x {
                    glassbox_kernels::ops::round_to_f16_inplace(isa, &mut ls.xg);
                }
                &ls.xg
            };
            let (rank, out) = (m.rank, m.out);
            let inline = ls.inline.get_or_insert_with(|| ThreadPool::new(1));
            let pick = |macs: usize| if macs < INLINE_MACS { &*inline } else { pool };
            ls.t.clear();
            ls.t.resize(n * rank, 0.0);
            match &m.a {
                Side::Lanes(a) => {
                    let a = a.part();
                    par_parts(pick(n * rank * cols), &mut ls.t, &|range, t| {
                        runs(range, rank, t, &mut |i, r0, r1, now| lowrank::a_product(isa, a.rows(r0, r1, cols), r1 - r0, cols, &xs[i * cols..(i + 1) * cols], now));
                    });
                }
                Side::Kernel(a) => {
                    ls.acts.fill(isa, a.ty.act_format(), xs, cols);
                    matmul_many(pick(n * rank * cols), isa, &mut [MatmulJob { w: self.w(a), x: &ls.acts, y: &mut ls.t }]);
                }
            }
            ls.z.clear();
            ls.z.resize(n * out, 0.0);
            match &m.b {
                Side::Lanes(bt) => {
                    if bt.is_f16() {
                        glassbox_kernels::ops::round_to_f16_inplace(isa, &mut ls.t);
                    }
                    let (bt, t) = (bt.part(), &ls.t);
                    par_parts(pick(n * rank * out), &mut ls.z, &|range, z| {
                        runs(range, out, z, &mut |i, o0, _, now| lowrank::b_product(isa, bt, rank, out, &t[i * rank..(i + 1) * rank], o0, now));
                    });
                }
                Side::Kernel(b) => {
                    ls.acts.fill(isa, b.ty.act_format(), &ls.t, rank);
                    matmul_many(pick(n * rank * out), isa, &mut [MatmulJob { w: self.w(b), x: &ls.acts, y: &mut ls.z }]);
                }
            }
            // ggml: (B·t) scaled, then added to the base product.
            for (i, z) in ls.z.chunks_exact(out).enumerate() {
                let t = if all { i } else { rows[i] };
                y[t * out..(t + 1) * out].iter_mut().zip(z).for_each(|(y, &z)| *y += z * m.scale);
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
