"""What transformers makes of a GGUF file: AutoModelForCausalLM.from_pretrained(dir, gguf_file=...) dequantizes
it, maps names to HF and undoes llama.cpp's Q/K permutation. The TS loader must agree with it.

usage: gguf_transformers.py GGUF_PATH OUT_DIR HF_NAME [HF_NAME ...]

Writes each named state_dict tensor as OUT_DIR/<index>.f32 (raw little-endian float32) and prints JSON
{config: {...}, tensors: [{name, shape, file}]}.
"""
import json
import os
import sys

os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF loader draws a progress bar on stderr

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.utils import logging as hf_logging

CONFIG_KEYS = [
    "architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "rms_norm_eps", "rope_theta", "max_position_embeddings", "vocab_size",
    "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id", "rope_scaling",
]


def main() -> None:
    path, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(out, exist_ok=True)
    hf_logging.disable_progress_bar()
    folder, file = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    config = AutoConfig.from_pretrained(folder, gguf_file=file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
    state = model.state_dict()
    tensors = []
    for i, name in enumerate(names):
        if name not in state:
            raise SystemExit(f"gguf_transformers: state_dict has no {name}")
        values = state[name].detach().to(torch.float32).contiguous().numpy()
        target = os.path.join(out, f"{i}.f32")
        values.astype("<f4").tofile(target)
        tensors.append({"name": name, "shape": list(values.shape), "file": target})
    cfg = {k: getattr(config, k, None) for k in CONFIG_KEYS}
    print(json.dumps({"config": cfg, "tensors": tensors}))


if __name__ == "__main__":
    main()
