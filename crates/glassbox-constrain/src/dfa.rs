//! The grammar as a pushdown automaton, determinised lazily.
//!
//! A configuration is the set of stacks the text so far can be in (alternatives run side by
//! side, as llama.cpp's grammar sampler keeps them); each stack holds element positions, its top
//! always a byte class (or the stack is empty: the text is complete). Configurations are
//! interned, and the transition on each byte is computed once and kept, so after a few tokens
//! the automaton runs as a table lookup per byte. Bounded: too many configurations, stack
//! entries in all, parallel stacks or nesting make transitions fail closed (dead) and set
//! [`Dfa::overflow`]; the automaton is only a cache of the grammar, so [`Dfa::reset`] can start
//! it again from the current configuration.

use std::collections::HashMap;
use std::sync::Arc;

use crate::grammar::{Elem, Grammar};
use crate::{Error, Result};

pub const DEAD: u32 = u32::MAX;
const UNKNOWN: u32 = u32::MAX - 1;

type Stack = Vec<u32>;

/// Bounds on the automaton.
#[derive(Clone, Copy, Debug)]
pub struct DfaLimits {
    pub max_states: usize,
    /// Stack entries over all interned configurations (4 bytes each).
    pub max_entries: usize,
    pub max_stacks: usize,
    pub max_depth: usize,
}

impl Default for DfaLimits {
    fn default() -> DfaLimits {
        DfaLimits { max_states: 32_768, max_entries: 4 << 20, max_stacks: 4_096, max_depth: 1_024 }
    }
}

pub struct Dfa {
    g: Arc<Grammar>,
    limits: DfaLimits,
    configs: Vec<Arc<[Stack]>>,
    index: HashMap<Arc<[Stack]>, u32>,
    trans: Vec<[u32; 256]>,
    accepting: Vec<bool>,
    continues: Vec<bool>,
    entries: usize,
    /// Why a transition failed closed, if one did.
    pub overflow: Option<String>,
}

impl Dfa {
    /// The automaton and its start state.
    pub fn new(g: Arc<Grammar>, limits: DfaLimits) -> Result<(Dfa, u32)> {
        let mut d = Dfa { g, limits, configs: Vec::new(), index: HashMap::new(), trans: Vec::new(), accepting: Vec::new(), continues: Vec::new(), entries: 0, overflow: None };
        let mut out = Vec::new();
        let mut s = Vec::new();
        for i in 0..d.g.alts[d.g.root as usize].len() {
            s.clear();
            s.push(d.g.alts[d.g.root as usize][i]);
            d.expand(&mut s, &mut out, 0)?;
        }
        let start = d.intern(out)?;
        Ok((d, start))
    }

    pub fn n_states(&self) -> usize {
        self.configs.len()
    }

    /// The text so far is complete.
    pub fn accepting(&self, s: u32) -> bool {
        self.accepting[s as usize]
    }

    /// The text so far can continue.
    pub fn continues(&self, s: u32) -> bool {
        self.continues[s as usize]
    }

    /// The state after byte `b` ([`DEAD`] if `b` cannot come next).
    #[inline]
    pub fn next(&mut self, s: u32, b: u8) -> u32 {
        let t = self.trans[s as usize][b as usize];
        if t != UNKNOWN {
            return t;
        }
        let t = match self.step(s, b) {
            Ok(t) => t,
            Err(e) => {
                self.overflow.get_or_insert(e.to_string());
                DEAD
            }
        };
        self.trans[s as usize][b as usize] = t;
        t
    }

    fn step(&mut self, s: u32, b: u8) -> Result<u32> {
        let cfg = self.configs[s as usize].clone();
        let mut out = Vec::new();
        for st in cfg.iter() {
            let Some(&top) = st.last() else { continue };
            let Elem::Class(c) = self.g.elems[top as usize] else { continue };
            if !c.contains(b) {
                continue;
            }
            let mut n = st.clone();
            n.pop();
            if self.g.elems[top as usize + 1] != Elem::End {
                n.push(top + 1);
            }
            self.expand(&mut n, &mut out, 0)?;
        }
        if out.is_empty() {
            return Ok(DEAD);
        }
        self.intern(out)
    }

    /// Expand `s` until its top is a byte class (or it is empty), pushing the results to `out`.
    fn expand(&self, s: &mut Stack, out: &mut Vec<Stack>, depth: usize) -> Result<()> {
        if s.len() > self.limits.max_depth || depth > self.limits.max_depth {
            return Err(Error::Limit(format!("output nests deeper than {} grammar levels", self.limits.max_depth)));
        }
        if out.len() > self.limits.max_stacks {
            return Err(Error::Limit(format!("more than {} ways to read the output at once", self.limits.max_stacks)));
        }
        let Some(&pos) = s.last() else {
            out.push(Vec::new());
            return Ok(());
        };
        match self.g.elems[pos as usize] {
            Elem::Class(_) => out.push(s.clone()),
            Elem::End => {
                // an empty alternative: continue with what lies below
                s.pop();
                let r = self.expand(s, out, depth + 1);
                s.push(pos);
                r?;
            }
            Elem::Rule(r) => {
                s.pop();
                let cont = self.g.elems[pos as usize + 1] != Elem::End;
                if cont {
                    s.push(pos + 1);
                }
                let mut res = Ok(());
                for &a in &self.g.alts[r as usize] {
                    s.push(a);
                    res = self.expand(s, out, depth + 1);
                    s.pop();
                    if res.is_err() {
                        break;
                    }
                }
                if cont {
                    s.pop();
                }
                s.push(pos);
                res?;
            }
        }
        Ok(())
    }

    /// Forget every state but `keep` (and the overflow): the automaton starts again from that
    /// configuration, which gets a new id (returned). Ids held elsewhere are invalid after this.
    pub fn reset(&mut self, keep: u32) -> Result<u32> {
        let cfg = self.configs[keep as usize].to_vec();
        self.configs.clear();
        self.index.clear();
        self.trans.clear();
        self.accepting.clear();
        self.continues.clear();
        self.entries = 0;
        self.overflow = None;
        self.intern(cfg)
    }

    fn intern(&mut self, mut cfg: Vec<Stack>) -> Result<u32> {
        cfg.sort_unstable();
        cfg.dedup();
        let cfg: Arc<[Stack]> = cfg.into();
        if let Some(&i) = self.index.get(&cfg) {
            return Ok(i);
        }
        if self.configs.len() >= self.limits.max_states {
            return Err(Error::Limit(format!("the automaton grew past {} states", self.limits.max_states)));
        }
        let entries: usize = cfg.iter().map(|s| s.len() + 1).sum();
        if self.entries + entries > self.limits.max_entries {
            return Err(Error::Limit(format!("the automaton's stacks grew past {} entries", self.limits.max_entries)));
        }
        self.entries += entries;
        let i = self.configs.len() as u32;
        self.accepting.push(cfg.iter().any(|s| s.is_empty()));
        self.continues.push(cfg.iter().any(|s| !s.is_empty()));
        self.configs.push(cfg.clone());
        self.index.insert(cfg, i);
        self.trans.push([UNKNOWN; 256]);
        Ok(i)
    }
}
