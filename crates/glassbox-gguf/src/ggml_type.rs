use std::fmt;

/// A ggml tensor element type, as stored in a GGUF tensor info. Unknown ids are kept
/// (`GgmlType::Unknown`) so files with newer types can be read and written back unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1,
    Q2K, Q3K, Q4K, Q5K, Q6K, Q8K,
    Iq2Xxs, Iq2Xs, Iq3Xxs, Iq1S, Iq4Nl, Iq3S, Iq2S, Iq4Xs,
    I8, I16, I32, I64, F64, Iq1M, Bf16, Tq1_0, Tq2_0, Mxfp4,
    Unknown(u32),
}

impl GgmlType {
    pub fn from_id(id: u32) -> Self {
        use GgmlType::*;
        match id {
            0 => F32, 1 => F16, 2 => Q4_0, 3 => Q4_1, 6 => Q5_0, 7 => Q5_1, 8 => Q8_0, 9 => Q8_1,
            10 => Q2K, 11 => Q3K, 12 => Q4K, 13 => Q5K, 14 => Q6K, 15 => Q8K,
            16 => Iq2Xxs, 17 => Iq2Xs, 18 => Iq3Xxs, 19 => Iq1S, 20 => Iq4Nl, 21 => Iq3S,
            22 => Iq2S, 23 => Iq4Xs, 24 => I8, 25 => I16, 26 => I32, 27 => I64, 28 => F64,
            29 => Iq1M, 30 => Bf16, 34 => Tq1_0, 35 => Tq2_0, 39 => Mxfp4,
            other => Unknown(other),
        }
    }

    pub fn id(self) -> u32 {
        use GgmlType::*;
        match self {
            F32 => 0, F16 => 1, Q4_0 => 2, Q4_1 => 3, Q5_0 => 6, Q5_1 => 7, Q8_0 => 8, Q8_1 => 9,
            Q2K => 10, Q3K => 11, Q4K => 12, Q5K => 13, Q6K => 14, Q8K => 15,
            Iq2Xxs => 16, Iq2Xs => 17, Iq3Xxs => 18, Iq1S => 19, Iq4Nl => 20, Iq3S => 21,
            Iq2S => 22, Iq4Xs => 23, I8 => 24, I16 => 25, I32 => 26, I64 => 27, F64 => 28,
            Iq1M => 29, Bf16 => 30, Tq1_0 => 34, Tq2_0 => 35, Mxfp4 => 39,
            Unknown(id) => id,
        }
    }

    /// (elements per block, bytes per block), or `None` for a type this crate does not know.
    pub fn block_layout(self) -> Option<(u64, u64)> {
        use GgmlType::*;
        Some(match self {
            F32 => (1, 4), F16 => (1, 2), Bf16 => (1, 2), F64 => (1, 8),
            I8 => (1, 1), I16 => (1, 2), I32 => (1, 4), I64 => (1, 8),
            Q4_0 => (32, 18), Q4_1 => (32, 20), Q5_0 => (32, 22), Q5_1 => (32, 24),
            Q8_0 => (32, 34), Q8_1 => (32, 36), Iq4Nl => (32, 18), Mxfp4 => (32, 17),
            Q2K => (256, 84), Q3K => (256, 110), Q4K => (256, 144), Q5K => (256, 176),
            Q6K => (256, 210), Q8K => (256, 292),
            Iq2Xxs => (256, 66), Iq2Xs => (256, 74), Iq3Xxs => (256, 98), Iq1S => (256, 50),
            Iq3S => (256, 110), Iq2S => (256, 82), Iq4Xs => (256, 136), Iq1M => (256, 56),
            Tq1_0 => (256, 54), Tq2_0 => (256, 66),
            Unknown(_) => return None,
        })
    }

    pub fn name(self) -> String {
        use GgmlType::*;
        let s = match self {
            F32 => "F32", F16 => "F16", Q4_0 => "Q4_0", Q4_1 => "Q4_1", Q5_0 => "Q5_0",
            Q5_1 => "Q5_1", Q8_0 => "Q8_0", Q8_1 => "Q8_1", Q2K => "Q2_K", Q3K => "Q3_K",
            Q4K => "Q4_K", Q5K => "Q5_K", Q6K => "Q6_K", Q8K => "Q8_K", Iq2Xxs => "IQ2_XXS",
            Iq2Xs => "IQ2_XS", Iq3Xxs => "IQ3_XXS", Iq1S => "IQ1_S", Iq4Nl => "IQ4_NL",
            Iq3S => "IQ3_S", Iq2S => "IQ2_S", Iq4Xs => "IQ4_XS", I8 => "I8", I16 => "I16",
            I32 => "I32", I64 => "I64", F64 => "F64", Iq1M => "IQ1_M", Bf16 => "BF16",
            Tq1_0 => "TQ1_0", Tq2_0 => "TQ2_0", Mxfp4 => "MXFP4",
            Unknown(id) => return format!("unknown type {id}"),
        };
        s.to_owned()
    }

    /// Bytes needed for `n_elements` of this type, checked. `None` if the type is unknown, the
    /// count is not a whole number of blocks, or the size overflows.
    pub fn bytes_for(self, n_elements: u64) -> Option<u64> {
        let (block, size) = self.block_layout()?;
        if !n_elements.is_multiple_of(block) {
            return None;
        }
        (n_elements / block).checked_mul(size)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}
