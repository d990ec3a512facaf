"""PEFT LoRA references on a tiny model: for each case, an adapter with non-zero A and B (init_lora_weights=False)
saved by PEFT, the loss and every LoRA gradient for a fixed batch, and the adapted model's logits.
Usage: peft_lora_ref.py MODEL_DIR OUT_DIR CASES_JSON → OUT_DIR/<case>/{adapter files, grads.safetensors,
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
LABELS = IDS.clone()
LABELS[1, :3] = -100  # a prompt part that carries no loss
result = {}
for name, cfg in cases.items():
    target = os.path.join(out_dir, name)
    torch.manual_seed(7)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(init_lora_weights=False, **cfg))
    peft_model.save_pretrained(target)
    out = peft_model(input_ids=IDS, labels=LABELS)
    out.loss.backward()
    grads = {n: p.grad.detach().contiguous() for n, p in peft_model.named_parameters() if p.requires_grad}
    save_file(grads, os.path.join(target, "grads.safetensors"))
    out.logits.detach().float().numpy().astype("<f4").tofile(os.path.join(target, "logits.f32"))
    with open(os.path.join(target, "reference.json"), "w") as f:
        json.dump({"input_ids": IDS.tolist(), "labels": LABELS.tolist(), "loss": out.loss.item(),
                   "logits_shape": list(out.logits.shape)}, f)
    result[name] = target
print(json.dumps(result))
