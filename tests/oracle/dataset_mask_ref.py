"""Assistant-mask oracle (tests only, never the product): which tokens transformers marks as the assistant's.

Usage: python dataset_mask_ref.py SOURCE CONVERSATIONS_JSON

SOURCE is an HF tokenizer folder or a .gguf file (AutoTokenizer.from_pretrained(folder, gguf_file=name)).
CONVERSATIONS_JSON holds {"conversations": [{"name", "messages"}, ...]}.

For each conversation this prints, as one JSON object on stdout:
    input_ids        tokenizer.apply_chat_template(messages, tokenize=True) with the model's own template
    assistant_masks  the reference mask, made with transformers' own machinery:
      - "generation-tags": the model's template with {% generation %} ... {% endgeneration %} put around each
        assistant turn (after its header, up to and including its end-of-turn token), then
        apply_chat_template(return_assistant_tokens_mask=True). The tagged template must render exactly as the
        original (checked for every conversation), so only the tags differ. Known templates: SmolLM2's, Qwen3's.
      - "prefix-diff" (any other template): TRL's prefix method on the text, for templates where the conversation
        up to a turn is a prefix of the whole: turn i = [len(render(messages[:i], add_generation_prompt=True)),
        len(render(messages[:i+1]).rstrip())), mapped to tokens with the fast tokenizer's offsets.
"""

import json
import os
import re
import sys
import warnings

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def load_tokenizer(source):
    from transformers import AutoTokenizer

    if source.endswith(".gguf"):
        folder, name = os.path.split(os.path.abspath(source))
        return AutoTokenizer.from_pretrained(folder, gguf_file=name)
    return AutoTokenizer.from_pretrained(source)


def replace_once(text, old, new):
    if text.count(old) != 1:
        raise ValueError(f"expected exactly one {old!r} in the template, found {text.count(old)}")
    return text.replace(old, new)


def tag_smollm2(template):
    """SmolLM2 (ChatML with a default system prompt): one expression renders every message."""
    old = "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    new = (
        "{% if message['role'] == 'assistant' %}"
        "{{'<|im_start|>' + message['role'] + '\n'}}"
        "{% generation %}{{message['content'] + '<|im_end|>'}}{% endgeneration %}{{'\n'}}"
        "{% else %}" + old + "{% endif %}"
    )
    return replace_once(template, old, new)


def tag_qwen3(template):
    """Qwen3: the assistant header moves before the branches, the generation block wraps the rest of the turn."""
    t = replace_once(
        template,
        "{{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}",
        "{{- '<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}",
    )
    plain = "{{- '<|im_start|>' + message.role + '\\n' + content }}"
    if t.count(plain) != 2:
        raise ValueError("unexpected Qwen3 template: the assistant branches changed")
    t = t.replace(plain, "{{- content }}")
    t = replace_once(
        t,
        "{%- if loop.index0 > ns.last_query_index %}",
        "{{- '<|im_start|>' + message.role + '\\n' }}{%- generation %}{%- if loop.index0 > ns.last_query_index %}",
    )
    # The assistant turn's end (the tool branch that follows ends with the same expression).
    end = re.search(r"\{\{- '<\|im_end\|>\\n' \}\}(\s*\{%- elif message\.role == \"tool\" %\})", t)
    if end is None:
        raise ValueError("unexpected Qwen3 template: no end of the assistant turn before the tool branch")
    return t[: end.start()] + "{{- '<|im_end|>' }}{%- endgeneration %}{{- '\\n' }}" + end.group(1) + t[end.end() :]


def tagged_template(template):
    if "You are a helpful AI assistant named SmolLM" in template:
        return tag_smollm2(template)
    if "ns.last_query_index" in template and "reasoning_content" in template:
        return tag_qwen3(template)
    return None


def prefix_diff_mask(tok, messages, full_text, input_ids):
    enc = tok(full_text, add_special_tokens=False, return_offsets_mapping=True)
    if enc["input_ids"] != input_ids:
        raise ValueError("re-tokenizing the rendered text does not give apply_chat_template's ids")
    mask = [0] * len(input_ids)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = tok.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        upto = tok.apply_chat_template(messages[: i + 1], tokenize=False).rstrip()
        if not (full_text.startswith(prompt) and full_text.startswith(upto)):
            raise ValueError(f"turn {i}: the template is not prefix-stable; the prefix method does not apply")
        start, end = len(prompt), len(upto)
        for k, (a, b) in enumerate(enc["offset_mapping"]):
            if a < end and b > start:
                mask[k] = 1
    return mask


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: dataset_mask_ref.py SOURCE CONVERSATIONS_JSON")
    source, input_path = sys.argv[1], sys.argv[2]
    with open(input_path, encoding="utf-8") as f:
        conversations = json.load(f)["conversations"]
    warnings.filterwarnings("ignore")
    tok = load_tokenizer(source)
    original = tok.chat_template
    tagged = tagged_template(original)
    results = []
    for conv in conversations:
        messages = conv["messages"]
        text = tok.apply_chat_template(messages, tokenize=False)
        ids = tok.apply_chat_template(messages, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        ids = list(ids)
        if tagged is not None:
            tagged_text = tok.apply_chat_template(messages, tokenize=False, chat_template=tagged)
            if tagged_text != text:
                raise ValueError(f"{conv['name']}: the tagged template renders differently from the original")
            out = tok.apply_chat_template(
                messages, tokenize=True, chat_template=tagged, return_dict=True, return_assistant_tokens_mask=True
            )
            if list(out["input_ids"]) != ids:
                raise ValueError(f"{conv['name']}: the tagged template tokenizes differently")
            mask, method = list(out["assistant_masks"]), "generation-tags"
        else:
            mask, method = prefix_diff_mask(tok, messages, text, ids), "prefix-diff"
        results.append({"name": conv["name"], "rendered": text, "input_ids": ids, "assistant_masks": mask, "method": method})
    json.dump({"results": results}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
