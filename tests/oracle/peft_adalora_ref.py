"""PEFT AdaLoRA references on a tiny model. Adapters start from a seeded non-zero state (A, B, E all random) so the
update and every gradient are non-trivial. Prints JSON on stdout.

  step MODEL_DIR OUT_DIR CASES_JSON        per case: the adapter saved by PEFT, loss (with the orthogonal
                                           regularization) and every gradient for a fixed batch, the logits
  train MODEL_DIR OUT_DIR RUN_JSON         plain-SGD steps with update_and_allocate(step) after each: the initial
                                           adapter, per step the gradients, the parameters after the optimizer
                                           (before masking), lora_E after masking and config.rank_pattern; the final
                                           adapter saved by PEFT (with rank_pattern) and PEFT's logits on reloading it
  logits MODEL_DIR ADAPTER_DIR OUT_FILE    logits of an adapter folder loaded by PEFT
"""
import json
import os
import sys
import warnings

import torch
from peft import AdaLoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

warnings.filterwarnings("ignore")

IDS = torch.tensor([[791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13],
                    [7530, 2442, 38302, 12099, 25, 6621, 5726, 11, 423, 0]])
LABELS = IDS.clone()
LABELS[1, :3] = -100  # a prompt part that carries no loss


def base(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


def adalora(model_dir, cfg, seed):
    model = get_peft_model(base(model_dir), AdaLoraConfig(task_type="CAUSAL_LM", **cfg))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".lora_A." in n:  # (r, in): rows of norm ~1
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
            elif ".lora_B." in n:  # (out, r): columns of norm ~1
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[0] ** 0.5)
            elif ".lora_E." in n:
                p.copy_(torch.randn(p.shape, generator=gen))
    return model


def trainable(model):
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def write_logits(logits, path):
    logits.detach().float().numpy().astype("<f4").tofile(path)


def step(model_dir, out_dir, cases):
    result = {}
    for name, c in cases.items():
        target = os.path.join(out_dir, name)
        model = adalora(model_dir, c["config"], c.get("seed", 7))
        model.save_pretrained(target)
        out = model(input_ids=IDS, labels=LABELS)
        out.loss.backward()
        save_file({n: p.grad.detach().contiguous() for n, p in trainable(model).items()},
                  os.path.join(target, "grads.safetensors"))
        write_logits(out.logits, os.path.join(target, "logits.f32"))
        with torch.no_grad():
            task = model.get_base_model()(input_ids=IDS, labels=LABELS).loss.item()
        with open(os.path.join(target, "reference.json"), "w") as f:
            json.dump({"input_ids": IDS.tolist(), "labels": LABELS.tolist(), "loss": out.loss.item(),
                       "task_loss": task, "logits_shape": list(out.logits.shape)}, f)
        result[name] = target
    return result


def train(model_dir, out_dir, run):
    model = adalora(model_dir, run["config"], run.get("seed", 11))
    model.save_pretrained(os.path.join(out_dir, "init"))
    params = trainable(model)
    opt = torch.optim.SGD(params.values(), lr=run["lr"])
    cfg = model.peft_config["default"]
    trace, losses, patterns = {}, [], []
    for t in range(run["steps"]):
        out = model(input_ids=IDS, labels=LABELS)
        out.loss.backward()
        losses.append(out.loss.item())
        for n, p in params.items():
            trace[f"{t}/grad/{n}"] = p.grad.detach().clone()
        opt.step()
        for n, p in params.items():
            trace[f"{t}/pre/{n}"] = p.detach().clone()
        model.base_model.update_and_allocate(t)
        for n, p in params.items():
            if ".lora_E." in n:
                trace[f"{t}/post/{n}"] = p.detach().clone()
        rp = cfg.rank_pattern
        patterns.append(None if rp is None else {k: [bool(b) for b in v] for k, v in rp.items()})
        opt.zero_grad()
    save_file(trace, os.path.join(out_dir, "trace.safetensors"))
    with torch.no_grad():
        write_logits(model(input_ids=IDS).logits, os.path.join(out_dir, "trained_logits.f32"))
    final = os.path.join(out_dir, "final")
    model.save_pretrained(final)
    logits(model_dir, final, os.path.join(out_dir, "final_logits.f32"))
    with open(os.path.join(out_dir, "trace.json"), "w") as f:
        json.dump({"input_ids": IDS.tolist(), "labels": LABELS.tolist(), "losses": losses, "rank_patterns": patterns}, f)
    return {"dir": out_dir}


def logits(model_dir, adapter_dir, out_file):
    model = PeftModel.from_pretrained(base(model_dir), adapter_dir)
    with torch.no_grad():
        write_logits(model(input_ids=IDS).logits, out_file)
    return {"logits": out_file}


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "step":
        print(json.dumps(step(args[0], args[1], json.loads(args[2]))))
    elif mode == "train":
        print(json.dumps(train(args[0], args[1], json.loads(args[2]))))
    elif mode == "logits":
        print(json.dumps(logits(args[0], args[1], args[2])))
    else:
        raise SystemExit(f"unknown mode {mode}")
