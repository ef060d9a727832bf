//! Byte-level BPE: GPT-2 byte↔unicode mapping and rank-ordered merges.

use std::collections::HashMap;

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

    /// Merge one word (already byte-mapped) into symbols, lowest rank first, ties leftmost.
    pub fn apply<'a>(&self, word: &'a str) -> Vec<&'a str> {
        let mut key = String::new();
        crate::merge::merge(word, |l, r| {
            key.clear();
            key.push_str(l);
            key.push(' ');
            key.push_str(r);
            self.ranks.get(key.as_str()).copied()
        })
    }
}
