//! Legacy (pre-zip) `torch.save` files: five pickles (magic number, protocol version, system
//! info, the object, the list of storage keys) followed by each storage's raw bytes, in the order
//! of the keys, as an 8-byte little-endian element count and count × element-size bytes.
//! `torch.load` reads those records without unpickling them; the walk below accounts for them
//! exactly, so that whatever follows them is analysed again as pickles (or flagged), and data
//! that does not match the storages the pickles declare is reported, not skipped.

use std::collections::HashMap;
use std::rc::Rc;

#[derive(Default)]
pub(crate) struct Legacy {
    /// Storage key → element size, from the object pickle's persistent ids.
    storages: HashMap<Rc<str>, u8>,
    /// Storage keys in the order of the keys pickle.
    keys: Vec<Rc<str>>,
}

impl Legacy {
    /// Record a storage key (Err: the limit).
    pub fn key(&mut self, key: Rc<str>, max: usize) -> Result<(), usize> {
        if self.keys.len() >= max {
            return Err(max);
        }
        self.keys.push(key);
        Ok(())
    }

    /// Record a storage's element size (Err: the limit).
    pub fn storage(&mut self, key: Rc<str>, elsize: u8, max: usize) -> Result<(), usize> {
        if self.storages.len() >= max && !self.storages.contains_key(&key) {
            return Err(max);
        }
        self.storages.insert(key, elsize);
        Ok(())
    }

    /// Walk the storage records from `start`; the offset just past the last one.
    pub fn walk(&self, data: &[u8], start: usize) -> Result<usize, String> {
        let mut pos = start;
        for key in &self.keys {
            let Some(&elsize) = self.storages.get(key) else {
                return Err(format!("storage key {key:?} of the keys pickle is not a storage the object pickle declares"));
            };
            let count = pos.checked_add(8).and_then(|e| data.get(pos..e)).ok_or_else(|| format!("the record of storage {key:?} at offset {pos} is truncated"))?;
            let count = u64::from_le_bytes(count.try_into().map_err(|_| "8 bytes".to_string())?);
            let end = count
                .checked_mul(elsize as u64)
                .and_then(|n| usize::try_from(n).ok())
                .and_then(|n| pos.checked_add(8)?.checked_add(n))
                .filter(|&e| e <= data.len())
                .ok_or_else(|| format!("storage {key:?} at offset {pos} declares {count} elements of {elsize} bytes, past the end of the data"))?;
            pos = end;
        }
        Ok(pos)
    }
}
