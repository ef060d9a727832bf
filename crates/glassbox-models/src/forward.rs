//! The batched forward pass: all tokens of all sequences go through each matmul together;
//! attention runs per (tile of one sequence's tokens, KV head) against that sequence's cache.

use glassbox_kernels::ops::{self, layer_norm, rms_norm, rms_norm_inplace};
use glassbox_kernels::{ActBuf, ActFormat, AttnHead, Isa, MatmulJob, ThreadPool, attend, dequantize_row, matmul_many};

use crate::lora::{self, LoraScratch};
use crate::steer::Steering;
use crate::weights::{Layer, Mat};
use crate::{Error, KvCache, Model, Result};

/// Which logits a sequence wants from this step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    None,
    Last,
    All,
    /// Every token's from this index within the sequence's new tokens on.
    From(usize),
}

/// One sequence's share of a forward step: new tokens appended after what its cache holds.
pub struct SeqBatch<'a> {
    pub tokens: &'a [u32],
    pub cache: &'a mut KvCache,
    pub logits: Logits,
}

/// Reusable buffers (allocation-free steady state).
#[derive(Default)]
pub struct Scratch {
    x: Vec<f32>,
    pub(crate) xn: Vec<f32>,
    pub(crate) q: Vec<f32>,
    pub(crate) k: Vec<f32>,
    v: Vec<f32>,
    pub(crate) attn: Vec<f32>,
    pub(crate) o: Vec<f32>,
    /// The attention branch's output, held while the FFN reads the same input (parallel residual).
    par: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    pub(crate) acts: [ActBuf; 4],
    scores: Vec<Vec<f32>>,
    /// Per thread: one attention tile's output (tokens × query heads × hdv).
    tile_out: Vec<Vec<f32>>,
    pub(crate) cos: Vec<f32>,
    pub(crate) sin: Vec<f32>,
    /// Output layer (output.rs): dequantized activations, their rounding residuals, and per
    /// thread the residual pass's buffers.
    pub(crate) deq: Vec<f32>,
    pub(crate) resid: Vec<f32>,
    pub(crate) y2: Vec<f32>,
    /// Per row of a chunk, the units of the output matrix its residual pass covers; their
    /// union, as flags and as a list.
    pub(crate) units: Vec<Vec<usize>>,
    pub(crate) union: Vec<bool>,
    pub(crate) union_list: Vec<usize>,
    /// Residual-stream capture: token indices of the batch (flattened, in batch order) whose
    /// hidden state is copied after every layer into `captured` (layer × index × n_embd).
    /// Nothing is captured while it is empty; it changes no computed value.
    pub capture_rows: Vec<usize>,
    pub captured: Vec<f32>,
    /// Run-time residual-stream edits (steer.rs): directional ablation with per-layer
    /// weights and activation addition. Off while empty.
    pub steer: Steering,
    /// LoRA products (lora.rs).
    pub(crate) lora: LoraScratch,
    /// Latent attention's and the experts' buffers (mla.rs, moe.rs).
    pub(crate) mla: crate::mla::MlaScratch,
    pub(crate) moe: crate::moe::MoeScratch,
}

pub(crate) fn fmt_idx(f: ActFormat) -> usize {
    match f {
        ActFormat::F32 => 0,
        ActFormat::F16 => 1,
        ActFormat::Q8 => 2,
        ActFormat::Q8K => 3,
    }
}

/// Quantise `x` once per activation format the given matrices need.
pub(crate) fn prepare(isa: Isa, acts: &mut [ActBuf; 4], mats: &[&Mat], x: &[f32], cols: usize) {
    let mut done = [false; 4];
    for m in mats {
        let f = m.ty.act_format();
        let i = fmt_idx(f);
        if !done[i] {
            acts[i].fill(isa, f, x, cols);
            done[i] = true;
        }
    }
}

/// A raw pointer handed to the pool's threads, each of which touches a disjoint part of what
/// it points to (the users below say which part and why it is in bounds).
#[derive(Clone, Copy)]
struct SyncPtr<T>(*mut T);
// SAFETY: only dereferenced inside `pool.run` on disjoint elements (see each use), while the
// owning buffer is borrowed mutably by the caller for the whole parallel section.
unsafe impl<T> Send for SyncPtr<T> {}
// SAFETY: as for `Send`: shared only to give each thread its own disjoint part.
unsafe impl<T> Sync for SyncPtr<T> {}
impl<T> SyncPtr<T> {
    fn get(&self) -> *mut T {
        self.0
    }
}

/// `f` over matching whole-row chunks of `a` (rows of `wa`) and `b` (rows of `wb`), one chunk
/// per thread: element-wise work that would otherwise keep the other threads waiting. A
/// row's values are the same however the rows are split.
fn par_rows(pool: &ThreadPool, a: &mut [f32], wa: usize, b: &[f32], wb: usize, f: &(dyn Fn(&mut [f32], &[f32]) + Sync)) {
    let rows = a.len() / wa.max(1);
    let nt = pool.n_threads().max(1);
    if nt == 1 || rows < 2 {
        return f(a, b);
    }
    let per = rows.div_ceil(nt);
    let parts: Vec<std::sync::Mutex<(&mut [f32], &[f32])>> =
        a.chunks_mut(per * wa).zip(b.chunks(per * wb)).map(std::sync::Mutex::new).collect();
    pool.run(&|tid| {
        if let Some(p) = parts.get(tid) {
            let mut g = p.lock().unwrap_or_else(|e| e.into_inner());
            let (x, y) = &mut *g;
            f(x, y);
        }
    });
}

/// RMS norm (or, with a bias, layer norm) of every row of `x` (rows of `d`) into `xn`, rows
/// shared out over the threads.
fn norm_rows(pool: &ThreadPool, xn: &mut [f32], x: &[f32], d: usize, w: &[f32], bias: Option<&[f32]>, eps: f32) {
    par_rows(pool, xn, d, x, d, &|xn, x| {
        for (o, i) in xn.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            match bias {
                Some(b) => layer_norm(i, w, b, eps, o),
                None => rms_norm(i, w, eps, o),
            }
        }
    });
}

pub(crate) fn resize(v: &mut Vec<f32>, n: usize) {
    v.clear();
    v.resize(n, 0.0);
}

impl Model {
    /// Run one step for a batch of sequences. Logits are appended to `out` in batch order
    /// (per sequence: nothing, its last token's, or all its tokens'), `n_vocab` values each.
    /// On error nothing is changed (caches keep their length).
    pub fn forward(
        &self,
        pool: &ThreadPool,
        isa: Isa,
        batch: &mut [SeqBatch],
        scratch: &mut Scratch,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        self.forward_scored(pool, isa, batch, scratch, out, &[])
    }

    /// [`Model::forward`], naming for each logits row (in output order; missing or empty:
    /// none) the tokens whose logits the caller will read one by one — a continuation's
    /// tokens being scored. The output layer's residual pass (see `output.rs`) covers them
    /// wherever they rank, as well as the row's head.
    pub fn forward_scored(
        &self,
        pool: &ThreadPool,
        isa: Isa,
        batch: &mut [SeqBatch],
        scratch: &mut Scratch,
        out: &mut Vec<f32>,
        targets: &[&[u32]],
    ) -> Result<()> {
        let c = &self.config;
        for s in batch.iter() {
            s.cache.check(c, s.tokens.len())?;
            if let Some(&id) = s.tokens.iter().find(|&&id| id as usize >= c.n_vocab) {
                return Err(Error::BadToken { id, n_vocab: c.n_vocab });
            }
        }
        self.lora_rows(batch.iter().map(|s| (&*s.cache, s.tokens.len())), &mut scratch.lora.rows)?;
        // Flatten: (sequence index, position) per token.
        let mut toks: Vec<(usize, usize)> = Vec::new();
        for (si, s) in batch.iter().enumerate() {
            toks.extend((0..s.tokens.len()).map(|i| (si, s.cache.len + i)));
        }
        let n = toks.len();
        if n == 0 {
            return Ok(());
        }
        let (d, hd, hdv) = (c.n_embd, c.head_dim, c.head_dim_v);
        let (q_dim, kv_dim, v_dim) = (c.n_head * hd, c.n_head_kv * hd, c.n_head_kv * hdv);
        let sc = scratch;
        resize(&mut sc.x, n * d);
        let emb_scale = if c.spec.embed_scale { (d as f32).sqrt() } else { c.embd_mult };
        let mut ti = 0;
        for s in batch.iter() {
            for &tok in s.tokens {
                let row = &mut sc.x[ti * d..(ti + 1) * d];
                match &self.tok_embd.packed {
                    // Tied to the packed output matrix: same values, bit for bit.
                    Some(p) => p.dequantize_row(tok as usize, row),
                    None => {
                        let embd = self.raw(&self.tok_embd);
                        dequantize_row(embd.ty(), embd.row(tok as usize), row);
                    }
                }
                if emb_scale != 1.0 {
                    row.iter_mut().for_each(|v| *v *= emb_scale);
                }
                if let Some((w, b)) = &self.tok_norm {
                    let raw = row.to_vec();
                    layer_norm(&raw, w, b, c.rms_eps, row);
                }
                ti += 1;
            }
        }
        resize(&mut sc.xn, n * d);
        resize(&mut sc.q, n * q_dim);
        resize(&mut sc.k, n * kv_dim);
        resize(&mut sc.v, n * v_dim);
        resize(&mut sc.attn, n * c.n_head * hdv);
        resize(&mut sc.o, n * d);
        // One scores and one tile-output buffer per thread; `attend` and `attention` size them.
        sc.scores.resize_with(pool.n_threads(), Vec::new);
        sc.tile_out.resize_with(pool.n_threads(), Vec::new);
        sc.cos.resize(c.n_rot / 2, 0.0);
        sc.sin.resize(c.n_rot / 2, 0.0);
        if !sc.steer.is_empty() {
            sc.steer.check(self.layers.len(), d)?;
        }
        sc.steer.ablate(&mut sc.x, sc.steer.embedding);
        if let Some(&bad) = sc.capture_rows.iter().find(|&&t| t >= n) {
            return Err(Error::Capture(format!("row {bad} of a batch of {n} tokens")));
        }
        resize(&mut sc.captured, self.layers.len() * sc.capture_rows.len() * d);

        for (il, l) in self.layers.iter().enumerate() {
            // --- attention ---
            norm_rows(pool, &mut sc.xn, &sc.x, d, &l.attn_norm, l.attn_norm_b.as_deref(), c.rms_eps);
            let swa = c.swa_layers[il];
            match (&l.mla, &l.wv) {
                (Some(m), _) => self.mla_qk(pool, isa, l, m, &toks, sc),
                (None, Some(wv)) => self.qkv(pool, isa, il, l, wv, &toks, swa, sc),
                (None, None) => unreachable!("a layer without V is a latent-attention layer"),
            }
            // Store K and V (f16 or q8_0, as the cache holds them) at each token's position.
            for (t, &(si, pos)) in toks.iter().enumerate() {
                let cache = &mut *batch[si].cache;
                cache.k[il].write(isa, pos, &sc.k[t * kv_dim..(t + 1) * kv_dim]);
                if l.mla.is_none() {
                    cache.v[il].write(isa, pos, &sc.v[t * v_dim..(t + 1) * v_dim]);
                }
            }
            if c.q_mult != 1.0 {
                sc.q.iter_mut().for_each(|v| *v *= c.q_mult);
            }
            // Q rounded through f16, as llama.cpp does before its f16 K·Q product (not over an
            // f32 cache: its exact path).
            if c.cache_k != crate::KvType::F32 {
                ops::round_to_f16_inplace(isa, &mut sc.q);
            }
            if l.mla.is_some() {
                // The previous layer's values left the compressed space (another width).
                resize(&mut sc.attn, n * c.n_head * hdv);
            }
            self.attention(pool, isa, batch, &toks, il, swa, sc);
            if let Some(m) = &l.mla {
                self.mla_values(pool, isa, m, sc);
            }
            // --- output projection + residual ---
            prepare(isa, &mut sc.acts, &[&l.wo], &sc.attn, l.wo.cols);
            matmul_many(pool, isa, &mut [MatmulJob {
                w: self.w(&l.wo),
                x: &sc.acts[fmt_idx(l.wo.ty.act_format())],
                y: &mut sc.o,
            }]);
            if !self.adapters.is_empty() {
                self.apply_loras(pool, isa, il, lora::O, &sc.attn, l.wo.cols, &mut sc.o, &mut sc.lora);
            }
            add_bias(&mut sc.o, l.bo.as_deref());
            if !sc.steer.r.is_empty() {
                sc.steer.ablate(&mut sc.o, sc.steer.attn[il]);
            }
            if let Some(w) = &l.attn_post_norm {
                for t in 0..n {
                    rms_norm_inplace(&mut sc.o[t * d..(t + 1) * d], w, c.rms_eps);
                }
            }
            if c.parallel_residual.is_some() {
                // x + attn(ln1(x)) + ffn(ln2(x)): the FFN reads the same x; added below.
                std::mem::swap(&mut sc.o, &mut sc.par);
                resize(&mut sc.o, n * d);
            } else {
                residual_add(pool, &mut sc.x, &sc.o, d, c.residual_mult);
            }
            // --- feed-forward ---
            norm_rows(pool, &mut sc.xn, &sc.x, d, &l.ffn_norm, l.ffn_norm_b.as_deref(), c.rms_eps);
            match (&l.w_up, &l.w_down) {
                (Some(up), Some(down)) => self.dense_ffn(pool, isa, il, l, up, down, n, sc),
                // Experts only (Mixtral): their sum is the FFN's output.
                _ => resize(&mut sc.o, n * d),
            }
            if let Some(e) = &l.moe {
                self.moe_ffn(pool, isa, e, n, sc);
            }
            add_bias(&mut sc.o, l.b_down.as_deref());
            if !sc.steer.r.is_empty() {
                sc.steer.ablate(&mut sc.o, sc.steer.ffn[il]);
            }
            if let Some(w) = &l.ffn_post_norm {
                for t in 0..n {
                    rms_norm_inplace(&mut sc.o[t * d..(t + 1) * d], w, c.rms_eps);
                }
            }
            if let Some(order) = c.parallel_residual {
                // llama.cpp's order: GPT-NeoX (ffn + x) + attn, Falcon (ffn + attn) + x.
                let (o, par) = (&sc.o, &sc.par);
                match order {
                    crate::Parallel::NeoX => sc.x.iter_mut().zip(o).zip(par).for_each(|((x, o), a)| *x = (o + *x) + a),
                    crate::Parallel::Falcon => sc.x.iter_mut().zip(o).zip(par).for_each(|((x, o), a)| *x += o + a),
                }
            } else {
                residual_add(pool, &mut sc.x, &sc.o, d, c.residual_mult);
            }
            sc.steer.add_after(il, &mut sc.x);
            let k = sc.capture_rows.len();
            for (ri, &t) in sc.capture_rows.iter().enumerate() {
                sc.captured[(il * k + ri) * d..(il * k + ri + 1) * d].copy_from_slice(&sc.x[t * d..(t + 1) * d]);
            }
        }

        // --- logits for the rows asked for ---
        let mut rows = Vec::new();
        let mut t0 = 0;
        for s in batch.iter() {
            let m = s.tokens.len();
            match s.logits {
                Logits::None => {}
                Logits::Last if m > 0 => rows.push(t0 + m - 1),
                Logits::Last => {}
                Logits::All => rows.extend(t0..t0 + m),
                Logits::From(k) => rows.extend(t0 + k.min(m)..t0 + m),
            }
            t0 += m;
        }
        for s in batch.iter_mut() {
            s.cache.len += s.tokens.len();
        }
        if rows.is_empty() {
            return Ok(());
        }
        resize(&mut sc.xn, rows.len() * d);
        for (i, &t) in rows.iter().enumerate() {
            let (x, xn) = (&sc.x[t * d..(t + 1) * d], &mut sc.xn[i * d..(i + 1) * d]);
            match &self.output_norm_b {
                Some(b) => layer_norm(x, &self.output_norm, b, c.rms_eps, xn),
                None => rms_norm(x, &self.output_norm, c.rms_eps, xn),
            }
        }
        let start = out.len();
        out.resize(start + rows.len() * c.n_vocab, 0.0);
        self.output_logits(pool, isa, sc, targets, &mut out[start..]);
        Ok(())
    }

    /// The dense FFN (or shared expert) of the rows in `sc.xn` into `sc.o`.
    #[allow(clippy::too_many_arguments)]
    fn dense_ffn(&self, pool: &ThreadPool, isa: Isa, il: usize, l: &Layer, up: &Mat, down: &Mat, n: usize, sc: &mut Scratch) {
        let c = &self.config;
        let d = c.n_embd;
        // The layer's FFN width (DeepSeek-2: dense layers and shared experts differ).
        let n_ff = up.rows;
        resize(&mut sc.gate, n * n_ff);
        resize(&mut sc.up, n * n_ff);
        match &l.w_gate {
            Some(w_gate) => {
                prepare(isa, &mut sc.acts, &[w_gate, up], &sc.xn, d);
                {
                    let a = &sc.acts;
                    let act = |m: &Mat| &a[fmt_idx(m.ty.act_format())];
                    matmul_many(pool, isa, &mut [
                        MatmulJob { w: self.w(w_gate), x: act(w_gate), y: &mut sc.gate },
                        MatmulJob { w: self.w(up), x: act(up), y: &mut sc.up },
                    ]);
                }
                if !self.adapters.is_empty() {
                    self.apply_loras(pool, isa, il, lora::GATE, &sc.xn, d, &mut sc.gate, &mut sc.lora);
                    self.apply_loras(pool, isa, il, lora::UP, &sc.xn, d, &mut sc.up, &mut sc.lora);
                }
                if c.spec.gelu {
                    par_rows(pool, &mut sc.gate, n_ff, &sc.up, n_ff, &|g, u| ops::geglu_inplace(isa, g, u));
                } else {
                    par_rows(pool, &mut sc.gate, n_ff, &sc.up, n_ff, &|g, u| ops::swiglu_inplace(isa, g, u));
                }
            }
            // No gate: up (+ bias) → GELU → down, the activations in `gate`.
            None => {
                prepare(isa, &mut sc.acts, &[up], &sc.xn, d);
                matmul_many(pool, isa, &mut [MatmulJob { w: self.w(up), x: &sc.acts[fmt_idx(up.ty.act_format())], y: &mut sc.gate }]);
                if !self.adapters.is_empty() {
                    self.apply_loras(pool, isa, il, lora::UP, &sc.xn, d, &mut sc.gate, &mut sc.lora);
                }
                add_bias(&mut sc.gate, l.b_up.as_deref());
                par_rows(pool, &mut sc.gate, n_ff, &sc.up, n_ff, &|g, _| ops::gelu_inplace(isa, g));
            }
        }
        prepare(isa, &mut sc.acts, &[down], &sc.gate, n_ff);
        matmul_many(pool, isa, &mut [MatmulJob {
            w: self.w(down),
            x: &sc.acts[fmt_idx(down.ty.act_format())],
            y: &mut sc.o,
        }]);
        if !self.adapters.is_empty() {
            self.apply_loras(pool, isa, il, lora::DOWN, &sc.gate, n_ff, &mut sc.o, &mut sc.lora);
        }
    }

    /// The ordinary Q, K, V projections (biases, LoRA, QK norms, RoPE) of the rows in `sc.xn`.
    #[allow(clippy::too_many_arguments)]
    fn qkv(&self, pool: &ThreadPool, isa: Isa, il: usize, l: &Layer, wv: &Mat, toks: &[(usize, usize)], swa: bool, sc: &mut Scratch) {
        let c = &self.config;
        let (d, hd) = (c.n_embd, c.head_dim);
        let (q_dim, kv_dim) = (c.n_head * hd, c.n_head_kv * hd);
        prepare(isa, &mut sc.acts, &[&l.wq, &l.wk, wv], &sc.xn, d);
        {
            let a = &sc.acts;
            let act = |m: &Mat| &a[fmt_idx(m.ty.act_format())];
            matmul_many(pool, isa, &mut [
                MatmulJob { w: self.w(&l.wq), x: act(&l.wq), y: &mut sc.q },
                MatmulJob { w: self.w(&l.wk), x: act(&l.wk), y: &mut sc.k },
                MatmulJob { w: self.w(wv), x: act(wv), y: &mut sc.v },
            ]);
        }
        if !self.adapters.is_empty() {
            for (slot, y) in [(lora::Q, &mut sc.q), (lora::K, &mut sc.k), (lora::V, &mut sc.v)] {
                self.apply_loras(pool, isa, il, slot, &sc.xn, d, y, &mut sc.lora);
            }
        }
        add_bias(&mut sc.q, l.bq.as_deref());
        add_bias(&mut sc.k, l.bk.as_deref());
        add_bias(&mut sc.v, l.bv.as_deref());
        let rope = if swa { &self.rope_swa } else { &self.rope };
        for (t, &(_, pos)) in toks.iter().enumerate() {
            rope.cache(pos, &mut sc.cos, &mut sc.sin);
            // Q's heads, then K's: each normed (QK norm) and rotated.
            for (x, dim, heads, norm) in [(&mut sc.q, q_dim, c.n_head, &l.q_norm), (&mut sc.k, kv_dim, c.n_head_kv, &l.k_norm)] {
                for head in x[t * dim..t * dim + heads * hd].chunks_exact_mut(hd) {
                    if let Some(w) = norm {
                        rms_norm_inplace(head, w, c.rms_eps);
                    }
                    if !c.spec.alibi {
                        rope.apply(head, &sc.cos, &sc.sin, c.spec.rope_neox);
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        pool: &ThreadPool,
        isa: Isa,
        batch: &[SeqBatch],
        toks: &[(usize, usize)],
        il: usize,
        swa: bool,
        sc: &mut Scratch,
    ) {
        let c = &self.config;
        let (hd, hdv) = (c.head_dim, c.head_dim_v);
        let (q_dim, kv_dim, v_dim) = (c.n_head * hd, c.n_head_kv * hd, c.n_head_kv * hdv);
        let group = c.n_head / c.n_head_kv;
        // One work item per (tile of up to ATTN_TILE consecutive tokens of one sequence, KV
        // head): each K/V row is read and converted once for all the query heads that share it
        // (grouped-query attention) and all the tile's tokens.
        let mut tiles: Vec<(usize, usize)> = Vec::new();
        for (t, &(si, _)) in toks.iter().enumerate() {
            match tiles.last_mut() {
                Some((t0, n)) if toks[*t0].0 == si && *n < ATTN_TILE => *n += 1,
                _ => tiles.push((t, 1)),
            }
        }
        let n_items = tiles.len() * c.n_head_kv;
        let window = if swa { c.sliding_window } else { None };
        let nt = pool.n_threads();
        // The bounds the unsafe accesses below rely on.
        assert!(sc.scores.len() >= nt && sc.tile_out.len() >= nt, "one scratch buffer per thread");
        assert!(sc.attn.len() >= toks.len() * c.n_head * hdv, "attention output sized for the batch");
        let out = SyncPtr(sc.attn.as_mut_ptr());
        let scores = SyncPtr(sc.scores.as_mut_ptr());
        let tile_out = SyncPtr(sc.tile_out.as_mut_ptr());
        let q = &sc.q;
        pool.run(&|tid| {
            // SAFETY: `tid < nt <= sc.scores.len(), sc.tile_out.len()` (asserted above), and
            // thread `tid` is the only one that touches element `tid` of each, so these are the
            // one live `&mut` to them.
            let (sbuf, obuf) = unsafe { (&mut *scores.get().add(tid), &mut *tile_out.get().add(tid)) };
            let mut ranges = Vec::with_capacity(ATTN_TILE);
            // Round-robin: under a causal mask later tiles attend more keys, so contiguous
            // shares would leave the first thread idle.
            for item in (tid..n_items).step_by(nt) {
                let ((t0, n), kvh) = (tiles[item / c.n_head_kv], item % c.n_head_kv);
                let cache = &*batch[toks[t0].0].cache;
                ranges.clear();
                ranges.extend(toks[t0..t0 + n].iter().map(|&(_, pos)| (window.map_or(0, |w| (pos + 1).saturating_sub(w)), pos + 1)));
                let head = AttnHead {
                    q: &q[t0 * q_dim + kvh * group * hd..],
                    q_stride: q_dim,
                    group,
                    hd,
                    hdv,
                    k: cache.k[il].view().offset(kvh * hd),
                    k_stride: kv_dim,
                    // Latent attention: V is the first hdv values of each cached K row.
                    v: if c.mla.is_some() { cache.k[il].view().offset(kvh * hd) } else { cache.v[il].view().offset(kvh * hdv) },
                    v_stride: if c.mla.is_some() { kv_dim } else { v_dim },
                    ranges: &ranges,
                    scale: c.attn_scale,
                    alibi: if self.alibi.is_empty() { &[] } else { &self.alibi[kvh * group..(kvh + 1) * group] },
                };
                obuf.resize(n * group * hdv, 0.0);
                attend(isa, &head, sbuf, obuf);
                for j in 0..n {
                    // SAFETY: token t0 + j < toks.len() and heads kvh·group .. (kvh+1)·group ≤
                    // n_head, so the range lies within `sc.attn` (asserted above); those heads of
                    // that token belong to this item only.
                    let o = unsafe { std::slice::from_raw_parts_mut(out.get().add((t0 + j) * c.n_head * hdv + kvh * group * hdv), group * hdv) };
                    o.copy_from_slice(&obuf[j * group * hdv..(j + 1) * group * hdv]);
                }
            }
        });
    }
}

/// Tokens of one sequence attended together against each K/V block (see `attention`).
const ATTN_TILE: usize = 8;

fn add_bias(x: &mut [f32], b: Option<&[f32]>) {
    if let Some(b) = b {
        for row in x.chunks_exact_mut(b.len()) {
            row.iter_mut().zip(b).for_each(|(v, &bb)| *v += bb);
        }
    }
}

/// x += o, or x += o × `mult` (Granite's residual scale: llama.cpp scales the branch's output,
/// rounded to f32, then adds).
fn residual_add(pool: &ThreadPool, x: &mut [f32], o: &[f32], d: usize, mult: f32) {
    if mult == 1.0 {
        par_rows(pool, x, d, o, d, &|x, o| x.iter_mut().zip(o).for_each(|(x, o)| *x += o));
    } else {
        par_rows(pool, x, d, o, d, &|x, o| x.iter_mut().zip(o).for_each(|(x, o)| *x += o * mult));
    }
}
