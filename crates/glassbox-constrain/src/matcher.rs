//! One sequence's constraint: where the grammar's automaton stands, which tokens may come next.

use std::collections::HashMap;
use std::sync::Arc;

use crate::dfa::{Dfa, DfaLimits, DEAD};
use crate::grammar::Grammar;
use crate::vocab::VocabIndex;
use crate::{Error, Result};

/// Masks kept per matcher (each is one bit per token: 19 KB for a 151,936-token vocabulary).
const MASK_CACHE: usize = 512;

/// Counters for measuring what the constraint costs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Sampled tokens checked against the grammar.
    pub checks: u64,
    /// Full masks computed (a walk of the vocabulary trie).
    pub masks_computed: u64,
    /// Full masks taken from the cache.
    pub masks_cached: u64,
    /// Trie nodes visited by the computed masks.
    pub nodes_visited: u64,
    /// Times the automaton was started again after reaching a bound.
    pub resets: u64,
}

pub struct Matcher {
    vocab: Arc<VocabIndex>,
    dfa: Dfa,
    state: u32,
    masks: HashMap<u32, Arc<Vec<u64>>>,
    walk: Vec<u32>,
    pub stats: Stats,
}

impl Matcher {
    pub fn new(grammar: Arc<Grammar>, vocab: Arc<VocabIndex>) -> Result<Matcher> {
        Matcher::with_limits(grammar, vocab, DfaLimits::default())
    }

    pub fn with_limits(grammar: Arc<Grammar>, vocab: Arc<VocabIndex>, limits: DfaLimits) -> Result<Matcher> {
        let (dfa, state) = Dfa::new(grammar, limits)?;
        let walk = vec![0; vocab.max_depth() + 1];
        Ok(Matcher { vocab, dfa, state, masks: HashMap::new(), walk, stats: Stats::default() })
    }

    /// The text so far is a complete sentence of the grammar.
    pub fn is_accepting(&self) -> bool {
        self.dfa.accepting(self.state)
    }

    /// Nothing may follow: the output is complete and cannot be extended.
    pub fn is_done(&self) -> bool {
        self.is_accepting() && !self.dfa.continues(self.state)
    }

    /// The automaton's size so far (states interned).
    pub fn n_states(&self) -> usize {
        self.dfa.n_states()
    }

    fn run(&mut self, from: u32, bytes: &[u8]) -> u32 {
        let mut s = from;
        for &b in bytes {
            s = self.dfa.next(s, b);
            if s == DEAD {
                break;
            }
        }
        s
    }

    /// Start the automaton again from the current state (it is a cache of the grammar: nothing
    /// is lost but time). Cached masks go with it.
    fn reset(&mut self) -> Result<()> {
        self.state = self.dfa.reset(self.state)?;
        self.masks.clear();
        self.stats.resets += 1;
        Ok(())
    }

    /// `run`, again from a fresh automaton if the first try overflowed it.
    fn run_or_reset(&mut self, bytes: &[u8]) -> u32 {
        let s = self.run(self.state, bytes);
        if s == DEAD && self.dfa.overflow.is_some() && self.reset().is_ok() {
            return self.run(self.state, bytes);
        }
        s
    }

    /// Whether `tok` may come next.
    pub fn allows(&mut self, tok: u32) -> bool {
        self.stats.checks += 1;
        if self.vocab.is_eog(tok) {
            return self.is_accepting();
        }
        let v = self.vocab.clone();
        let b = v.token_bytes(tok);
        !b.is_empty() && self.run_or_reset(b) != DEAD
    }

    /// Feed the chosen token (an end-of-generation token is accepted where the text is complete).
    pub fn advance(&mut self, tok: u32) -> Result<()> {
        if self.vocab.is_eog(tok) {
            return if self.is_accepting() { Ok(()) } else { Err(Error::NotAllowed(tok)) };
        }
        let v = self.vocab.clone();
        self.advance_bytes(v.token_bytes(tok)).map_err(|_| Error::NotAllowed(tok))
    }

    /// Feed text that is not a token (a forced prefix).
    pub fn advance_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let s = self.run_or_reset(bytes);
        if s == DEAD {
            return Err(self.overflow().unwrap_or_else(|| Error::TextNotAllowed(String::from_utf8_lossy(bytes).chars().take(40).collect())));
        }
        self.state = s;
        Ok(())
    }

    fn overflow(&self) -> Option<Error> {
        self.dfa.overflow.clone().map(Error::Limit)
    }

    /// One bit per token: may it come next. An automaton that overflows on the way is started
    /// again from the current state and the mask computed once more; a second overflow is an
    /// error.
    pub fn mask(&mut self) -> Result<Arc<Vec<u64>>> {
        if let Some(m) = self.masks.get(&self.state) {
            self.stats.masks_cached += 1;
            return Ok(m.clone());
        }
        match self.compute_mask() {
            Err(Error::Limit(_)) => {
                self.reset()?;
                self.compute_mask()
            }
            r => r,
        }
    }

    fn compute_mask(&mut self) -> Result<Arc<Vec<u64>>> {
        self.stats.masks_computed += 1;
        let v = self.vocab.clone();
        let mut bits = vec![0u64; v.n_vocab().div_ceil(64)];
        let nodes = v.nodes();
        let toks = v.toks();
        self.walk[0] = self.state;
        let mut i = 1;
        let mut visited = 0u64;
        while i < nodes.len() {
            let n = nodes[i];
            visited += 1;
            let s = self.dfa.next(self.walk[n.depth as usize - 1], n.byte);
            if s == DEAD {
                i = n.skip as usize;
                continue;
            }
            self.walk[n.depth as usize] = s;
            for &t in &toks[n.tok_lo as usize..n.tok_hi as usize] {
                bits[t as usize >> 6] |= 1 << (t & 63);
            }
            i += 1;
        }
        self.stats.nodes_visited += visited;
        if let Some(e) = self.overflow() {
            return Err(e);
        }
        if self.is_accepting() {
            for &t in v.eog() {
                if (t as usize) < v.n_vocab() {
                    bits[t as usize >> 6] |= 1 << (t & 63);
                }
            }
        }
        let m = Arc::new(bits);
        if self.masks.len() >= MASK_CACHE {
            self.masks.clear();
        }
        self.masks.insert(self.state, m.clone());
        Ok(m)
    }

    /// Set every token the grammar does not allow here to −∞. Errors when none is allowed.
    pub fn apply_mask(&mut self, logits: &mut [f32]) -> Result<()> {
        let m = self.mask()?;
        let mut any = false;
        for (i, l) in logits.iter_mut().enumerate() {
            if m.get(i >> 6).is_some_and(|w| w >> (i & 63) & 1 == 1) {
                any |= *l != f32::NEG_INFINITY;
            } else {
                *l = f32::NEG_INFINITY;
            }
        }
        if any { Ok(()) } else { Err(Error::DeadEnd) }
    }
}
