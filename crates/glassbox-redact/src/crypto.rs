//! Bitcoin addresses as Presidio's `CryptoRecognizer` finds them: its pattern (no word
//! boundaries: an address inside a longer run is found), then the checksum — Base58Check
//! (double SHA-256) for addresses starting `1` or `3`, Bech32 / Bech32m (BIP 173 / 350) for
//! those starting `bc1`, exactly as its `validate_result` checks them; a valid address scores 1.0.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

use crate::patterns::linear;
use crate::window;
use crate::{Entity, Finding};

/// Presidio's pattern (case-insensitive, so its class is every ASCII letter and digit, and the
/// two characters that fold into them).
pub(crate) const CRYPTO_PATTERN: &str = r"(bc1|[13])[a-zA-HJ-NP-Z0-9]{25,59}";

static PATTERN: LazyLock<regex::Regex> = LazyLock::new(|| linear(CRYPTO_PATTERN));

const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const BECH32: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const BECH32M_CONST: u32 = 0x2BC8_30A3;

/// Base58 to bytes as Python's `int.to_bytes` gives them: one zero byte per leading `1`, then the
/// number's minimal big-endian bytes.
fn base58(s: &[u8]) -> Option<Vec<u8>> {
    let zeros = s.iter().take_while(|&&c| c == b'1').count();
    let mut n: Vec<u8> = Vec::new(); // little-endian
    for &c in &s[zeros..] {
        let mut carry = BASE58.iter().position(|&d| d == c)? as u32;
        for byte in n.iter_mut() {
            carry += u32::from(*byte) * 58;
            *byte = carry as u8;
            carry >>= 8;
        }
        while carry > 0 {
            n.push(carry as u8);
            carry >>= 8;
        }
    }
    while n.last() == Some(&0) {
        n.pop();
    }
    let mut out = vec![0u8; zeros];
    out.extend(n.iter().rev());
    Some(out)
}

fn base58check(s: &str) -> bool {
    let Some(b) = base58(s.as_bytes()) else { return false };
    // Python: bcbytes[-4:] == sha256(sha256(bcbytes[:-4]))[:4], slices clamped.
    let cut = b.len().saturating_sub(4);
    let sum = Sha256::digest(Sha256::digest(&b[..cut]));
    b[cut..] == sum[..4.min(b.len() - cut)] && b.len() - cut == 4
}

fn polymod(values: &[u8]) -> u32 {
    const GEN: [u32; 5] = [0x3B6A_57B2, 0x2650_8E6D, 0x1EA1_19FA, 0x3D42_33DD, 0x2A14_62B3];
    let mut chk: u32 = 1;
    for &v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01FF_FFFF) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

fn bech32(s: &str) -> bool {
    if s.bytes().any(|b| !(33..=126).contains(&b)) || (s.to_ascii_lowercase() != s && s.to_ascii_uppercase() != s) {
        return false;
    }
    let s = s.to_ascii_lowercase();
    let Some(pos) = s.rfind('1') else { return false };
    if pos < 1 || pos + 7 > s.len() || s.len() > 90 {
        return false;
    }
    let Some(data) = s[pos + 1..].bytes().map(|c| BECH32.iter().position(|&d| d == c).map(|p| p as u8)).collect::<Option<Vec<u8>>>() else { return false };
    let hrp = &s.as_bytes()[..pos];
    let mut values: Vec<u8> = hrp.iter().map(|c| c >> 5).collect();
    values.push(0);
    values.extend(hrp.iter().map(|c| c & 31));
    values.extend(data);
    matches!(polymod(&values), 1 | BECH32M_CONST)
}

/// Presidio's `validate_result`.
pub(crate) fn valid(s: &str) -> bool {
    if s.starts_with('1') || s.starts_with('3') {
        base58check(s)
    } else {
        s.starts_with("bc1") && bech32(s)
    }
}

pub(crate) fn find(text: &str, digits: &[usize]) -> Vec<Finding> {
    let b = text.as_bytes();
    let seeds = digits.iter().copied().filter(|&i| matches!(b[i], b'1' | b'3'));
    let windows = window::runs(text, seeds, crate::iban::alnum, |r| r.chars().count() >= 26);
    window::find_in(&PATTERN, text, &windows)
        .into_iter()
        .filter(|m| valid(&text[m.clone()]))
        .map(|m| Finding { entity: Entity::Crypto, start: m.start, end: m.end, score: 1.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums() {
        // Bitcoin's genesis address, a P2SH address, a Bech32 (BIP 173) address.
        assert!(valid("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"));
        assert!(!valid("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb"));
        assert!(valid("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"));
        assert!(valid("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"));
        assert!(!valid("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdp"));
        assert!(!valid("BC1QAR0SRRR7XFKVY5L643LYDNW9RE59GTZZWF5MDQ"));
        let t = "send to 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa or bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq.";
        let got: Vec<&str> = find(t, &window::digits(t)).iter().map(|f| &t[f.start..f.end]).collect();
        assert_eq!(got, ["1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"]);
    }
}
