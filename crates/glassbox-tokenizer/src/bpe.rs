//! Byte-level BPE: GPT-2 byte↔unicode mapping and rank-ordered merges.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// GPT-2's reversible map from bytes to printable characters.
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable = (b'!' as u32..=b'~' as u32).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).expect("latin-1 char")
        } else {
            let c = char::from_u32(256 + n).expect("valid char");
            n += 1;
            c
        };
    }
    table
}

pub(crate) struct Merges {
    /// "left right" → rank
    ranks: HashMap<String, u32>,
}

impl Merges {
    pub fn new(ranks: HashMap<String, u32>) -> Merges {
        Merges { ranks }
    }

    fn rank(&self, key: &mut String, left: &str, right: &str) -> Option<u32> {
        key.clear();
        key.push_str(left);
        key.push(' ');
        key.push_str(right);
        self.ranks.get(key.as_str()).copied()
    }

    /// Merge one word (already byte-mapped) into symbols, lowest rank first, ties leftmost.
    pub fn apply<'a>(&self, word: &'a str) -> Vec<&'a str> {
        // Symbols as byte ranges into `word`, linked list via prev/next.
        let starts: Vec<usize> = word.char_indices().map(|(i, _)| i).collect();
        let n = starts.len();
        if n <= 1 {
            return vec![word];
        }
        let mut sym: Vec<(usize, usize)> =
            (0..n).map(|i| (starts[i], if i + 1 < n { starts[i + 1] } else { word.len() })).collect();
        let mut prev: Vec<isize> = (0..n as isize).map(|i| i - 1).collect();
        let mut next: Vec<isize> = (0..n as isize).map(|i| if i + 1 < n as isize { i + 1 } else { -1 }).collect();
        let mut alive = vec![true; n];
        let mut key = String::new();
        // Heap of (rank, left index, combined length) — min rank, then min left.
        let mut heap: BinaryHeap<Reverse<(u32, usize, usize, usize)>> = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<_>, key: &mut String, sym: &[(usize, usize)], l: usize, r: usize| {
            let (ls, le) = sym[l];
            let (rs, re) = sym[r];
            if let Some(rank) = self.rank(key, &word[ls..le], &word[rs..re]) {
                heap.push(Reverse((rank, l, r, (le - ls) + (re - rs))));
            }
        };
        for i in 0..n - 1 {
            push(&mut heap, &mut key, &sym, i, i + 1);
        }
        while let Some(Reverse((_, l, r, size))) = heap.pop() {
            if !alive[l] || !alive[r] || next[l] != r as isize {
                continue;
            }
            let (ls, le) = sym[l];
            let (rs, re) = sym[r];
            if (le - ls) + (re - rs) != size {
                continue; // stale
            }
            // Merge r into l.
            sym[l] = (ls, re);
            alive[r] = false;
            next[l] = next[r];
            if next[r] >= 0 {
                prev[next[r] as usize] = l as isize;
            }
            if prev[l] >= 0 {
                push(&mut heap, &mut key, &sym, prev[l] as usize, l);
            }
            if next[l] >= 0 {
                push(&mut heap, &mut key, &sym, l, next[l] as usize);
            }
        }
        let mut out = Vec::new();
        let mut i = 0isize;
        while i >= 0 {
            let (s, e) = sym[i as usize];
            out.push(&word[s..e]);
            i = next[i as usize];
        }
        out
    }
}
