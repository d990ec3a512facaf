"""PEFT VeRA references on a tiny model.

  peft_vera_ref.py make MODEL_DIR OUT_DIR CASES_JSON
      For each case: a VeRA adapter saved by PEFT with non-zero lambdas (random, seed 7), the projections PEFT made
      from projection_prng_key (projections.safetensors, written even when save_projection is False), the loss
      and every lambda gradient for a fixed batch (grads.safetensors), the adapted logits (logits.f32) and
      reference.json. Prints JSON {case: dir}.
  peft_vera_ref.py load MODEL_DIR ADAPTER_DIR IDS_JSON
      Loads an adapter (e.g. one PEFT Studio saved) with PeftModel.from_pretrained and writes its logits for
      IDS_JSON to ADAPTER_DIR/peft_logits.f32, and the projections PEFT uses to ADAPTER_DIR/peft_projections.safetensors.
      Prints JSON {logits, projections_from_file}.
"""
import json
import os
import sys
import warnings

import torch
from peft import PeftModel, VeraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

warnings.filterwarnings("ignore")
IDS = torch.tensor([[791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13],
                    [7530, 2442, 38302, 12099, 25, 6621, 5726, 11, 423, 0]])
LABELS = IDS.clone()
LABELS[1, :3] = -100  # a prompt part that carries no loss


def projections(peft_model):
    base = peft_model.base_model
    return {"vera_A": base.vera_A["default"].detach().contiguous(), "vera_B": base.vera_B["default"].detach().contiguous()}


def make(model_dir, out_dir, cases):
    result = {}
    for name, cfg in cases.items():
        target = os.path.join(out_dir, name)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        peft_model = get_peft_model(model, VeraConfig(**cfg))
        torch.manual_seed(7)
        with torch.no_grad():
            for n, p in peft_model.named_parameters():
                if "vera_lambda_" in n:
                    p.copy_(0.5 * torch.randn_like(p))
        peft_model.save_pretrained(target)
        save_file(projections(peft_model), os.path.join(target, "projections.safetensors"))
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


def load(model_dir, adapter_dir, ids):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(model, adapter_dir)
    ids = torch.tensor(ids)
    with torch.no_grad():
        logits = peft_model(input_ids=ids).logits.float()
    out = os.path.join(adapter_dir, "peft_logits.f32")
    logits.numpy().astype("<f4").tofile(out)
    used = projections(peft_model)
    save_file(used, os.path.join(adapter_dir, "peft_projections.safetensors"))
    # PEFT 0.17 regenerates vera_A/vera_B from projection_prng_key when it loads: the saved copies are checked for
    # presence only. Report whether the projections in use equal the file's.
    saved = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    same = "base_model.vera_A" in saved and all(torch.equal(saved[f"base_model.{k}"], v) for k, v in used.items())
    print(json.dumps({"logits": out, "projections_equal_file": same}))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
    elif sys.argv[1] == "load":
        load(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
    else:
        raise SystemExit(f"unknown command {sys.argv[1]!r}")
