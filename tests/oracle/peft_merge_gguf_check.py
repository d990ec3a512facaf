"""gguf-py's view of a GGUF file we wrote, and gguf-py's own encodings of the same float values.
Usage: peft_merge_gguf_check.py GGUF_PATH VALUES_F32 OUT_DIR → OUT_DIR/{f16,q8_0}.bin (gguf.quants.quantize of the
values); prints JSON {metadata: {key: {types, value}}, tensors: [{name, shape, type, n_bytes, sha}]}."""
import hashlib
import json
import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf.constants import GGMLQuantizationType
from gguf.quants import quantize

path, values_file, out = sys.argv[1], sys.argv[2], sys.argv[3]
reader = GGUFReader(path)
metadata = {}
for key, field in reader.fields.items():
    if key.startswith("GGUF."):
        continue
    value = field.contents()
    if isinstance(value, (np.generic,)):
        value = value.item()
    metadata[key] = {"types": [t.name for t in field.types], "value": value}
tensors = [{"name": t.name, "shape": [int(d) for d in t.shape], "type": t.tensor_type.name, "n_bytes": int(t.n_bytes),
            "sha": hashlib.sha256(np.ascontiguousarray(t.data).tobytes()).hexdigest()} for t in reader.tensors]
values = np.fromfile(values_file, dtype="<f4").reshape(-1, 64)
os.makedirs(out, exist_ok=True)
quantize(values, GGMLQuantizationType.F16).tofile(os.path.join(out, "f16.bin"))
quantize(values, GGMLQuantizationType.Q8_0).tofile(os.path.join(out, "q8_0.bin"))
print(json.dumps({"metadata": metadata, "tensors": tensors}))
