"""PEFT references for LoRA's variants (DoRA, PiSSA, OLoRA, trainable biases, modules_to_save) on a tiny model.

  peft_lora_variants_ref.py ref MODEL_DIR OUT_DIR CASES_JSON
      CASES_JSON: {case: {"config": LoraConfig kwargs, "spike": [module suffixes]?}}. For each case: the PEFT
      model's initial trainable tensors and adapted base weights (init.safetensors: in-memory names, plus
      "residual.<module>"), then 3 Adam steps (so every trainable tensor is away from its init): the trained
      tensors (state.safetensors), the adapter saved by PEFT, the loss and every gradient at that state
      (grads.safetensors), its logits (logits.f32), and the logits of that adapter reloaded by
      PeftModel.from_pretrained on a fresh base (reload_logits.f32; bias='lora_only' biases are not saved).
      "spike" first adds four well-separated singular directions to those weights (saved as OUT/<case>/model),
      so that a randomized SVD (pissa_niter) converges to the exact top-r one whatever its random sketch.
      Prints JSON {case: {"dir": ..., "model": ...}}.
  peft_lora_variants_ref.py load MODEL_DIR ADAPTER_DIR OUT_FILE
      Loads an adapter with PeftModel.from_pretrained and writes its logits (float32) for the same batch.
"""
import json
import os
import sys

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

IDS = torch.tensor([[791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13],
                    [7530, 2442, 38302, 12099, 25, 6621, 5726, 11, 423, 0]])
LABELS = IDS.clone()
LABELS[1, :3] = -100  # a prompt part that carries no loss


def spiked_model(model_dir, suffixes, target):
    """Adds c·‖W‖₂·u_i·v_iᵀ (c = 8, 7, 6, 5; u, v orthonormal) to each weight whose module ends with a suffix."""
    torch.manual_seed(11)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and any(name.endswith(s) for s in suffixes):
                w = module.weight
                u = torch.linalg.qr(torch.randn(w.shape[0], 4)).Q
                v = torch.linalg.qr(torch.randn(w.shape[1], 4)).Q
                gains = torch.tensor([8.0, 7.0, 6.0, 5.0]) * torch.linalg.matrix_norm(w, ord=2)
                w += u @ torch.diag(gains) @ v.T
    model.save_pretrained(target)
    return target


def reference(model_dir, out_dir, cases):
    result = {}
    for name, case in cases.items():
        target = os.path.join(out_dir, name)
        base_dir = spiked_model(model_dir, case["spike"], os.path.join(target, "model")) if case.get("spike") else model_dir
        torch.manual_seed(7)
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        peft_model = get_peft_model(model, LoraConfig(**{"init_lora_weights": False, **case["config"]}))
        trainable = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}
        init = {n: p.detach().clone().contiguous() for n, p in trainable.items()}
        for module_name, module in peft_model.named_modules():
            if hasattr(module, "lora_A") and hasattr(module, "base_layer"):
                init["residual." + module_name.removeprefix("base_model.model.")] = module.base_layer.weight.detach().clone()
        os.makedirs(target, exist_ok=True)
        save_file(init, os.path.join(target, "init.safetensors"))

        optimizer = torch.optim.Adam(trainable.values(), lr=1e-2)
        for _ in range(3):
            optimizer.zero_grad()
            peft_model(input_ids=IDS, labels=LABELS).loss.backward()
            optimizer.step()
        optimizer.zero_grad()
        save_file({n: p.detach().contiguous() for n, p in trainable.items()}, os.path.join(target, "state.safetensors"))
        peft_model.save_pretrained(target)

        out = peft_model(input_ids=IDS, labels=LABELS)
        out.loss.backward()
        grads = {n: p.grad.detach().contiguous() for n, p in trainable.items()}
        save_file(grads, os.path.join(target, "grads.safetensors"))
        out.logits.detach().float().numpy().astype("<f4").tofile(os.path.join(target, "logits.f32"))
        with open(os.path.join(target, "reference.json"), "w") as f:
            json.dump({"input_ids": IDS.tolist(), "labels": LABELS.tolist(), "loss": out.loss.item()}, f)
        load(base_dir, target, os.path.join(target, "reload_logits.f32"))
        result[name] = {"dir": target, "model": base_dir}
    return result


def load(model_dir, adapter_dir, out_file):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(model, adapter_dir)
    with torch.no_grad():
        logits = peft_model(input_ids=IDS).logits
    logits.float().numpy().astype("<f4").tofile(out_file)
    return {"logits": out_file, "shape": list(logits.shape)}


if __name__ == "__main__":
    if sys.argv[1] == "ref":
        print(json.dumps(reference(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))))
    elif sys.argv[1] == "load":
        print(json.dumps(load(sys.argv[2], sys.argv[3], sys.argv[4])))
    else:
        sys.exit(f"unknown command {sys.argv[1]!r}: use 'ref' or 'load'")
