//! Byte-level context-free grammars: rules of alternatives, each a sequence of byte classes and
//! rule references, flattened into one element array the automaton indexes into.
//!
//! [`Builder::build`] is where the decoder's guarantees come from: it refuses undefined rules and
//! grammars over the size limit, prunes every alternative that can never finish (so the
//! automaton cannot wander into a branch with no way out), refuses a root that can never finish,
//! and refuses rules that reach themselves without consuming a byte (which would make expansion
//! loop).

use crate::{Error, Result};

/// A set of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ByteClass(pub [u64; 4]);

impl ByteClass {
    pub fn single(b: u8) -> ByteClass {
        ByteClass::range(b, b)
    }

    pub fn range(lo: u8, hi: u8) -> ByteClass {
        let mut c = ByteClass::default();
        for b in lo..=hi {
            c.0[(b >> 6) as usize] |= 1 << (b & 63);
        }
        c
    }

    pub fn of(bytes: &[u8]) -> ByteClass {
        bytes.iter().fold(ByteClass::default(), |c, &b| c.union(ByteClass::single(b)))
    }

    pub fn union(self, o: ByteClass) -> ByteClass {
        ByteClass([self.0[0] | o.0[0], self.0[1] | o.0[1], self.0[2] | o.0[2], self.0[3] | o.0[3]])
    }

    #[inline]
    pub fn contains(&self, b: u8) -> bool {
        self.0[(b >> 6) as usize] >> (b & 63) & 1 == 1
    }
}

/// One symbol of an alternative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sym {
    Class(ByteClass),
    Rule(u32),
}

/// A literal byte string as symbols.
pub fn lit(s: &[u8]) -> Vec<Sym> {
    s.iter().map(|&b| Sym::Class(ByteClass::single(b))).collect()
}

/// A flattened element: what the automaton matches at a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    Class(ByteClass),
    Rule(u32),
    /// The end of an alternative.
    End,
}

/// A compiled grammar.
#[derive(Debug)]
pub struct Grammar {
    pub(crate) elems: Vec<Elem>,
    /// Per rule, the positions where its alternatives start.
    pub(crate) alts: Vec<Vec<u32>>,
    pub(crate) root: u32,
}

impl Grammar {
    pub fn n_rules(&self) -> usize {
        self.alts.len()
    }

    pub fn n_elems(&self) -> usize {
        self.elems.len()
    }
}

/// Grammar under construction.
pub struct Builder {
    rules: Vec<Option<Vec<Vec<Sym>>>>,
    names: Vec<String>,
    size: usize,
    max_size: usize,
}

impl Builder {
    /// `max_size`: the most symbols the grammar may hold in all.
    pub fn new(max_size: usize) -> Builder {
        Builder { rules: Vec::new(), names: Vec::new(), size: 0, max_size }
    }

    /// A rule to be defined later (for references that come before their definition).
    pub fn reserve(&mut self, name: &str) -> u32 {
        self.rules.push(None);
        self.names.push(name.to_owned());
        (self.rules.len() - 1) as u32
    }

    pub fn define(&mut self, id: u32, alts: Vec<Vec<Sym>>) -> Result<()> {
        self.size += alts.iter().map(|a| a.len() + 1).sum::<usize>();
        if self.size > self.max_size {
            return Err(Error::TooLarge(format!("its grammar needs more than {} symbols", self.max_size)));
        }
        self.rules[id as usize] = Some(alts);
        Ok(())
    }

    pub fn add(&mut self, name: &str, alts: Vec<Vec<Sym>>) -> Result<u32> {
        let id = self.reserve(name);
        self.define(id, alts)?;
        Ok(id)
    }

    /// `x{min,max}` (`max` = `None`: unbounded).
    pub fn repeat(&mut self, name: &str, x: Vec<Sym>, min: usize, max: Option<usize>) -> Result<u32> {
        // What the copies will take, checked before any is made.
        let copies = min.saturating_add(max.map_or(1, |m| m.saturating_sub(min)));
        if self.size.saturating_add(copies.saturating_mul(x.len() + 2)) > self.max_size {
            return Err(Error::TooLarge(format!("its grammar needs more than {} symbols", self.max_size)));
        }
        let mut seq = Vec::new();
        for _ in 0..min {
            seq.extend_from_slice(&x);
        }
        let tail = match max {
            None => {
                let r = self.reserve(&format!("{name}*"));
                let mut more = x.clone();
                more.push(Sym::Rule(r));
                self.define(r, vec![more, vec![]])?;
                Some(r)
            }
            Some(max) if max > min => {
                // x (x (x)?)? nested from the inside out
                let mut inner: Option<u32> = None;
                for _ in 0..max - min {
                    let mut a = x.clone();
                    if let Some(i) = inner {
                        a.push(Sym::Rule(i));
                    }
                    inner = Some(self.add(&format!("{name}?"), vec![a, vec![]])?);
                }
                inner
            }
            Some(_) => None,
        };
        if let Some(t) = tail {
            seq.push(Sym::Rule(t));
        }
        self.add(name, vec![seq])
    }

    pub fn build(self, root: u32) -> Result<Grammar> {
        let n = self.rules.len();
        let mut rules = Vec::with_capacity(n);
        for (i, r) in self.rules.into_iter().enumerate() {
            rules.push(r.ok_or_else(|| Error::Invalid { path: self.names[i].clone(), msg: "rule used but never defined".into() })?);
        }
        // Productive rules: some alternative made of bytes and productive rules only.
        let mut productive = vec![false; n];
        loop {
            let mut changed = false;
            for i in 0..n {
                if !productive[i] && rules[i].iter().any(|a| a.iter().all(|s| matches!(s, Sym::Class(_)) || matches!(s, Sym::Rule(r) if productive[*r as usize]))) {
                    productive[i] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        if !productive[root as usize] {
            let stuck: Vec<&str> = (0..n).filter(|&i| !productive[i] && !self.names[i].is_empty()).map(|i| self.names[i].as_str()).take(3).collect();
            return Err(Error::NoBaseCase(format!("{} can never end", stuck.join(", "))));
        }
        for r in rules.iter_mut() {
            r.retain(|a| a.iter().all(|s| !matches!(s, Sym::Rule(x) if !productive[*x as usize])));
        }
        // Nullable rules, then "rule A can start with rule B" edges; a cycle loops expansion.
        let mut nullable = vec![false; n];
        loop {
            let mut changed = false;
            for i in 0..n {
                if !nullable[i] && rules[i].iter().any(|a| a.iter().all(|s| matches!(s, Sym::Rule(r) if nullable[*r as usize]))) {
                    nullable[i] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let mut starts: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (i, r) in rules.iter().enumerate() {
            for a in r {
                for s in a {
                    match s {
                        Sym::Class(_) => break,
                        Sym::Rule(x) => {
                            starts[i].push(*x);
                            if !nullable[*x as usize] {
                                break;
                            }
                        }
                    }
                }
            }
        }
        // iterative three-colour DFS
        let mut colour = vec![0u8; n];
        for s in 0..n {
            if colour[s] != 0 {
                continue;
            }
            let mut stack = vec![(s, 0usize)];
            colour[s] = 1;
            while let Some(&mut (v, ref mut k)) = stack.last_mut() {
                if *k < starts[v].len() {
                    let w = starts[v][*k] as usize;
                    *k += 1;
                    match colour[w] {
                        0 => {
                            colour[w] = 1;
                            stack.push((w, 0));
                        }
                        1 => {
                            let path: Vec<&str> = stack.iter().map(|&(v, _)| self.names[v].as_str()).filter(|s| !s.is_empty()).collect();
                            return Err(Error::LeftRecursive(format!("{} -> {}", path.join(" -> "), self.names[w])));
                        }
                        _ => {}
                    }
                } else {
                    colour[v] = 2;
                    stack.pop();
                }
            }
        }
        let mut elems = Vec::with_capacity(self.size);
        let mut alts = Vec::with_capacity(n);
        for r in &rules {
            let mut starts = Vec::with_capacity(r.len());
            for a in r {
                starts.push(elems.len() as u32);
                elems.extend(a.iter().map(|s| match *s {
                    Sym::Class(c) => Elem::Class(c),
                    Sym::Rule(x) => Elem::Rule(x),
                }));
                elems.push(Elem::End);
            }
            alts.push(starts);
        }
        Ok(Grammar { elems, alts, root })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_classes() {
        let c = ByteClass::range(b'a', b'f').union(ByteClass::single(0xff));
        assert!(c.contains(b'a') && c.contains(b'f') && c.contains(0xff) && !c.contains(b'g') && !c.contains(0));
    }

    #[test]
    fn refuses_rules_without_a_way_out() {
        let mut b = Builder::new(1000);
        let r = b.reserve("#/$defs/Node");
        let mut a = lit(b"{");
        a.push(Sym::Rule(r));
        a.extend(lit(b"}"));
        b.define(r, vec![a]).unwrap();
        let e = b.build(r).unwrap_err();
        assert!(matches!(e, Error::NoBaseCase(ref m) if m.contains("#/$defs/Node")), "{e}");
    }

    #[test]
    fn refuses_left_recursion() {
        let mut b = Builder::new(1000);
        let r = b.reserve("A");
        let mut a = vec![Sym::Rule(r)];
        a.extend(lit(b"x"));
        b.define(r, vec![a, lit(b"y")]).unwrap();
        assert!(matches!(b.build(r), Err(Error::LeftRecursive(_))));
    }

    #[test]
    fn prunes_branches_that_never_end() {
        let mut b = Builder::new(1000);
        let dead = b.reserve("dead");
        let mut d = lit(b"a");
        d.push(Sym::Rule(dead));
        b.define(dead, vec![d]).unwrap();
        let root = b.add("root", vec![vec![Sym::Rule(dead)], lit(b"b")]).unwrap();
        let g = b.build(root).unwrap();
        assert_eq!(g.alts[root as usize].len(), 1);
    }

    #[test]
    fn size_limit() {
        let mut b = Builder::new(10);
        assert!(matches!(b.add("x", vec![lit(b"0123456789abc")]), Err(Error::TooLarge(_))));
    }
}
