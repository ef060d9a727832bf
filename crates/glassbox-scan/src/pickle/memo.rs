//! The unpickler's memo, compactly: every key the pickle memoizes is recorded (MEMOIZE's index
//! is the number of keys present, as in CPython), but only values the analysis tracks are kept.
//! Keys are dense in real pickles (CPython's own memo is an array indexed by key), so they live
//! in a `u32` code per key; values with heap data (strings, storage ids) sit in a slab whose
//! slots are charged to the caller's byte meter. Keys far beyond the dense range go to a map.
//! The slab grows in fixed chunks, so growing it never copies (nor transiently doubles) it.

use std::collections::HashMap;

use super::vm::Val;

const ABSENT: u32 = 0;
const OTHER: u32 = 1;
const MAGIC: u32 = 2;
const INT: u32 = 3;
/// `STORAGE + element size` (sizes up to 16).
const STORAGE: u32 = 4;
const SLAB: u32 = 32;
/// A key this far past the dense range is kept in the map instead.
const DENSE_GAP: u64 = 1024;
/// Bytes charged per slab slot.
pub(crate) const SLOT_BYTES: usize = std::mem::size_of::<Val>() + 8;
const SLAB_CHUNK: usize = 4096;

/// Slots in fixed-size chunks.
#[derive(Default)]
struct Slab {
    chunks: Vec<Vec<Val>>,
    len: usize,
}

impl Slab {
    fn get(&self, i: usize) -> Option<&Val> {
        self.chunks.get(i / SLAB_CHUNK)?.get(i % SLAB_CHUNK)
    }
    fn slot(&mut self, i: usize) -> &mut Val {
        &mut self.chunks[i / SLAB_CHUNK][i % SLAB_CHUNK]
    }
    fn push(&mut self, v: Val) -> usize {
        if self.len.is_multiple_of(SLAB_CHUNK) {
            self.chunks.push(Vec::with_capacity(SLAB_CHUNK));
        }
        if let Some(c) = self.chunks.last_mut() {
            c.push(v);
        }
        self.len += 1;
        self.len - 1
    }
}

#[derive(Default)]
pub(crate) struct Memo {
    dense: Vec<u32>,
    sparse: HashMap<u64, u32>,
    slab: Slab,
    free: Vec<u32>,
    /// Keys present: where MEMOIZE stores next.
    pub count: u64,
}

pub(crate) enum PutError {
    /// The memo holds as many keys as allowed.
    Entries,
}

impl Memo {
    fn code(&self, k: u64) -> u32 {
        match usize::try_from(k).ok().and_then(|i| self.dense.get(i)) {
            Some(&c) if c != ABSENT => c,
            _ if self.sparse.is_empty() => ABSENT,
            _ => self.sparse.get(&k).copied().unwrap_or(ABSENT),
        }
    }

    pub fn get(&self, k: u64) -> Val {
        match self.code(k) {
            ABSENT | OTHER => Val::Other,
            MAGIC => Val::Magic,
            INT => Val::Int,
            c if c < SLAB => Val::Storage((c - STORAGE) as u8),
            c => self.slab.get((c - SLAB) as usize).cloned().unwrap_or(Val::Other),
        }
    }

    /// Store `v` under `k`. Returns the value it replaces, if that held heap data, and the
    /// change in bytes charged for slab slots.
    pub fn put(&mut self, k: u64, v: &Val, max_entries: usize) -> Result<(Option<Val>, isize), PutError> {
        let old = self.code(k);
        if old == ABSENT && self.dense.len() + self.sparse.len() >= max_entries {
            return Err(PutError::Entries);
        }
        let mut delta = 0isize;
        let mut replaced = None;
        let code = match v {
            Val::Mark | Val::Other => OTHER,
            Val::Magic => MAGIC,
            Val::Int => INT,
            Val::Storage(es) => STORAGE + (*es as u32).min(16),
            Val::Str(_) | Val::Pid { .. } => {
                if old >= SLAB {
                    // Reuse the slot in place.
                    let slot = self.slab.slot((old - SLAB) as usize);
                    replaced = Some(std::mem::replace(slot, v.clone()));
                    return Ok((replaced, 0));
                }
                let slot = match self.free.pop() {
                    Some(s) => {
                        *self.slab.slot(s as usize) = v.clone();
                        s
                    }
                    None => self.slab.push(v.clone()) as u32,
                };
                delta += SLOT_BYTES as isize;
                SLAB + slot
            }
        };
        if old >= SLAB {
            let s = old - SLAB;
            replaced = Some(std::mem::replace(self.slab.slot(s as usize), Val::Other));
            self.free.push(s);
            delta -= SLOT_BYTES as isize;
        }
        if old == ABSENT {
            self.count += 1;
        }
        match usize::try_from(k) {
            _ if self.sparse.contains_key(&k) => {
                self.sparse.insert(k, code);
            }
            Ok(i) if i < self.dense.len() => self.dense[i] = code,
            Ok(i) if k <= self.dense.len() as u64 + DENSE_GAP => {
                self.dense.resize(i + 1, ABSENT);
                self.dense[i] = code;
            }
            _ => {
                self.sparse.insert(k, code);
            }
        }
        Ok((replaced, delta))
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;

    #[test]
    fn count_follows_every_key_and_values_round_trip() {
        let mut m = Memo::default();
        let s = Val::Str(Rc::from("os"));
        assert!(m.put(0, &Val::Other, 10).is_ok());
        assert!(m.put(1, &s, 10).is_ok());
        assert!(m.put(1 << 40, &Val::Storage(4), 10).is_ok());
        assert!(m.put(0, &s, 10).is_ok());
        assert_eq!(m.count, 3);
        assert!(matches!(m.get(0), Val::Str(x) if &*x == "os"));
        assert!(matches!(m.get(1 << 40), Val::Storage(4)));
        assert!(matches!(m.get(2), Val::Other));
        // Replacing a string with an opaque value frees its slot.
        let (old, delta) = m.put(1, &Val::Other, 10).ok().unwrap();
        assert!(matches!(old, Some(Val::Str(_))) && delta < 0);
        assert!(matches!(m.put(99, &Val::Other, 3), Err(PutError::Entries)));
    }
}
