#!/usr/bin/env python3
"""Write the exactly dequantized F32 copy of a GGUF model: the reference that fidelity is
measured against (`llama-perplexity --kl-divergence-base` on this file, then
`--kl-divergence` with the quantized file, in llama.cpp and in glassbox).

Independent of glassbox: it uses only the `gguf` package (llama.cpp's own Python library),
whose `gguf.quants.dequantize` implements every block format bit-exactly.

Every metadata key is copied unchanged except `general.file_type` (set to 0, ALL_F32); every
tensor is written as F32 in the same order with the same name and shape.

Usage:
  python3 -m venv /tmp/dqvenv && /tmp/dqvenv/bin/pip install gguf==0.19.0 numpy
  /tmp/dqvenv/bin/python scripts/dequantize_gguf.py IN.gguf OUT-f32.gguf
"""
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T, GGUFValueType as V


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(dst, arch)
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name in ("general.architecture", "general.alignment"):
            continue  # the writer emits these itself
        vtype = f.types[0]
        val = f.contents()
        if name == "general.file_type":
            val = 0
        sub = f.types[1] if vtype == V.ARRAY and len(f.types) > 1 else None
        w.add_key_value(name, val, vtype, sub_type=sub)
    for t in r.tensors:
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))  # numpy order: slowest first
        if t.tensor_type == T.F32:
            data = np.asarray(t.data, dtype=np.float32).reshape(shape)
        else:
            data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
        w.add_tensor(t.name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {dst}: {len(r.tensors)} tensors as F32", file=sys.stderr)


if __name__ == "__main__":
    main()
