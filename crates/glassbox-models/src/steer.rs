//! Run-time edits of the residual stream: what editing the weights that write to it would do,
//! without writing a new file.
//!
//! - **Directional ablation** with per-layer weights (Arditi et al. 2024; Heretic's per-layer
//!   kernels): the component along a unit direction r of what each attention and FFN block
//!   writes is scaled down, o ← o − w·(r·o)·r, before it joins the stream — exactly what
//!   orthogonalising that block's output matrix with weight w does (`glassbox abliterate`), and
//!   likewise for the token embedding. w = 1 removes the component, w < 0 enhances it.
//! - **Activation addition** (Turner et al. 2023; Arditi et al.'s induced refusal): a vector
//!   added to every position's residual stream after a chosen layer.
//!
//! Off while empty; it changes no computed value then.

use crate::{Error, Result};

/// One model's run-time residual-stream edits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Steering {
    /// Unit direction whose component is scaled (empty: no ablation).
    pub r: Vec<f32>,
    /// Weight on the token embedding's component along `r`.
    pub embedding: f32,
    /// Per layer: weight on the attention output's and the FFN output's component along `r`.
    pub attn: Vec<f32>,
    pub ffn: Vec<f32>,
    /// (layer, vector): added to the residual stream after that layer, at every position.
    pub add: Vec<(usize, Vec<f32>)>,
}

impl Steering {
    /// Ablate unit-length `r` (made so here) with weight `w` everywhere: embedding and every
    /// block of `n_layer` (Arditi et al.'s directional ablation).
    pub fn ablate_everywhere(r: &[f32], n_layer: usize, w: f32) -> Result<Steering> {
        Ok(Steering { r: Steering::unit(r)?, embedding: w, attn: vec![w; n_layer], ffn: vec![w; n_layer], add: Vec::new() })
    }

    /// `v` made unit length; refused when zero or not finite.
    pub fn unit(v: &[f32]) -> Result<Vec<f32>> {
        let n = norm(v);
        if !n.is_finite() || n == 0.0 {
            return Err(Error::Capture(format!("a direction of norm {n}; it must be finite and non-zero")));
        }
        Ok(v.iter().map(|&x| (f64::from(x) / n) as f32).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.r.is_empty() && self.add.is_empty()
    }

    /// Refuse edits that do not fit a model of `n_layer` layers of width `d`, or that are not
    /// finite; `r` must be unit length (± 1e-3).
    pub fn check(&self, n_layer: usize, d: usize) -> Result<()> {
        let bad = |m: String| Err(Error::Capture(m));
        if !self.r.is_empty() {
            if self.r.len() != d {
                return bad(format!("an ablation direction of {} values for a width of {d}", self.r.len()));
            }
            let n = norm(&self.r);
            if (n - 1.0).abs() > 1e-3 {
                return bad(format!("an ablation direction of norm {n}; unit length expected"));
            }
            if self.attn.len() != n_layer || self.ffn.len() != n_layer {
                return bad(format!("ablation weights for {} and {} layers; the model has {n_layer}", self.attn.len(), self.ffn.len()));
            }
            if let Some(w) = self.attn.iter().chain(&self.ffn).chain([&self.embedding]).find(|w| !w.is_finite()) {
                return bad(format!("an ablation weight of {w}"));
            }
        }
        for (l, v) in &self.add {
            if *l >= n_layer {
                return bad(format!("a steering vector after layer {l}; the model has layers 0..{}", n_layer - 1));
            }
            if v.len() != d {
                return bad(format!("a steering vector of {} values for a width of {d}", v.len()));
            }
            if v.iter().any(|x| !x.is_finite()) {
                return bad(format!("a steering vector after layer {l} with non-finite values"));
            }
        }
        Ok(())
    }

    /// o ← o − w·(r·o)·r for every row of `o` (rows of r.len()).
    pub(crate) fn ablate(&self, o: &mut [f32], w: f32) {
        if self.r.is_empty() || w == 0.0 {
            return;
        }
        for row in o.chunks_exact_mut(self.r.len()) {
            let dot: f32 = row.iter().zip(&self.r).map(|(a, b)| a * b).sum();
            let k = w * dot;
            row.iter_mut().zip(&self.r).for_each(|(v, &ri)| *v -= k * ri);
        }
    }

    /// Add the vectors meant for after `layer` to every row of `x`.
    pub(crate) fn add_after(&self, layer: usize, x: &mut [f32]) {
        for (_, v) in self.add.iter().filter(|(l, _)| *l == layer) {
            for row in x.chunks_exact_mut(v.len()) {
                row.iter_mut().zip(v).for_each(|(a, b)| *a += b);
            }
        }
    }
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt()
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ablation_scales_the_component_and_addition_adds() {
        let s = Steering::ablate_everywhere(&[3.0, 4.0], 2, 1.0).unwrap();
        s.check(2, 2).unwrap();
        let mut o = vec![3.0, 4.0, -4.0, 3.0];
        s.ablate(&mut o, 1.0);
        assert!(o[0].abs() < 1e-6 && o[1].abs() < 1e-6, "{o:?}");
        assert_eq!(&o[2..], &[-4.0, 3.0]); // orthogonal row untouched
        let mut o = vec![3.0, 4.0];
        s.ablate(&mut o, -1.0); // enhance: component doubled
        assert!((o[0] - 6.0).abs() < 1e-5 && (o[1] - 8.0).abs() < 1e-5);
        assert!(s.check(3, 2).is_err() && s.check(2, 3).is_err());
        let add = Steering { add: vec![(1, vec![1.0, -1.0])], ..Default::default() };
        let mut x = vec![0.0; 4];
        add.add_after(0, &mut x);
        assert_eq!(x, [0.0; 4]);
        add.add_after(1, &mut x);
        assert_eq!(x, [1.0, -1.0, 1.0, -1.0]);
        assert!(add.check(1, 2).is_err());
        assert!(Steering { add: vec![(0, vec![f32::NAN, 0.0])], ..Default::default() }.check(1, 2).is_err());
        assert!(Steering::unit(&[0.0, 0.0]).is_err());
    }
}
