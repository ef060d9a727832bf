//! The vocabulary as a byte trie in preorder, built once per model: each node knows its depth
//! and where its subtree ends, so a mask is one pass over an array that skips every subtree
//! whose prefix the automaton rejects.

/// A model's tokens as bytes, for masks.
pub struct VocabIndex {
    n_vocab: usize,
    /// Token `i`'s bytes are `bytes[off[i]..off[i + 1]]` (empty: never produced under a grammar).
    off: Vec<u32>,
    bytes: Vec<u8>,
    eog: Vec<u32>,
    nodes: Vec<Node>,
    toks: Vec<u32>,
    max_depth: usize,
}

#[derive(Clone, Copy)]
pub(crate) struct Node {
    pub byte: u8,
    pub depth: u32,
    /// The first node after this one's subtree.
    pub skip: u32,
    /// Tokens whose bytes end here: `toks[tok_lo..tok_hi]`.
    pub tok_lo: u32,
    pub tok_hi: u32,
}

impl VocabIndex {
    /// `tokens[i]`: token `i`'s bytes, or `None` for tokens never produced under a grammar
    /// (control tokens, empty ones). `eog`: end-of-generation tokens, allowed where the text is
    /// complete.
    pub fn new(tokens: &[Option<Vec<u8>>], eog: &[u32]) -> VocabIndex {
        let mut off = Vec::with_capacity(tokens.len() + 1);
        let mut bytes = Vec::new();
        off.push(0);
        for t in tokens {
            if let Some(b) = t {
                bytes.extend_from_slice(b);
            }
            off.push(bytes.len() as u32);
        }
        let mut order: Vec<u32> = (0..tokens.len() as u32).filter(|&i| tokens[i as usize].as_ref().is_some_and(|b| !b.is_empty())).collect();
        order.sort_by(|&a, &b| tokens[a as usize].cmp(&tokens[b as usize]).then(a.cmp(&b)));
        let mut nodes = vec![Node { byte: 0, depth: 0, skip: 0, tok_lo: 0, tok_hi: 0 }];
        let mut toks = Vec::with_capacity(order.len());
        // path[d] = node index at depth d (path[0] = root)
        let mut path: Vec<u32> = vec![0];
        let mut cur: &[u8] = &[];
        let mut max_depth = 0;
        for &id in &order {
            let s = tokens[id as usize].as_deref().unwrap_or_default();
            let lcp = cur.iter().zip(s).take_while(|(a, b)| a == b).count();
            while path.len() > lcp + 1 {
                let n = path.pop().unwrap_or_default();
                nodes[n as usize].skip = nodes.len() as u32;
            }
            for (d, &b) in s.iter().enumerate().skip(lcp) {
                let n = nodes.len() as u32;
                nodes.push(Node { byte: b, depth: d as u32 + 1, skip: 0, tok_lo: toks.len() as u32, tok_hi: toks.len() as u32 });
                path.push(n);
            }
            let last = *path.last().unwrap_or(&0) as usize;
            toks.push(id);
            nodes[last].tok_hi = toks.len() as u32;
            max_depth = max_depth.max(s.len());
            cur = s;
        }
        while let Some(n) = path.pop() {
            nodes[n as usize].skip = nodes.len() as u32;
        }
        VocabIndex { n_vocab: tokens.len(), off, bytes, eog: eog.to_vec(), nodes, toks, max_depth }
    }

    pub fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    pub fn n_nodes(&self) -> usize {
        self.nodes.len()
    }

    pub fn token_bytes(&self, id: u32) -> &[u8] {
        let i = id as usize;
        if i >= self.n_vocab {
            return &[];
        }
        &self.bytes[self.off[i] as usize..self.off[i + 1] as usize]
    }

    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    pub fn eog(&self) -> &[u32] {
        &self.eog
    }

    pub(crate) fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub(crate) fn toks(&self) -> &[u32] {
        &self.toks
    }

    pub(crate) fn max_depth(&self) -> usize {
        self.max_depth
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trie_in_preorder() {
        let toks: Vec<Option<Vec<u8>>> = ["ab", "a", "abc", "b", "ab", "", "ba"].iter().map(|s| Some(s.as_bytes().to_vec())).chain([None]).collect();
        let v = VocabIndex::new(&toks, &[7]);
        // root, a, ab, abc, b, ba
        let n = v.nodes();
        assert_eq!(n.len(), 6);
        assert_eq!(n.iter().map(|x| x.byte).collect::<Vec<_>>(), b"\0abcba".to_vec());
        assert_eq!(n[1].skip, 4);
        assert_eq!(n[2].skip, 4);
        assert_eq!(n[4].skip, 6);
        assert_eq!(&v.toks()[n[2].tok_lo as usize..n[2].tok_hi as usize], &[0, 4]);
        assert_eq!(v.token_bytes(2), b"abc");
        assert_eq!(v.token_bytes(7), b"");
        assert!(v.is_eog(7));
    }
}
