"""LongLoRA training references: S²-Attn gradients of a LoRA + trainable embeddings/norms model.

  longlora_ref.py grads OUT_DIR CASES_JSON
      CASES_JSON: {case: {"model_dir": DIR, "lora_weights": FILE, "r": int, "lora_alpha": num,
      "target_modules": [...], "group_size_ratio": float, "rope_factor": float | null,
      "trainable_params": [...], "input_ids": [[...]]}}.
      For each case: the transformers model from DIR (float32, eager), every LlamaAttention's forward replaced by
      S²-Attn as LongLoRA's llama_attn_replace.py forward_flashattn (its training path) computes it, re-implemented
      below on transformers 4.57's attention signature without flash-attn (an even head count, as there), the rotary frequencies divided by rope_factor (linear position
      interpolation), a PEFT LoRA whose A and B are the lora_A/lora_B tensors of FILE (PEFT's saved keys), and
      requires_grad on the LoRA and on every parameter whose name contains a trainable_params entry (LongLoRA's
      `any(k in n for k in trainable_params)`). Loss: transformers' shifted cross-entropy with labels = input_ids.
      Gradients are saved as OUT_DIR/<case>.safetensors under PEFT's saved keys (adapter name dropped); a tied
      tensor once, under its first name. Prints JSON {"cases": {case: {"grads": file, "loss": float}}}.
"""
import json
import math
import os
import sys
import warnings

import torch
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM
from transformers.models.llama import modeling_llama
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, repeat_kv

warnings.filterwarnings("ignore")
GROUP_SIZE_RATIO = 0.25


def varlen_causal_attention(qkv, cu_seqlens):
    """flash_attn_varlen_qkvpacked_func(qkv, cu_seqlens, ..., causal=True) in plain torch: causal softmax attention
    inside each segment [cu_seqlens[i], cu_seqlens[i + 1]) of the packed rows. qkv (N, 3, h, d) -> (N, h, d)."""
    outs = []
    bounds = cu_seqlens.tolist()
    for start, end in zip(bounds[:-1], bounds[1:]):
        if end <= start:
            continue
        q, k, v = (qkv[start:end, i].transpose(0, 1) for i in range(3))  # (h, L, d)
        scores = torch.matmul(q, k.transpose(1, 2)) / math.sqrt(q.shape[-1])
        causal = torch.full((end - start, end - start), torch.finfo(scores.dtype).min).triu(1)
        probs = torch.nn.functional.softmax(scores + causal, dim=-1, dtype=torch.float32)
        outs.append(torch.matmul(probs, v).transpose(0, 1))  # (L, h, d)
    return torch.cat(outs, dim=0)


def s2_attention_forward(self, hidden_states, position_embeddings, attention_mask, past_key_values=None,
                         cache_position=None, **kwargs):
    """LongLoRA's forward_flashattn (its training path) for unpadded rows: the heads split in two halves, the first
    half in groups [0, G), [G, 2G), ..., the second in groups starting G/2 later ([0, G/2), [G/2, 3G/2), ...,
    [T - G/2, T)), causal attention in each group. The group boundaries are computed as the reference computes
    cu_q_lens; flash-attention's varlen kernel is replaced by varlen_causal_attention."""
    bsz, q_len, _ = hidden_states.size()
    num_heads = self.config.num_attention_heads
    head_dim = self.head_dim
    hidden_shape = (bsz, q_len, -1, head_dim)

    query_states = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
    key_states = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)
    value_states = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)
    cos, sin = position_embeddings
    query_states, key_states = apply_rotary_pos_emb(query_states, key_states, cos, sin)
    key_states = repeat_kv(key_states, self.num_key_value_groups)
    value_states = repeat_kv(value_states, self.num_key_value_groups)

    qkv = torch.stack([query_states, key_states, value_states], dim=2)  # [bsz, nh, 3, q_len, hd]
    qkv = qkv.transpose(1, 3)  # [bsz, q_len, 3, nh, hd]
    nheads = qkv.shape[-2]
    group_size = int(q_len * GROUP_SIZE_RATIO)
    if q_len % group_size > 0:
        raise ValueError("q_len %d should be divisible by group size %d." % (q_len, group_size))
    qkv = qkv.reshape(bsz, q_len, 3, 2, num_heads // 2, head_dim).permute(0, 3, 1, 2, 4, 5).reshape(
        bsz * 2, q_len, 3, num_heads // 2, head_dim)
    # unpad_input with an all-ones key_padding_mask: the 2·bsz rows end to end, cu_q_lens = 0, T, 2T, ...
    x_unpad = qkv.reshape(bsz * 2 * q_len, 3, num_heads // 2, head_dim)
    cu_q_lens = torch.arange(0, (bsz * 2 + 1) * q_len, q_len, dtype=torch.int32)
    max_s = q_len
    cu_q_len_tmp = torch.arange(0, max_s, group_size, dtype=cu_q_lens.dtype)
    cu_q_len_tmp = torch.stack([cu_q_len_tmp, cu_q_len_tmp + group_size // 2]).repeat(bsz, 1) + cu_q_lens[:-1].unsqueeze(-1)
    cu_q_lens = torch.cat([cu_q_len_tmp, cu_q_lens[1:].unsqueeze(-1)], dim=-1).view(-1)
    output_unpad = varlen_causal_attention(x_unpad, cu_q_lens)
    output = output_unpad.reshape(bsz * 2, q_len, nheads // 2, head_dim)
    output = output.reshape(bsz, 2, q_len, nheads // 2, head_dim).transpose(1, 2).reshape(bsz, q_len, nheads, head_dim)
    return self.o_proj(output.reshape(bsz, q_len, nheads * head_dim)), None


def grads(out_dir, cases):
    global GROUP_SIZE_RATIO
    modeling_llama.LlamaAttention.forward = s2_attention_forward
    result = {}
    for name, case in cases.items():
        GROUP_SIZE_RATIO = case["group_size_ratio"]
        model = AutoModelForCausalLM.from_pretrained(case["model_dir"], dtype=torch.float32, attn_implementation="eager")
        if case.get("rope_factor"):
            rotary = model.model.rotary_emb
            rotary.inv_freq = rotary.inv_freq / case["rope_factor"]
            rotary.original_inv_freq = rotary.inv_freq
        config = LoraConfig(r=case["r"], lora_alpha=case["lora_alpha"], target_modules=case["target_modules"],
                            lora_dropout=0.0, init_lora_weights=False)
        peft_model = get_peft_model(model, config)
        lora = {k: v for k, v in load_file(case["lora_weights"]).items() if ".lora_" in k}
        missing = set_peft_model_state_dict(peft_model, lora)
        if missing.unexpected_keys:
            raise SystemExit(f"{name}: LoRA keys PEFT does not know: {missing.unexpected_keys[:3]}")
        trainable = case["trainable_params"]
        for n, p in peft_model.named_parameters():
            if any(k in n for k in trainable):
                p.requires_grad_()
        ids = torch.tensor(case["input_ids"])
        out = peft_model(input_ids=ids, labels=ids)
        out.loss.backward()
        saved = {}
        seen = set()
        for n, p in peft_model.named_parameters(remove_duplicate=False):
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                saved[n.replace(".default.", ".")] = p.grad.detach().contiguous()
        file = os.path.join(out_dir, f"{name}.safetensors")
        save_file(saved, file)
        result[name] = {"grads": file, "loss": out.loss.item()}
    print(json.dumps({"cases": result}))


if __name__ == "__main__":
    if sys.argv[1] == "grads":
        grads(sys.argv[2], json.loads(sys.argv[3]))
    else:
        raise SystemExit(f"unknown command {sys.argv[1]!r}")
