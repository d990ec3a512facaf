"""PEFT's LoRA-FA and LoRA+ optimizers on a tiny model (peft/optimizers/{lorafa,loraplus}.py).

  peft_lorafa_plus_ref.py step MODEL_DIR OUT_DIR LORA_CONFIG_JSON OPTIONS_JSON
      Saves a LoRA adapter with non-zero A and B (init_lora_weights=False, seed 7) to OUT_DIR/adapter, then, each
      from a fresh copy of that adapter and the fixed batch:
      - LoRA-FA: create_lorafa_optimizer(model, r, lora_alpha, lr, weight_decay, use_rslora), one backward, one
        step → lorafa_grads (B's raw gradients), lorafa_after (every B after the step), lorafa_state (exp_avg_B,
        exp_avg_sq_B keyed `exp_avg/<B name>`), lorafa_proj64 (the projection g_B·(AAᵀ + 1e-8·I)⁻¹ / s² in float64).
      - LoRA+: create_loraplus_optimizer(model, torch.optim.AdamW, lr, loraplus_lr_ratio, loraplus_weight_decay,
        loraplus_lr_embedding), one backward, one step → loraplus_after (every trainable tensor after the step).
      Prints JSON {adapter, reference (batch + loss), loraplus_groups: [{names, lr, weight_decay}]}.
  peft_lorafa_plus_ref.py groups MODEL_DIR LORA_CONFIG_JSON OPTIONS_JSON
      Only create_loraplus_optimizer's grouping, for configs the engine cannot build yet (embeddings, DoRA, biases).
      Prints JSON {params: [{name, shape}], groups: [{names, lr, weight_decay}]}.
"""
import json
import os
import sys
import warnings

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.optimizers import create_lorafa_optimizer, create_loraplus_optimizer
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

warnings.filterwarnings("ignore")
IDS = torch.tensor([[791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13],
                    [7530, 2442, 38302, 12099, 25, 6621, 5726, 11, 423, 0]])
LABELS = IDS.clone()
LABELS[1, :3] = -100


def base(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


def loraplus(model, o):
    return create_loraplus_optimizer(model, torch.optim.AdamW, lr=o["lr"], loraplus_lr_ratio=o["loraplus_lr_ratio"],
                                     **{k: o[k] for k in ("loraplus_weight_decay", "loraplus_lr_embedding") if k in o})


def groups_of(model, optimizer):
    names = {id(p): n for n, p in model.named_parameters()}
    return [{"names": [names[id(p)] for p in g["params"]], "lr": g["lr"], "weight_decay": g["weight_decay"]}
            for g in optimizer.param_groups]


def trainable(model):
    return {n: p.detach().clone().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def step(model_dir, out_dir, cfg, o):
    adapter = os.path.join(out_dir, "adapter")
    torch.manual_seed(7)
    get_peft_model(base(model_dir), LoraConfig(init_lora_weights=False, **cfg)).save_pretrained(adapter)

    # LoRA-FA
    model = PeftModel.from_pretrained(base(model_dir), adapter, is_trainable=True)
    opt = create_lorafa_optimizer(model, r=cfg["r"], lora_alpha=cfg["lora_alpha"], lr=o["lr"],
                                  weight_decay=o.get("weight_decay", 0.0), use_rslora=cfg.get("use_rslora", False))
    out = model(input_ids=IDS, labels=LABELS)
    out.loss.backward()
    named = dict(model.named_parameters())
    grads = {n: p.grad.detach().clone() for n, p in named.items() if p.grad is not None}
    assert all("lora_B" in n for n in grads), "LoRA-FA trains B only"
    scaling = cfg["lora_alpha"] / (cfg["r"] ** 0.5 if cfg.get("use_rslora") else cfg["r"])
    proj = {}
    for n, g in grads.items():
        a = named[n.replace("lora_B", "lora_A")].detach().double()
        inv = torch.linalg.inv(a @ a.T + 1e-8 * torch.eye(a.shape[0], dtype=torch.float64))
        proj[n] = ((g.double() @ inv) / scaling**2).float().contiguous()
    opt.step()
    after = {n: named[n].detach().contiguous() for n in grads}
    state = {}
    for key, s in opt.state.items():
        b = f"{key}_B.default.weight"
        state[f"exp_avg/{b}"] = s["exp_avg_B"].contiguous()
        state[f"exp_avg_sq/{b}"] = s["exp_avg_sq_B"].contiguous()
    save_file(grads, os.path.join(out_dir, "lorafa_grads.safetensors"))
    save_file(after, os.path.join(out_dir, "lorafa_after.safetensors"))
    save_file(state, os.path.join(out_dir, "lorafa_state.safetensors"))
    save_file(proj, os.path.join(out_dir, "lorafa_proj64.safetensors"))
    loss = out.loss.item()

    # LoRA+
    model = PeftModel.from_pretrained(base(model_dir), adapter, is_trainable=True)
    opt = loraplus(model, o)
    model(input_ids=IDS, labels=LABELS).loss.backward()
    opt.step()
    save_file(trainable(model), os.path.join(out_dir, "loraplus_after.safetensors"))
    print(json.dumps({"adapter": adapter, "reference": {"input_ids": IDS.tolist(), "labels": LABELS.tolist(), "loss": loss},
                      "loraplus_groups": groups_of(model, opt)}))


def groups(model_dir, cfg, o):
    model = get_peft_model(base(model_dir), LoraConfig(**cfg))
    params = [{"name": n, "shape": list(p.shape)} for n, p in model.named_parameters() if p.requires_grad]
    print(json.dumps({"params": params, "groups": groups_of(model, loraplus(model, o))}))


if __name__ == "__main__":
    if sys.argv[1] == "step":
        step(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5]))
    elif sys.argv[1] == "groups":
        groups(sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4]))
    else:
        raise SystemExit(f"unknown command {sys.argv[1]!r}")
