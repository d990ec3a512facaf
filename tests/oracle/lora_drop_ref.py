"""LoRA-drop reference (Zhou et al. 2024, arXiv 2402.07721) on a tiny HF model, hand-written around PEFT LoRA:

  1. warm-up: PEFT LoRA (default init, no dropout) on every targeted module, plain SGD on the sample batches;
  2. importance of each module's LoRA: the mean over tokens of ‖ΔW·x‖² = ‖s·B·A·x‖² on the sample batches;
  3. selection: within each ranking group (one module type across layers, or all modules), normalize the
     importances, sort them in decreasing order and keep modules until their cumulative share reaches the
     threshold; the rest share one LoRA per module type (`model.layers.shared.self_attn.q_proj`);
  4. the shared model: kept modules keep their warm LoRA, the dropped ones of a type all hold the SAME
     nn.Parameter pair (random, seeded); one backward gives its gradient, checked here to be the sum of the
     per-module gradients of an untied copy.

  lora_drop_ref.py MODEL_DIR OUT_DIR CASE_JSON
      CASE: {lora: {r, lora_alpha, target_modules}, warmup: {steps, lr}, threshold, scope: module_type|all, seed}
      Writes OUT_DIR/init and OUT_DIR/warm (PEFT adapters), OUT_DIR/shared_init.safetensors (the shared pairs under
      `base_model.model.<group>.lora_{A,B}.default.weight`), OUT_DIR/shared_grads.safetensors (every trainable
      tensor's gradient in the shared model, the same names). Prints JSON {batches, warm_losses, importance,
      tokens, kept, shared, shared_loss, tied_vs_summed}.
"""
import json
import os
import re
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
IDS2 = torch.tensor([[128000, 9906, 1917, 374, 264, 2697, 1296, 315, 279, 4332],
                     [40, 1093, 311, 1373, 323, 3137, 11, 1243, 4321, 13]])
LABELS2 = IDS2.clone()
LABELS2[0, :2] = -100
BATCHES = [(IDS, LABELS), (IDS2, LABELS2)]


def base(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


def lora_modules(model):
    return {n.removeprefix("base_model.model."): m for n, m in model.named_modules() if isinstance(m, LoraLayer)}


def group_of(module):
    return re.sub(r"\.(\d+)\.", ".shared.", module, count=1)


def key(module, part):
    return f"base_model.model.{module}.{part}.default.weight"


def importance(model, mods):
    sums = {n: torch.zeros((), dtype=torch.float64) for n in mods}
    hooks = []
    for n, m in mods.items():
        def hook(mod, args, _out, n=n):
            delta = mod.lora_B["default"](mod.lora_A["default"](args[0])) * mod.scaling["default"]
            sums[n] += delta.double().pow(2).sum()
        hooks.append(m.register_forward_hook(hook))
    tokens = 0
    with torch.no_grad():
        for ids, _ in BATCHES:
            model(input_ids=ids)
            tokens += ids.numel()
    for h in hooks:
        h.remove()
    return {n: (s / tokens).item() for n, s in sums.items()}, tokens


def select(imp, threshold, scope):
    groups = {}
    for n in imp:  # module order
        groups.setdefault(group_of(n) if scope == "module_type" else "all", []).append(n)
    kept = []
    for members in groups.values():
        total = sum(imp[n] for n in members)
        cum = 0.0
        for n in sorted(members, key=lambda n: -imp[n]):  # stable: ties keep module order
            kept.append(n)
            cum += imp[n] / total
            if cum >= threshold:
                break
    return [n for n in imp if n in kept], [n for n in imp if n not in kept]


def shared_model(model_dir, warm_dir, shared, seed, tie):
    model = PeftModel.from_pretrained(base(model_dir), warm_dir, is_trainable=True)
    mods = lora_modules(model)
    gen = torch.Generator().manual_seed(seed)
    pairs = {}
    for n in shared:
        g = group_of(n)
        if g not in pairs:
            m = mods[n]
            a = torch.randn(m.lora_A["default"].weight.shape, generator=gen) * 0.2
            b = torch.randn(m.lora_B["default"].weight.shape, generator=gen) * 0.2
            pairs[g] = (torch.nn.Parameter(a), torch.nn.Parameter(b))
        a, b = pairs[g]
        if not tie:
            a, b = torch.nn.Parameter(a.detach().clone()), torch.nn.Parameter(b.detach().clone())
        mods[n].lora_A["default"].weight = a
        mods[n].lora_B["default"].weight = b
    ids, labels = BATCHES[0]
    loss = model(input_ids=ids, labels=labels).loss
    loss.backward()
    return model, mods, pairs, loss.item()


def main(model_dir, out_dir, case):
    torch.manual_seed(case.get("seed", 0))
    model = get_peft_model(base(model_dir), LoraConfig(lora_dropout=0.0, **case["lora"]))
    model.save_pretrained(os.path.join(out_dir, "init"))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=case["warmup"]["lr"])
    warm_losses = []
    for t in range(case["warmup"]["steps"]):
        ids, labels = BATCHES[t % len(BATCHES)]
        loss = model(input_ids=ids, labels=labels).loss
        warm_losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    warm_dir = os.path.join(out_dir, "warm")
    model.save_pretrained(warm_dir)
    mods = lora_modules(model)
    imp, tokens = importance(model, mods)
    kept, shared = select(imp, case["threshold"], case["scope"])

    seed = case.get("seed", 0) + 1
    tied, tmods, pairs, loss = shared_model(model_dir, warm_dir, shared, seed, tie=True)
    grads = {key(n, p): getattr(tmods[n], p)["default"].weight.grad.contiguous() for n in kept for p in ("lora_A", "lora_B")}
    for g, (a, b) in pairs.items():
        grads[key(g, "lora_A")] = a.grad.contiguous()
        grads[key(g, "lora_B")] = b.grad.contiguous()
    _, umods, _, _ = shared_model(model_dir, warm_dir, shared, seed, tie=False)
    worst = 0.0
    for g in pairs:
        for p in ("lora_A", "lora_B"):
            summed = sum(getattr(umods[n], p)["default"].weight.grad for n in shared if group_of(n) == g)
            worst = max(worst, (summed - grads[key(g, p)]).abs().max().item())
    save_file({key(g, "lora_A"): a.detach().contiguous() for g, (a, _) in pairs.items()}
              | {key(g, "lora_B"): b.detach().contiguous() for g, (_, b) in pairs.items()},
              os.path.join(out_dir, "shared_init.safetensors"))
    save_file(grads, os.path.join(out_dir, "shared_grads.safetensors"))
    print(json.dumps({"batches": [{"input_ids": i.tolist(), "labels": l.tolist()} for i, l in BATCHES],
                      "warm_losses": warm_losses, "importance": imp, "tokens": tokens, "kept": kept, "shared": shared,
                      "shared_loss": loss, "tied_vs_summed": worst}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
