"""Bottleneck adapter / AdapterFusion references on a tiny transformers Llama.

HF PEFT has no bottleneck adapters, so this transcribes the AdapterHub `adapters` library's code (methods/modeling.py
Adapter.pre_forward / forward and BertFusion.forward; methods/bottleneck.py compose_stack / compose_fuse) and wires it
into transformers' LlamaForCausalLM with hooks where AdapterHub's LlamaDecoderLayerWithAdapters calls
`attention_adapters(self_attn_out, residual, None)` and `output_adapters(mlp_out, residual, None)`. With no layer
norm passed, post_forward (original_ln_after) is the residual add the decoder layer does itself, so the hooks return
the state before it. Adapters are read from the folders PEFT Studio writes (adapter_config.json, and
adapter_model.safetensors with its keys), which also checks that format.

  bottleneck_ref.py grads MODEL_DIR ADAPTER_DIR BATCH_JSON OUT_DIR
      loss = sum of -log p(target) at the batch's flat loss positions / normalizer (PEFT Studio's training loss),
      plus AdapterFusion's regularization when configured; writes OUT_DIR/grads.safetensors (the trainable tensors'
      gradients under their saved keys). Prints JSON {loss, grads}.
  bottleneck_ref.py generate MODEL_DIR ADAPTER_DIR N PROMPT_JSON
      Greedy continuation (KV cache on) with the adapter ('-': the base model) and the top-2 margin at each step.
      Prints JSON {tokens, margins}.
"""
import json
import os
import sys
import warnings

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM
from transformers.activations import get_activation

warnings.filterwarnings("ignore")

# AdapterHub's presets (configuration/adapter_config.py): DoubleSeqBnConfig and SeqBnConfig.
PRESETS = {
    "houlsby": dict(original_ln_before=False, residual_before_ln=True, mh_adapter=True, output_adapter=True),
    "pfeiffer": dict(original_ln_before=True, residual_before_ln=True, mh_adapter=False, output_adapter=True),
}


class Adapter:
    """methods/modeling.py Adapter with ln_before/ln_after/gating/phm off and dropout 0."""

    def __init__(self, tensors, prefix, cfg):
        self.down_w, self.down_b = tensors[f"{prefix}.down.weight"], tensors[f"{prefix}.down.bias"]
        self.up_w, self.up_b = tensors[f"{prefix}.up.weight"], tensors[f"{prefix}.up.bias"]
        self.non_linearity = get_activation(cfg["non_linearity"].lower())
        self.scaling = cfg.get("scaling", 1.0)
        preset = PRESETS[cfg["architecture"]]
        self.original_ln_before = preset["original_ln_before"]
        self.residual_before_ln = preset["residual_before_ln"]

    def pre_forward(self, hidden_states, input_tensor, layer_norm, fusion_config=None):
        query = None
        if self.residual_before_ln is True:
            residual = hidden_states
        if fusion_config is not None and fusion_config["query_before_ln"]:
            query = hidden_states
        if self.original_ln_before:
            if layer_norm:
                hidden_states = layer_norm(hidden_states + input_tensor)
            else:
                hidden_states = hidden_states + input_tensor
        if not self.residual_before_ln:
            residual = hidden_states
        if fusion_config is not None and not fusion_config["query_before_ln"]:
            query = hidden_states
        return hidden_states, query, residual

    def forward(self, x, residual_input):
        down = self.non_linearity(F.linear(x, self.down_w, self.down_b))
        up = F.linear(down, self.up_w, self.up_b)
        up = up * self.scaling
        output = up
        output = output + residual_input  # adapter_residual_before_ln=False, no ln_after
        return output, down, up


class BertFusion:
    """methods/modeling.py BertFusion with residual_before=False, temperature=False, dropout 0."""

    def __init__(self, tensors, prefix, cfg):
        self.cfg = cfg
        self.query = (tensors[f"{prefix}.query.weight"], tensors[f"{prefix}.query.bias"]) if cfg["query"] else None
        self.key = (tensors[f"{prefix}.key.weight"], tensors[f"{prefix}.key.bias"]) if cfg["key"] else None
        self.value = tensors[f"{prefix}.value.weight"] if cfg["value"] else None
        self.T = 1.0

    def forward(self, query, key, value, residual):
        query_layer = F.linear(query, *self.query) if self.query else query
        key_layer = F.linear(key, *self.key) if self.key else key
        value_layer = F.linear(value, self.value) if self.value is not None and self.cfg["value_before_softmax"] else value
        attention_scores = torch.squeeze(torch.matmul(query_layer.unsqueeze(2), key_layer.transpose(-2, -1)), dim=2)
        attention_probs = torch.nn.Softmax(dim=-1)(attention_scores / self.T)
        context_layer = torch.squeeze(torch.matmul(attention_probs.unsqueeze(2), value_layer), dim=2)
        if self.value is not None and not self.cfg["value_before_softmax"]:
            context_layer = F.linear(context_layer, self.value)
        context_layer += residual
        return context_layer


def stack(adapter, hidden_states, residual_input):
    """compose_stack of one adapter (pre_block + compose_single), without post_forward (the layer's residual add)."""
    hidden_states, _, residual = adapter.pre_forward(hidden_states, residual_input, None)
    output, _, _ = adapter.forward(hidden_states, residual)
    return output


def fuse(adapters, fusion, fusion_cfg, hidden_states, residual_input):
    """compose_fuse: the last adapter's pre_forward, every adapter's up-projection, the fusion layer."""
    hidden_states, query, residual = adapters[-1].pre_forward(hidden_states, residual_input, None, fusion_config=fusion_cfg)
    ups = [a.forward(hidden_states, residual)[2] for a in adapters]
    up_list = torch.stack(ups).permute(1, 2, 0, 3)
    return fusion.forward(query, up_list, up_list, residual)


def install(model, adapter_dir):
    """Hooks the adapter into every decoder layer; returns the trainable tensors by saved key and the extra loss."""
    cfg = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))
    tensors = {k: v.clone().requires_grad_(True) for k, v in load_file(os.path.join(adapter_dir, "adapter_model.safetensors")).items()}
    fusion_mode = cfg["peft_type"] == "ADAPTER_FUSION"
    first = cfg["adapter_configs"][cfg["adapters"][0]] if fusion_mode else cfg
    arch = first["architecture"]
    leave_out = set(first.get("leave_out", []))
    state = {}

    def site_fn(module):
        if fusion_mode:
            names = cfg["adapters"]
            adapters = [Adapter(tensors, f"base_model.model.{module}.adapters.{n}", cfg["adapter_configs"][n]) for n in names]
            fusion = BertFusion(tensors, f"base_model.model.{module}.adapter_fusion", cfg)
            return lambda h, r: fuse(adapters, fusion, cfg, h, r)
        adapter = Adapter(tensors, f"base_model.model.{module}.adapter", cfg)
        return lambda h, r: stack(adapter, h, r)

    for i, layer in enumerate(model.model.layers):
        if i in leave_out:
            continue
        key = f"layer{i}"
        layer.input_layernorm.register_forward_pre_hook(lambda m, args, key=key: state.__setitem__(f"{key}.attn", args[0]))
        layer.post_attention_layernorm.register_forward_pre_hook(lambda m, args, key=key: state.__setitem__(f"{key}.ffn", args[0]))
        if PRESETS[arch]["mh_adapter"]:
            fn = site_fn(f"model.layers.{i}.self_attn")
            layer.self_attn.register_forward_hook(lambda m, args, out, fn=fn, key=key: (fn(out[0], state[f"{key}.attn"]),) + tuple(out[1:]))
        fn = site_fn(f"model.layers.{i}.mlp")
        layer.mlp.register_forward_hook(lambda m, args, out, fn=fn, key=key: fn(out, state[f"{key}.ffn"]))

    if fusion_mode:
        trainable = {k: v for k, v in tensors.items() if ".adapter_fusion." in k}
    else:
        trainable = tensors

    def extra_loss():
        if not (fusion_mode and cfg["regularization"] and cfg["value"]):
            return 0.0
        # model_mixin get_fusion_regularization_loss
        values = [v for k, v in tensors.items() if k.endswith(".adapter_fusion.value.weight")]
        target = torch.zeros_like(values[0]).fill_diagonal_(1.0)
        return sum(0.01 * (target - v).pow(2).sum() for v in values)

    return trainable, extra_loss


def base(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


def grads(model_dir, adapter_dir, batch, out_dir):
    model = base(model_dir)
    for p in model.parameters():
        p.requires_grad_(False)
    trainable, extra_loss = install(model, adapter_dir)
    logits = model(input_ids=torch.tensor(batch["input_ids"])).logits
    rows = logits.reshape(-1, logits.shape[-1])[torch.tensor(batch["loss_positions"])]
    nll = F.cross_entropy(rows, torch.tensor(batch["loss_targets"]), reduction="sum")
    loss = nll / batch["normalizer"] + extra_loss()
    loss.backward()
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "grads.safetensors")
    save_file({k: v.grad.contiguous() for k, v in trainable.items()}, path)
    print(json.dumps({"loss": loss.item(), "grads": path}))


def generate(model_dir, adapter_dir, n, prompt):
    model = base(model_dir)
    if adapter_dir != "-":
        install(model, adapter_dir)
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([prompt]), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                             output_scores=True, return_dict_in_generate=True, pad_token_id=0, eos_token_id=None)
    tokens = out.sequences[0, len(prompt):].tolist()
    margins = [float(s[0].topk(2).values[0] - s[0].topk(2).values[1]) for s in out.scores]
    print(json.dumps({"tokens": tokens, "margins": margins}))


if __name__ == "__main__":
    if sys.argv[1] == "grads":
        grads(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5])
    elif sys.argv[1] == "generate":
        generate(sys.argv[2], sys.argv[3], int(sys.argv[4]), json.loads(sys.argv[5]))
    else:
        raise SystemExit(f"unknown command {sys.argv[1]!r}")
