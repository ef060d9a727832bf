//! Property test over generated inputs (a deterministic generator, so every failure replays):
//! streams of pickles of every protocol with malicious pickles and garbage at random places,
//! wrapped in zip archives (stored, deflated, PyTorch-style, hidden from the central directory,
//! nested up to past the limit) next to phantom-bearing and bomb members, some with bytes
//! flipped. For each input the verdict the fail-closed rules require must hold, every
//! top-level finding must point inside the input, the scan must end within seconds, and
//! tightening the limits must never lower the verdict (fail closed: a limit can only add a high).

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::adversarial::{Expect, compressible_pickle};
use common::*;
use glassbox_scan::{Limits, scan_bytes, scan_bytes_with};

fn tiny() -> Limits {
    Limits { stack: 64, memo: 64, value_bytes: 4096, opcodes: 20_000, depth: 2, inflate_base: 1 << 20, inflate_per_byte: 2, held_base: 64 << 10, member_base: 1 << 20, member_per_byte: 2, storages: 16, findings: 32 }
}

/// xorshift64*: small, deterministic, good enough to pick shapes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

enum Piece {
    Benign,
    Evil,
    Garbage,
}

fn piece(rng: &mut Rng) -> (Piece, Vec<u8>) {
    match rng.below(10) {
        0 => (Piece::Evil, evil0()),
        1 => (Piece::Evil, evil4()),
        2 => (Piece::Evil, b"cposix\nsystem\nq\x00(X\x02\x00\x00\x00idq\x01tR.".to_vec()),
        3 => (Piece::Garbage, vec![0xff, 0xfe, b'x']),
        4 => (Piece::Benign, b"(lp0\nVa\np1\na.".to_vec()),
        5 => (Piece::Benign, b"]q\x00(K\x01K\x02e.".to_vec()),
        6 => (Piece::Benign, adversarial::memo_amplification(1 << 12, 64, rng.chance(2)).data),
        7 => (Piece::Benign, adversarial::dup_amplification(1 << 12, 64).data),
        8 => (Piece::Benign, adversarial::deep_nesting(1 + rng.below(4096)).data),
        _ => (Piece::Benign, benign2()),
    }
}

use common::adversarial;

/// A stream of 1–12 pieces and the verdict the rules require of it.
fn stream(rng: &mut Rng) -> (Vec<u8>, Expect) {
    let mut data = Vec::new();
    let mut evil_reached = false;
    let mut garbage_at: Option<usize> = None;
    for i in 0..1 + rng.below(12) {
        let (kind, bytes) = piece(rng);
        if garbage_at.is_none() {
            match kind {
                Piece::Evil => evil_reached = true,
                Piece::Garbage => garbage_at = Some(i),
                Piece::Benign => {}
            }
        }
        data.extend_from_slice(&bytes);
    }
    let expect = match garbage_at {
        // Garbage after a complete pickle is not accounted for: incomplete.
        Some(i) if i > 0 => Expect::Incomplete,
        // Nothing parses from the start: unpickling fails at once, nothing runs.
        Some(_) => Expect::NotHigh,
        None if evil_reached => Expect::High,
        None => Expect::NotHigh,
    };
    (data, expect)
}

fn bomb() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| deflate(&compressible_pickle(48 << 20)))
}

fn worse(a: Expect, b: Expect) -> Expect {
    let rank = |e: Expect| match e {
        Expect::NotHigh => 0,
        Expect::High => 1,
        Expect::Incomplete => 2,
        Expect::Any => 3,
    };
    if rank(a) >= rank(b) { a } else { b }
}

/// Wrap `data` as `archive/data.pkl` in a zip with random siblings; the verdict it requires.
fn wrap(rng: &mut Rng, data: &[u8], expect: Expect, level: usize) -> (Vec<u8>, Expect) {
    let deflated = rng.chance(2);
    let mut m = if deflated { Member::deflated("archive/data.pkl", data) } else { Member::stored("archive/data.pkl", data) };
    let torch = rng.chance(2);
    if torch {
        m = m.torch_style();
    }
    let listed = !rng.chance(4);
    m.listed = listed;
    let mut expect = expect;
    if torch && !listed && !deflated {
        // A stored member whose size only a data descriptor gives, listed nowhere.
        expect = worse(expect, Expect::Incomplete);
    }
    let mut members = vec![m];
    if rng.chance(3) {
        let p = phantom();
        members.insert(0, if rng.chance(2) { Member::stored("notes.txt", &p) } else { Member { method: 8, data: deflate_stored(&p), ..Member::stored("notes.txt", &[]) } });
    }
    if rng.chance(3) {
        members.push(Member::deflated("archive/data/0", &vec![0u8; 1 << (10 + rng.below(14))]));
    }
    if rng.chance(12) {
        members.push(Member { method: 8, data: bomb().to_vec(), ..Member::stored("archive/extra.pkl", &[]) });
        expect = worse(expect, Expect::Incomplete);
    }
    if level >= 5 {
        // Archives nested past the limit.
        expect = worse(expect, Expect::Incomplete);
    }
    (zip(&members), expect)
}

#[test]
fn generated_inputs_get_the_required_verdict_in_bounded_time() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut tally = std::collections::BTreeMap::new();
    let cases = 400;
    for n in 0..cases {
        let (mut data, mut expect) = stream(&mut rng);
        let levels = if rng.chance(2) { 0 } else { 1 + rng.below(5) };
        for level in 1..=levels {
            (data, expect) = wrap(&mut rng, &data, expect, level);
        }
        if rng.chance(4) {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            expect = Expect::Any;
        }
        let t = Instant::now();
        let r = scan_bytes(&data, "gen");
        let took = t.elapsed();
        slowest = slowest.max(took);
        *tally.entry(format!("{expect:?}")).or_insert(0) += 1;
        let case = adversarial::Case { name: format!("case {n} ({} bytes, {levels} zip levels)", data.len()), data, expect };
        failures.extend(adversarial::verdict_error(&case, &r));
        for f in r.findings.iter().filter(|f| !f.location.contains('!')) {
            if f.offset.unwrap_or(0) > case.data.len() as u64 {
                failures.push(format!("{}: offset {:?} past the end: {}", case.name, f.offset, f.message));
            }
        }
        if took > Duration::from_secs(5) {
            failures.push(format!("{}: took {took:?}", case.name));
        }
        let small = scan_bytes_with(&case.data, "gen", &tiny());
        if r.has_high() && !small.has_high() {
            failures.push(format!("{}: tighter limits lowered the verdict:\n{}", case.name, show(&small)));
        }
        if small.findings.len() > 33 {
            failures.push(format!("{}: {} findings past the cap of 32", case.name, small.findings.len()));
        }
    }
    eprintln!("{cases} generated inputs, slowest scan {slowest:?}, required verdicts {tally:?}");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n\n"));
}
