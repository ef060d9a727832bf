//! Mixture-of-experts FFN layers (llama.cpp's `build_moe_ffn`, as DeepSeek-2 and Mixtral — a
//! `llama` file with experts — use it): their hyper-parameters and tensors, and each
//! token's router logits → softmax or sigmoid → (selection bias, group limit) → its top-k
//! experts, weighted by their unbiased probabilities (normalised and scaled as the file says).
//! Each step, every expert's matrices run once over all the tokens routed to it (its weights
//! are read once per step, however many sequences use it); the experts' weighted outputs are
//! summed in routing order, then added to the shared expert's, as llama.cpp adds them.

use glassbox_kernels::{ActBuf, Isa, MatmulJob, ThreadPool, matmul_many, ops};

use glassbox_gguf::Gguf;

use crate::forward::{Scratch, fmt_idx, prepare, resize};
use crate::weights::{Binder, Mat};
use crate::{Arch, Config, Error, Model, Result};

/// How a token's router logits become expert weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gating {
    Softmax,
    Sigmoid,
}

/// Mixture-of-experts layers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moe {
    pub n_expert: usize,
    /// Experts each token is routed to.
    pub n_used: usize,
    /// Shared experts (one FFN of `n_shared × n_ff_exp` run for every token).
    pub n_shared: usize,
    pub n_ff_exp: usize,
    /// Layers before this one have a dense FFN (`feed_forward_length` wide).
    pub dense_lead: usize,
    pub gating: Gating,
    /// Divide the chosen experts' weights by their sum.
    pub norm_w: bool,
    /// Multiply them by this (1: none).
    pub w_scale: f32,
    /// Group-limited routing (DeepSeek-V3): experts in `groups` groups, only the best
    /// `groups_used` groups (by the sum of their two best scores) eligible. 0: none.
    pub groups: usize,
    pub groups_used: usize,
}

const MAX_EXPERTS: u64 = 512;

/// Metadata keys of one architecture (`{arch}.{key}`), read with the checks every count needs.
pub(crate) struct Keys<'a> {
    pub g: &'a Gguf,
    pub arch: &'static str,
}

impl Keys<'_> {
    pub fn key(&self, s: &str) -> String {
        format!("{}.{s}", self.arch)
    }

    /// An integer; a per-layer array is refused (not implemented).
    pub fn get(&self, s: &str) -> Result<Option<u64>> {
        if matches!(self.g.get(&self.key(s)), Some(glassbox_gguf::Value::Array(_))) {
            return Err(Error::Unimplemented { what: format!("metadata {:?}", self.key(s)), why: "per-layer sizes".into() });
        }
        Ok(self.g.get_u64(&self.key(s))?)
    }

    pub fn req(&self, s: &str) -> Result<u64> {
        self.get(s)?.ok_or_else(|| Error::MissingKey(self.key(s)))
    }

    pub fn bad(&self, s: &str, msg: String) -> Error {
        Error::BadKey { key: self.key(s), msg }
    }

    pub fn refuse(&self, s: &str, why: &str) -> Error {
        Error::Unimplemented { what: format!("metadata {:?}", self.key(s)), why: why.into() }
    }
}

impl Moe {
    /// The expert layers of a `deepseek2` or `llama` (Mixtral) file; `None` where no layer has
    /// experts.
    pub(crate) fn from_gguf(g: &Gguf, arch: Arch, n_layers: usize, n_vocab: usize, n_ff: usize) -> Result<Option<Moe>> {
        let k = Keys { g, arch: arch.name() };
        let n_expert = k.get("expert_count")?.unwrap_or(0);
        let deepseek = arch == Arch::DeepSeek2;
        let dense_lead = if deepseek { k.get("leading_dense_block_count")?.unwrap_or(0) as usize } else { 0 };
        if n_expert == 0 && (!deepseek || dense_lead >= n_layers) {
            return Ok(None);
        }
        if !(1..=MAX_EXPERTS).contains(&n_expert) {
            return Err(k.bad("expert_count", format!("{n_expert} is outside [1, {MAX_EXPERTS}] while layers {dense_lead}.. have experts")));
        }
        let n_used = k.req("expert_used_count")?;
        if !(1..=n_expert).contains(&n_used) {
            return Err(k.bad("expert_used_count", format!("{n_used} is outside [1, {n_expert}]")));
        }
        let groups = k.get("expert_group_count")?.unwrap_or(0);
        let groups_used = k.get("expert_group_used_count")?.unwrap_or(0);
        if groups > 1 && !(n_expert % groups == 0 && groups < n_expert && (1..groups).contains(&groups_used) && n_expert / groups >= 2) {
            return Err(k.bad("expert_group_count", format!("{groups} groups ({groups_used} used) do not split {n_expert} experts into groups of two or more")));
        }
        for (s, why) in [("swiglu_clamp_exp", "clamped SwiGLU experts"), ("expert_shared_feed_forward_length", "shared experts of another width")] {
            if g.get(&k.key(s)).is_some() {
                return Err(k.refuse(s, why));
            }
        }
        let base = Moe {
            n_expert: n_expert as usize,
            n_used: n_used as usize,
            n_shared: 0,
            n_ff_exp: n_ff,
            dense_lead: dense_lead.min(n_layers),
            gating: Gating::Softmax,
            norm_w: true,
            w_scale: 1.0,
            groups: if groups > 1 { groups as usize } else { 0 },
            groups_used: groups_used as usize,
        };
        if !deepseek {
            // llama.cpp's llama graph: softmax, weights normalised, unscaled, no shared or
            // grouped experts, whatever keys say otherwise: a file that says so is refused.
            let implied = [
                (k.get("expert_shared_count")?.is_some_and(|n| n > 0), "expert_shared_count", "shared experts"),
                (k.get("expert_gating_func")?.is_some_and(|f| f != 1), "expert_gating_func", "expert gating other than softmax"),
                (g.get_bool(&k.key("expert_weights_norm"))? == Some(false), "expert_weights_norm", "unnormalised expert weights"),
                (g.get_f64(&k.key("expert_weights_scale"))?.is_some_and(|s| s != 0.0 && s != 1.0), "expert_weights_scale", "scaled expert weights"),
                (groups > 1, "expert_group_count", "group-limited routing"),
            ];
            if let Some((_, s, why)) = implied.into_iter().find(|x| x.0) {
                return Err(k.refuse(s, &format!("{why} (llama.cpp's llama graph computes without them)")));
            }
            return Ok(Some(base));
        }
        let n_shared = k.req("expert_shared_count")?;
        if !(1..=64).contains(&n_shared) {
            // llama.cpp requires the shared expert's tensors in every expert layer.
            return Err(k.bad("expert_shared_count", format!("{n_shared} is outside [1, 64]")));
        }
        let n_ff_exp = k.req("expert_feed_forward_length")?;
        if !(1..=1 << 20).contains(&n_ff_exp) {
            return Err(k.bad("expert_feed_forward_length", format!("{n_ff_exp} is outside [1, 1048576]")));
        }
        let gating = match k.get("expert_gating_func")?.unwrap_or(0) {
            // Unset: softmax, except GLM-4.7-Lite's layout, which llama.cpp gives sigmoid.
            0 if (n_layers == 47 || n_layers == 48) && n_vocab == 154_880 => Gating::Sigmoid,
            0 | 1 => Gating::Softmax,
            2 => Gating::Sigmoid,
            other => return Err(k.refuse("expert_gating_func", &format!("expert gating {other} (llama.cpp's softplus or weight softmax), not softmax or sigmoid"))),
        };
        let w_scale = match g.get_f64(&k.key("expert_weights_scale"))? {
            None | Some(0.0) => 1.0,
            Some(s) if s.is_finite() && s > 0.0 && s <= 1000.0 => s as f32,
            Some(s) => return Err(k.bad("expert_weights_scale", format!("{s} is not in (0, 1000]"))),
        };
        Ok(Some(Moe {
            n_shared: n_shared as usize,
            n_ff_exp: n_ff_exp as usize,
            gating,
            norm_w: g.get_bool(&k.key("expert_weights_norm"))?.unwrap_or(false),
            w_scale,
            ..base
        }))
    }

    /// Whether layer `il` has experts.
    pub fn is_moe_layer(&self, il: usize) -> bool {
        il >= self.dense_lead
    }
}

/// One layer's routed experts (the shared expert is the layer's ordinary FFN).
pub(crate) struct MoeLayer {
    /// Router: `n_expert` logits per token.
    pub router: Mat,
    /// Selection bias (DeepSeek-V3's `e_score_correction_bias`): added to choose experts, not
    /// to weigh them.
    pub probs_b: Option<Vec<f32>>,
    pub gate: Vec<Mat>,
    pub up: Vec<Mat>,
    pub down: Vec<Mat>,
}

impl MoeLayer {
    pub(crate) fn bind(b: &Binder, c: &Config, il: usize) -> Result<Option<Box<MoeLayer>>> {
        let Some(e) = c.moe.filter(|e| e.is_moe_layer(il)) else { return Ok(None) };
        let n = |s: &str| format!("blk.{il}.{s}");
        let (d, ff, ne) = (c.n_embd, e.n_ff_exp, e.n_expert);
        // Gate and up of each expert in one matrix (gate rows first), or apart.
        let (gate, up) = if b.has(&n("ffn_gate_up_exps.weight")) {
            let both = b.mats3(&n("ffn_gate_up_exps.weight"), d, 2 * ff, ne)?;
            both.into_iter().map(|m| m.split_rows(ff)).unzip()
        } else {
            (b.mats3(&n("ffn_gate_exps.weight"), d, ff, ne)?, b.mats3(&n("ffn_up_exps.weight"), d, ff, ne)?)
        };
        let probs_b = b.opt_vec(&n("exp_probs_b.bias"), ne)?;
        if let Some(bad) = probs_b.iter().flatten().find(|v| !v.is_finite()) {
            return Err(Error::BadTensor { name: n("exp_probs_b.bias"), msg: format!("value {bad} is not finite") });
        }
        Ok(Some(Box::new(MoeLayer {
            router: b.mat(&n("ffn_gate_inp.weight"), d, ne)?,
            probs_b,
            gate,
            up,
            down: b.mats3(&n("ffn_down_exps.weight"), ff, d, ne)?,
        })))
    }

    /// The routed experts' matrices.
    pub(crate) fn experts(&self) -> impl Iterator<Item = &Mat> {
        self.gate.iter().chain(&self.up).chain(&self.down)
    }

    pub(crate) fn mats(&self) -> impl Iterator<Item = &Mat> {
        std::iter::once(&self.router).chain(self.experts())
    }

    pub(crate) fn mats_mut(&mut self) -> impl Iterator<Item = &mut Mat> {
        std::iter::once(&mut self.router).chain(&mut self.gate).chain(&mut self.up).chain(&mut self.down)
    }
}

#[derive(Default)]
pub(crate) struct MoeScratch {
    /// Router logits, then probabilities (n × n_expert).
    probs: Vec<f32>,
    /// Per token: its experts, their weights, and each one's row in that expert's batch.
    sel: Vec<usize>,
    weights: Vec<f32>,
    slot: Vec<usize>,
    experts: Vec<ExpertScratch>,
    /// The routed experts' sum (n × n_embd).
    out: Vec<f32>,
    route: RouteScratch,
}

#[derive(Default)]
struct ExpertScratch {
    /// Tokens routed here, their inputs, gate/up/down products.
    rows: Vec<usize>,
    x: Vec<f32>,
    acts: [ActBuf; 4],
    gate: Vec<f32>,
    up: Vec<f32>,
    acts_down: [ActBuf; 4],
    down: Vec<f32>,
}

/// ggml's soft_max over one row: exp(x − max) in f32, summed in f64, times (f32) 1/sum.
fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let s = (1.0 / sum) as f32;
    row.iter_mut().for_each(|v| *v *= s);
}

/// Indices of the `k` largest of `v`, largest first (ties: the lower index first).
fn top_k(v: &[f32], k: usize, out: &mut Vec<usize>) {
    out.clear();
    out.extend(0..v.len());
    out.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    out.truncate(k);
}

/// Buffers one token's routing reuses (nothing is allocated per token once they have grown).
#[derive(Default)]
pub(crate) struct RouteScratch {
    scores: Vec<f32>,
    groups: Vec<f32>,
    idx: Vec<usize>,
}

/// One token's routing: `probs` (the gating function applied to its logits) → experts in
/// `sel`, weights in `w` (both `n_used` long).
pub(crate) fn route(e: &Moe, probs: &[f32], bias: Option<&[f32]>, rs: &mut RouteScratch, sel: &mut [usize], w: &mut [f32]) {
    let RouteScratch { scores, groups, idx } = rs;
    scores.clear();
    match bias {
        Some(b) => scores.extend(probs.iter().zip(b).map(|(p, b)| p + b)),
        None => scores.extend_from_slice(probs),
    }
    if e.groups > 1 {
        // Score each group by the sum of its two best values (f64 sum, as ggml_sum_rows);
        // experts outside the best `groups_used` groups are excluded.
        let per = e.n_expert / e.groups;
        groups.clear();
        for g in scores.chunks_exact(per) {
            top_k(g, 2, idx);
            groups.push((g[idx[0]] as f64 + g[idx[1]] as f64) as f32);
        }
        top_k(groups, e.groups_used, idx);
        for (g, chunk) in scores.chunks_exact_mut(per).enumerate() {
            if !idx.contains(&g) {
                chunk.iter_mut().for_each(|v| *v = f32::NEG_INFINITY);
            }
        }
    }
    top_k(scores, e.n_used, idx);
    for (k, &x) in idx.iter().enumerate() {
        sel[k] = x;
        w[k] = probs[x];
    }
    if e.norm_w {
        let sum = w.iter().map(|&v| v as f64).sum::<f64>() as f32;
        let sum = sum.max(6.103_515_6e-5);
        w.iter_mut().for_each(|v| *v /= sum);
    }
    if e.w_scale != 1.0 {
        w.iter_mut().for_each(|v| *v *= e.w_scale);
    }
}

impl Model {
    /// The routed experts of a layer over the normalised rows `sc.xn` (n tokens), added to the
    /// shared expert's output already in `sc.o`: `o = moe + o`.
    pub(crate) fn moe_ffn(&self, pool: &ThreadPool, isa: Isa, l: &MoeLayer, n: usize, sc: &mut Scratch) {
        let c = &self.config;
        let e = c.moe.expect("expert layers come with their config");
        let (d, ne, nu, ff) = (c.n_embd, e.n_expert, e.n_used, e.n_ff_exp);
        let s = &mut sc.moe;
        resize(&mut s.probs, n * ne);
        prepare(isa, &mut sc.acts, &[&l.router], &sc.xn, d);
        matmul_many(pool, isa, &mut [MatmulJob { w: self.w(&l.router), x: &sc.acts[fmt_idx(l.router.ty.act_format())], y: &mut s.probs }]);
        s.sel.resize(n * nu, 0);
        s.weights.resize(n * nu, 0.0);
        s.slot.resize(n * nu, 0);
        s.experts.resize_with(ne, ExpertScratch::default);
        s.experts.iter_mut().for_each(|x| x.rows.clear());
        for t in 0..n {
            let row = &mut s.probs[t * ne..(t + 1) * ne];
            match e.gating {
                Gating::Softmax => softmax(row),
                Gating::Sigmoid => row.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
            }
            route(&e, row, l.probs_b.as_deref(), &mut s.route, &mut s.sel[t * nu..(t + 1) * nu], &mut s.weights[t * nu..(t + 1) * nu]);
            for k in 0..nu {
                let x = &mut s.experts[s.sel[t * nu + k]];
                s.slot[t * nu + k] = x.rows.len();
                x.rows.push(t);
            }
        }
        // Gate and up of every expert in use, each over all its tokens, in one parallel pass.
        for (i, x) in s.experts.iter_mut().enumerate().filter(|(_, x)| !x.rows.is_empty()) {
            x.x.clear();
            for &t in &x.rows {
                x.x.extend_from_slice(&sc.xn[t * d..(t + 1) * d]);
            }
            prepare(isa, &mut x.acts, &[&l.gate[i], &l.up[i]], &x.x, d);
            resize(&mut x.gate, x.rows.len() * ff);
            resize(&mut x.up, x.rows.len() * ff);
        }
        {
            let mut jobs = Vec::new();
            for (i, x) in s.experts.iter_mut().enumerate().filter(|(_, x)| !x.rows.is_empty()) {
                let ExpertScratch { acts, gate, up, .. } = x;
                jobs.push(MatmulJob { w: self.w(&l.gate[i]), x: &acts[fmt_idx(l.gate[i].ty.act_format())], y: gate });
                jobs.push(MatmulJob { w: self.w(&l.up[i]), x: &acts[fmt_idx(l.up[i].ty.act_format())], y: up });
            }
            matmul_many(pool, isa, &mut jobs);
        }
        for (i, x) in s.experts.iter_mut().enumerate().filter(|(_, x)| !x.rows.is_empty()) {
            ops::swiglu_inplace(isa, &mut x.gate, &x.up);
            prepare(isa, &mut x.acts_down, &[&l.down[i]], &x.gate, ff);
            resize(&mut x.down, x.rows.len() * d);
        }
        {
            let mut jobs = Vec::new();
            for (i, x) in s.experts.iter_mut().enumerate().filter(|(_, x)| !x.rows.is_empty()) {
                let ExpertScratch { acts_down, down, .. } = x;
                jobs.push(MatmulJob { w: self.w(&l.down[i]), x: &acts_down[fmt_idx(l.down[i].ty.act_format())], y: down });
            }
            matmul_many(pool, isa, &mut jobs);
        }
        // Weighted outputs summed in routing order ((y0·w0 + y1·w1) + …), then + shared.
        resize(&mut s.out, n * d);
        for t in 0..n {
            let out = &mut s.out[t * d..(t + 1) * d];
            for k in 0..nu {
                let (x, w) = (&s.experts[s.sel[t * nu + k]], s.weights[t * nu + k]);
                let y = &x.down[s.slot[t * nu + k] * d..][..d];
                if k == 0 {
                    out.iter_mut().zip(y).for_each(|(o, y)| *o = y * w);
                } else {
                    out.iter_mut().zip(y).for_each(|(o, y)| *o += y * w);
                }
            }
        }
        // (f32 addition commutes: moe + shared, llama.cpp's order, is this sum.)
        sc.o.iter_mut().zip(&s.out).for_each(|(o, m)| *o += m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moe(groups: usize, groups_used: usize, norm_w: bool, w_scale: f32) -> Moe {
        Moe { n_expert: 8, n_used: 2, n_shared: 1, n_ff_exp: 4, dense_lead: 0, gating: Gating::Sigmoid, norm_w, w_scale, groups, groups_used }
    }

    #[test]
    fn routes_by_biased_scores_weighs_by_probabilities() {
        let probs = [0.1, 0.9, 0.2, 0.3, 0.8, 0.05, 0.4, 0.6];
        let bias = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5];
        let (mut sel, mut w, mut sc) = ([0; 2], [0.0; 2], RouteScratch::default());
        route(&moe(0, 0, false, 1.0), &probs, Some(&bias), &mut sc, &mut sel, &mut w);
        assert_eq!(sel, [7, 1]);
        assert_eq!(w, [0.6, 0.9]);
        route(&moe(0, 0, true, 2.0), &probs, None, &mut sc, &mut sel, &mut w);
        assert_eq!(sel, [1, 4]);
        assert!((w[0] - 2.0 * 0.9 / 1.7).abs() < 1e-6 && (w[1] - 2.0 * 0.8 / 1.7).abs() < 1e-6);
    }

    #[test]
    fn group_limit_excludes_other_groups() {
        // Groups of two: {0,1} sums 1.0, {2,3} 0.5, {4,5} 0.85, {6,7} 1.05; the best two groups
        // are {6,7} and {0,1}, so expert 4 (0.8) is out.
        let probs = [0.1, 0.9, 0.2, 0.3, 0.8, 0.05, 0.45, 0.6];
        let (mut sel, mut w, mut sc) = ([0; 2], [0.0; 2], RouteScratch::default());
        route(&moe(4, 2, false, 1.0), &probs, None, &mut sc, &mut sel, &mut w);
        assert_eq!(sel, [1, 7]);
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut r = [1.0f32, 2.0, 3.0, -1.0];
        softmax(&mut r);
        assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(r[2] > r[1] && r[1] > r[0] && r[0] > r[3]);
    }
}
