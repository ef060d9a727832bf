//! Matrix multiplication y = x · Wᵀ for quantised W, parallel over rows, SIMD-dispatched.

use crate::act::{ActBuf, ActFormat};
use crate::packed::{GROUP, PackedMatrix};
use crate::pool::ThreadPool;
use crate::quant::{QK, QK_K, QType, decode_superblock};
use crate::{Error, dot};

/// A row-major weight matrix: `rows` rows of `cols` elements, each row `ty.row_bytes(cols)`.
#[derive(Clone, Copy)]
pub struct WeightMatrix<'a> {
    pub ty: QType,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
}

impl<'a> WeightMatrix<'a> {
    pub fn new(ty: QType, rows: usize, cols: usize, data: &'a [u8]) -> Result<Self, Error> {
        let rb = ty.row_bytes(cols).ok_or_else(|| Error::Shape {
            what: format!("{} matrix", ty.name()),
            msg: format!("{cols} columns is not a multiple of the block size {}", ty.block().0),
        })?;
        let need = rb.checked_mul(rows).ok_or_else(|| Error::Shape {
            what: format!("{} matrix", ty.name()),
            msg: "size overflows".into(),
        })?;
        if data.len() != need {
            return Err(Error::Shape {
                what: format!("{} matrix {rows}x{cols}", ty.name()),
                msg: format!("has {} bytes, needs {need}", data.len()),
            });
        }
        Ok(WeightMatrix { ty, rows, cols, data })
    }
    pub fn row_bytes(&self) -> usize {
        self.data.len() / self.rows.max(1)
    }
    pub fn row(&self, r: usize) -> &'a [u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }
}

/// Instruction set used for the dot products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Scalar,
    Avx2,
    Avx2Vnni,
}

impl Isa {
    /// The best instruction set this CPU supports (`GLASSBOX_ISA=scalar|avx2` caps it).
    pub fn detect() -> Isa {
        let cap = std::env::var("GLASSBOX_ISA").ok();
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c");
            let vnni = avx2 && is_x86_feature_detected!("avxvnni");
            match cap.as_deref() {
                Some("scalar") => Isa::Scalar,
                Some("avx2") if avx2 => Isa::Avx2,
                _ if vnni => Isa::Avx2Vnni,
                _ if avx2 => Isa::Avx2,
                _ => Isa::Scalar,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = cap;
            Isa::Scalar
        }
    }
}

impl Isa {
    /// Whether matrices of type `ty` run faster repacked ([`PackedMatrix`]) on this ISA.
    pub fn packs(self, ty: QType) -> bool {
        self != Isa::Scalar && crate::packed::PackFormat::for_type(ty).is_some()
    }
}

/// A weight matrix as the kernels see it: in place in the GGUF bytes, or repacked.
#[derive(Clone, Copy)]
pub enum MatRef<'a> {
    Raw(WeightMatrix<'a>),
    Packed(&'a PackedMatrix),
}

impl MatRef<'_> {
    pub fn ty(&self) -> QType {
        match self {
            MatRef::Raw(w) => w.ty,
            MatRef::Packed(p) => p.ty,
        }
    }
    pub fn rows(&self) -> usize {
        match self {
            MatRef::Raw(w) => w.rows,
            MatRef::Packed(p) => p.rows,
        }
    }
    pub fn cols(&self) -> usize {
        match self {
            MatRef::Raw(w) => w.cols,
            MatRef::Packed(p) => p.cols,
        }
    }
}

impl<'a> From<&'a PackedMatrix> for MatRef<'a> {
    fn from(p: &'a PackedMatrix) -> Self {
        MatRef::Packed(p)
    }
}

impl<'a> From<WeightMatrix<'a>> for MatRef<'a> {
    fn from(w: WeightMatrix<'a>) -> Self {
        MatRef::Raw(w)
    }
}

/// One multiplication in a batch of independent multiplications sharing one parallel section.
pub struct MatmulJob<'a, 'b> {
    pub w: MatRef<'a>,
    pub x: &'b ActBuf,
    /// Output, `x.n` rows of `w.rows` values.
    pub y: &'b mut [f32],
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// y = x · Wᵀ.
pub fn matmul<'a>(pool: &ThreadPool, isa: Isa, w: impl Into<MatRef<'a>>, x: &ActBuf, y: &mut [f32]) {
    matmul_many(pool, isa, &mut [MatmulJob { w: w.into(), x, y }]);
}

/// Several independent multiplications in one parallel section (e.g. Q, K and V).
pub fn matmul_many(pool: &ThreadPool, isa: Isa, jobs: &mut [MatmulJob]) {
    for j in jobs.iter() {
        assert_eq!(j.x.format, Some(j.w.ty().act_format()), "activation format mismatch");
        assert_eq!(j.x.cols, j.w.cols(), "activation width mismatch");
        assert_eq!(j.y.len(), j.x.n * j.w.rows(), "output size mismatch");
    }
    let ptrs: Vec<SendPtr> = jobs.iter_mut().map(|j| SendPtr(j.y.as_mut_ptr())).collect();
    let jobs = &*jobs;
    let nt = pool.n_threads();
    pool.run(&|tid| {
        for (j, p) in jobs.iter().zip(&ptrs) {
            match j.w {
                MatRef::Raw(w) => {
                    // Rows in chunks aligned to 4 so threads rarely share a cache line of output.
                    let per = w.rows.div_ceil(nt).next_multiple_of(4);
                    let start = (tid * per).min(w.rows);
                    let end = ((tid + 1) * per).min(w.rows);
                    if start < end {
                        // SAFETY: threads write disjoint row ranges of each output.
                        unsafe { rows(isa, w, j.x, start..end, p.0) };
                    }
                }
                MatRef::Packed(pm) => {
                    let n_groups = pm.rows.div_ceil(GROUP);
                    let per = n_groups.div_ceil(nt);
                    let start = (tid * per).min(n_groups);
                    let end = ((tid + 1) * per).min(n_groups);
                    if start < end {
                        // SAFETY: threads write disjoint groups of rows.
                        unsafe { packed_rows(isa, pm, j.x, start..end, p.0) };
                    }
                }
            }
        }
    });
}

unsafe fn packed_rows(isa: Isa, p: &PackedMatrix, x: &ActBuf, groups: std::ops::Range<usize>, y: *mut f32) {
    let ldy = p.rows;
    #[cfg(target_arch = "x86_64")]
    if isa != Isa::Scalar {
        use crate::simd::x86 as k;
        return unsafe {
            match (p.fmt.k, isa == Isa::Avx2Vnni) {
                (true, true) => k::packed_k_rows_avxvnni(p, groups, &x.q8k, x.n, y, ldy),
                (true, false) => k::packed_k_rows_avx2(p, groups, &x.q8k, x.n, y, ldy),
                (false, true) => k::packed_rows_avxvnni(p, groups, &x.q8, x.n, y, ldy),
                (false, false) => k::packed_rows_avx2(p, groups, &x.q8, x.n, y, ldy),
            }
        };
    }
    let _ = isa;
    let mut put = |t: usize, r: usize, v: f32| unsafe { *y.add(t * ldy + r) = v };
    if p.fmt.k {
        crate::packed::packed_k_rows_scalar(p, groups, &x.q8k, x.n, &mut put);
    } else {
        crate::packed::packed_rows_scalar(p, groups, &x.q8, x.n, &mut put);
    }
}

/// Compute rows `range` of y for all tokens. `y` points at an `x.n × w.rows` buffer.
unsafe fn rows(isa: Isa, w: WeightMatrix, x: &ActBuf, range: std::ops::Range<usize>, y: *mut f32) {
    let ldy = w.rows;
    let rb = w.row_bytes();
    match w.ty.act_format() {
        ActFormat::Q8 => {
            let nb = w.cols / QK;
            #[cfg(target_arch = "x86_64")]
            match isa {
                Isa::Avx2Vnni => {
                    return unsafe {
                        crate::simd::x86::rows_q8_avxvnni(w.ty, w.data, rb, range, &x.q8, nb, x.n, y, ldy)
                    };
                }
                Isa::Avx2 => {
                    return unsafe {
                        crate::simd::x86::rows_q8_avx2(w.ty, w.data, rb, range, &x.q8, nb, x.n, y, ldy)
                    };
                }
                Isa::Scalar => {}
            }
            for r in range {
                let row = w.row(r);
                for t in 0..x.n {
                    let v = dot::dot_q8_scalar(w.ty, row, &x.q8[t * nb..(t + 1) * nb]);
                    unsafe { *y.add(t * ldy + r) = v };
                }
            }
        }
        ActFormat::Q8K => {
            let nb = w.cols / QK_K;
            let bs = w.ty.block().1;
            let simd = isa != Isa::Scalar;
            if !simd {
                for r in range {
                    for t in 0..x.n {
                        let v = dot::dot_q8k_scalar(w.ty, w.row(r), &x.q8k[t * nb..(t + 1) * nb]);
                        unsafe { *y.add(t * ldy + r) = v };
                    }
                }
                return;
            }
            for r in range {
                let row = w.row(r);
                // Decode the row's superblocks once, reuse for every token.
                let sbs: Vec<_> = row.chunks_exact(bs).map(|b| decode_superblock(w.ty, b)).collect();
                for t in 0..x.n {
                    let xs = &x.q8k[t * nb..(t + 1) * nb];
                    let mut sum = 0f32;
                    for (sb, xb) in sbs.iter().zip(xs) {
                        let (mut isc, mut imn) = (0i32, 0i32);
                        for s in 0..16 {
                            let (a, b) = (&sb.q[s * 16..s * 16 + 16], &xb.qs[s * 16..s * 16 + 16]);
                            let qd = idot(simd, a, b);
                            isc += sb.sc[s] * qd;
                            imn += sb.mn[s] * xb.bsums[s];
                        }
                        sum += xb.d * sb.d * isc as f32 - xb.d * sb.dmin * imn as f32;
                    }
                    unsafe { *y.add(t * ldy + r) = sum };
                }
            }
        }
        ActFormat::F32 | ActFormat::F16 => {
            let c = w.cols;
            for r in range {
                let row = w.row(r);
                for t in 0..x.n {
                    let v = dot::dot_f32_scalar(w.ty, row, &x.f32s[t * c..(t + 1) * c]);
                    unsafe { *y.add(t * ldy + r) = v };
                }
            }
        }
    }
}

#[inline]
fn idot(simd: bool, a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if simd {
        return unsafe { crate::simd::x86::idot_i8_avx2(a, b) };
    }
    let _ = simd;
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}
