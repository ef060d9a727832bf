//! Adversarial inputs for the fail-closed properties: amplification through DUP / GET / MEMOIZE,
//! deep nesting, huge declared lengths, many concatenated pickles, archive bombs across members
//! and nesting levels, `PK\x03\x04` inside member data. Each comes with the verdict it requires.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Expect {
    /// A high finding that says the analysis was incomplete.
    Incomplete,
    /// A high finding of any kind.
    High,
    /// No high finding.
    NotHigh,
    /// Anything, as long as it is analysed in bounded time and memory.
    Any,
}

pub struct Case {
    pub name: String,
    pub data: Vec<u8>,
    pub expect: Expect,
}

fn case(name: impl Into<String>, data: Vec<u8>, expect: Expect) -> Case {
    Case { name: name.into(), data, expect }
}

/// BINUNICODE8 push of `n` bytes.
pub fn big_string(n: usize) -> Vec<u8> {
    let mut v = vec![0x8d];
    v.extend_from_slice(&(n as u64).to_le_bytes());
    v.extend(std::iter::repeat_n(b'a', n));
    v
}

/// A large string DUPed `dups` times (kept on the stack).
pub fn dup_amplification(len: usize, dups: usize) -> Case {
    let mut b = big_string(len);
    b.extend(std::iter::repeat_n(b'2', dups));
    let expect = if dups < 100_000 { Expect::NotHigh } else { Expect::Any };
    case(format!("dup x{dups} of a {len}-byte string"), pickle(4, &[&b]), expect)
}

/// A large string memoized once and fetched `gets` times with BINGET, LONG_BINGET and GET
/// (each fetch popped again when `pop`).
pub fn memo_amplification(len: usize, gets: usize, pop: bool) -> Case {
    let mut b = big_string(len);
    b.extend_from_slice(&[0x94, b'0']);
    for i in 0..gets {
        match i % 3 {
            0 => b.extend_from_slice(&[b'h', 0]),
            1 => b.extend_from_slice(&[b'j', 0, 0, 0, 0]),
            _ => b.extend_from_slice(b"g0\n"),
        }
        if pop {
            b.push(b'0');
        }
    }
    let expect = if pop || gets < 100_000 { Expect::NotHigh } else { Expect::Any };
    case(format!("memo get x{gets} of a {len}-byte string (pop: {pop})"), pickle(4, &[&b]), expect)
}

/// `n` nested MARKs, closed again by `n` TUPLEs.
pub fn deep_nesting(n: usize) -> Case {
    let mut b = vec![b'('; n];
    b.extend(std::iter::repeat_n(b't', n));
    let expect = if n > 1 << 17 { Expect::Incomplete } else { Expect::NotHigh };
    case(format!("{n} nested marks"), pickle(2, &[&b]), expect)
}

/// Every length-prefixed opcode claiming far more bytes than there are.
pub fn huge_lengths() -> Vec<Case> {
    let mut out = Vec::new();
    for (op, width) in [(0x8du8, 8usize), (0x8e, 8), (0x96, 8), (b'X', 4), (b'T', 4), (b'B', 4), (0x8b, 4), (0x8a, 1), (b'U', 1), (0x8c, 1), (b'C', 1)] {
        let mut v = vec![0x80, 4, op];
        v.extend(std::iter::repeat_n(0xff, width));
        v.extend_from_slice(b"abc");
        out.push(case(format!("opcode 0x{op:02x} claiming 2^{} bytes", width * 8), v.clone(), Expect::NotHigh));
        // The same after a complete pickle: bytes that do not parse are not accounted for.
        let mut after = benign2();
        after.extend_from_slice(&v);
        out.push(case(format!("opcode 0x{op:02x} claiming 2^{} bytes after a pickle", width * 8), after, Expect::Incomplete));
    }
    out
}

/// `n` benign pickles of protocols 0 to 4 in a row, then a malicious protocol-0 one.
pub fn many_pickles(n: usize) -> Case {
    let kinds: [&[u8]; 4] = [b"(lp0\nVa\np1\na.", b"]q\x00(K\x01K\x02e.", &benign2(), b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00}\x94."];
    let mut v = Vec::new();
    for i in 0..n {
        v.extend_from_slice(kinds[i % kinds.len()]);
    }
    v.extend_from_slice(&evil0());
    case(format!("{n} pickles then a malicious protocol-0 one"), v, Expect::High)
}

/// `n` distinct strings, each memoized.
pub fn many_strings(n: usize) -> Case {
    let mut b = Vec::new();
    for i in 0..n {
        let t = format!("{i:060}");
        b.extend_from_slice(&s(&t));
        b.extend_from_slice(&[0x94, b'0']);
    }
    case(format!("{n} distinct memoized strings"), pickle(4, &[&b]), Expect::Any)
}

/// `n` imports that are not allowed: one high finding each (capped in the report).
pub fn many_findings(n: usize) -> Case {
    let mut b = Vec::new();
    for _ in 0..n {
        b.extend_from_slice(&[b'h', 0, b'h', 1, 0x93, b'0']);
    }
    case(format!("{n} disallowed imports"), pickle(4, &[&s("os"), &[0x94], &s("system"), &[0x94, b'0', b'0'], &b]), Expect::High)
}

/// A harmless pickle body of `n` bytes (NONE, POP pairs) that compresses ~1000:1.
pub fn compressible_pickle(n: usize) -> Vec<u8> {
    let mut raw = vec![0x80, 2];
    raw.extend(b"N0".repeat(n / 2));
    raw.push(b'.');
    raw
}

/// One member that inflates to `n` bytes of pickle.
pub fn zip_bomb(n: usize) -> Case {
    let c = deflate(&compressible_pickle(n));
    case(format!("zip member inflating to {n} bytes"), zip(&[Member { method: 8, data: c, ..Member::stored("archive/data.pkl", &[]) }]), Expect::Incomplete)
}

/// `members` members each inflating to `each` bytes of pickle.
pub fn zip_bomb_members(members: usize, each: usize) -> Case {
    let c = deflate(&compressible_pickle(each));
    let ms: Vec<Member> = (0..members).map(|i| Member { method: 8, data: c.clone(), ..Member::stored(&format!("m{i}.pkl"), &[]) }).collect();
    case(format!("{members} zip members inflating to {each} bytes each"), zip(&ms), Expect::Incomplete)
}

/// A bomb member inside `depth` levels of deflated zips (each level held while the next is read).
pub fn nested_zip_bomb(depth: usize, inflated: usize) -> Case {
    let mut z = zip(&[Member::deflated("archive/data.pkl", &compressible_pickle(inflated))]);
    for i in 0..depth {
        z = zip(&[Member::deflated(&format!("level{i}.zip"), &z), Member::stored(&format!("copy{i}.zip"), &z)]);
    }
    let expect = if depth >= 4 { Expect::Incomplete } else { Expect::Any };
    case(format!("bomb of {inflated} bytes inside {depth} nested zips"), z, expect)
}

/// Highly compressible members that are not pickles: only their first bytes are inflated.
pub fn zip_of_compressible_data(members: usize, each: usize) -> Case {
    let c = deflate(&vec![0u8; each]);
    let ms: Vec<Member> = (0..members).map(|i| Member { method: 8, data: c.clone(), ..Member::stored(&format!("archive/data/{i}"), &[]) }).collect();
    case(format!("{members} non-pickle members inflating to {each} bytes each"), zip(&ms), Expect::NotHigh)
}

/// A member whose (stored or deflated) data holds a complete local header and malicious pickle.
pub fn zip_pk_inside(deflated: bool, torch_style: bool) -> Case {
    let inner = phantom();
    let mut m = if deflated { Member { method: 8, data: deflate_stored(&inner), ..Member::stored("notes.txt", &[]) } } else { Member::stored("notes.txt", &inner) };
    let mut d = Member::stored("archive/data.pkl", &benign2());
    if torch_style {
        m = m.torch_style();
        d = d.torch_style();
    }
    case(format!("PK signature inside {} data (torch style: {torch_style})", if deflated { "deflated" } else { "stored" }), zip(&[m, d]), Expect::NotHigh)
}

/// `n` tiny stored members with long names, all pickles that fail to parse.
pub fn many_members(n: usize, name_len: usize) -> Case {
    let ms: Vec<Member> = (0..n).map(|i| Member::stored(&format!("{i:0>name_len$}.pkl"), b"\x80\x02\xff")).collect();
    case(format!("{n} members with {name_len}-byte names"), zip(&ms), Expect::Any)
}

/// A legacy torch.save prefix declaring `n` storages, followed by their (empty) records.
pub fn legacy_many_storages(n: usize) -> Case {
    let mut v = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03.\x80\x02}q\x00.".to_vec();
    // The object: a list of persistent ids ('storage', torch.FloatStorage, key, 'cpu', 0, None).
    let mut obj = vec![0x80, 2, b']', b'(', b'c'];
    obj.extend_from_slice(b"torch\nFloatStorage\n");
    obj.extend_from_slice(&[b'q', 0, b'0']);
    let mut keys = vec![0x80, 2, b']', b'('];
    for i in 0..n {
        let k = format!("{i}");
        obj.extend_from_slice(b"(");
        obj.extend_from_slice(&s("storage"));
        obj.extend_from_slice(&[b'h', 0]);
        obj.extend_from_slice(&s(&k));
        obj.extend_from_slice(&s("cpu"));
        obj.extend_from_slice(&[b'K', 0, b'N', b't', b'Q']);
        keys.extend_from_slice(&s(&k));
    }
    obj.extend_from_slice(b"e.");
    keys.extend_from_slice(b"e.");
    v.extend_from_slice(&obj);
    v.extend_from_slice(&keys);
    for _ in 0..n {
        v.extend_from_slice(&0u64.to_le_bytes());
    }
    let expect = if n > 1 << 15 { Expect::Incomplete } else { Expect::NotHigh };
    case(format!("legacy torch file with {n} storages"), v, expect)
}

/// A pickle that fills the analysis state to just under every limit (shared string memoized
/// into ~700 k slots, ~2 M memo keys, a stack of ~131 k entries), padded to `pad` bytes.
pub fn max_state_pickle(pad: usize) -> Vec<u8> {
    let mut b = s("shared");
    b.extend(std::iter::repeat_n(0x94, 700_000));
    b.extend_from_slice(b"0)");
    b.extend(std::iter::repeat_n(0x94, 1_290_000));
    b.extend(std::iter::repeat_n(b')', 131_000));
    b.extend(b"N0".repeat(pad.saturating_sub(b.len()) / 2));
    pickle(4, &[&b])
}

/// [`max_state_pickle`] raw, and deflated inside a zip (held in memory while analysed).
pub fn max_state() -> Vec<Case> {
    let p = max_state_pickle(15 << 20);
    let z = zip(&[Member::deflated("archive/data.pkl", &p)]);
    vec![case("pickle state just under every limit", p, Expect::NotHigh), case("the same pickle deflated in a zip (15 MiB held)", z, Expect::NotHigh)]
}

/// One stored nested archive of `size` bytes that `entries` central-directory entries point at.
pub fn many_entries_one_member(entries: usize, size: usize) -> Case {
    let inner = zip(&[Member::stored("a.bin", &vec![b'x'; size])]);
    let mut z = zip(&[Member::stored("inner.zip", &inner)]);
    let cd = z.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap_or(0);
    let eocd = z.len() - 22;
    let mut entry = z[cd..eocd].to_vec();
    // A name other than the local header's, so no entry repeats the reading the walk made.
    entry[46] = b'I';
    z.truncate(cd);
    for _ in 0..entries {
        z.extend_from_slice(&entry);
    }
    let size_cd = (entry.len() * entries) as u32;
    z.extend_from_slice(b"PK\x05\x06\0\0\0\0\xff\xff\xff\xff");
    z.extend_from_slice(&size_cd.to_le_bytes());
    z.extend_from_slice(&(cd as u32).to_le_bytes());
    z.extend_from_slice(&[0, 0]);
    case(format!("{entries} directory entries pointing at one {size}-byte nested zip"), z, Expect::Incomplete)
}

/// The fixed adversarial set, sized for `scale` (1 = quick, larger = heavier).
pub fn all(scale: usize) -> Vec<Case> {
    let mut v = vec![
        dup_amplification(1 << 20, 2048 * scale),
        dup_amplification(1 << 20, 1 << 18),
        memo_amplification(1 << 20, 2048 * scale, false),
        memo_amplification(1 << 20, 1 << 20, true),
        deep_nesting(1 << 16),
        deep_nesting(1 << 20),
        many_pickles(100_000 * scale),
        many_strings(400_000),
        many_findings(200_000),
        zip_bomb(64 << 20),
        zip_bomb_members(64, 8 << 20),
        nested_zip_bomb(3, 12 << 20),
        nested_zip_bomb(5, 1 << 20),
        zip_of_compressible_data(64, 64 << 20),
        zip_pk_inside(false, false),
        zip_pk_inside(true, false),
        zip_pk_inside(false, true),
        zip_pk_inside(true, true),
        many_members(20_000, 2000),
        legacy_many_storages(1000),
        legacy_many_storages(40_000),
        many_entries_one_member(100_000, 1 << 20),
    ];
    v.extend(max_state());
    v.extend(huge_lengths());
    v
}

/// Check a report against what a case requires; the message when it does not hold.
pub fn verdict_error(c: &Case, r: &glassbox_scan::Report) -> Option<String> {
    let ok = match c.expect {
        Expect::Incomplete => !incomplete(r).is_empty(),
        Expect::High => r.has_high(),
        Expect::NotHigh => !r.has_high(),
        Expect::Any => true,
    };
    (!ok).then(|| format!("{}: expected {:?}, got:\n{}", c.name, c.expect, show(r)))
}
