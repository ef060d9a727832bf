//! Properties: quantising then dequantising (the kernels' `dequantize_row`) stays within each
//! type's error bound of the block's scale, and bad rows are refused by name.

use glassbox_kernels::dequantize_row;
use glassbox_quant::{Error, QType, SUPPORTED, quantize_row};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn round_trip_error_is_bounded(row in prop::collection::vec(-100.0f32..100.0, 32..=32usize).prop_flat_map(|b| prop::collection::vec(Just(b), 1..4)).prop_map(|v| v.concat())) {
        for ty in SUPPORTED.into_iter().filter(|t| t.block().0 == 32 || t.block().0 == 1) {
            let q = quantize_row(ty, &row).unwrap();
            prop_assert_eq!(q.len(), ty.row_bytes(row.len()).unwrap());
            let mut back = vec![0.0f32; row.len()];
            dequantize_row(ty, &q, &mut back);
            for (blk, (x, y)) in row.chunks(32).zip(back.chunks(32)).enumerate() {
                let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                let range = x.iter().fold(f32::MIN, |a, &v| a.max(v)) - x.iter().fold(f32::MAX, |a, &v| a.min(v));
                // Half a quantisation step (plus the f16 rounding of the scale and offset).
                let bound = match ty {
                    QType::F32 => 0.0,
                    QType::F16 => amax * 1e-3,
                    QType::Bf16 => amax * 4e-3,
                    QType::Q8_0 => amax / 127.0 * 0.5 + amax * 2e-3,
                    QType::Q4_0 => amax / 8.0 * 1.0 + amax * 2e-3,
                    QType::Q5_0 => amax / 16.0 * 1.0 + amax * 2e-3,
                    QType::Q4_1 => range / 15.0 * 0.5 + amax * 2e-3,
                    QType::Q5_1 => range / 31.0 * 0.5 + amax * 2e-3,
                    _ => unreachable!(),
                };
                for (a, b) in x.iter().zip(y) {
                    prop_assert!((a - b).abs() <= bound + 1e-6, "{} block {blk}: {a} -> {b} (bound {bound})", ty.name());
                }
            }
        }
    }
}

#[test]
fn bad_rows_are_refused() {
    assert_eq!(quantize_row(QType::Q4_0, &[0.0; 33]), Err(Error::Shape { ty: "Q4_0", block: 32, cols: 33 }));
    assert_eq!(quantize_row(QType::Q8_0, &[0.0, f32::NAN].repeat(16)), Err(Error::NonFinite(1)));
    assert_eq!(quantize_row(QType::Q4K, &[0.0; 255]), Err(Error::Shape { ty: "Q4_K", block: 256, cols: 255 }));
    assert!(quantize_row(QType::Q4_0, &[]).unwrap().is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// K types: the error relative to the block's RMS stays below what each bit width allows
    /// (measured margins: these are far above the typical error, and far below a broken packer's).
    #[test]
    fn k_types_round_trip(row in prop::collection::vec(-10.0f32..10.0, 256..=256usize), scale in 1e-3f32..1e3) {
        let row: Vec<f32> = row.iter().map(|v| v * scale).collect();
        let rms = (row.iter().map(|v| v * v).sum::<f32>() / 256.0).sqrt();
        for (ty, rel) in [(QType::Q6K, 0.03f32), (QType::Q5K, 0.06), (QType::Q4K, 0.12), (QType::Q3K, 0.3), (QType::Q2K, 0.6)] {
            let q = quantize_row(ty, &row).unwrap();
            prop_assert_eq!(q.len(), ty.row_bytes(256).unwrap());
            let mut back = vec![0.0f32; 256];
            dequantize_row(ty, &q, &mut back);
            let err = (row.iter().zip(&back).map(|(a, b)| (a - b) * (a - b)).sum::<f32>() / 256.0).sqrt();
            prop_assert!(err <= rel * rms, "{}: rms error {err} of block rms {rms}", ty.name());
        }
    }
}
