//! The symbol-merging loop shared by byte-level BPE and SentencePiece: start from the text's
//! characters, repeatedly merge the adjacent pair with the best key (smallest; ties go to the
//! leftmost pair), as llama.cpp does. Stale queue entries (a side merged away, or changed since
//! the entry was queued) are skipped by the same checks llama.cpp applies.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// `key(left, right)` gives the priority of merging two adjacent symbols, or `None` when they
/// cannot merge. Returns the final symbols as slices of `text`.
pub(crate) fn merge<K: Ord + Copy>(text: &str, mut key: impl FnMut(&str, &str) -> Option<K>) -> Vec<&str> {
    let starts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let n = starts.len();
    if n <= 1 {
        return if n == 0 { vec![] } else { vec![text] };
    }
    let mut sym: Vec<(usize, usize)> = (0..n).map(|i| (starts[i], if i + 1 < n { starts[i + 1] } else { text.len() })).collect();
    let mut prev: Vec<isize> = (0..n as isize).map(|i| i - 1).collect();
    let mut next: Vec<isize> = (0..n as isize).map(|i| if i + 1 < n as isize { i + 1 } else { -1 }).collect();
    let mut alive = vec![true; n];
    // (key, left, right, combined length), smallest first.
    let mut heap: BinaryHeap<Reverse<(K, usize, usize, usize)>> = BinaryHeap::new();
    let mut push = |heap: &mut BinaryHeap<_>, sym: &[(usize, usize)], l: usize, r: usize| {
        let ((ls, le), (rs, re)) = (sym[l], sym[r]);
        if let Some(k) = key(&text[ls..le], &text[rs..re]) {
            heap.push(Reverse((k, l, r, (le - ls) + (re - rs))));
        }
    };
    for i in 0..n - 1 {
        push(&mut heap, &sym, i, i + 1);
    }
    while let Some(Reverse((_, l, r, size))) = heap.pop() {
        if !alive[l] || !alive[r] || next[l] != r as isize {
            continue;
        }
        let ((ls, le), (rs, re)) = (sym[l], sym[r]);
        if (le - ls) + (re - rs) != size {
            continue;
        }
        sym[l] = (ls, re);
        alive[r] = false;
        next[l] = next[r];
        if next[r] >= 0 {
            prev[next[r] as usize] = l as isize;
        }
        if prev[l] >= 0 {
            push(&mut heap, &sym, prev[l] as usize, l);
        }
        if next[l] >= 0 {
            push(&mut heap, &sym, l, next[l] as usize);
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

/// A total order on f32 (as `f32::total_cmp`) usable as a heap key.
pub(crate) fn f32_key(v: f32) -> i32 {
    let b = v.to_bits() as i32;
    b ^ (((b >> 31) as u32) >> 1) as i32
}
