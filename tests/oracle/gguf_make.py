"""Writes small synthetic GGUF files with the `gguf` package (the reference writer), for the TS reader tests.

usage: gguf_make.py OUT_DIR   → prints JSON {"files": {name: path}} on stdout

- legacy.gguf: every type gguf.quants can quantize (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1), quantized from
  seeded random data with awkward blocks mixed in (all zeros, constant, one outlier), plus metadata of every value
  type incl. string arrays and nested arrays.
- kquants.gguf: Q4_K, Q5_K, Q6_K. gguf-py cannot quantize K-quants, so these are random raw blocks (every bit
  pattern of codes and packed scales is a valid block; only the fp16 super-scales are drawn to be finite). The
  file also uses a custom general.alignment of 64.
"""
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

rng = np.random.default_rng(20241125)


def awkward_rows(rows: int, cols: int) -> np.ndarray:
    x = rng.standard_normal((rows, cols)).astype(np.float32) * 0.05
    x[0, :32] = 0.0  # an all-zero block: scale 0 must give exact zeros
    x[0, 32:64] = 0.125  # constant block: max == min for the _1 types
    if rows > 1:
        x[1, 5] = 7.5  # an outlier that sets the block scale
        x[1, 40] = -3.25
    return x


def add_metadata(w: gguf.GGUFWriter) -> None:
    V = gguf.GGUFValueType
    w.add_key_value("test.u8", 200, V.UINT8)
    w.add_key_value("test.i8", -100, V.INT8)
    w.add_key_value("test.u16", 60000, V.UINT16)
    w.add_key_value("test.i16", -30000, V.INT16)
    w.add_key_value("test.u32", 4000000000, V.UINT32)
    w.add_key_value("test.i32", -2000000000, V.INT32)
    w.add_key_value("test.f32", 0.1, V.FLOAT32)
    w.add_key_value("test.bool_true", True, V.BOOL)
    w.add_key_value("test.bool_false", False, V.BOOL)
    w.add_key_value("test.string", "héllo wörld ✓", V.STRING)
    w.add_key_value("test.u64", 2**53 + 12345, V.UINT64)  # beyond a double: must stay exact (bigint)
    w.add_key_value("test.u64_small", 12345, V.UINT64)
    w.add_key_value("test.i64", -(2**40), V.INT64)
    w.add_key_value("test.f64", 1.0 / 3.0, V.FLOAT64)
    w.add_array("test.strings", ["a", "", "ünï", "<|im_start|>"])
    w.add_array("test.ints", [1, -2, 3])
    w.add_array("test.floats", [0.5, -1.25])
    w.add_array("test.nested", [[1, 2, 3], [4], [5, 6]])
    w.add_array("test.nested_strings", [["x", "y"], ["z"]])


def write_legacy(path: str) -> None:
    w = gguf.GGUFWriter(path, arch="llama")
    add_metadata(w)
    types = [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1]
    for i, qt in enumerate(types):
        x = awkward_rows(6, 96)
        q = gguf.quants.quantize(x, qt)
        w.add_tensor(f"t.{qt.name}", q, raw_dtype=qt)
        # A 3-D tensor as well, so dims order (ne[0] innermost) is exercised beyond matrices.
        y = awkward_rows(2 * 3, 64).reshape(2, 3, 64)
        w.add_tensor(f"t3.{qt.name}", gguf.quants.quantize(y, qt), raw_dtype=qt)
    w.add_tensor("t.F32_vector", rng.standard_normal(7).astype(np.float32))  # odd length: padding after it
    write(w)


def random_k_blocks(qt: T, n_blocks: int) -> np.ndarray:
    block_size, type_size = gguf.GGML_QUANT_SIZES[qt]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    d = rng.uniform(-0.01, 0.01, size=n_blocks).astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    dmin = rng.uniform(-0.01, 0.01, size=n_blocks).astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    if qt == T.Q6_K:
        raw[:, type_size - 2:] = d  # Q6_K keeps its fp16 scale last
    else:
        raw[:, 0:2] = d
        raw[:, 2:4] = dmin
    return raw


def write_kquants(path: str) -> None:
    w = gguf.GGUFWriter(path, arch="llama")
    w.add_custom_alignment(64)
    w.add_string("test.note", "random raw K-quant blocks")
    for qt in [T.Q4_K, T.Q5_K, T.Q6_K]:
        rows, cols = 4, 512
        blocks = random_k_blocks(qt, rows * cols // 256)
        w.add_tensor(f"k.{qt.name}", blocks.reshape(rows, -1), raw_dtype=qt)  # byte-shaped: the writer derives (rows, cols)
    write(w)


def write(w: gguf.GGUFWriter) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main() -> None:
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    files = {"legacy": os.path.join(out, "legacy.gguf"), "kquants": os.path.join(out, "kquants.gguf")}
    write_legacy(files["legacy"])
    write_kquants(files["kquants"])
    print(json.dumps({"files": files}))


if __name__ == "__main__":
    main()
