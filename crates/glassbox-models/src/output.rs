//! The output layer: logits for the rows the forward pass normalised into `Scratch::xn`.
//!
//! Activations rounded to 8 bits once would put half of the whole model's divergence from its
//! exact self into this one matmul, so each row's rounding error `e = x − deq(q₁)`, quantised
//! again (q₂), gets a second pass: logits = W·q₁ + W·q₂. The second pass matters only where
//! probability is: it covers the row's head (every logit within [`HEAD_NATS`] of the row's
//! largest) and the tokens a caller scores one by one (`Model::forward_scored`), not the tail
//! of a 50k–150k vocabulary, whose probabilities are too small for their rounding (a few
//! hundredths of a nat) to move a divergence, a sampled token or a log-sum-exp much. A row
//! whose head covers over a quarter of the vocabulary (a flat distribution) gets the whole
//! second pass. The rows of a chunk share one pass over the union of their heads (weights
//! read once), but each row takes only its own units' values, so a row's logits depend on
//! that row alone and batching still changes nothing.

use std::sync::Mutex;

use glassbox_kernels::{ActFormat, Isa, MatmulJob, ThreadPool, matmul_many, matmul_units, row_max, units_at_least};

use crate::Model;
use crate::forward::{Scratch, fmt_idx, prepare};

/// Logits within this many nats of the row's largest get the residual pass. Below it a
/// token's probability is under e⁻⁸ ≈ 3.4e-4 of the top one's. Measured against the exact
/// F32 models (docs/benchmarks.md): the KL divergence is 2–3 % above the full second pass's
/// (Qwen2.5-Coder-1.5B 0.000828 against 0.000803; llama.cpp 0.001801), and the second pass
/// costs about a third of what the full one does. 12 nats is within 0.5 % of the full pass
/// and costs as much as it.
pub(crate) const HEAD_NATS: f32 = 8.0;

/// Rows of logits computed per output matmul (bounds the residual buffers).
const OUT_CHUNK: usize = 16;

impl Model {
    /// Fill `out` (`rows × n_vocab`) with the logits of the rows in `sc.xn`; `targets[i]`
    /// names tokens of row `i` that must be exact whatever their rank.
    pub(crate) fn output_logits(&self, pool: &ThreadPool, isa: Isa, sc: &mut Scratch, targets: &[&[u32]], out: &mut [f32]) {
        let c = &self.config;
        let (d, n_vocab) = (c.n_embd, c.n_vocab);
        let fmt = self.output.ty.act_format();
        let w = self.w(&self.output);
        if !(self.precise_output && matches!(fmt, ActFormat::Q8 | ActFormat::Q8K)) {
            prepare(isa, &mut sc.acts, &[&self.output], &sc.xn, d);
            matmul_many(pool, isa, &mut [MatmulJob { w, x: &sc.acts[fmt_idx(fmt)], y: out }]);
        } else {
            let nt = pool.n_threads().max(1);
            let i = fmt_idx(fmt);
            let (unit, n_units) = (w.unit(), n_vocab.div_ceil(w.unit()));
            sc.acts[i].fill(isa, fmt, &sc.xn, d);
            matmul_many(pool, isa, &mut [MatmulJob { w, x: &sc.acts[i], y: out }]);
            sc.acts[i].dequantize_into(&mut sc.deq);
            sc.resid.clear();
            sc.resid.extend(sc.xn.iter().zip(&sc.deq).map(|(a, b)| a - b));
            for (k, (resid, dst)) in sc.resid.chunks(OUT_CHUNK * d).zip(out.chunks_mut(OUT_CHUNK * n_vocab)).enumerate() {
                let m = resid.len() / d;
                // Each row's own units: its head and its targets, or all of them.
                sc.units.resize_with(m, Vec::new);
                {
                    let lists: Vec<Mutex<&mut Vec<usize>>> = sc.units[..m].iter_mut().map(Mutex::new).collect();
                    let dst = &*dst;
                    pool.run(&|tid| {
                        for r in (tid..m).step_by(nt) {
                            let mut us = lists[r].lock().unwrap_or_else(|e| e.into_inner());
                            let row = &dst[r * n_vocab..(r + 1) * n_vocab];
                            us.clear();
                            units_at_least(isa, row, unit, row_max(isa, row) - HEAD_NATS, &mut us);
                            if let Some(ts) = targets.get(k * OUT_CHUNK + r).filter(|ts| !ts.is_empty()) {
                                us.extend(ts.iter().map(|&t| t as usize).filter(|&t| t < n_vocab).map(|t| t / unit));
                                us.sort_unstable();
                                us.dedup();
                            }
                            if us.len() * 4 > n_units {
                                us.clear();
                                us.extend(0..n_units);
                            }
                        }
                    });
                }
                // One pass over the union of the rows' units for all rows' residuals; each row
                // then takes its own units' values only, so it depends on nothing else.
                sc.union.clear();
                sc.union.resize(n_units, false);
                for us in &sc.units[..m] {
                    us.iter().for_each(|&u| sc.union[u] = true);
                }
                sc.union_list.clear();
                sc.union_list.extend((0..n_units).filter(|&u| sc.union[u]));
                sc.acts[i].fill(isa, fmt, resid, d);
                sc.y2.resize(m * n_vocab, 0.0);
                let y2 = &mut sc.y2[..m * n_vocab];
                if sc.union_list.len() == n_units {
                    matmul_many(pool, isa, &mut [MatmulJob { w, x: &sc.acts[i], y: y2 }]);
                } else {
                    matmul_units(pool, isa, w, &sc.acts[i], &sc.union_list, y2);
                }
                let rows: Vec<Mutex<&mut [f32]>> = dst.chunks_exact_mut(n_vocab).map(Mutex::new).collect();
                let (y2, lists) = (&*y2, &sc.units);
                pool.run(&|tid| {
                    for r in (tid..m).step_by(nt) {
                        let mut row = rows[r].lock().unwrap_or_else(|e| e.into_inner());
                        let add = &y2[r * n_vocab..(r + 1) * n_vocab];
                        for &u in &lists[r] {
                            let span = u * unit..((u + 1) * unit).min(n_vocab);
                            row[span.clone()].iter_mut().zip(&add[span]).for_each(|(l, e)| *l += e);
                        }
                    }
                });
            }
        }
        if c.logit_mult != 1.0 {
            out.iter_mut().for_each(|v| *v *= c.logit_mult);
        }
        if let Some(cap) = c.final_logit_softcap {
            out.iter_mut().for_each(|v| *v = cap * (*v / cap).tanh());
        }
    }
}

