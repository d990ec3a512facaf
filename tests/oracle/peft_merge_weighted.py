"""PEFT's add_weighted_adapter on a tiny model: adapters with random A and B (init_lora_weights=False) are saved,
then combined case by case; each combined adapter's A and B are dumped per module.
Usage: peft_merge_weighted.py MODEL_DIR OUT_DIR SPEC_JSON where SPEC = {adapters: {name: LoraConfig kwargs},
cases: {name: {adapters, weights, combination_type, ...kwargs}}} → OUT_DIR/adapters/<name>/ (PEFT adapter folders),
OUT_DIR/<case>.safetensors (<module>.lora_A / .lora_B); prints JSON {case: {config, file}}."""
import json
import os
import sys

import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

model_dir, out_dir, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
peft_model = None
for i, (name, cfg) in enumerate(spec["adapters"].items()):
    torch.manual_seed(100 + i)
    config = LoraConfig(init_lora_weights=False, **cfg)
    if peft_model is None:
        peft_model = get_peft_model(model, config, adapter_name=name)
    else:
        peft_model.add_adapter(name, config)
adapters_dir = os.path.join(out_dir, "adapters")
for name in spec["adapters"]:
    # save_pretrained writes every adapter but "default" to <dir>/<name>
    peft_model.save_pretrained(adapters_dir, selected_adapters=[name])

result = {}
for case, c in spec["cases"].items():
    kwargs = {k: v for k, v in c.items() if k not in ("adapters", "weights")}
    peft_model.add_weighted_adapter(c["adapters"], c["weights"], case, **kwargs)
    tensors = {}
    for module_name, module in peft_model.base_model.model.named_modules():
        if isinstance(module, LoraLayer) and case in module.lora_A:
            tensors[f"{module_name}.lora_A"] = module.lora_A[case].weight.detach().clone().contiguous()
            tensors[f"{module_name}.lora_B"] = module.lora_B[case].weight.detach().clone().contiguous()
    file = os.path.join(out_dir, f"{case}.safetensors")
    save_file(tensors, file)
    config = peft_model.peft_config[case].to_dict()
    config = {k: (sorted(v) if isinstance(v, set) else v) for k, v in config.items()}
    result[case] = {"config": {k: config[k] for k in ("r", "lora_alpha", "target_modules", "use_rslora")}, "file": file}
print(json.dumps(result))
