"""PEFT's mixed-adapter batches (adapter_names=...) on a tiny model: two LoRA adapters with non-zero A and B
(init_lora_weights=False) that differ in r, lora_alpha, target_modules, rank/alpha patterns and rsLoRA, saved by
PEFT; the logits of one batch whose rows use a1, the base model and a2; and a greedy left-padded generate() of rows
with different prompt lengths, each with its own adapter, with the top-2 margin of every step.
Usage: peft_mixed_batch_ref.py MODEL_DIR OUT_DIR → OUT_DIR/{a1,a2}/adapter files, OUT_DIR/logits.f32,
OUT_DIR/reference.json; prints the reference JSON."""
import json
import os
import sys

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

model_dir, out_dir = sys.argv[1], sys.argv[2]
CONFIGS = {
    "a1": {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj", "down_proj"]},
    "a2": {"r": 2, "lora_alpha": 6, "target_modules": ["v_proj", "o_proj", "gate_proj"], "use_rslora": True,
           "rank_pattern": {"gate_proj": 3}, "alpha_pattern": {"o_proj": 2}},
}
IDS = torch.tensor([[791, 4062, 14198, 39935, 35308, 927, 279, 16053],
                    [7530, 2442, 38302, 12099, 25, 6621, 5726, 11],
                    [423, 17, 9906, 1917, 0, 13, 40, 1093],
                    [3923, 374, 279, 6864, 315, 9822, 30, 578]])
ADAPTER_NAMES = ["a1", "__base__", "a2", "a1"]
GEN_PROMPTS = [[791, 4062, 14198, 39935, 35308, 927, 279], [7530, 2442, 38302], [423, 17, 9906, 1917, 0, 13, 40, 1093, 3923, 374]]
GEN_ADAPTERS = ["__base__", "a1", "a2"]
GEN_TOKENS = 10
PAD = 0

torch.manual_seed(7)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
peft_model = get_peft_model(model, LoraConfig(init_lora_weights=False, **CONFIGS["a1"]), adapter_name="a1")
torch.manual_seed(8)
peft_model.add_adapter("a2", LoraConfig(init_lora_weights=False, **CONFIGS["a2"]))
peft_model.eval()
for name in CONFIGS:
    # save_pretrained puts an adapter not named 'default' in a sub-folder of its name.
    peft_model.save_pretrained(out_dir, selected_adapters=[name])
    assert os.path.exists(os.path.join(out_dir, name, "adapter_model.safetensors")), name

with torch.no_grad():
    logits = peft_model(input_ids=IDS, adapter_names=ADAPTER_NAMES).logits
logits.float().numpy().astype("<f4").tofile(os.path.join(out_dir, "logits.f32"))

L = max(len(p) for p in GEN_PROMPTS)
ids = torch.tensor([[PAD] * (L - len(p)) + p for p in GEN_PROMPTS])
attention = torch.tensor([[0] * (L - len(p)) + [1] * len(p) for p in GEN_PROMPTS])
with torch.no_grad():
    out = peft_model.generate(input_ids=ids, attention_mask=attention, adapter_names=GEN_ADAPTERS, max_new_tokens=GEN_TOKENS,
                              min_new_tokens=GEN_TOKENS, do_sample=False, output_scores=True, return_dict_in_generate=True,
                              pad_token_id=PAD, eos_token_id=None)
tokens = out.sequences[:, L:].tolist()
margins = [[float(s[b].topk(2).values[0] - s[b].topk(2).values[1]) for s in out.scores] for b in range(len(GEN_PROMPTS))]

reference = {"configs": CONFIGS, "input_ids": IDS.tolist(), "adapter_names": ADAPTER_NAMES, "logits_shape": list(logits.shape),
             "generate": {"prompts": GEN_PROMPTS, "adapters": GEN_ADAPTERS, "tokens": tokens, "margins": margins}}
with open(os.path.join(out_dir, "reference.json"), "w") as f:
    json.dump(reference, f)
print(json.dumps(reference))
