#!/usr/bin/env python3
"""Reference checkpoints and outputs for the architecture families MLA Workbench loads.

Run on a machine with torch, transformers and tokenizers (no network needed):

    python3 tests/reference/make_arch_refs.py OUT_DIR [TRAIN_TEXT]

For each family it builds a small random-weight model with transformers from the family's real
config.json values (head_dim, q/kv head ratio, RoPE theta and scaling, biases, tied or untied
embeddings, norm eps), shrunk to 2 layers and few heads so each checkpoint stays small, and a
tokenizer with that family's tokenizer.json pipeline trained on a little text. It saves
OUT_DIR/<family>/ (config.json, model.safetensors or shards, tokenizer.json) and
OUT_DIR/<family>.json with logits, argmax and greedy continuations computed in float32 from the
stored (bf16/f16-rounded) weights, plus encodings and decodes of tricky strings.

OUT_DIR/<family>.json fields:
  family, transformers (version), config (the saved config.json)
  prompts[]    text; ids (tokenizer.encode(text, add_special_tokens=False)); last_logits (float32
               logits at the last position, [vocab]); argmax (per position, [T]); min_top2_margin
               (smallest top-1 minus top-2 logit over the positions); greedy16 (generate(...,
               max_new_tokens=16, do_sample=False) stopping at eos, eos included)
  encodings[]  text; ids (add_special_tokens=False); decoded (decode(ids)); decoded_skip_special
               (decode(ids, skip_special_tokens=True))
Read by tests/core/test_arch.cpp and tests/app/test_info_configs.cpp.
"""
import json
import os
import sys

import torch
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")

TRICKY = [
    "Hello world",
    " leading space",
    "  two leading spaces",
    "trailing space ",
    "Multiple   spaces and\ttabs\n\nnewlines\r\n",
    "naïve café — “quotes” 日本語 🙂",
    "e\u0301 combining accent vs é",
    "def f(x):\n    return x**2  # comment",
    "numbers 1234567890 3.14159 -42 007",
    "it's they're we've I'm you'll he'd IT'S",
    "ALLCAPS and CamelCase words",
    "code: for (int i = 0; i < n; ++i) { a[i] += b[i]; }",
    "",
    " ",
    "\n",
    "a",
    "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
    "\u00a0non-breaking\u2003em space",
    "emoji 👩‍💻 family 👨‍👩‍👧",
]

PROMPTS = [
    "The pass key is 52817. Remember it. What is the pass key? The pass key is",
    "import os\nimport sys\n\ndef main():\n",
    "In the beginning the Universe was created. This has made a lot of people very angry",
]


def byte_level_tokenizer(text, vocab_size, specials, split_regex=None, nfc=False, ignore_merges=False):
    """GPT-2 style (split_regex None: ByteLevel with its own regex) or Llama-3/Qwen2 style
    (Split(regex, isolated) then ByteLevel without regex), optional NFC normalizer."""
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if nfc:
        tok.normalizer = normalizers.NFC()
    if split_regex is None:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(split_regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer)
    return tok


def sentencepiece_bpe_tokenizer(text, vocab_size, metaspace):
    """Llama-2 style: '▁' for spaces (Prepend+Replace normalizer, or the newer Metaspace
    pre-tokenizer), byte fallback to <0x..> tokens, fuse_unk."""
    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    if metaspace:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    else:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(content=" ", left=1, right=0)])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials + byte_tokens, show_progress=False,
                                  limit_alphabet=200)
    tok.train_from_iterator([text], trainer)
    # In Llama-2's file the byte tokens are plain vocabulary entries, not added tokens.
    data = json.loads(tok.to_str())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] in specials]
    return Tokenizer.from_str(json.dumps(data))


FAMILIES = {
    # SmolLM-135M: 9/3 heads, d 64, tied, theta 10000 -> 3/1 heads.
    "smollm": dict(
        cls="LlamaConfig", tokenizer=("bytelevel", 512, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]),
        config=dict(model_type="llama", num_attention_heads=3, num_key_value_heads=1, head_dim=64, hidden_size=192,
                    intermediate_size=256, num_hidden_layers=2, rms_norm_eps=1e-5, rope_theta=10000.0,
                    tie_word_embeddings=True, max_position_embeddings=2048, bos_token_id=0, eos_token_id=0)),
    # Llama-2-7B: MHA, d 128, untied, theta 10000 -> 2/2 heads. Stored sharded.
    "llama2": dict(
        cls="LlamaConfig", tokenizer=("spbpe", 400, False), shards=2,
        config=dict(model_type="llama", num_attention_heads=2, num_key_value_heads=2, head_dim=128, hidden_size=256,
                    intermediate_size=128, num_hidden_layers=2, rms_norm_eps=1e-5, rope_theta=10000.0,
                    tie_word_embeddings=False, max_position_embeddings=4096, bos_token_id=1, eos_token_id=2)),
    # Llama-3.2-1B: 32/8 heads, d 64, llama3 rope scaling, theta 500000, tied -> 4/1 heads.
    "llama3": dict(
        cls="LlamaConfig",
        tokenizer=("split", 512, ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"], LLAMA3_SPLIT, False, True),
        config=dict(model_type="llama", num_attention_heads=4, num_key_value_heads=1, head_dim=64, hidden_size=256,
                    intermediate_size=256, num_hidden_layers=2, rms_norm_eps=1e-5, rope_theta=500000.0,
                    rope_scaling=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                      original_max_position_embeddings=8192),
                    tie_word_embeddings=True, max_position_embeddings=131072, bos_token_id=0, eos_token_id=1)),
    # Mistral-7B-v0.1: 32/8 heads, d 128, theta 10000, sliding window 4096, untied -> 4/1 heads. Stored f16.
    "mistral": dict(
        cls="MistralConfig", tokenizer=("spbpe", 400, True), dtype="float16",
        config=dict(model_type="mistral", num_attention_heads=4, num_key_value_heads=1, head_dim=128, hidden_size=256,
                    intermediate_size=64, num_hidden_layers=2, rms_norm_eps=1e-5, rope_theta=10000.0,
                    sliding_window=4096, tie_word_embeddings=False, max_position_embeddings=32768,
                    bos_token_id=1, eos_token_id=2)),
    # Qwen2-0.5B: 14/2 heads, d 64, q/k/v biases, theta 1e6, eps 1e-6, tied -> 7/1 heads.
    "qwen2": dict(
        cls="Qwen2Config",
        tokenizer=("split", 512, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], QWEN2_SPLIT, True, False),
        config=dict(model_type="qwen2", num_attention_heads=7, num_key_value_heads=1, hidden_size=448,
                    intermediate_size=64, num_hidden_layers=2, rms_norm_eps=1e-6, rope_theta=1000000.0,
                    tie_word_embeddings=True, max_position_embeddings=32768, bos_token_id=0, eos_token_id=0,
                    use_sliding_window=False)),
    # Qwen2.5-7B: 28/4 heads, d 128, biases, theta 1e6, untied -> 7/1 heads with an explicit head_dim
    # (64) that differs from hidden / heads (256 / 7).
    "qwen25": dict(
        cls="Qwen2Config",
        tokenizer=("split", 512, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], QWEN2_SPLIT, True, False),
        config=dict(model_type="qwen2", num_attention_heads=7, num_key_value_heads=1, head_dim=64, hidden_size=256,
                    intermediate_size=64, num_hidden_layers=2, rms_norm_eps=1e-6, rope_theta=1000000.0,
                    tie_word_embeddings=False, max_position_embeddings=32768, bos_token_id=0, eos_token_id=0,
                    use_sliding_window=False)),
}


def build_tokenizer(spec, text):
    if spec[0] == "bytelevel":
        return byte_level_tokenizer(text, spec[1], spec[2])
    if spec[0] == "split":
        _, vocab, specials, regex, nfc, ignore_merges = spec
        return byte_level_tokenizer(text, vocab, specials, split_regex=regex, nfc=nfc, ignore_merges=ignore_merges)
    return sentencepiece_bpe_tokenizer(text, spec[1], metaspace=spec[2])


def main():
    out_dir = sys.argv[1]
    train_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "..",
                                                                    "resources", "text", "demo.txt")
    text = open(train_path, encoding="utf-8").read()
    torch.manual_seed(1234)
    os.makedirs(out_dir, exist_ok=True)
    summary = {}
    only = set(os.environ.get("FAMILIES", "").split(",")) - {""}
    for name, fam in FAMILIES.items():
        if only and name not in only:
            continue
        try:
            summary[name] = make_family(name, fam, text, out_dir)
        except Exception as e:  # report and go on: one family's failure must not hide the others
            summary[name] = {"error": repr(e)}
        print(name, summary[name], flush=True)
    json.dump(summary, open(os.path.join(out_dir, "summary.json"), "w"), indent=1)


def make_family(name, fam, text, out_dir):
    if True:
        tok = build_tokenizer(fam["tokenizer"], text)
        vocab = tok.get_vocab_size()
        cfg_cls = getattr(transformers, fam["cls"])
        cfg = cfg_cls(vocab_size=vocab, initializer_range=0.15, attn_implementation="eager", **{
            k: v for k, v in fam["config"].items() if k != "model_type"})
        model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        if fam["config"]["model_type"] == "qwen2":
            with torch.no_grad():  # biases are zero at init: give them values so the test sees them
                for layer in model.model.layers:
                    for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                        proj.bias.normal_(0, 0.5)
        folder = os.path.join(out_dir, name)
        dtype = getattr(torch, fam.get("dtype", "bfloat16"))
        shard = "1MB" if fam.get("shards") else "100GB"
        model.to(dtype).save_pretrained(folder, safe_serialization=True, max_shard_size=shard)
        tok.save(os.path.join(folder, "tokenizer.json"))
        # Reference outputs from the stored weights upcast to float32, eager attention, CPU.
        ref_model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                                      attn_implementation="eager").eval()
        eos = fam["config"]["eos_token_id"]
        record = {"family": name, "transformers": transformers.__version__, "config": json.load(
            open(os.path.join(folder, "config.json"))), "prompts": [], "encodings": []}
        for prompt in PROMPTS:
            ids = tok.encode(prompt, add_special_tokens=False).ids
            with torch.no_grad():
                logits = ref_model(torch.tensor([ids])).logits[0]
                top2 = logits.topk(2, dim=-1).values
                gen = ref_model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False, eos_token_id=eos,
                                         pad_token_id=eos)
            record["prompts"].append({
                "text": prompt, "ids": ids, "last_logits": logits[-1].tolist(),
                "argmax": logits.argmax(-1).tolist(),
                "min_top2_margin": float((top2[:, 0] - top2[:, 1]).min()),
                "greedy16": gen[0, len(ids):].tolist()})
        specials = [t["content"] for t in json.loads(tok.to_str())["added_tokens"]]
        with_specials = [f"{specials[0]}Hello{specials[-1]} world {specials[-1]}\n{specials[0]}",
                         f"text before {specials[1 % len(specials)]}after"]
        for s in TRICKY + with_specials:
            ids = tok.encode(s, add_special_tokens=False).ids
            record["encodings"].append({"text": s, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                                        "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump(record, f)
        sizes = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        return {"vocab": vocab, "bytes": sizes, "files": sorted(os.listdir(folder)),
                "min_margin": min(p["min_top2_margin"] for p in record["prompts"])}


if __name__ == "__main__":
    main()
