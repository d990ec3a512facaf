"""PEFT IA3 references on a tiny model.

  ia3_ref.py make MODEL_DIR OUT_DIR CASES_JSON
      For each case: an IA3 adapter saved by PEFT whose vectors are random around 1 (1 + 0.3·N(0, 1), seed 7; a
      modules_to_save copy gets + 0.02·N(0, 1)), the loss and every trainable gradient for a fixed batch
      (grads.safetensors, PEFT's in-memory names), the adapted logits (logits.f32) and reference.json.
      Prints JSON {case: dir}.
  ia3_ref.py load MODEL_DIR ADAPTER_DIR IDS_JSON
      Loads an adapter (e.g. one PEFT Studio saved) with PeftModel.from_pretrained and writes its logits for IDS_JSON
      to ADAPTER_DIR/peft_logits.f32. Prints JSON {logits, feedforward: [modules whose input PEFT scales]}.
  ia3_ref.py generate MODEL_DIR ADAPTER_DIR N PROMPT_JSON
      Greedy continuation (KV cache on) of the adapted model, with the top-2 logit margin at each step.
      Prints JSON {tokens, margins}.
"""
import json
import os
import sys
import warnings

import torch
from peft import IA3Config, PeftModel, get_peft_model
from peft.tuners.ia3 import IA3Layer
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

warnings.filterwarnings("ignore")
IDS = torch.tensor([[791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13],
                    [7530, 2442, 38302, 12099, 25, 6621, 5726, 11, 423, 0]])
LABELS = IDS.clone()
LABELS[1, :3] = -100  # a prompt part that carries no loss


def base(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


def make(model_dir, out_dir, cases):
    result = {}
    for name, cfg in cases.items():
        target = os.path.join(out_dir, name)
        peft_model = get_peft_model(base(model_dir), IA3Config(task_type="CAUSAL_LM", **cfg))
        torch.manual_seed(7)
        with torch.no_grad():
            for n, p in peft_model.named_parameters():
                if ".ia3_l." in n:
                    p.copy_(1 + 0.3 * torch.randn_like(p))
                elif ".modules_to_save." in n:
                    p.add_(0.02 * torch.randn_like(p))
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


def load(model_dir, adapter_dir, ids):
    peft_model = PeftModel.from_pretrained(base(model_dir), adapter_dir)
    with torch.no_grad():
        logits = peft_model(input_ids=torch.tensor(ids)).logits.float()
    out = os.path.join(adapter_dir, "peft_logits.f32")
    logits.numpy().astype("<f4").tofile(out)
    feedforward = sorted(n.removeprefix("base_model.model.") for n, m in peft_model.named_modules()
                         if isinstance(m, IA3Layer) and m.is_feedforward)
    print(json.dumps({"logits": out, "feedforward": feedforward}))


def generate(model_dir, adapter_dir, n, prompt):
    peft_model = PeftModel.from_pretrained(base(model_dir), adapter_dir).eval()
    with torch.no_grad():
        out = peft_model.generate(input_ids=torch.tensor([prompt]), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                  output_scores=True, return_dict_in_generate=True, pad_token_id=0, eos_token_id=None)
    tokens = out.sequences[0, len(prompt):].tolist()
    margins = [float(s[0].topk(2).values[0] - s[0].topk(2).values[1]) for s in out.scores]
    print(json.dumps({"tokens": tokens, "margins": margins}))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
    elif sys.argv[1] == "load":
        load(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
    elif sys.argv[1] == "generate":
        generate(sys.argv[2], sys.argv[3], int(sys.argv[4]), json.loads(sys.argv[5]))
    else:
        raise SystemExit(f"unknown command {sys.argv[1]!r}")
