//! Every SIMD path the CPU supports against the scalar reference (whatever `GLASSBOX_ISA`
//! says: a path the CPU has but a test did not compare fails the test), and quantised dots
//! against f32 math on the dequantised weights.

use std::collections::BTreeSet;

use glassbox_kernels::{ActBuf, ActFormat, Isa, IsaKind, PackedMatrix, Q8Block, Q8KBlock, QType, ThreadPool, WeightMatrix, dequantize_row, matmul, matmul_units, MatRef, ops, quantize_q8, quantize_q8k};
use proptest::prelude::*;

const TYPES: [QType; 13] = [
    QType::F32, QType::F16, QType::Bf16, QType::Q4_0, QType::Q4_1, QType::Q5_0, QType::Q5_1,
    QType::Q8_0, QType::Q2K, QType::Q3K, QType::Q4K, QType::Q5K, QType::Q6K,
];

/// Deterministic pseudo-random bytes, with every f16 scale slot made a small finite value.
fn random_weights(ty: QType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let rb = ty.row_bytes(cols).unwrap();
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut data: Vec<u8> = (0..rb * rows).map(|_| next() as u8).collect();
    let small_f16 = |v: u64| half::f16::from_f32(((v % 1000) as f32 / 1000.0 - 0.5) * 0.02).to_le_bytes();
    let (_, bs) = ty.block();
    // Offsets of f16 fields inside each block, per format.
    let f16_slots: &[usize] = match ty {
        QType::F16 => &[0],
        QType::Q4_0 | QType::Q5_0 | QType::Q8_0 => &[0],
        QType::Q4_1 | QType::Q5_1 => &[0, 2],
        QType::Q2K => &[80, 82],
        QType::Q3K => &[108],
        QType::Q4K | QType::Q5K => &[0, 2],
        QType::Q6K => &[208],
        QType::F32 | QType::Bf16 => &[],
    };
    for blk in data.chunks_exact_mut(bs) {
        for &o in f16_slots {
            blk[o..o + 2].copy_from_slice(&small_f16(next()));
        }
        if ty == QType::F32 {
            blk.copy_from_slice(&((next() % 2000) as f32 / 1000.0 - 1.0).to_le_bytes());
        }
        if ty == QType::Bf16 {
            blk.copy_from_slice(&half::bf16::from_f32((next() % 2000) as f32 / 1000.0 - 1.0).to_le_bytes());
        }
    }
    data
}

fn random_x(n: usize, seed: u64) -> Vec<f32> {
    (0..n).map(|i| (((i as u64 * 2654435761 + seed * 97) % 2001) as f32 / 1000.0 - 1.0) * 2.0).collect()
}

fn run(isa: Isa, threads: usize, ty: QType, w: &[u8], rows: usize, cols: usize, x: &[f32]) -> Vec<f32> {
    let pool = ThreadPool::new(threads);
    let wm = WeightMatrix::new(ty, rows, cols, w).unwrap();
    let mut act = ActBuf::default();
    act.fill(isa, ty.act_format(), x, cols);
    let mut y = vec![0f32; act.n() * rows];
    matmul(&pool, isa, wm, &act, &mut y);
    y
}

fn close(a: f32, b: f32, rel: f32) -> bool {
    (a - b).abs() <= rel * (1.0 + a.abs().max(b.abs()))
}

/// Whether this CPU can run `kind`, decided here independently of the crate's detection.
fn cpu_has(kind: IsaKind) -> bool {
    match kind {
        IsaKind::Scalar => true,
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx2 => {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
        }
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx2Vnni => cpu_has(IsaKind::Avx2) && std::arch::is_x86_feature_detected!("avxvnni"),
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx512 => {
            cpu_has(IsaKind::Avx2)
                && ["avx512f", "avx512bw", "avx512vl", "avx512vnni"].iter().all(|f| match *f {
                    "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
                    "avx512bw" => std::arch::is_x86_feature_detected!("avx512bw"),
                    "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
                    _ => std::arch::is_x86_feature_detected!("avx512vnni"),
                })
        }
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// A token for every path this CPU supports (whatever `GLASSBOX_ISA` says), failing if the
/// crate withholds one the CPU has or offers one it lacks.
fn every_supported_isa() -> Vec<Isa> {
    let mut isas = Vec::new();
    for kind in IsaKind::ALL {
        let isa = Isa::new(kind);
        assert_eq!(isa.is_some(), cpu_has(kind), "{kind:?}: the crate's detection disagrees with the CPU");
        assert_eq!(kind.is_supported(), cpu_has(kind), "{kind:?}");
        isas.extend(isa);
    }
    assert_eq!(isas, Isa::supported());
    isas
}

/// Which (path, case) pairs a test compared against the scalar reference; `complete` fails
/// unless every supported path was compared for every case, so nothing is skipped silently.
#[derive(Default)]
struct Coverage(BTreeSet<(IsaKind, String)>);

impl Coverage {
    fn hit(&mut self, isa: Isa, case: impl std::fmt::Debug) {
        self.0.insert((isa.kind(), format!("{case:?}")));
    }
    fn complete<C: std::fmt::Debug>(&self, cases: impl IntoIterator<Item = C> + Clone) {
        for kind in IsaKind::ALL.into_iter().filter(|&k| cpu_has(k)) {
            for c in cases.clone() {
                let c = format!("{c:?}");
                assert!(self.0.contains(&(kind, c.clone())), "{kind:?} supported by this CPU but not tested for {c}");
            }
        }
        let tested: BTreeSet<IsaKind> = self.0.iter().map(|(k, _)| *k).collect();
        eprintln!("compared against scalar: {tested:?}");
    }
}

#[test]
fn simd_matches_scalar_for_every_type() {
    let mut cov = Coverage::default();
    for ty in TYPES {
        let (rows, cols) = (13, 512);
        let w = random_weights(ty, rows, cols, 7);
        for n_tok in [1, 3, 4, 9] {
            let x = random_x(n_tok * cols, n_tok as u64);
            let reference = run(Isa::scalar(), 1, ty, &w, rows, cols, &x);
            for isa in every_supported_isa() {
                for threads in [1, 2, 3] {
                    let got = run(isa, threads, ty, &w, rows, cols, &x);
                    assert_eq!(got.len(), reference.len());
                    for (i, (a, b)) in got.iter().zip(&reference).enumerate() {
                        assert!(close(*a, *b, 1e-5), "{ty:?} {isa:?} t={threads} n={n_tok} [{i}]: {a} vs {b}");
                    }
                }
                cov.hit(isa, ty);
            }
        }
    }
    cov.complete(TYPES);
}

const PACKABLE: [QType; 10] =
    [QType::Q4_0, QType::Q4_1, QType::Q5_0, QType::Q5_1, QType::Q8_0, QType::Q2K, QType::Q3K, QType::Q4K, QType::Q5K, QType::Q6K];

#[test]
fn packed_matches_unpacked_for_every_packable_type() {
    let mut cov = Coverage::default();
    for ty in PACKABLE {
        for rows in [8, 13, 24, 3, 37] {
            let cols = if ty.block().0 == 256 { 512 } else { 96 };
            let w = random_weights(ty, rows, cols, rows as u64 * 31);
            for n_tok in [1, 2, 5] {
                let x = random_x(n_tok * cols, 17 + n_tok as u64);
                let reference = run(Isa::scalar(), 1, ty, &w, rows, cols, &x);
                // Every layout (8- and 16-row groups) through every path: a path that cannot
                // read a layout falls back to the scalar reference over it.
                for (pack_isa, isa) in every_supported_isa().into_iter().flat_map(|p| every_supported_isa().into_iter().map(move |i| (p, i))) {
                    let packed = PackedMatrix::pack(pack_isa, ty, rows, cols, &w).unwrap();
                    let mut act = ActBuf::default();
                    act.fill(isa, ty.act_format(), &x, cols);
                    for threads in [1, 2, 3] {
                        let pool = ThreadPool::new(threads);
                        let mut y = vec![f32::NAN; n_tok * rows];
                        matmul(&pool, isa, &packed, &act, &mut y);
                        for (i, (a, b)) in y.iter().zip(&reference).enumerate() {
                            assert!(close(*a, *b, 1e-5), "{ty:?} rows={rows} n={n_tok} packed for {pack_isa:?} ({}-row groups), {isa:?} t={threads} [{i}]: {a} vs {b}", packed.group());
                        }
                    }
                    cov.hit(isa, ty);
                }
            }
        }
    }
    cov.complete(PACKABLE);
}

/// `matmul_units` gives the chosen rows exactly what `matmul` gives them (a second pass over a
/// few rows of the output layer must agree with a full one), and leaves every other row alone.
#[test]
fn matmul_units_equals_matmul_on_its_rows() {
    for ty in PACKABLE {
        let (rows, cols) = (37, if ty.block().0 == 256 { 512 } else { 96 });
        let w = random_weights(ty, rows, cols, 5);
        let x = random_x(3 * cols, 9);
        for isa in every_supported_isa() {
            let mut act = ActBuf::default();
            act.fill(isa, ty.act_format(), &x, cols);
            let packed = PackedMatrix::pack(isa, ty, rows, cols, &w).unwrap();
            let raw = WeightMatrix::new(ty, rows, cols, &w).unwrap();
            for m in [MatRef::Raw(raw), MatRef::Packed(&packed)] {
                let mut full = vec![0f32; 3 * rows];
                matmul(&ThreadPool::new(1), isa, m, &act, &mut full);
                let n_units = rows.div_ceil(m.unit());
                let mut units: Vec<usize> = [0, 2, 3, n_units - 1].into_iter().filter(|&u| u < n_units).collect();
                units.dedup();
                for threads in [1, 2, 3] {
                    let mut y = vec![f32::NAN; 3 * rows];
                    matmul_units(&ThreadPool::new(threads), isa, m, &act, &units, &mut y);
                    for (i, (a, b)) in y.iter().zip(&full).enumerate() {
                        if units.contains(&(i % rows / m.unit())) {
                            assert_eq!(a.to_bits(), b.to_bits(), "{ty:?} {isa:?} unit {} [{i}] t={threads}", m.unit());
                        } else {
                            assert!(a.is_nan(), "{ty:?} {isa:?}: [{i}] was written");
                        }
                    }
                }
            }
        }
    }
}

/// A row read back from the packed copy equals the row dequantized from the GGUF blocks, bit
/// for bit (tied embeddings are looked up from the packed output matrix).
#[test]
fn packed_rows_dequantize_bit_identically() {
    for ty in PACKABLE {
        for rows in [8, 13, 3, 37] {
            let cols = if ty.block().0 == 256 { 512 } else { 96 };
            let w = random_weights(ty, rows, cols, 7 + rows as u64);
            for isa in every_supported_isa() {
            let packed = PackedMatrix::pack(isa, ty, rows, cols, &w).unwrap();
            let row_bytes = w.len() / rows;
            for r in 0..rows {
                let (mut want, mut got) = (vec![0f32; cols], vec![f32::NAN; cols]);
                dequantize_row(ty, &w[r * row_bytes..(r + 1) * row_bytes], &mut want);
                packed.dequantize_row(r, &mut got);
                let (a, b): (Vec<u32>, Vec<u32>) = (want.iter().map(|v| v.to_bits()).collect(), got.iter().map(|v| v.to_bits()).collect());
                assert_eq!(a, b, "{ty:?} rows={rows} row {r} packed for {isa:?}");
            }
            }
        }
    }
}

#[test]
fn every_isa_the_cpu_has_is_available_and_glassbox_isa_is_honoured() {
    let isas = every_supported_isa();
    assert_eq!(isas[0], Isa::scalar());
    let best = *isas.last().unwrap();
    assert_eq!(Isa::best(), best);
    assert!(isas.iter().all(|i| i.kind() <= best.kind()));
    for kind in IsaKind::ALL {
        assert_eq!(IsaKind::from_name(kind.name()), Some(kind));
        assert_eq!(IsaKind::from_name(&kind.name().to_uppercase()), Some(kind));
    }
    assert_eq!(IsaKind::from_name("avx512"), Some(IsaKind::Avx512));
    assert_eq!(IsaKind::from_name("avx1024"), None);
    // `GLASSBOX_ISA` is a cap, never an upgrade. A run under a cap must name a path this CPU
    // has, so a CI loop over ISAs cannot silently test a lower path than it names.
    match Isa::env_cap() {
        Ok(None) => assert_eq!(Isa::detect(), best),
        Ok(Some(cap)) => {
            assert!(cpu_has(cap), "GLASSBOX_ISA={} but this CPU cannot run it (best: {best})", cap.name());
            assert_eq!(Isa::detect().kind(), cap);
        }
        Err(v) => panic!("GLASSBOX_ISA={v:?} is not one of scalar, avx2, avxvnni, avx512"),
    }
}

/// For CI: prints `glassbox-isa: NAME` for every path this CPU supports (see scripts/test.sh).
#[test]
#[ignore = "prints the supported ISAs for scripts; run with --ignored --exact"]
fn list_supported_isas() {
    for isa in every_supported_isa() {
        println!("glassbox-isa: {isa}");
    }
}

#[test]
fn isa_reports_as_before() {
    // `glassbox run` prints `{:?}` of the engine's ISA.
    assert_eq!(format!("{:?}", Isa::scalar()), "Scalar");
    assert_eq!(format!("{}", Isa::scalar()), "scalar");
}

#[test]
fn pool_refuses_reentry_and_recovers() {
    thread_local! { static POOL: ThreadPool = ThreadPool::new(2); }
    let nested = std::panic::catch_unwind(|| {
        POOL.with(|p| {
            p.run(&|tid| {
                if tid == 0 {
                    POOL.with(|q| q.run(&|_| {}));
                }
            })
        })
    });
    let msg = nested.expect_err("nested run must panic");
    let msg = msg.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| msg.downcast_ref::<String>().cloned()).unwrap_or_default();
    assert!(msg.contains("re-entered"), "{msg}");
    let hits = std::sync::atomic::AtomicUsize::new(0);
    POOL.with(|p| p.run(&|_| {
        hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }));
    assert_eq!(hits.into_inner(), 2);
}

#[test]
fn matmul_rejects_inconsistent_shapes() {
    let (rows, cols) = (4, 64);
    let w = random_weights(QType::Q8_0, rows, cols, 1);
    let wm = WeightMatrix::new(QType::Q8_0, rows, cols, &w).unwrap();
    let pool = ThreadPool::new(2);
    for isa in every_supported_isa() {
        let mut act = ActBuf::default();
        act.fill(isa, ActFormat::Q8, &random_x(2 * cols, 1), cols);
        let short = std::panic::catch_unwind(|| matmul(&pool, isa, wm, &act, &mut vec![0f32; 2 * rows - 1]));
        assert!(short.is_err(), "{isa:?}: short output accepted");
        let mut wrong = ActBuf::default();
        wrong.fill(isa, ActFormat::Q8K, &random_x(256, 1), 256);
        let fmt = std::panic::catch_unwind(|| matmul(&pool, isa, wm, &wrong, &mut vec![0f32; rows]));
        assert!(fmt.is_err(), "{isa:?}: wrong activation format accepted");
    }
}

#[test]
fn quantised_dot_matches_dequantised_f32() {
    for ty in TYPES {
        let (rows, cols) = (5, 256);
        let w = random_weights(ty, rows, cols, 11);
        let x = random_x(cols, 3);
        let got = run(Isa::scalar(), 1, ty, &w, rows, cols, &x);
        let rb = ty.row_bytes(cols).unwrap();
        for r in 0..rows {
            let mut deq = vec![0f32; cols];
            dequantize_row(ty, &w[r * rb..(r + 1) * rb], &mut deq);
            let exact: f32 = deq.iter().zip(&x).map(|(a, b)| a * b).sum();
            let scale: f32 = deq.iter().zip(&x).map(|(a, b)| (a * b).abs()).sum();
            // Activation quantisation error: ~1/127 relative per element.
            assert!((got[r] - exact).abs() <= 0.02 * scale + 1e-6, "{ty:?} row {r}: {} vs {exact}", got[r]);
        }
    }
}

#[test]
fn dequantize_known_blocks() {
    // Q4_1: d = 0.5, m = -1, nibbles j and j+16.
    let mut b = vec![0u8; 20];
    b[0..2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
    b[2..4].copy_from_slice(&half::f16::from_f32(-1.0).to_le_bytes());
    for j in 0..16 {
        b[4 + j] = (j as u8) | ((15 - j as u8) << 4);
    }
    let mut y = [0f32; 32];
    dequantize_row(QType::Q4_1, &b, &mut y);
    for j in 0..16 {
        assert_eq!(y[j], j as f32 * 0.5 - 1.0);
        assert_eq!(y[j + 16], (15 - j) as f32 * 0.5 - 1.0);
    }
    // Q8_0: d = 2, values -128..
    let mut b = vec![0u8; 34];
    b[0..2].copy_from_slice(&half::f16::from_f32(2.0).to_le_bytes());
    for j in 0..32 {
        b[2 + j] = (j as i8 - 16) as u8;
    }
    let mut y = [0f32; 32];
    dequantize_row(QType::Q8_0, &b, &mut y);
    for (j, v) in y.iter().enumerate() {
        assert_eq!(*v, (j as f32 - 16.0) * 2.0);
    }
}

#[test]
fn weight_matrix_shape_errors_name_the_problem() {
    let e = WeightMatrix::new(QType::Q4_0, 2, 33, &[0u8; 100]).err().unwrap().to_string();
    assert!(e.contains("block size"), "{e}");
    let e = WeightMatrix::new(QType::Q4_0, 2, 32, &[0u8; 35]).err().unwrap().to_string();
    assert!(e.contains("needs 36"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    #[test]
    fn pool_runs_every_thread_once(threads in 1usize..5, rounds in 1usize..50) {
        let pool = ThreadPool::new(threads);
        for _ in 0..rounds {
            let hits: Vec<std::sync::atomic::AtomicUsize> = (0..threads).map(|_| Default::default()).collect();
            pool.run(&|tid| { hits[tid].fetch_add(1, std::sync::atomic::Ordering::SeqCst); });
            for h in &hits { prop_assert_eq!(h.load(std::sync::atomic::Ordering::SeqCst), 1); }
        }
    }
}

#[test]
fn simd_activation_quantisation_is_bit_identical_to_scalar() {
    let mut x = random_x(32 * 64, 99);
    x[..32].fill(0.0); // an all-zero block
    for (i, v) in x[32..64].iter_mut().enumerate() {
        *v = (i as f32 - 16.0) * 0.5; // exact ties after scaling
    }
    x[100] = 1e-30;
    x[200] = -3.0e4;
    let mut reference = vec![Q8Block::default(); 64];
    quantize_q8(&x, &mut reference);
    let mut cov = Coverage::default();
    for isa in every_supported_isa() {
        let mut act = ActBuf::default();
        act.fill(isa, ActFormat::Q8, &x, 32 * 64);
        assert_eq!(act.q8().len(), reference.len());
        for (i, (a, b)) in act.q8().iter().zip(&reference).enumerate() {
            assert_eq!(a.qs, b.qs, "{isa:?} block {i}");
            assert_eq!((a.d.to_bits(), a.s.to_bits(), a.isum), (b.d.to_bits(), b.s.to_bits(), b.isum), "{isa:?} block {i}");
        }
        cov.hit(isa, ActFormat::Q8);
    }
    cov.complete([ActFormat::Q8]);
}

#[test]
fn simd_q8k_quantisation_is_bit_identical_to_scalar() {
    let mut x = random_x(256 * 8, 42);
    x[..256].fill(0.0);
    x[300] = -5.0; // the first extreme is negative …
    x[301] = 5.0; // … and its positive twin comes later
    for (i, v) in x[512..768].iter_mut().enumerate() {
        *v = (i as f32 - 128.0) / 127.0; // ties after scaling
    }
    let mut reference = vec![Q8KBlock::default(); 8];
    quantize_q8k(&x, &mut reference);
    let mut cov = Coverage::default();
    for isa in every_supported_isa() {
        let mut act = ActBuf::default();
        act.fill(isa, ActFormat::Q8K, &x, 256 * 8);
        assert_eq!(act.q8k().len(), reference.len());
        for (i, (a, b)) in act.q8k().iter().zip(&reference).enumerate() {
            assert_eq!(a.qs, b.qs, "{isa:?} block {i}");
            assert_eq!(a.bsums, b.bsums, "{isa:?} block {i}");
            assert_eq!(a.d.to_bits(), b.d.to_bits(), "{isa:?} block {i}");
        }
        cov.hit(isa, ActFormat::Q8K);
    }
    cov.complete([ActFormat::Q8K]);
}

#[test]
fn swiglu_is_silu_times_up_on_every_path() {
    let g0: Vec<f32> = random_x(1003, 8).iter().map(|v| v * 12.0).chain([-100.0, 100.0, 0.0, -88.0]).collect();
    let u = random_x(g0.len(), 2);
    for isa in every_supported_isa() {
        let mut g = g0.clone();
        ops::swiglu_inplace(isa, &mut g, &u);
        for ((&got, &x), &u) in g.iter().zip(&g0).zip(&u) {
            let want = ops::silu(x) * u;
            assert!((got - want).abs() <= 1e-6 * want.abs().max(1e-30), "{isa:?} silu({x})·{u}: {got} vs {want}");
        }
    }
}

#[test]
fn gelu_table_and_f16_helpers_match_scalar() {
    let mut cov = Coverage::default();
    let f16 = |v: f32| half::f16::from_f32(v);
    for isa in every_supported_isa() {
        // geglu with ggml's f16 table (1000 values: SIMD body + scalar tail).
        let mut g = random_x(1000, 5);
        g[0] = -11.0;
        g[1] = 12.0;
        let u = random_x(1000, 6);
        let mut want = g.clone();
        for (w, &uu) in want.iter_mut().zip(&u) {
            let x = *w;
            *w = if x <= -10.0 { 0.0 } else if x >= 10.0 { x * uu } else {
                f16(ops::gelu_tanh(f16(x).to_f32())).to_f32() * uu
            };
        }
        ops::geglu_inplace(isa, &mut g, &u);
        assert_eq!(g, want, "{isa:?}");
        // f32 → f16 → f32 rounding.
        let mut r = random_x(77, 8);
        let want: Vec<f32> = r.iter().map(|&v| f16(v).to_f32()).collect();
        ops::round_to_f16_inplace(isa, &mut r);
        assert_eq!(r, want, "{isa:?}");
        // f16 conversions directly, 8-wide body plus a tail.
        let src = random_x(45, 9);
        let mut bits = vec![0u16; 45];
        ops::f32_to_f16(isa, &src, &mut bits);
        assert_eq!(bits, src.iter().map(|&v| f16(v).to_bits()).collect::<Vec<_>>(), "{isa:?}");
        let mut back = vec![0f32; 45];
        ops::f16_to_f32(isa, &bits, &mut back);
        assert_eq!(back, bits.iter().map(|&b| half::f16::from_bits(b).to_f32()).collect::<Vec<_>>(), "{isa:?}");
        // Attention helpers: dot with an f16 row (16-wide body plus a tail), and axpy.
        let a = random_x(45, 10);
        let dot_ref: f32 = a.iter().zip(&bits).map(|(&x, &b)| x * half::f16::from_bits(b).to_f32()).sum();
        let dot = ops::dot_f32_f16(isa, &a, &bits);
        assert!(close(dot, dot_ref, 1e-5), "{isa:?}: {dot} vs {dot_ref}");
        let mut out = random_x(45, 11);
        let mut out_ref = out.clone();
        out_ref.iter_mut().zip(&bits).for_each(|(o, &b)| *o += 0.37 * half::f16::from_bits(b).to_f32());
        ops::axpy_f16(isa, &mut out, 0.37, &bits);
        for (o, r) in out.iter().zip(&out_ref) {
            assert!(close(*o, *r, 1e-6), "{isa:?}: {o} vs {r}");
        }
        cov.hit(isa, "f16 helpers");
    }
    cov.complete(["f16 helpers"]);
}

/// Attention over a strided f16 cache: scores against every row, and the weighted sum of rows,
/// equal the row-at-a-time reference on every path, for the head sizes the AVX-512 kernels
/// specialise (64, 128, 256) and one they leave to the generic loop (80).
#[test]
fn strided_attention_helpers_match_scalar() {
    let mut cov = Coverage::default();
    for isa in every_supported_isa() {
        for hd in [64usize, 80, 128, 256] {
            let (stride, n) = (3 * hd + 16, 37);
            let cache: Vec<u16> = random_x((n - 1) * stride + hd, hd as u64).iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
            let row = |i: usize| cache[i * stride..i * stride + hd].iter().map(|&b| half::f16::from_bits(b).to_f32());
            let q = random_x(hd, 3);
            let mut scores = vec![f32::NAN; n];
            ops::dots_f16_strided(isa, &q, &cache, stride, &mut scores);
            for (i, s) in scores.iter().enumerate() {
                let want: f32 = q.iter().zip(row(i)).map(|(a, b)| a * b).sum();
                assert!(close(*s, want, 1e-5), "{isa:?} hd={hd} row {i}: {s} vs {want}");
            }
            let w = random_x(n, 4);
            let mut out = vec![f32::NAN; hd];
            ops::weighted_sum_f16_strided(isa, &mut out, &w, &cache, stride);
            let mut want = vec![0f32; hd];
            for (i, &wi) in w.iter().enumerate() {
                want.iter_mut().zip(row(i)).for_each(|(o, v)| *o += wi * v);
            }
            for (j, (o, r)) in out.iter().zip(&want).enumerate() {
                assert!(close(*o, *r, 1e-5), "{isa:?} hd={hd} [{j}]: {o} vs {r}");
            }
            // No rows: nothing to score, and the sum of nothing is zero.
            ops::dots_f16_strided(isa, &q, &cache, stride, &mut []);
            ops::weighted_sum_f16_strided(isa, &mut out, &[], &cache, stride);
            assert!(out.iter().all(|&v| v == 0.0), "{isa:?} hd={hd}");
        }
        cov.hit(isa, "strided attention");
    }
    cov.complete(["strided attention"]);
}

#[test]
#[should_panic(expected = "exceed")]
fn strided_attention_refuses_rows_past_the_cache() {
    let cache = vec![0u16; 100];
    let mut out = vec![0f32; 3];
    ops::dots_f16_strided(Isa::best(), &[0.0; 64], &cache, 40, &mut out);
}

/// Tiled attention for one KV head (several tokens × query heads sharing its cache rows,
/// causal and sliding-window ranges) equals the per-token reference on every path, over f16,
/// q8_0 and f32 caches (f32: nothing rounded, llama.cpp's exact path).
#[test]
fn tiled_attention_matches_per_token_reference() {
    use glassbox_kernels::{AttnHead, CacheRows, Q8_0_BLOCK, attend, quantize_row_q8_0};
    let mut cov = Coverage::default();
    for isa in every_supported_isa() {
        for (hd, hdv, group, ranges) in [
            (64, 64, 3, vec![(0, 1), (0, 2), (0, 3)]),
            (128, 128, 6, (0..21).map(|j| (0, 30 + j)).collect::<Vec<_>>()),
            (256, 256, 1, vec![(5, 40), (6, 41), (7, 42), (8, 43)]),
            (80, 80, 2, vec![(0, 17), (0, 18)]),
            // Latent attention: V is the first 512 of each 576-wide K row.
            (576, 512, 4, vec![(0, 19), (0, 20)]),
        ] {
            let (k_stride, q_stride) = (2 * hd + 32, group * hd + 16);
            let rows = ranges.iter().map(|r| r.1).max().unwrap();
            let vals = |seed| random_x(rows * k_stride, seed).iter().map(|v| v * 3.0).collect::<Vec<f32>>();
            let (kf, vf) = (vals(1), vals(2));
            let f16s = |x: &[f32]| x.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect::<Vec<u16>>();
            let q8s = |x: &[f32]| {
                let mut b = vec![0u8; x.len() / 32 * Q8_0_BLOCK];
                quantize_row_q8_0(x, &mut b);
                b
            };
            let (k16, v16, k8, v8) = (f16s(&kf), f16s(&vf), q8s(&kf), q8s(&vf));
            let mut stores = vec![("f16", CacheRows::F16(&k16), CacheRows::F16(&v16)), ("f32", CacheRows::F32(&kf), CacheRows::F32(&vf))];
            if hd % 32 == 0 {
                stores.push(("q8_0", CacheRows::Q8_0(&k8), CacheRows::Q8_0(&v8)));
                stores.push(("q8_0 K, f16 V", CacheRows::Q8_0(&k8), CacheRows::F16(&v16)));
            }
            let q = random_x(ranges.len() * q_stride, 3);
            // ALiBi (BLOOM): one slope per query head, the bias slope × (key − query position).
            let slopes: Vec<f32> = (0..group).map(|g| 0.5f32.powi(g as i32 + 1)).collect();
            for ((name, k, v), alibi) in stores.into_iter().flat_map(|st| [(st, &[][..]), (st, &slopes[..])]) {
                let a = AttnHead { q: &q, q_stride, group, hd, hdv, k, k_stride, v, v_stride: k_stride, ranges: &ranges, scale: 0.125, alibi };
                let mut out = vec![f32::NAN; ranges.len() * group * hdv];
                attend(isa, &a, &mut Vec::new(), &mut out);
                // Reference: f64 math on the stored values, probabilities rounded to f16. A
                // probability whose f32 value lies next to an f16 rounding boundary may round to
                // the neighbouring f16 (relative step ≤ 2⁻¹⁰), so the output may differ by up to
                // 2⁻¹⁰ · max|v|.
                let (mut kd, mut vd) = (vec![0f32; rows * k_stride], vec![0f32; rows * k_stride]);
                k.to_f32(0, &mut kd);
                v.to_f32(0, &mut vd);
                let exact = name == "f32";
                let vmax = vd.iter().fold(0f32, |m, x| m.max(x.abs()));
                // f32: only f32 summation error in the scores (≈ 1e-5 of a score of a few units), a
                // tenth of what rounding the probabilities to f16 would allow.
                let bound = if exact { vmax * 1e-4 + 1e-5 } else { vmax / 1024.0 + 1e-4 };
                for (j, &(s, e)) in ranges.iter().enumerate() {
                    for g in 0..group {
                        let qh = &q[j * q_stride + g * hd..][..hd];
                        let bias = |p: usize| alibi.get(g).map_or(0.0, |&m| m as f64 * (p as f64 - (e - 1) as f64));
                        let sc: Vec<f64> = (s..e).map(|p| qh.iter().zip(&kd[p * k_stride..]).map(|(&x, &y)| x as f64 * y as f64).sum::<f64>() * 0.125 + bias(p)).collect();
                        let m = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                        let z: f64 = sc.iter().map(|x| (x - m).exp()).sum();
                        let pr: Vec<f32> = sc.iter().map(|x| ((x - m).exp() / z) as f32).map(|p| if exact { p } else { half::f16::from_f32(p).to_f32() }).collect();
                        for i in 0..hdv {
                            let want: f32 = (s..e).zip(&pr).map(|(p, w)| w * vd[p * k_stride + i]).sum();
                            let got = out[(j * group + g) * hdv + i];
                            assert!((got - want).abs() <= bound, "{isa:?} {name} alibi={} hd={hd} token {j} head {g} [{i}]: {got} vs {want}", !alibi.is_empty());
                        }
                    }
                }
            }
        }
        cov.hit(isa, "tiled attention");
    }
    cov.complete(["tiled attention"]);
}

/// q8_0 cache rows: ggml's block layout (f16 scale, 32 × i8) and rounding (d = amax/127, values
/// round(x·127/amax), ties to even), read back within half a step of the input.
#[test]
fn q8_0_cache_rows_round_as_ggml() {
    use glassbox_kernels::{CacheRows, quantize_row_q8_0};
    let x: Vec<f32> = (0..64).map(|i| if i < 32 { (i as f32 - 15.5) / 4.0 } else { 0.0 }).collect();
    let mut b = vec![0u8; 68];
    quantize_row_q8_0(&x, &mut b);
    let d = 15.5f32 / 4.0 / 127.0;
    assert_eq!(&b[..2], &half::f16::from_f32(d).to_le_bytes());
    assert_eq!(b[2] as i8, -127);
    assert_eq!(b[33] as i8, 127);
    assert_eq!(&b[34..], &[0u8; 34][..], "an all-zero block has scale 0 and zero values");
    let mut back = vec![0f32; 64];
    CacheRows::Q8_0(&b).to_f32(0, &mut back);
    for (a, y) in x.iter().zip(&back) {
        assert!((a - y).abs() <= d * 0.5 + 1e-3, "{a} vs {y}");
    }
}
