//! Rewriting a model with some tensors replaced — what the edits (abliteration, steering, LoRA
//! merges) share: the new tensors computed one job per thread, everything else copied byte for
//! byte.

use glassbox_gguf::{GgufFile, GgufWriter, Value, WriterTensor};

use crate::QType;

/// Dequantise whole rows of `cols` values of type `ty` from `bytes` into `out` (as many rows as
/// both hold): an edited tensor's starting point.
pub fn dequantize_rows(ty: QType, bytes: &[u8], cols: usize, out: &mut [f32]) {
    let row_bytes = ty.row_bytes(cols).unwrap_or(0).max(1);
    for (o, b) in out.chunks_exact_mut(cols).zip(bytes.chunks_exact(row_bytes)) {
        glassbox_kernels::dequantize_row(ty, b, o);
    }
}

/// Run `one` over `jobs` on up to `threads` threads, each thread taking the next job until none
/// is left or it meets an error (the others finish theirs). A panicking thread's place is taken
/// by `panicked()`. Results come in no particular order.
pub fn each_parallel<J: Sync, T: Send, E: Send>(jobs: &[J], threads: usize, one: impl Fn(&J) -> Result<T, E> + Sync, panicked: impl Fn() -> E) -> Vec<Result<T, E>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (one, next) = (&one, &next);
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads.clamp(1, jobs.len().max(1)))
            .map(|_| {
                sc.spawn(move || {
                    let mut out = Vec::new();
                    while let Some(job) = jobs.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                        let r = one(job);
                        let stop = r.is_err();
                        out.push(r);
                        if stop {
                            break;
                        }
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|_| vec![Err(panicked())])).collect()
    })
}

/// Write `f` to `out`: tensor k replaced by `replaced[k]` (bytes and type) where that is set,
/// copied as it is otherwise; the metadata copied with `extra` keys set.
pub fn write_replaced(f: &GgufFile, replaced: &[Option<(Vec<u8>, QType)>], extra: &[(String, Value)], out: &mut impl std::io::Write) -> glassbox_gguf::Result<()> {
    let g = f.gguf();
    let tensors: Vec<WriterTensor> = g
        .tensors()
        .iter()
        .zip(replaced.iter().chain(std::iter::repeat(&None)))
        .map(|(t, d)| match d {
            Some((bytes, ty)) => WriterTensor { name: t.name.clone(), dims: t.dims.clone(), ggml_type: crate::ggml_type(*ty), data: bytes },
            None => WriterTensor { name: t.name.clone(), dims: t.dims.clone(), ggml_type: t.ggml_type, data: f.tensor_data(t) },
        })
        .collect();
    let mut w = GgufWriter { version: g.version, metadata: g.metadata().to_vec(), tensors };
    for (k, v) in extra {
        w.set(k, v.clone());
    }
    w.write(out)
}
