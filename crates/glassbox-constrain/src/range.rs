//! Integers within bounds as a grammar: their canonical decimal forms (no leading zeros, no
//! `-0`), built digit by digit as llama.cpp's JSON-schema converter builds them.

use crate::grammar::{lit, Builder, ByteClass, Sym};
use crate::Result;

fn digits(lo: u8, hi: u8) -> Sym {
    Sym::Class(ByteClass::range(lo, hi))
}

/// Same-length decimal strings from `x` to `y` (inclusive, `x <= y`), as alternatives.
fn same_len(b: &mut Builder, x: &[u8], y: &[u8]) -> Result<Vec<Vec<Sym>>> {
    if x.is_empty() {
        return Ok(vec![vec![]]);
    }
    let rest_all = |n: usize| vec![digits(b'0', b'9'); n];
    if x[0] == y[0] {
        let tails = same_len(b, &x[1..], &y[1..])?;
        let id = b.add("integer digits", tails)?;
        return Ok(vec![vec![Sym::Class(ByteClass::single(x[0])), Sym::Rule(id)]]);
    }
    let n = x.len() - 1;
    let mut alts = Vec::new();
    if x[1..].iter().all(|&c| c == b'0') && y[1..].iter().all(|&c| c == b'9') {
        let mut a = vec![digits(x[0], y[0])];
        a.extend(rest_all(n));
        return Ok(vec![a]);
    }
    let nines = vec![b'9'; n];
    let zeros = vec![b'0'; n];
    let lo_tails = same_len(b, &x[1..], &nines)?;
    let lo_id = b.add("integer digits", lo_tails)?;
    alts.push(vec![Sym::Class(ByteClass::single(x[0])), Sym::Rule(lo_id)]);
    if x[0] + 1 < y[0] {
        let mut a = vec![digits(x[0] + 1, y[0] - 1)];
        a.extend(rest_all(n));
        alts.push(a);
    }
    let hi_tails = same_len(b, &zeros, &y[1..])?;
    let hi_id = b.add("integer digits", hi_tails)?;
    alts.push(vec![Sym::Class(ByteClass::single(y[0])), Sym::Rule(hi_id)]);
    Ok(alts)
}

/// Non-negative integers in `[a, b]`.
fn non_negative(bld: &mut Builder, a: u64, b: u64) -> Result<Vec<Vec<Sym>>> {
    let mut alts = Vec::new();
    let (da, db) = (a.to_string().len(), b.to_string().len());
    for d in da..=db {
        let lo = if d == da { a } else { 10u64.pow(d as u32 - 1) };
        let hi = if d == db { b } else { 10u64.pow(d as u32) - 1 };
        alts.extend(same_len(bld, lo.to_string().as_bytes(), hi.to_string().as_bytes())?);
    }
    Ok(alts)
}

/// A rule for the integers in `[lo, hi]` (`lo <= hi`, both within ±10^15).
pub(crate) fn int_range(b: &mut Builder, lo: i64, hi: i64) -> Result<u32> {
    let mut alts = Vec::new();
    if hi >= 0 {
        alts.extend(non_negative(b, lo.max(0) as u64, hi as u64)?);
    }
    if lo < 0 {
        let neg = non_negative(b, hi.min(-1).unsigned_abs(), lo.unsigned_abs())?;
        let id = b.add("negative integer", neg)?;
        let mut a = lit(b"-");
        a.push(Sym::Rule(id));
        alts.push(a);
    }
    b.add("bounded integer", alts)
}
