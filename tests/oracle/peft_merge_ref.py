"""PEFT merge references on a tiny model: for each case an adapter with non-zero A and B (init_lora_weights=False)
saved by PEFT, the adapted model's logits, then merge_and_unload()'s weights for every tensor the merge changed.
Usage: peft_merge_ref.py MODEL_DIR OUT_DIR CASES_JSON → OUT_DIR/<case>/{adapter files, merged.safetensors,
logits.f32, reference.json}; prints JSON {case: dir}."""
import json
import os
import sys

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

model_dir, out_dir, cases = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
IDS = torch.tensor([[791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13],
                    [7530, 2442, 38302, 12099, 25, 6621, 5726, 11, 423, 0]])
result = {}
for name, cfg in cases.items():
    target = os.path.join(out_dir, name)
    torch.manual_seed(11)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    base = {k: v.detach().clone() for k, v in model.state_dict().items()}
    peft_model = get_peft_model(model, LoraConfig(init_lora_weights=False, **cfg))
    with torch.no_grad():
        # Trained-looking DoRA magnitudes, biases and modules_to_save copies: move them away from their initial values.
        for n, p in peft_model.named_parameters():
            if not p.requires_grad or ".lora_A." in n or ".lora_B." in n:
                continue
            if "lora_magnitude_vector" in n:
                p.mul_(1 + 0.1 * torch.randn_like(p))
            else:
                p.add_(0.05 * torch.randn_like(p))
    # Without the (unchanged) base weight of an adapted LM head, which PEFT would otherwise save beside it.
    peft_model.save_pretrained(target, save_embedding_layers=False)
    with torch.no_grad():
        logits = peft_model(input_ids=IDS).logits
    logits.float().numpy().astype("<f4").tofile(os.path.join(target, "logits.f32"))
    merged = peft_model.merge_and_unload()
    state = merged.state_dict()
    changed = {k: v.detach().clone().contiguous() for k, v in state.items() if k in base and not torch.equal(v, base[k])}
    save_file(changed, os.path.join(target, "merged.safetensors"))
    with torch.no_grad():
        merged_logits = merged(input_ids=IDS).logits
    with open(os.path.join(target, "reference.json"), "w") as f:
        json.dump({"input_ids": IDS.tolist(), "logits_shape": list(logits.shape), "changed": sorted(changed),
                   "merged_vs_adapted": (merged_logits - logits).abs().max().item()}, f)
    result[name] = target
print(json.dumps(result))
