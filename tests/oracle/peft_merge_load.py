"""What transformers makes of an exported (merged) model folder: AutoModelForCausalLM and AutoTokenizer load it,
the model's logits on the given ids, and the tokenizer's ids for the given texts.
Usage: peft_merge_load.py FOLDER OUT_FILE IDS_JSON TEXTS_JSON → writes the logits (float32) to OUT_FILE; prints JSON
{shape, dtype, tokens, config}."""
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

folder, out_file, ids, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
model = AutoModelForCausalLM.from_pretrained(folder, dtype="auto")
dtype = str(next(model.parameters()).dtype)
model = model.float()
with torch.no_grad():
    logits = model(input_ids=torch.tensor(ids)).logits
logits.float().numpy().astype("<f4").tofile(out_file)
tokenizer = AutoTokenizer.from_pretrained(folder)
tokens = [tokenizer.encode(t) for t in texts]
print(json.dumps({"shape": list(logits.shape), "dtype": dtype, "tokens": tokens,
                  "tied": model.config.tie_word_embeddings}))
