//! SentencePiece (BPE-by-score, llama.cpp's `llm_tokenizer_spm`) with byte fallback.

use std::collections::{BinaryHeap, HashMap};

#[derive(PartialEq)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Highest score first; ties → smaller left index first.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.score.total_cmp(&o.score).then(o.left.cmp(&self.left))
    }
}

/// Split `text` into the symbols SentencePiece's merge loop ends with.
pub(crate) fn merge<'a>(text: &'a str, lookup: &HashMap<String, u32>, scores: &[f32]) -> Vec<&'a str> {
    let starts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let n = starts.len();
    if n == 0 {
        return vec![];
    }
    let mut sym: Vec<(usize, usize)> =
        (0..n).map(|i| (starts[i], if i + 1 < n { starts[i + 1] } else { text.len() })).collect();
    let mut prev: Vec<isize> = (0..n as isize).map(|i| i - 1).collect();
    let mut next: Vec<isize> = (0..n as isize).map(|i| if i + 1 < n as isize { i + 1 } else { -1 }).collect();
    let mut alive = vec![true; n];
    let mut heap = BinaryHeap::new();
    let try_add = |heap: &mut BinaryHeap<Bigram>, sym: &[(usize, usize)], l: usize, r: usize| {
        let (s, _) = sym[l];
        let (_, e) = sym[r];
        if let Some(&id) = lookup.get(&text[s..e]) {
            heap.push(Bigram { score: scores.get(id as usize).copied().unwrap_or(0.0), left: l, right: r, size: e - s });
        }
    };
    for i in 0..n - 1 {
        try_add(&mut heap, &sym, i, i + 1);
    }
    while let Some(b) = heap.pop() {
        let (l, r) = (b.left, b.right);
        if !alive[l] || !alive[r] || next[l] != r as isize {
            continue;
        }
        let (ls, _) = sym[l];
        let (_, re) = sym[r];
        if re - ls != b.size {
            continue;
        }
        sym[l].1 = re;
        alive[r] = false;
        next[l] = next[r];
        if next[r] >= 0 {
            prev[next[r] as usize] = l as isize;
        }
        if prev[l] >= 0 {
            try_add(&mut heap, &sym, prev[l] as usize, l);
        }
        if next[l] >= 0 {
            try_add(&mut heap, &sym, l, next[l] as usize);
        }
    }
    let mut out = Vec::new();
    let mut i = 0isize;
    while i >= 0 {
        let (s, e) = sym[i as usize];
        out.push(&text[s..e]);
        i = next[i as usize];
    }
    out
}
