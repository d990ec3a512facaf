"""bench:train, PyTorch + PEFT's side: the usual Hugging Face LoRA fine-tuning loop on the job that
bench/train-setup.ts wrote, run as a fresh process so that its peak RSS (ru_maxrss) is its own.

Same base (the float32 HF folder), same LoRA (r, alpha, dropout 0, all linear layers) starting from the tensors our
side saved (init-adapter/), same AdamW (lr, betas 0.9/0.999, eps 1e-8, weight decay 0.01), constant lr, same thread
count. Batches: the job's refWarmup/refTimed groups of example indices — the examples our Trainer visits, in its
order — right-padded to the longest row of each group, attention_mask 0 and labels -100 on padding (labels are
already -100 on non-assistant tokens). transformers computes logits at every position and the mean loss over the
labelled ones. Prints one JSON line on stdout.

Usage: train_ref.py WORK_DIR
"""
import json
import os
import resource
import sys
import time

work_dir = sys.argv[1]
with open(os.path.join(work_dir, "job.json")) as f:
    job = json.load(f)

import torch  # noqa: E402  (after reading the job: the thread count must be set before any parallel work)

torch.set_num_threads(job["threads"])
torch.set_num_interop_threads(1)

from peft import LoraConfig, get_peft_model, set_peft_model_state_dict  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

IGNORE = -100
lora = job["lora"]
model = AutoModelForCausalLM.from_pretrained(job["modelDir"], dtype=torch.float32)
model.config.use_cache = False
peft_model = get_peft_model(model, LoraConfig(r=lora["r"], lora_alpha=lora["lora_alpha"], lora_dropout=lora["lora_dropout"],
                                              target_modules=lora["target_modules"], bias=lora["bias"], task_type=lora["task_type"]))
init = load_file(os.path.join(job["initAdapterDir"], "adapter_model.safetensors"))
loaded = set_peft_model_state_dict(peft_model, init)
trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
if loaded.unexpected_keys or len(init) != len(trainable):
    sys.exit(f"train_ref.py: the initial adapter does not fit PEFT's model: {len(init)} tensors for {len(trainable)} "
             f"trainables, unexpected {loaded.unexpected_keys[:3]}")
peft_model.train()
optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=job["lr"],
                              betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)


def collate(examples):
    """Right-padded (B, T) ids, attention mask and labels."""
    width = max(len(e["inputIds"]) for e in examples)
    ids = torch.full((len(examples), width), job["padId"], dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e["inputIds"])
        ids[row, :n] = torch.tensor(e["inputIds"])
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(e["labels"])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def train_step(batch):
    loss = peft_model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


@torch.no_grad()
def eval_loss(examples):
    """Token-mean loss over the examples (sum of per-batch means × their target counts)."""
    peft_model.eval()
    total, count = 0.0, 0
    for i in range(0, len(examples), job["microBatchSize"]):
        batch = collate(examples[i:i + job["microBatchSize"]])
        n = int((batch["labels"][:, 1:] != IGNORE).sum())
        total += peft_model(**batch).loss.item() * n
        count += n
    peft_model.train()
    return total / max(1, count)


def current_rss():
    """Resident bytes now (Linux /proc), else the peak so far."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


train = job["train"]
warmup = [collate([train[i] for i in group]) for group in job["refWarmup"]]
timed = [collate([train[i] for i in group]) for group in job["refTimed"]]
ready_rss = current_rss()
eval_before = eval_loss(job["eval"]) if job["eval"] else None
losses, step_seconds = [], []
for batch in warmup:
    t = time.perf_counter()
    losses.append(train_step(batch))
    step_seconds.append(time.perf_counter() - t)
def cpu_seconds():
    """Process CPU seconds, every thread, user + system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


started, started_cpu = time.perf_counter(), cpu_seconds()
for batch in timed:
    t = time.perf_counter()
    losses.append(train_step(batch))
    step_seconds.append(time.perf_counter() - t)
timed_seconds, timed_cpu = time.perf_counter() - started, cpu_seconds() - started_cpu
eval_after = eval_loss(job["eval"]) if job["eval"] else None
timed_tokens = sum(int(b["attention_mask"].sum()) for b in timed)
if timed_tokens != job["timedTokens"]:
    sys.exit(f"train_ref.py: the timed batches hold {timed_tokens} real tokens, the job says {job['timedTokens']}")

result = {
    "side": "pytorch",
    "provider": f"torch {torch.__version__} cpu",
    "threads": torch.get_num_threads(),
    "timedSeconds": timed_seconds,
    "timedCpuSeconds": timed_cpu,
    "timedTokens": timed_tokens,
    "tokensPerSecond": timed_tokens / timed_seconds,
    "stepSeconds": step_seconds,
    "losses": losses,
    "readyRssBytes": ready_rss,
    "peakRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}
if eval_before is not None:
    result["evalBefore"] = eval_before
    result["evalAfter"] = eval_after
print(json.dumps(result))
