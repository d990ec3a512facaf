"""Greedy continuation from transformers (KV cache on) for a model folder, with the top-2 logit margin at each
step. Usage: tiny_generate.py MODEL_DIR N_TOKENS PROMPT_IDS_JSON  → prints JSON."""
import json
import sys

import torch
from transformers import AutoModelForCausalLM

model_dir, n, prompt = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
with torch.no_grad():
    out = model.generate(torch.tensor([prompt]), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                         output_scores=True, return_dict_in_generate=True, pad_token_id=0, eos_token_id=None)
tokens = out.sequences[0, len(prompt):].tolist()
margins = [float(s[0].topk(2).values[0] - s[0].topk(2).values[1]) for s in out.scores]
print(json.dumps({"tokens": tokens, "margins": margins}))
