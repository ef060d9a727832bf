//! Multi-head latent attention's projections (DeepSeek-2; see deepseek.rs), in llama.cpp's
//! order: Q from the normalised low-rank Q, its rotary part rotated and its other part absorbed
//! into the compressed space through each head's `k_b`; the compressed K row normalised, its
//! rotary part rotated; after attention, each head's output leaves the compressed space through
//! its `v_b`.

use glassbox_kernels::ops::rms_norm_inplace;
use glassbox_kernels::{ActBuf, Isa, MatmulJob, ThreadPool, matmul_many};

use crate::Model;
use crate::deepseek::MlaLayer;
use crate::forward::{Scratch, fmt_idx, prepare, resize};
use crate::weights::{Layer, Mat};

#[derive(Default)]
pub(crate) struct MlaScratch {
    /// Low-rank Q (n × q_lora_rank), the heads' Q (n × n_head × (nope + rope)) and the
    /// projected KV rows (n × (kv_lora_rank + rope)).
    qa: Vec<f32>,
    qb: Vec<f32>,
    kva: Vec<f32>,
    acts: [ActBuf; 4],
    /// Per head: its slice of every token gathered, quantised, and the product.
    heads_in: Vec<Vec<f32>>,
    heads_act: Vec<ActBuf>,
    heads_out: Vec<Vec<f32>>,
    /// The heads' values after `v_b` (n × n_head × v_head).
    vout: Vec<f32>,
}

/// `y_h = mats[h] · x_h` for every head at once, where `x_h` is the `w_in` values from `h ·
/// head_stride` of each `x_stride`-wide row of `x`; the results land in `heads_out[h]` (n ×
/// mats[h].rows).
#[allow(clippy::too_many_arguments)]
fn per_head(model: &Model, pool: &ThreadPool, isa: Isa, mats: &[Mat], x: &[f32], x_stride: usize, head_stride: usize, w_in: usize, s: &mut MlaScratch) {
    let heads = mats.len();
    let n = x.len() / x_stride;
    s.heads_in.resize_with(heads, Vec::new);
    s.heads_act.resize_with(heads, ActBuf::default);
    s.heads_out.resize_with(heads, Vec::new);
    for (h, m) in mats.iter().enumerate() {
        let buf = &mut s.heads_in[h];
        buf.clear();
        for t in 0..n {
            let at = t * x_stride + h * head_stride;
            buf.extend_from_slice(&x[at..at + w_in]);
        }
        s.heads_act[h].fill(isa, m.ty.act_format(), buf, w_in);
        resize(&mut s.heads_out[h], n * m.rows);
    }
    let mut jobs: Vec<MatmulJob> = mats.iter().zip(&s.heads_act).zip(s.heads_out.iter_mut()).map(|((m, x), y)| MatmulJob { w: model.w(m), x, y }).collect();
    matmul_many(pool, isa, &mut jobs);
}

impl Model {
    /// Latent attention's Q (n × n_head × (kv_lora_rank + rope)) into `sc.q` and compressed K
    /// rows (n × (kv_lora_rank + rope)) into `sc.k`, from the normalised input `sc.xn`, RoPE
    /// applied at each token's position (`toks`: sequence, position).
    pub(crate) fn mla_qk(&self, pool: &ThreadPool, isa: Isa, l: &Layer, m: &MlaLayer, toks: &[(usize, usize)], sc: &mut Scratch) {
        let c = &self.config;
        let mc = c.mla.expect("latent attention layers come with their config");
        let (n, d, nh) = (toks.len(), c.n_embd, c.n_head);
        let (kvr, r, nope) = (mc.kv_lora_rank, mc.rope, mc.nope);
        let (qk, hd) = (nope + r, kvr + r);
        let s = &mut sc.mla;
        resize(&mut s.qb, n * nh * qk);
        resize(&mut s.kva, n * hd);
        match (&m.wq_a, &m.q_a_norm) {
            (Some(wa), Some(norm)) => {
                resize(&mut s.qa, n * mc.q_lora_rank);
                prepare(isa, &mut sc.acts, &[wa, &l.wk], &sc.xn, d);
                {
                    let a = &sc.acts;
                    matmul_many(pool, isa, &mut [
                        MatmulJob { w: self.w(wa), x: &a[fmt_idx(wa.ty.act_format())], y: &mut s.qa },
                        MatmulJob { w: self.w(&l.wk), x: &a[fmt_idx(l.wk.ty.act_format())], y: &mut s.kva },
                    ]);
                }
                for row in s.qa.chunks_exact_mut(mc.q_lora_rank) {
                    rms_norm_inplace(row, norm, c.rms_eps);
                }
                prepare(isa, &mut s.acts, &[&l.wq], &s.qa, mc.q_lora_rank);
                matmul_many(pool, isa, &mut [MatmulJob { w: self.w(&l.wq), x: &s.acts[fmt_idx(l.wq.ty.act_format())], y: &mut s.qb }]);
            }
            _ => {
                prepare(isa, &mut sc.acts, &[&l.wq, &l.wk], &sc.xn, d);
                let a = &sc.acts;
                matmul_many(pool, isa, &mut [
                    MatmulJob { w: self.w(&l.wq), x: &a[fmt_idx(l.wq.ty.act_format())], y: &mut s.qb },
                    MatmulJob { w: self.w(&l.wk), x: &a[fmt_idx(l.wk.ty.act_format())], y: &mut s.kva },
                ]);
            }
        }
        // K rows: the compressed values normalised, the shared rotary values rotated; each
        // head's rotary Q values rotated in place.
        resize(&mut sc.k, n * hd);
        for (t, &(_, pos)) in toks.iter().enumerate() {
            self.rope.cache(pos, &mut sc.cos, &mut sc.sin);
            let k = &mut sc.k[t * hd..(t + 1) * hd];
            k.copy_from_slice(&s.kva[t * hd..(t + 1) * hd]);
            rms_norm_inplace(&mut k[..kvr], &m.kv_a_norm, c.rms_eps);
            self.rope.apply(&mut k[kvr..], &sc.cos, &sc.sin, false);
            for h in 0..nh {
                let at = t * nh * qk + h * qk + nope;
                self.rope.apply(&mut s.qb[at..at + r], &sc.cos, &sc.sin, false);
            }
        }
        // Each head's nope values absorbed into the compressed space, then the rotary values.
        let qb = std::mem::take(&mut s.qb);
        per_head(self, pool, isa, &m.k_b, &qb, nh * qk, qk, nope, s);
        s.qb = qb;
        resize(&mut sc.q, n * nh * hd);
        for t in 0..n {
            for h in 0..nh {
                let q = &mut sc.q[(t * nh + h) * hd..(t * nh + h + 1) * hd];
                q[..kvr].copy_from_slice(&s.heads_out[h][t * kvr..(t + 1) * kvr]);
                let at = t * nh * qk + h * qk + nope;
                q[kvr..].copy_from_slice(&s.qb[at..at + r]);
            }
        }
    }

    /// The heads' attention outputs in the compressed space (`sc.attn`, n × n_head ×
    /// kv_lora_rank) through their `v_b`: `sc.attn` becomes n × n_head × v_head.
    pub(crate) fn mla_values(&self, pool: &ThreadPool, isa: Isa, m: &MlaLayer, sc: &mut Scratch) {
        let c = &self.config;
        let mc = c.mla.expect("latent attention layers come with their config");
        let (nh, kvr, vh) = (c.n_head, mc.kv_lora_rank, mc.v_head);
        let n = sc.attn.len() / (nh * kvr);
        let s = &mut sc.mla;
        per_head(self, pool, isa, &m.v_b, &sc.attn, nh * kvr, kvr, kvr, s);
        resize(&mut s.vout, n * nh * vh);
        for t in 0..n {
            for h in 0..nh {
                s.vout[(t * nh + h) * vh..(t * nh + h + 1) * vh].copy_from_slice(&s.heads_out[h][t * vh..(t + 1) * vh]);
            }
        }
        std::mem::swap(&mut sc.attn, &mut s.vout);
    }
}
