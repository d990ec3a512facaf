"""Delta-LoRA reference (Zi et al. 2023, arXiv 2309.02411, Algorithm 1) on a tiny HF model: PEFT LoRA modules
(no dropout) trained by a hand-written loop that, after each optimizer step t > K, adds the change of the
low-rank product to the frozen weight: W += λ·s·(B_{t+1}A_{t+1} − B_t A_t) (PEFT's (out, in) layout).

  delta_lora_ref.py train MODEL_DIR OUT_DIR CASE_JSON
      CASE: {lora: {r, lora_alpha, target_modules}, optimizer: {kind: sgd|adamw, lr, weight_decay, betas, eps},
             steps, lambda, start_step, seed, n_batches (1 or 2, default 2: they alternate)}
      Writes OUT_DIR/init (the PEFT adapter the loop starts from), OUT_DIR/final.safetensors (`<module>.delta_weight`
      = W_T − W_0 of every adapted module, and A_T, B_T under PEFT's in-memory names), OUT_DIR/final_logits.f32 (the
      trained model — W_T plus the LoRA branch — on the eval batch). Prints JSON {batches, eval_ids, losses, ...}.
  delta_lora_ref.py logits MODEL_DIR ADAPTER_DIR OUT_FILE IDS_JSON
      PEFT loads ADAPTER_DIR as a plain LoRA adapter on the base model; writes its logits for IDS to OUT_FILE.
"""
import json
import os
import sys
import warnings

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

warnings.filterwarnings("ignore")
IDS = torch.tensor([[791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13],
                    [7530, 2442, 38302, 12099, 25, 6621, 5726, 11, 423, 0]])
LABELS = IDS.clone()
LABELS[1, :3] = -100
# A second batch so the steps do not all see the same tokens.
IDS2 = torch.tensor([[128000, 9906, 1917, 374, 264, 2697, 1296, 315, 279, 4332],
                     [40, 1093, 311, 1373, 323, 3137, 11, 1243, 4321, 13]])
LABELS2 = IDS2.clone()
LABELS2[0, :2] = -100
BATCHES = [(IDS, LABELS), (IDS2, LABELS2)]


def base(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


def lora_modules(model):
    return {n.removeprefix("base_model.model."): m for n, m in model.named_modules() if isinstance(m, LoraLayer)}


def train(model_dir, out_dir, case):
    torch.manual_seed(case.get("seed", 0))
    model = get_peft_model(base(model_dir), LoraConfig(lora_dropout=0.0, **case["lora"]))
    model.save_pretrained(os.path.join(out_dir, "init"))
    mods = lora_modules(model)
    w0 = {n: m.base_layer.weight.detach().clone() for n, m in mods.items()}
    params = [p for p in model.parameters() if p.requires_grad]
    o = case["optimizer"]
    if o["kind"] == "adamw":
        opt = torch.optim.AdamW(params, lr=o["lr"], betas=tuple(o.get("betas", (0.9, 0.999))), eps=o.get("eps", 1e-8),
                                weight_decay=o.get("weight_decay", 0.01))
    else:
        opt = torch.optim.SGD(params, lr=o["lr"], weight_decay=o.get("weight_decay", 0.0))
    lam, start = case["lambda"], case["start_step"]
    ab = lambda m: m.lora_B["default"].weight @ m.lora_A["default"].weight  # noqa: E731
    batches = BATCHES[:case.get("n_batches", len(BATCHES))]
    losses = []
    for t in range(case["steps"]):
        ids, labels = batches[t % len(batches)]
        out = model(input_ids=ids, labels=labels)
        losses.append(out.loss.item())
        opt.zero_grad()
        out.loss.backward()
        with torch.no_grad():
            before = {n: ab(m) for n, m in mods.items()}
        opt.step()
        if t > start:
            with torch.no_grad():
                for n, m in mods.items():
                    m.base_layer.weight += lam * m.scaling["default"] * (ab(m) - before[n])
    final = {f"{n}.delta_weight": (m.base_layer.weight.detach() - w0[n]).contiguous() for n, m in mods.items()}
    final.update({n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad})
    save_file(final, os.path.join(out_dir, "final.safetensors"))
    with torch.no_grad():
        model.eval()
        model(input_ids=IDS).logits.float().numpy().astype("<f4").tofile(os.path.join(out_dir, "final_logits.f32"))
    print(json.dumps({"batches": [{"input_ids": i.tolist(), "labels": l.tolist()} for i, l in batches],
                      "eval_ids": IDS.tolist(), "losses": losses, "modules": sorted(mods)}))


def logits(model_dir, adapter_dir, out_file, ids):
    model = PeftModel.from_pretrained(base(model_dir), adapter_dir)
    model.eval()
    with torch.no_grad():
        model(input_ids=torch.tensor(ids)).logits.float().numpy().astype("<f4").tofile(out_file)
    print(json.dumps({"file": out_file, "r": model.peft_config["default"].r}))


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
    elif sys.argv[1] == "logits":
        logits(sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5]))
    else:
        raise SystemExit(f"unknown command {sys.argv[1]!r}")
