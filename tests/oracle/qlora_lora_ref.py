"""PEFT LoRA over a 4-bit base, as a plain float model: every linear layer of the decoder (not the LM head, not the
embeddings or norms) is replaced by its quantize → dequantize round trip through the reference quantizers of
qlora_quant_ref.py, then PEFT LoRA (init_lora_weights=False) gives the loss and every LoRA gradient.
Usage: qlora_lora_ref.py MODEL_DIR OUT_DIR CASES_JSON, CASES_JSON = {case: {quant: {scheme, double_quant,
symmetric}, lora: LoraConfig kwargs}} → OUT_DIR/<case>/{adapter files, grads.safetensors, reference.json}."""
import json
import os
import sys

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qlora_quant_ref import double_quant, dynamic_map, int4, nf4, nf4_dequant  # noqa: E402

IDS = torch.tensor([[791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13],
                    [7530, 2442, 38302, 12099, 25, 6621, 5726, 11, 423, 0]])
LABELS = IDS.clone()
LABELS[1, :3] = -100
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def round_trip(w, q):
    n, k = w.shape
    flat = w.detach().reshape(-1).float().contiguous()
    if q["scheme"] == "int4":
        return int4(flat, n, k, 32, q.get("symmetric", False))[3].reshape(n, k)
    packed, absmax = nf4(flat, 64)
    if q.get("double_quant"):
        absmax = double_quant(absmax, dynamic_map())[3]
    return nf4_dequant(packed, absmax, n * k, 64).reshape(n, k)


def main():
    model_dir, out_dir, cases = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    result = {}
    for name, case in cases.items():
        target = os.path.join(out_dir, name)
        torch.manual_seed(7)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        with torch.no_grad():
            for mod_name, mod in model.named_modules():
                if isinstance(mod, torch.nn.Linear) and mod_name.split(".")[-1] in LINEARS:
                    mod.weight.copy_(round_trip(mod.weight, case["quant"]))
        peft_model = get_peft_model(model, LoraConfig(init_lora_weights=False, **case["lora"]))
        peft_model.save_pretrained(target)
        out = peft_model(input_ids=IDS, labels=LABELS)
        out.loss.backward()
        grads = {n: p.grad.detach().contiguous() for n, p in peft_model.named_parameters() if p.requires_grad}
        save_file(grads, os.path.join(target, "grads.safetensors"))
        with open(os.path.join(target, "reference.json"), "w") as f:
            json.dump({"input_ids": IDS.tolist(), "labels": LABELS.tolist(), "loss": out.loss.item()}, f)
        result[name] = target
    print(json.dumps(result))


if __name__ == "__main__":
    main()
