"""Reference 4-bit quantizers for QLoRA, independent of the TS code: NF4 from the QLoRA paper's table in
bitsandbytes' block layout (absmax per block of the flattened weight, two codes per byte, high nibble first),
double quantization of the absmax (minus their mean, 8-bit signed dynamic map, blocks of 256), and int4 blocks
along rows for MatMulNBits. float32 arithmetic throughout (torch), as bitsandbytes' CPU default kernels do it.
When bitsandbytes is installed, its own quantize_4bit / dequantize_4bit are compared too.

usage: qlora_quant_ref.py IN_DIR OUT_DIR
IN_DIR/cases.json: [{name, file (raw float32), n, k, nf4_block, int4_block}] → OUT_DIR/<name>.<part>.bin raw
little-endian arrays; prints JSON {cases: {name: {parts: {part: dtype}, offset}}, dynamic_map: file, bnb: ...}.
"""
import json
import os
import sys

import numpy as np
import torch

NF4 = torch.tensor([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                    0.7229568362236023, 1.0], dtype=torch.float32)


def dynamic_map():
    """bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)."""
    data = []
    for i in range(7):
        items = 2 ** i + 1
        bounds = torch.linspace(0.1, 1, items, dtype=torch.float32)
        means = (bounds[:-1] + bounds[1:]) / 2.0
        data += ((10 ** (-6 + i)) * means).tolist()
        data += (-(10 ** (-6 + i)) * means).tolist()
    data += [0, 1.0]
    data += [0] * (256 - len(data))
    data.sort()
    return torch.tensor(data, dtype=torch.float32)


def blockwise(x, code, block):
    """Per block: absmax, x·(1/absmax) (÷ for a partial last block) clamped to ±1, nearest code (ties go low)."""
    n = x.numel()
    full = n - n % block
    blocks = x[:full].reshape(-1, block)
    absmax = blocks.abs().max(dim=-1)[0]
    scaled = torch.clamp(blocks * (1.0 / absmax.clamp(min=1e-38).view(-1, 1)), -1, 1).reshape(-1)
    if n % block:
        am = x[full:].abs().max()
        absmax = torch.cat([absmax, am.view(1)])
        scaled = torch.cat([scaled, torch.clamp(x[full:] / am.clamp(min=1e-38), -1, 1)])
    bounds = (code[:-1] + code[1:]) / 2
    return torch.bucketize(scaled, bounds).to(torch.uint8), absmax


def nf4(w, block):
    codes, absmax = blockwise(w.reshape(-1), NF4, block)
    if codes.numel() % 2:
        codes = torch.cat([codes, torch.tensor([7], dtype=torch.uint8)])
    packed = (codes[::2] << 4) | codes[1::2]
    return packed, absmax


def nf4_dequant(packed, absmax, count, block):
    codes = torch.stack([packed >> 4, packed & 15], dim=1).reshape(-1)[:count].long()
    idx = torch.arange(count) // block
    return NF4[codes] * absmax[idx]


def double_quant(absmax, dmap):
    offset = np.float32(np.cumsum(absmax.numpy().astype(np.float64))[-1] / absmax.numel())  # sequential float64 mean
    centred = absmax - torch.tensor(offset)
    codes, absmax2 = blockwise(centred, dmap, 256)
    deq = dmap[codes.long()] * absmax2[torch.arange(absmax.numel()) // 256] + torch.tensor(offset)
    return codes, absmax2, offset, deq


def int4(w, n, k, block, symmetric):
    b = w.reshape(n * k // block, block)
    if symmetric:
        idx = b.abs().argmax(dim=1, keepdim=True)
        scale = (torch.gather(b, 1, idx) / -8).reshape(-1)
        zp = torch.full_like(scale, 8)
    else:
        lo = torch.clamp(b.min(dim=1)[0], max=0)
        hi = torch.clamp(b.max(dim=1)[0], min=0)
        scale = (hi - lo) / 15
        zp = torch.where(scale == 0, torch.tensor(8.0), torch.clamp(torch.round(-lo / scale), 0, 15))
    safe = torch.where(scale == 0, torch.tensor(1.0), scale).view(-1, 1)
    codes = torch.clamp(torch.round(b / safe) + zp.view(-1, 1), 0, 15)
    codes = torch.where(scale.view(-1, 1) == 0, zp.view(-1, 1), codes)
    deq = (codes - zp.view(-1, 1)) * scale.view(-1, 1)
    return codes.to(torch.uint8).reshape(-1), scale, zp.to(torch.uint8), deq.reshape(-1)


def bnb_check(w, n, k, block, ref):
    try:
        import bitsandbytes.functional as F
    except ImportError:
        return None
    out = {}
    q, st = F.quantize_4bit(w.reshape(n, k), blocksize=block, quant_type="nf4", compress_statistics=False)
    out["packed_equal"] = bool(torch.equal(q.reshape(-1), ref["packed"]))
    out["absmax_equal"] = bool(torch.equal(st.absmax, ref["absmax"]))
    out["dequant_equal"] = bool(torch.equal(F.dequantize_4bit(q, st).reshape(-1), ref["dequant"]))
    q2, st2 = F.quantize_4bit(w.reshape(n, k), blocksize=block, quant_type="nf4", compress_statistics=True)
    out["dq_packed_equal"] = bool(torch.equal(q2.reshape(-1), ref["packed"]))
    out["dq_offset_ulps"] = int(abs(np.float32(st2.offset.item()).view(np.int32) - np.float32(ref["offset"]).view(np.int32)))
    out["dq_map_equal"] = bool(torch.equal(st2.state2.code, ref["dmap"]))
    out["dq_absmax2_equal"] = bool(torch.equal(st2.state2.absmax, ref["absmax2"]))
    # bitsandbytes' native CPU 8-bit quantizer searches its map approximately: count the codes it picks differently.
    out["dq_codes_differing"] = int((st2.absmax.reshape(-1) != ref["dq_codes"]).sum())
    out["dq_codes_count"] = int(ref["dq_codes"].numel())
    deq2 = F.dequantize_4bit(q2, st2).reshape(-1)
    out["dq_dequant_max_rel"] = float(((deq2 - ref["dq_dequant"]).abs().max() / ref["dq_dequant"].abs().max()).item())
    return out


def main():
    in_dir, out_dir = sys.argv[1], sys.argv[2]
    cases = json.load(open(os.path.join(in_dir, "cases.json")))
    dmap = dynamic_map()
    dmap.numpy().astype("<f4").tofile(os.path.join(out_dir, "dynamic_map.bin"))
    result = {"cases": {}, "dynamic_map": "dynamic_map.bin"}
    for c in cases:
        name, n, k = c["name"], c["n"], c["k"]
        w = torch.from_numpy(np.fromfile(os.path.join(in_dir, c["file"]), dtype="<f4").copy())
        packed, absmax = nf4(w, c["nf4_block"])
        deq = nf4_dequant(packed, absmax, n * k, c["nf4_block"])
        dq_codes, absmax2, offset, dq_absmax = double_quant(absmax, dmap)
        dq_deq = nf4_dequant(packed, dq_absmax, n * k, c["nf4_block"])
        parts = {"packed": packed, "absmax": absmax, "dequant": deq, "dq_codes": dq_codes, "absmax2": absmax2,
                 "dq_absmax": dq_absmax, "dq_dequant": dq_deq}
        if c.get("int4_block"):
            for sym in (False, True):
                codes, scales, zps, ideq = int4(w, n, k, c["int4_block"], sym)
                tag = "sym" if sym else "asym"
                parts.update({f"int4_{tag}_codes": codes, f"int4_{tag}_scales": scales, f"int4_{tag}_zero_points": zps,
                              f"int4_{tag}_dequant": ideq})
        info = {"parts": {}, "offset": float(offset)}
        for part, t in parts.items():
            a = t.numpy()
            a.astype("<f4" if a.dtype == np.float32 else a.dtype).tofile(os.path.join(out_dir, f"{name}.{part}.bin"))
            info["parts"][part] = str(a.dtype)
        if c.get("bnb"):
            info["bnb"] = bnb_check(w, n, k, c["nf4_block"], {**parts, "offset": offset, "dmap": dmap})
        result["cases"][name] = info
    print(json.dumps(result))


if __name__ == "__main__":
    main()
