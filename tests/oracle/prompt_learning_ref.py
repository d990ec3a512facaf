"""PEFT prompt-learning references (prompt tuning, P-tuning, prefix tuning) on a tiny model.

  prompt_learning_ref.py make OUT_DIR CASES_JSON
      CASES_JSON: {case: {"model_dir": DIR, "peft_type": PROMPT_TUNING | P_TUNING | PREFIX_TUNING, ...config}}. Each case:
      init.safetensors (the trainable tensors as PEFT initialised them, seed 3), then every trainable tensor set to
      random values (seed 7: embeddings 0.5·N(0, 1), matrices and biases N(0, 1)/√fan_in) and written to
      params.safetensors; the adapter PEFT saves from them (save_pretrained: prompt_embeddings = the encoder's output);
      the loss and every trainable gradient for a fixed batch (grads.safetensors, PEFT's in-memory names); the logits
      of the real tokens (logits.f32, (B, T, vocab): prompt tuning's virtual positions dropped) and reference.json.
      Prints JSON {case: dir}.
  prompt_learning_ref.py load SPECS_JSON
      SPECS_JSON: [{model_dir, adapter_dir, ids}]. Loads each adapter (e.g. one PEFT Studio saved) with
      PeftModel.from_pretrained and writes the logits of the real tokens of ids to ADAPTER_DIR/peft_logits.f32.
      Prints the JSON list of those files.
  prompt_learning_ref.py generate SPECS_JSON
      SPECS_JSON: [{model_dir, adapter_dir, n, prompt}]. Greedy continuation (PEFT's generate, KV cache on) with the
      top-2 logit margin at each step. Prints a JSON list of {tokens, margins}.
"""
import json
import math
import os
import sys
import warnings

import torch
from peft import PeftModel, PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

warnings.filterwarnings("ignore")
IDS = torch.tensor([[791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13],
                    [7530, 2442, 38302, 12099, 25, 6621, 5726, 11, 423, 0]])
LABELS = IDS.clone()
# A prompt part that carries no loss. The first label of every row is -100 too: with virtual tokens in front, PEFT
# would train the last virtual token to predict the first real token, a target PEFT Studio's packed batches never
# form (no position precedes an example's first token), so the references leave it out.
LABELS[1, :3] = -100
LABELS[0, 0] = -100
CONFIGS = {"PROMPT_TUNING": PromptTuningConfig, "P_TUNING": PromptEncoderConfig, "PREFIX_TUNING": PrefixTuningConfig}


def base(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


def trainables(peft_model):
    return {n: p for n, p in peft_model.named_parameters() if p.requires_grad}


def real_logits(logits, seq):
    # Prompt tuning and P-tuning return logits for the virtual positions too; prefix tuning does not.
    return logits[:, -seq:].detach().float().contiguous()


def make(out_dir, cases):
    result = {}
    for name, raw in cases.items():
        cfg = dict(raw)
        peft_type = cfg.pop("peft_type")
        model_dir = cfg.pop("model_dir")
        target = os.path.join(out_dir, name)
        torch.manual_seed(3)
        peft_model = get_peft_model(base(model_dir), CONFIGS[peft_type](task_type="CAUSAL_LM", **cfg))
        os.makedirs(target, exist_ok=True)
        save_file({n: p.detach().contiguous() for n, p in trainables(peft_model).items()}, os.path.join(target, "init.safetensors"))
        torch.manual_seed(7)
        with torch.no_grad():
            for n, p in trainables(peft_model).items():
                scale = 0.5 if n.endswith("embedding.weight") else 1 / math.sqrt(p.shape[-1] if p.dim() > 1 else p.shape[0])
                p.copy_(scale * torch.randn_like(p))
        save_file({n: p.detach().contiguous() for n, p in trainables(peft_model).items()}, os.path.join(target, "params.safetensors"))
        peft_model.save_pretrained(target)
        out = peft_model(input_ids=IDS, labels=LABELS)
        out.loss.backward()
        grads = {n: p.grad.detach().contiguous() for n, p in trainables(peft_model).items()}
        save_file(grads, os.path.join(target, "grads.safetensors"))
        real_logits(out.logits, IDS.shape[1]).numpy().astype("<f4").tofile(os.path.join(target, "logits.f32"))
        with open(os.path.join(target, "reference.json"), "w") as f:
            json.dump({"input_ids": IDS.tolist(), "labels": LABELS.tolist(), "loss": out.loss.item()}, f)
        result[name] = target
    print(json.dumps(result))


def load(specs):
    result = []
    for spec in specs:
        peft_model = PeftModel.from_pretrained(base(spec["model_dir"]), spec["adapter_dir"]).eval()
        ids = torch.tensor(spec["ids"])
        with torch.no_grad():
            logits = real_logits(peft_model(input_ids=ids).logits, ids.shape[1])
        out = os.path.join(spec["adapter_dir"], "peft_logits.f32")
        logits.numpy().astype("<f4").tofile(out)
        result.append(out)
    print(json.dumps(result))


def generate(specs):
    result = []
    for spec in specs:
        peft_model = PeftModel.from_pretrained(base(spec["model_dir"]), spec["adapter_dir"]).eval()
        ids = torch.tensor([spec["prompt"]])
        n = spec["n"]
        with torch.no_grad():
            out = peft_model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                      do_sample=False, output_scores=True, return_dict_in_generate=True, pad_token_id=0,
                                      eos_token_id=None)
        tokens = out.sequences[0, -n:].tolist()
        margins = [float(s[0].topk(2).values[0] - s[0].topk(2).values[1]) for s in out.scores]
        result.append({"tokens": tokens, "margins": margins})
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], json.loads(sys.argv[3]))
    elif sys.argv[1] == "load":
        load(json.loads(sys.argv[2]))
    elif sys.argv[1] == "generate":
        generate(json.loads(sys.argv[2]))
    else:
        raise SystemExit(f"unknown command {sys.argv[1]!r}")
