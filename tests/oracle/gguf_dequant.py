"""Reference reading of a GGUF file with the `gguf` package (GGUFReader + gguf.quants.dequantize).

usage: gguf_dequant.py GGUF_PATH OUT_DIR [--tensors NAME,NAME,...] [--no-metadata] [--no-values]

Writes each selected tensor dequantized to float32 as OUT_DIR/<index>.f32 (raw little-endian, numpy C order)
and prints JSON: {alignment, data_offset, metadata: {key: {type, item_type?, value}}, tensors: [{name, type,
type_name, ne, shape, offset, n_bytes, file}]}. Integers beyond 2**53 are written as {"bigint": "<digits>"}.
--no-values lists the tensor infos only (no dequantization, no files; "shape" is then ne reversed).
"""
import argparse
import json
import os

import numpy as np
import gguf
from gguf import GGUFReader, GGUFValueType


def jsonable(v):
    if isinstance(v, list):
        return [jsonable(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        v = int(v)
        return v if abs(v) <= 2**53 - 1 else {"bigint": str(v)}
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, (bytes, np.ndarray)):
        return bytes(v).decode("utf-8")
    return v


def field_json(field):
    types = list(field.types)
    entry = {"type": int(types[0])}
    if types[0] == GGUFValueType.ARRAY:
        entry["item_type"] = int(types[1])
    entry["value"] = jsonable(field.contents())
    return entry


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("out")
    ap.add_argument("--tensors", default=None)
    ap.add_argument("--no-metadata", action="store_true")
    ap.add_argument("--no-values", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    reader = GGUFReader(args.path)
    wanted = set(args.tensors.split(",")) if args.tensors else None

    tensors = []
    for i, t in enumerate(reader.tensors):
        if wanted is not None and t.name not in wanted:
            continue
        if args.no_values:
            shape, file = [int(x) for x in reversed(t.shape)], None
        else:
            values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
            file = os.path.join(args.out, f"{i}.f32")
            np.ascontiguousarray(values).astype("<f4").tofile(file)
            shape = [int(x) for x in values.shape]
        tensors.append({
            "name": t.name,
            "type": int(t.tensor_type),
            "type_name": t.tensor_type.name,
            "ne": [int(x) for x in t.shape],
            "shape": shape,
            "offset": int(t.data_offset),
            "n_bytes": int(t.n_bytes),
            "file": file,
        })
    if wanted is not None:
        missing = wanted - {t["name"] for t in tensors}
        if missing:
            raise SystemExit(f"gguf_dequant: no tensors named {sorted(missing)}")

    out = {"alignment": int(reader.alignment), "data_offset": int(reader.data_offset), "tensors": tensors}
    if not args.no_metadata:
        out["metadata"] = {k: field_json(f) for k, f in reader.fields.items() if not k.startswith("GGUF.")}
        out["version"] = int(reader.fields["GGUF.version"].contents())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
