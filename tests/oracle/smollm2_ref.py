"""SmolLM2 references from transformers loading the GGUF (dequantized to float32): the first 512 tokens of a text,
their logits for the first 64 positions, the argmax at every position, and a 32-token greedy continuation of a
chat prompt with the top-2 margins. Usage: smollm2_ref.py GGUF TEXT_FILE OUT_DIR → prints JSON (logits to a file)."""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf, text_file, out_dir = sys.argv[1], sys.argv[2], sys.argv[3]
folder, name = os.path.dirname(gguf), os.path.basename(gguf)
tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
ids = tok(open(text_file, encoding="utf-8").read(), add_special_tokens=False)["input_ids"][:512]
with torch.no_grad():
    logits = model(input_ids=torch.tensor([ids])).logits[0]
logits[:64].numpy().astype("<f4").tofile(os.path.join(out_dir, "logits64.f32"))
prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}], tokenize=True,
                                 add_generation_prompt=True)
with torch.no_grad():
    gen = model.generate(torch.tensor([prompt]), max_new_tokens=32, min_new_tokens=32, do_sample=False,
                         output_scores=True, return_dict_in_generate=True, eos_token_id=None, pad_token_id=0)
margins = [float(s[0].topk(2).values[0] - s[0].topk(2).values[1]) for s in gen.scores]
print(json.dumps({"ids": ids, "argmax": logits.argmax(-1).tolist(), "vocab": logits.shape[-1],
                  "prompt": prompt, "greedy": gen.sequences[0, len(prompt):].tolist(), "margins": margins}))
