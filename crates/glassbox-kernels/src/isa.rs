//! Which code path the kernels run, as a value only CPU detection can create.
//!
//! The SIMD kernels execute instructions the CPU may not have; running them anyway is undefined
//! behaviour. So the public [`Isa`] has a private field, and every constructor that yields a
//! SIMD path ([`Isa::detect`], [`Isa::new`], [`Isa::supported`]) first asks the CPU. Inside the
//! crate, the SIMD entry points take zero-sized proof tokens ([`Avx2`], [`AvxVnni`], [`Avx512`]) that only
//! this module mints, and only from such an `Isa`.

use std::fmt;

use crate::quant::QType;

/// The code paths, slowest first. Every kind can be named; only a supported one becomes an [`Isa`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IsaKind {
    /// Portable Rust following ggml's reference semantics; runs everywhere.
    Scalar,
    /// x86-64 AVX2 with FMA and F16C.
    Avx2,
    /// AVX2 + FMA + F16C plus AVX-VNNI (VEX-encoded 256-bit `vpdpbusd`).
    Avx2Vnni,
    /// AVX2 + FMA + F16C plus AVX-512 F/BW/VL/VNNI: 512-bit `vpdpbusd` over 16-row packed
    /// groups (and the EVEX 256-bit forms elsewhere). CPUs with AVX-512 but no VNNI
    /// (Skylake-SP) run the AVX2 path.
    Avx512,
}

impl IsaKind {
    /// Every kind, slowest first.
    pub const ALL: [IsaKind; 4] = [IsaKind::Scalar, IsaKind::Avx2, IsaKind::Avx2Vnni, IsaKind::Avx512];

    /// The name `GLASSBOX_ISA` uses for this kind: `scalar`, `avx2`, `avxvnni` or `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            IsaKind::Scalar => "scalar",
            IsaKind::Avx2 => "avx2",
            IsaKind::Avx2Vnni => "avxvnni",
            IsaKind::Avx512 => "avx512",
        }
    }

    /// Parse a name as [`IsaKind::name`] writes it (ASCII case ignored; `avx2vnni` also accepted).
    pub fn from_name(s: &str) -> Option<IsaKind> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "scalar" => Some(IsaKind::Scalar),
            "avx2" => Some(IsaKind::Avx2),
            "avxvnni" | "avx2vnni" => Some(IsaKind::Avx2Vnni),
            "avx512" => Some(IsaKind::Avx512),
            _ => None,
        }
    }

    /// Whether this CPU (and OS) can run this path. Ignores `GLASSBOX_ISA`.
    pub fn is_supported(self) -> bool {
        cpu_supports(self)
    }
}

/// The one place that decides which kind the CPU can run. The AVX2 kernels also use FMA and
/// F16C instructions, so all three are required together; VNNI builds on top of them.
fn cpu_supports(kind: IsaKind) -> bool {
    match kind {
        IsaKind::Scalar => true,
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx2 => {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
        }
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx2Vnni => cpu_supports(IsaKind::Avx2) && std::arch::is_x86_feature_detected!("avxvnni"),
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx512 => {
            cpu_supports(IsaKind::Avx2)
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512vnni")
        }
        #[cfg(not(target_arch = "x86_64"))]
        _ => false,
    }
}

/// An instruction set the kernels may use, proven available on this CPU.
///
/// The field is private: an `Isa` other than [`Isa::scalar`] exists only after CPU detection
/// found every feature its kernels use, so passing one to [`crate::matmul`] or the
/// [`crate::ops`] helpers can never run an unsupported instruction.
///
/// ```compile_fail
/// // Cannot be forged from a kind:
/// let isa = glassbox_kernels::Isa(glassbox_kernels::IsaKind::Avx2Vnni);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Isa(IsaKind);

impl fmt::Debug for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl Isa {
    /// The environment variable that caps [`Isa::detect`].
    pub const ENV: &'static str = "GLASSBOX_ISA";

    /// The portable path (always available).
    pub const fn scalar() -> Isa {
        Isa(IsaKind::Scalar)
    }

    /// `kind`, if this CPU supports it (regardless of `GLASSBOX_ISA`).
    pub fn new(kind: IsaKind) -> Option<Isa> {
        cpu_supports(kind).then_some(Isa(kind))
    }

    /// The best path this CPU supports, ignoring `GLASSBOX_ISA`.
    pub fn best() -> Isa {
        Self::best_up_to(IsaKind::Avx512)
    }

    fn best_up_to(cap: IsaKind) -> Isa {
        IsaKind::ALL.into_iter().rev().filter(|&k| k <= cap).find_map(Isa::new).unwrap_or(Isa::scalar())
    }

    /// The best path this CPU supports, capped by `GLASSBOX_ISA=scalar|avx2|avxvnni|avx512`. The
    /// variable only ever lowers the choice: naming a path the CPU lacks yields the best one
    /// below it, and a value that is not a known name caps at `scalar` (empty means unset).
    pub fn detect() -> Isa {
        let cap = match Self::env_cap() {
            Ok(cap) => cap.unwrap_or(IsaKind::Avx512),
            Err(_) => IsaKind::Scalar,
        };
        Self::best_up_to(cap)
    }

    /// The cap `GLASSBOX_ISA` sets: `Ok(None)` if unset or empty, `Err(value)` if it is not a
    /// known name.
    pub fn env_cap() -> Result<Option<IsaKind>, String> {
        match std::env::var(Self::ENV) {
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(v)) => Err(v.to_string_lossy().into_owned()),
            Ok(v) if v.trim().is_empty() => Ok(None),
            Ok(v) => IsaKind::from_name(&v).map(Some).ok_or(v),
        }
    }

    /// Every path this CPU supports, slowest first (always starts with scalar). Ignores
    /// `GLASSBOX_ISA`, so tests can compare every path against the scalar one.
    pub fn supported() -> Vec<Isa> {
        IsaKind::ALL.into_iter().filter_map(Isa::new).collect()
    }

    pub fn kind(self) -> IsaKind {
        self.0
    }

    /// Whether matrices of type `ty` run faster repacked ([`crate::PackedMatrix`]) on this ISA.
    pub fn packs(self, ty: QType) -> bool {
        self.0 != IsaKind::Scalar && crate::packed::PackFormat::for_type(ty, crate::packed::group_for(self)).is_some()
    }

    /// Proof that the AVX2 + FMA + F16C kernels may run.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    pub(crate) fn avx2(self) -> Option<Avx2> {
        // Sound because `Isa(Avx2 | Avx2Vnni | Avx512)` is only built by `Isa::new` after
        // `cpu_supports`, which requires avx2, fma and f16c for every such kind.
        match self.0 {
            IsaKind::Scalar => None,
            IsaKind::Avx2 | IsaKind::Avx2Vnni | IsaKind::Avx512 => Some(Avx2(())),
        }
    }

    /// Proof that the AVX-512 F/BW/VL/VNNI kernels (and the AVX2 ones) may run.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    pub(crate) fn avx512(self) -> Option<Avx512> {
        // Sound because `Isa(Avx512)` is only built by `Isa::new` after `cpu_supports`.
        match self.0 {
            IsaKind::Avx512 => Some(Avx512(())),
            _ => None,
        }
    }

    /// Which x86 SIMD kernel family may run, with its proof token.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    pub(crate) fn simd(self) -> Option<Simd> {
        // Sound for the same reason as `avx2`; `Avx2Vnni` additionally required avxvnni and
        // `Avx512` avx512f, avx512bw, avx512vl and avx512vnni.
        match self.0 {
            IsaKind::Scalar => None,
            IsaKind::Avx2 => Some(Simd::Avx2(Avx2(()))),
            IsaKind::Avx2Vnni => Some(Simd::Vnni(AvxVnni(()))),
            IsaKind::Avx512 => Some(Simd::Avx512(Avx512(()))),
        }
    }
}

/// Proof (zero-sized, minted only in this module) that the CPU has AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Avx2(());

/// Proof that the CPU has AVX2, FMA, F16C and AVX-VNNI.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct AvxVnni(());

/// Proof that the CPU has AVX2, FMA, F16C and AVX-512 F, BW, VL and VNNI.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Avx512(());

/// The x86 kernel family to run, with its proof.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) enum Simd {
    Avx2(Avx2),
    Vnni(AvxVnni),
    Avx512(Avx512),
}
