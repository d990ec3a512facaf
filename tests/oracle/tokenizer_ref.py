"""Tokenizer oracle (tests only, never the product): what transformers does with a tokenizer.

Usage: python tokenizer_ref.py SOURCE INPUT_JSON

SOURCE is an HF folder (tokenizer.json, tokenizer_config.json, ...) or a .gguf file, which transformers loads with
AutoTokenizer.from_pretrained(folder, gguf_file=name). INPUT_JSON holds
    {"strings": [str, ...],
     "conversations": [{"messages": [{"role": ..., "content": ...}], "add_generation_prompt": bool,
                        "tools": [...optional JSON schemas], "extra": {...optional template kwargs}}, ...]}
Prints one JSON object on stdout:
    {"vocab_size": len(tokenizer), "special_tokens": {...}, "chat_template": str | null,
     "encodings": [{"text", "ids" (add_special_tokens=True), "ids_no_special" (False),
                    "decoded" (decode(ids_no_special)), "decoded_skip_special" (decode(ids, skip_special_tokens=True))}],
     "templates": [{"rendered": str} | {"error": str}]}
"""

import json
import os
import sys
import warnings

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def load_tokenizer(source):
    # Imported late so a usage error prints fast.
    from transformers import AutoTokenizer

    if source.endswith(".gguf"):
        folder, name = os.path.split(os.path.abspath(source))
        return AutoTokenizer.from_pretrained(folder, gguf_file=name)
    return AutoTokenizer.from_pretrained(source)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: tokenizer_ref.py SOURCE INPUT_JSON")
    source, input_path = sys.argv[1], sys.argv[2]
    with open(input_path, encoding="utf-8") as f:
        request = json.load(f)

    warnings.filterwarnings("ignore")
    tok = load_tokenizer(source)

    encodings = []
    for text in request.get("strings", []):
        ids = tok.encode(text, add_special_tokens=True)
        ids_no_special = tok.encode(text, add_special_tokens=False)
        encodings.append(
            {
                "text": text,
                "ids": ids,
                "ids_no_special": ids_no_special,
                "decoded": tok.decode(ids_no_special),
                "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
            }
        )

    templates = []
    for conv in request.get("conversations", []):
        try:
            rendered = tok.apply_chat_template(
                conv["messages"],
                tokenize=False,
                add_generation_prompt=conv.get("add_generation_prompt", False),
                tools=conv.get("tools"),
                **conv.get("extra", {}),
            )
            templates.append({"rendered": rendered})
        except Exception as e:  # the TS side checks that it fails too
            templates.append({"error": f"{type(e).__name__}: {e}"})

    special = {k: v for k, v in tok.special_tokens_map.items()}
    special_ids = {
        f"{k}_id": getattr(tok, f"{k}_id")
        for k in ("bos_token", "eos_token", "pad_token", "unk_token")
        if getattr(tok, k, None) is not None
    }
    json.dump(
        {
            "vocab_size": len(tok),
            "special_tokens": {**special, **special_ids},
            "chat_template": tok.chat_template if isinstance(tok.chat_template, str) else None,
            "encodings": encodings,
            "templates": templates,
        },
        sys.stdout,
        ensure_ascii=False,
    )


if __name__ == "__main__":
    main()
