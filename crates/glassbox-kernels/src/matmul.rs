//! Matrix multiplication y = x · Wᵀ for quantised W, parallel over rows, SIMD-dispatched.

use std::ops::Range;

use crate::act::{ActBuf, ActFormat};
use crate::isa::Isa;
use crate::packed::PackedMatrix;
use crate::pool::ThreadPool;
use crate::quant::{QK, QK_K, QType, decode_superblock};
use crate::{Error, dot};

/// A row-major weight matrix: `rows` rows of `cols` elements, each row `ty.row_bytes(cols)`.
///
/// The fields are private so that the one constructor, [`WeightMatrix::new`], can guarantee
/// what the SIMD kernels read by offset: `data` is exactly `rows × ty.row_bytes(cols)` bytes.
#[derive(Clone, Copy)]
pub struct WeightMatrix<'a> {
    ty: QType,
    rows: usize,
    cols: usize,
    data: &'a [u8],
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
    pub fn ty(&self) -> QType {
        self.ty
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
    pub fn row_bytes(&self) -> usize {
        self.data.len() / self.rows.max(1)
    }
    pub fn row(&self, r: usize) -> &'a [u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
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
    /// Rows the kernels compute together ([`matvec_units`]'s unit): a packed group, or 1.
    pub fn unit(&self) -> usize {
        match self {
            MatRef::Raw(_) => 1,
            MatRef::Packed(p) => p.fmt.group,
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
    /// Output, `x.n()` rows of `w.rows()` values.
    pub y: &'b mut [f32],
}

/// An `n × ldy` f32 output shared by the threads of one parallel section, each of which
/// writes its own rows (columns `r` of every token row `t`).
#[derive(Clone, Copy)]
pub(crate) struct SharedOut {
    ptr: *mut f32,
    len: usize,
    ldy: usize,
}

// SAFETY: a `SharedOut` is only a pointer and bounds; every access is an `unsafe` method whose
// contract makes threads touch disjoint elements while the source slice is borrowed.
unsafe impl Send for SharedOut {}
// SAFETY: as for `Send`.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    fn new(y: &mut [f32], ldy: usize) -> SharedOut {
        SharedOut { ptr: y.as_mut_ptr(), len: y.len(), ldy }
    }

    /// Panics unless elements (t, r) for t < `n_tok`, r < `row_end` are inside the output.
    pub(crate) fn check(&self, n_tok: usize, row_end: usize) {
        assert!(row_end <= self.ldy, "row {row_end} beyond the output width {}", self.ldy);
        if n_tok > 0 {
            let end = (n_tok - 1).checked_mul(self.ldy).and_then(|n| n.checked_add(row_end));
            assert!(end.is_some_and(|e| e <= self.len), "{n_tok} tokens × {} outputs exceed {}", self.ldy, self.len);
        }
    }

    /// Pointer to element (t, r).
    ///
    /// # Safety
    /// (t, r) is inside a region passed to [`SharedOut::check`] (or one past its last row).
    #[inline(always)]
    pub(crate) unsafe fn row_ptr(&self, t: usize, r: usize) -> *mut f32 {
        debug_assert!(t * self.ldy + r <= self.len);
        // SAFETY: in bounds of the source slice by this function's contract.
        unsafe { self.ptr.add(t * self.ldy + r) }
    }

    /// y[t, r] = v.
    ///
    /// # Safety
    /// (t, r) is inside a region passed to [`SharedOut::check`], the source slice is still
    /// mutably borrowed, and no other thread accesses this element meanwhile.
    #[inline(always)]
    pub(crate) unsafe fn write(&self, t: usize, r: usize, v: f32) {
        // SAFETY: in bounds and exclusive by this function's contract.
        unsafe { *self.row_ptr(t, r) = v }
    }
}

/// y = x · Wᵀ.
pub fn matmul<'a>(pool: &ThreadPool, isa: Isa, w: impl Into<MatRef<'a>>, x: &ActBuf, y: &mut [f32]) {
    matmul_many(pool, isa, &mut [MatmulJob { w: w.into(), x, y }]);
}

/// Several independent multiplications in one parallel section (e.g. Q, K and V).
///
/// Panics if a job's activations are not in the format and width its weights need, or its
/// output is not `x.n() × w.rows()` values.
pub fn matmul_many(pool: &ThreadPool, isa: Isa, jobs: &mut [MatmulJob]) {
    for j in jobs.iter() {
        assert_eq!(j.x.format(), Some(j.w.ty().act_format()), "activation format mismatch");
        assert_eq!(j.x.cols(), j.w.cols(), "activation width mismatch");
        assert_eq!(Some(j.y.len()), j.x.n().checked_mul(j.w.rows()), "output size mismatch");
    }
    let outs: Vec<SharedOut> = jobs.iter_mut().map(|j| SharedOut::new(j.y, j.w.rows())).collect();
    let jobs = &*jobs;
    let nt = pool.n_threads();
    pool.run(&|tid| {
        for (j, &y) in jobs.iter().zip(&outs) {
            match j.w {
                MatRef::Raw(w) => {
                    // Rows in chunks aligned to 4 so threads rarely share a cache line of output.
                    let per = w.rows.div_ceil(nt).next_multiple_of(4);
                    let start = (tid * per).min(w.rows);
                    let end = ((tid + 1) * per).min(w.rows);
                    if start < end {
                        // SAFETY: `y` comes from `j.y`, mutably borrowed until `run` returns;
                        // thread `tid` alone handles rows start..end of this job.
                        unsafe { rows(isa, w, j.x, start..end, y) };
                    }
                }
                MatRef::Packed(pm) => {
                    let n_groups = pm.rows.div_ceil(pm.fmt.group);
                    let per = n_groups.div_ceil(nt);
                    let start = (tid * per).min(n_groups);
                    let end = ((tid + 1) * per).min(n_groups);
                    if start < end {
                        // SAFETY: as above; thread `tid` alone handles groups start..end.
                        unsafe { packed_rows(isa, pm, j.x, start..end, y) };
                    }
                }
            }
        }
    });
}

/// [`matmul`] restricted to the rows of the given units (runs of [`MatRef::unit`] rows, the
/// last possibly short; `units` strictly ascending): those rows of `y` get exactly the values
/// `matmul` gives them, bit for bit, for every token; the rest of `y` is left as it was.
///
/// Panics if `x` is not in the format and width `w` needs, `y` is not `x.n() × w.rows()`, or
/// `units` is not strictly ascending below the number of units.
pub fn matmul_units(pool: &ThreadPool, isa: Isa, w: MatRef, x: &ActBuf, units: &[usize], y: &mut [f32]) {
    assert_eq!(x.format(), Some(w.ty().act_format()), "activation format mismatch");
    assert_eq!(x.cols(), w.cols(), "activation width mismatch");
    assert_eq!(Some(y.len()), x.n().checked_mul(w.rows()), "output size mismatch");
    let n_units = w.rows().div_ceil(w.unit());
    assert!(units.windows(2).all(|p| p[0] < p[1]), "units not strictly ascending");
    assert!(units.last().is_none_or(|&u| u < n_units), "a unit past the {n_units} of the matrix");
    let out = SharedOut::new(y, w.rows());
    let nt = pool.n_threads().max(1);
    let per = units.len().div_ceil(nt);
    pool.run(&|tid| {
        let mine = &units[(tid * per).min(units.len())..((tid + 1) * per).min(units.len())];
        let mut i = 0;
        while i < mine.len() {
            // A run of consecutive units is one kernel call.
            let start = mine[i];
            let mut end = start + 1;
            i += 1;
            while i < mine.len() && mine[i] == end {
                end += 1;
                i += 1;
            }
            match w {
                // SAFETY: `out` comes from `y`, mutably borrowed until `run` returns; the
                // units of `mine` are this thread's alone (disjoint slices of a strictly
                // ascending list), so are their rows.
                MatRef::Raw(m) => unsafe { rows(isa, m, x, start..end, out) },
                // SAFETY: as above.
                MatRef::Packed(p) => unsafe { packed_rows(isa, p, x, start..end, out) },
            }
        }
    });
}

/// # Safety
/// `y` is still mutably borrowed, and no other thread touches rows of `groups` meanwhile.
unsafe fn packed_rows(isa: Isa, p: &PackedMatrix, x: &ActBuf, groups: Range<usize>, y: SharedOut) {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = isa.simd()
        && crate::simd::x86::runs(simd, p.fmt.group)
    {
        use crate::simd::x86 as k;
        // SAFETY: forwarded contract; the kernels check all lengths themselves.
        unsafe {
            if p.fmt.k {
                k::packed_k_rows(simd, p, groups, x.q8k(), x.n(), y);
            } else {
                k::packed_rows(simd, p, groups, x.q8(), x.n(), y);
            }
        }
        return;
    }
    let _ = isa;
    y.check(x.n(), p.rows);
    // SAFETY: (t, r) has t < x.n() and r < p.rows (`each_row` visits real rows only), inside
    // `y` by the check above; exclusive by this function's contract.
    let mut put = |t: usize, r: usize, v: f32| unsafe { y.write(t, r, v) };
    if p.fmt.k {
        crate::packed::packed_k_rows_scalar(p, groups, x.q8k(), x.n(), &mut put);
    } else {
        crate::packed::packed_rows_scalar(p, groups, x.q8(), x.n(), &mut put);
    }
}

/// Compute rows `range` of y for all tokens.
///
/// # Safety
/// `y` is still mutably borrowed, and no other thread touches rows of `range` meanwhile.
unsafe fn rows(isa: Isa, w: WeightMatrix, x: &ActBuf, range: Range<usize>, y: SharedOut) {
    let rb = w.row_bytes();
    let n = x.n();
    y.check(n, range.end);
    // SAFETY (for every `y.write` below): t < n and r < range.end, inside `y` by the check
    // above; exclusive by this function's contract.
    match w.ty.act_format() {
        ActFormat::Q8 => {
            let nb = w.cols / QK;
            let xq = x.q8();
            #[cfg(target_arch = "x86_64")]
            if let Some(simd) = isa.simd() {
                // SAFETY: forwarded contract; `rows_q8` checks all lengths itself.
                unsafe { crate::simd::x86::rows_q8(simd, w.ty, w.data, rb, range, xq, nb, n, y) };
                return;
            }
            for r in range {
                let row = w.row(r);
                for t in 0..n {
                    let v = dot::dot_q8_scalar(w.ty, row, &xq[t * nb..(t + 1) * nb]);
                    // SAFETY: see above.
                    unsafe { y.write(t, r, v) };
                }
            }
        }
        ActFormat::Q8K => {
            let nb = w.cols / QK_K;
            let bs = w.ty.block().1;
            let xq = x.q8k();
            #[cfg(target_arch = "x86_64")]
            let simd = isa.avx2();
            #[cfg(not(target_arch = "x86_64"))]
            let simd: Option<()> = {
                let _ = isa;
                None
            };
            let Some(simd) = simd else {
                for r in range {
                    for t in 0..n {
                        let v = dot::dot_q8k_scalar(w.ty, w.row(r), &xq[t * nb..(t + 1) * nb]);
                        // SAFETY: see above.
                        unsafe { y.write(t, r, v) };
                    }
                }
                return;
            };
            for r in range {
                let row = w.row(r);
                // Decode the row's superblocks once, reuse for every token.
                let sbs: Vec<_> = row.chunks_exact(bs).map(|b| decode_superblock(w.ty, b)).collect();
                for t in 0..n {
                    let xs = &xq[t * nb..(t + 1) * nb];
                    let mut sum = 0f32;
                    for (sb, xb) in sbs.iter().zip(xs) {
                        let (mut isc, mut imn) = (0i32, 0i32);
                        for s in 0..16 {
                            let (a, b) = (&sb.q[s * 16..s * 16 + 16], &xb.qs[s * 16..s * 16 + 16]);
                            #[cfg(target_arch = "x86_64")]
                            let qd = crate::simd::x86::idot_i8(simd, a, b);
                            #[cfg(not(target_arch = "x86_64"))]
                            let qd = {
                                let _ = simd;
                                a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum::<i32>()
                            };
                            isc += sb.sc[s] * qd;
                            imn += sb.mn[s] * xb.bsums[s];
                        }
                        sum += xb.d * sb.d * isc as f32 - xb.d * sb.dmin * imn as f32;
                    }
                    // SAFETY: see above.
                    unsafe { y.write(t, r, sum) };
                }
            }
        }
        ActFormat::F32 | ActFormat::F16 => {
            let c = w.cols;
            let xf = x.f32s();
            for r in range {
                let row = w.row(r);
                for t in 0..n {
                    let xs = &xf[t * c..(t + 1) * c];
                    let v = match (w.ty, isa) {
                        #[cfg(target_arch = "x86_64")]
                        (QType::F32, isa) if let Some(simd) = isa.avx2() => crate::simd::x86::dot_f32_f32le(simd, xs, row),
                        _ => dot::dot_f32_scalar(w.ty, row, xs),
                    };
                    // SAFETY: see above.
                    unsafe { y.write(t, r, v) };
                }
            }
        }
    }
}
