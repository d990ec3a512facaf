"""References for the methods that train a model's own tensors (BitFit, selective and full fine-tuning).

  selective_ref.py grads OUT_DIR CASES_JSON
      CASES_JSON: {case: {"model_dir": DIR, "kind": "bitfit" | "patterns" | "full", "include": [...] | null,
      "exclude": [...] | null}}. For each case: the transformers model from DIR in float32 (bf16 checkpoints upcast
      exactly), requires_grad only on the chosen parameters, the loss for a fixed batch and the gradient of every
      trainable parameter, saved as OUT_DIR/<case>.safetensors under the parameter's name. A tied tensor is chosen when
      any of its names is (named_parameters(remove_duplicate=False)) and saved once, under its first name.
      Prints JSON {"input_ids", "labels", "cases": {case: {"grads": file, "loss": float}}}.
  selective_ref.py logits MODEL_DIR IDS_JSON OUT_FILE
      transformers' logits of the model in MODEL_DIR (e.g. a folder PEFT Studio saved) for IDS_JSON, as float32.
      Prints JSON {"logits": OUT_FILE, "shape": [...]}.

Tensor patterns, written here independently of main/peft/tensor-patterns.ts: an entry with `*` or `?` and no other
regex syntax is a glob (fnmatch, full match); any other entry is a regular expression searched in the name.
"""
import fnmatch
import json
import os
import re
import sys
import warnings

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

warnings.filterwarnings("ignore")
IDS = torch.tensor([[791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13],
                    [7530, 2442, 38302, 12099, 25, 6621, 5726, 11, 423, 0]])
LABELS = IDS.clone()
LABELS[1, :3] = -100  # a prompt part that carries no loss
REGEX_ONLY = re.compile(r"[()\[\]{}|+^$\\]")


def matches(entry, name):
    if re.search(r"[*?]", entry) and not REGEX_ONLY.search(entry):
        return fnmatch.fnmatchcase(name, entry)
    return re.search(entry, name) is not None


def chosen(case, names):
    if case["kind"] == "full":
        return True
    if case["kind"] == "bitfit":
        names = [n for n in names if n.endswith(".bias")]
        if not names:
            return False
    include = case.get("include")
    if include is not None and not any(matches(e, n) for e in include for n in names):
        return False
    return not any(matches(e, n) for e in case.get("exclude") or [] for n in names)


def grads(out_dir, cases):
    result = {}
    for name, case in cases.items():
        model = AutoModelForCausalLM.from_pretrained(case["model_dir"], dtype=torch.float32)
        names_of = {}
        for n, p in model.named_parameters(remove_duplicate=False):
            names_of.setdefault(id(p), (p, []))[1].append(n)
        for p, names in names_of.values():
            p.requires_grad_(chosen(case, names))
        out = model(input_ids=IDS, labels=LABELS)
        out.loss.backward()
        g = {names[0]: p.grad.detach().contiguous() for p, names in names_of.values() if p.requires_grad}
        if not g:
            raise SystemExit(f"{name}: the selection trains no parameter")
        file = os.path.join(out_dir, f"{name}.safetensors")
        save_file(g, file)
        result[name] = {"grads": file, "loss": out.loss.item()}
    print(json.dumps({"input_ids": IDS.tolist(), "labels": LABELS.tolist(), "cases": result}))


def logits(model_dir, ids, out_file):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids)).logits.float()
    out.numpy().astype("<f4").tofile(out_file)
    print(json.dumps({"logits": out_file, "shape": list(out.shape)}))


if __name__ == "__main__":
    if sys.argv[1] == "grads":
        grads(sys.argv[2], json.loads(sys.argv[3]))
    elif sys.argv[1] == "logits":
        logits(sys.argv[2], json.loads(sys.argv[3]), sys.argv[4])
    else:
        raise SystemExit(f"unknown command {sys.argv[1]!r}")
