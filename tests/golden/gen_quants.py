#!/usr/bin/python3
"""Random blocks of every GGUF weight type kvattn reads (Q4_0 … Q6_K), decoded by llama.cpp's own
gguf-py (gguf/quants.py, numpy): the independent reference test_quants compares kvattn's decoding
with. The blocks are random bytes, with each f16 scale and minimum replaced by a finite value of
either sign (random bytes would include NaN and infinity, which compare unequal to themselves).

Format: b"KVQUANT1", u32 count, then per type: u32 ggml type id, u32 blocks, u32 bytes per block,
u32 elements per block, the raw blocks, float32 values (little-endian).

And quants_write.bin: gguf-py's Q4_0 quantization (llama.cpp's reference rule) of random floats,
for kvattn's writer: b"KVQWRIT1", u32 n, float32 x[n], then the n / 32 blocks of 18 bytes.

Run: PYTHONPATH=$LLAMA_CPP/gguf-py /usr/bin/python3 tests/golden/gen_quants.py  (Debian python3-numpy)
"""
import os
import struct

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as Q
from gguf.quants import dequantize, quantize

# (type, byte offsets of its f16 fields within a block)
TYPES = [(Q.Q4_0, [0]), (Q.Q4_1, [0, 2]), (Q.Q5_0, [0]), (Q.Q5_1, [0, 2]), (Q.Q2_K, [80, 82]),
         (Q.Q3_K, [108]), (Q.Q4_K, [0, 2]), (Q.Q5_K, [0, 2]), (Q.Q6_K, [208])]
BLOCKS = 6


def main():
    rng = np.random.default_rng(2026)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quants.bin")
    with open(out, "wb") as f:
        f.write(b"KVQUANT1" + struct.pack("<I", len(TYPES)))
        for qtype, halves in TYPES:
            elems, size = GGML_QUANT_SIZES[qtype]
            raw = bytearray(rng.integers(0, 256, BLOCKS * size, dtype=np.uint8).tobytes())
            for b in range(BLOCKS):
                for off in halves:
                    v = np.float16(rng.uniform(-0.05, 0.05) if b else 0.0)  # block 0: a zero scale
                    raw[b * size + off:b * size + off + 2] = v.tobytes()
            values = dequantize(np.frombuffer(bytes(raw), dtype=np.uint8), qtype).astype("<f4").reshape(-1)
            assert values.size == BLOCKS * elems and np.all(np.isfinite(values))
            f.write(struct.pack("<4I", int(qtype), BLOCKS, size, elems) + bytes(raw) + values.tobytes())
    x = (rng.standard_normal(64 * 32) * rng.uniform(0.01, 2.0, 64).repeat(32)).astype(np.float32)
    x[:32] = 0.0  # an all-zero block: d = 0
    x[40] = -3.0  # a block whose largest magnitude is negative
    q = quantize(x.reshape(64, 32), Q.Q4_0).tobytes()
    with open(os.path.join(os.path.dirname(out), "quants_write.bin"), "wb") as f:
        f.write(b"KVQWRIT1" + struct.pack("<I", x.size) + x.astype("<f4").tobytes() + q)
    print("wrote", out, "and quants_write.bin")


if __name__ == "__main__":
    main()
