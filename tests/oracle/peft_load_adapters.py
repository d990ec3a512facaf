"""What PEFT makes of adapter folders PEFT Studio saved: each is loaded with PeftModel.from_pretrained onto a fresh
base model, and its logits for the given ids are written as float32 (one Python process for all folders).

  peft_load_adapters.py MODEL_DIR IDS_JSON JOBS_JSON
      JOBS_JSON: [{"dir": ADAPTER_DIR, "out": LOGITS_FILE}, ...]. Prints JSON [{"dir", "peft_type"}, ...].
"""
import json
import sys
import warnings

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

warnings.filterwarnings("ignore")

model_dir, ids, jobs = sys.argv[1], torch.tensor(json.loads(sys.argv[2])), json.loads(sys.argv[3])
done = []
for job in jobs:
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), job["dir"])
    model.eval()
    with torch.no_grad():
        model(input_ids=ids).logits.float().numpy().astype("<f4").tofile(job["out"])
    done.append({"dir": job["dir"], "peft_type": str(model.peft_config["default"].peft_type.value)})
print(json.dumps(done))
