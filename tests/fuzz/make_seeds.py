#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, generated from the fixtures and tests (not committed).

usage: make_seeds.py SOURCE_DIR SHARED_DIR OUT_DIR
Writes OUT_DIR/<target>/seed-NNN files. Inputs are kept small (libFuzzer mutates short inputs
faster): big files are cut down to their structure (safetensors headers with tiny tensors,
LongBench records with short contexts).
"""
import glob
import json
import os
import re
import struct
import sys

SOURCE, SHARED, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
FIXTURES = os.path.join(SHARED, "fixtures")


def write_seeds(target, seeds):
    folder = os.path.join(OUT, target)
    os.makedirs(folder, exist_ok=True)
    unique = []
    for seed in seeds:
        data = seed.encode("utf-8") if isinstance(seed, str) else seed
        if data not in unique:
            unique.append(data)
    if not unique:
        sys.exit(f"make_seeds.py: no seeds for {target} (fixtures missing?)")
    for i, data in enumerate(unique):
        with open(os.path.join(folder, f"seed-{i:03d}"), "wb") as f:
            f.write(data)
    print(f"{target}: {len(unique)} seeds")


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


# ---- safetensors ----------------------------------------------------------------------------
SIZES = {"F32": 4, "F16": 2, "BF16": 2}


def safetensors_bytes(entries, metadata=None, pad=True):
    """entries: [(name, dtype, shape)]; data are consecutive small ramps."""
    header, data, offset = {}, b"", 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape in entries:
        n = 1
        for d in shape:
            n *= d
        nbytes = n * SIZES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        data += bytes((offset + i) % 251 for i in range(nbytes))
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    while pad and (8 + len(text)) % 8:
        text += b" "
    return struct.pack("<Q", len(text)) + text + data


def real_headers():
    files = glob.glob(os.path.join(FIXTURES, "models", "*", "*.safetensors"))
    files += glob.glob(os.path.join(SOURCE, "tests", "data", "arch", "*", "*.safetensors"))
    for path in sorted(files):
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            yield json.loads(f.read(n))


def safetensors_seeds():
    seeds = [
        safetensors_bytes([]),
        safetensors_bytes([], metadata={"format": "pt"}),
        safetensors_bytes([("w", "F32", [2, 3]), ("b", "F16", [3]), ("e", "BF16", [0, 4])], {"format": "pt"}),
        safetensors_bytes([("model.embed_tokens.weight", "BF16", [4, 2])], pad=False),
        safetensors_bytes([("scalar", "F32", [])]),
    ]
    for header in real_headers():
        # The real tensor names, dtypes and ranks, each shrunk to at most 2 per dimension.
        entries = []
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            entries.append((name, entry["dtype"], [min(d, 2) for d in entry["shape"]]))
        entries.sort(key=lambda e: e[0])
        seeds.append(safetensors_bytes(entries[:12], header.get("__metadata__")))
    return seeds


# ---- config.json ----------------------------------------------------------------------------
def config_seeds():
    paths = glob.glob(os.path.join(FIXTURES, "models", "*", "config.json"))
    paths += glob.glob(os.path.join(SOURCE, "tests", "data", "arch", "*", "config.json"))
    paths += glob.glob(os.path.join(SOURCE, "tests", "data", "configs", "*.json"))
    return [read(p) for p in sorted(paths)]


# ---- tokenizer.json -------------------------------------------------------------------------
def tokenizer_load_seeds():
    paths = sorted(glob.glob(os.path.join(SOURCE, "tests", "data", "arch", "*", "tokenizer.json")))
    seeds = [read(p) for p in paths]
    # The fixture's pipeline with a vocabulary cut to the byte alphabet and a few merges.
    fixture = json.loads(read(os.path.join(FIXTURES, "models", "wb-tiny-gqa", "tokenizer.json")))
    vocab = dict(sorted(fixture["model"]["vocab"].items(), key=lambda kv: kv[1])[:300])
    merges = [m for m in fixture["model"]["merges"]
              if all(part in vocab for part in (m.split(" ") if isinstance(m, str) else m))][:40]
    small = dict(fixture)
    small["model"] = dict(fixture["model"], vocab=vocab, merges=merges)
    seeds.append(json.dumps(small))
    return seeds


def tokenizer_encode_seeds():
    texts = ["Hello world", "", " the  quick\n\nbrown fox's 1234567 café", "<|endoftext|>x<s></s>",
             "\u4f60\u597d\uff0c\u4e16\u754c", "e\u0301 \ufb01 \u2581\u2581a", "\t\r\n  \u00a0end"]
    encodings = os.path.join(FIXTURES, "reference", "tokenizer_encodings.json")
    texts += [row["text"] for row in json.loads(read(encodings))]
    heldout = read(os.path.join(FIXTURES, "heldout.txt"))
    texts += [heldout[i:i + 200] for i in range(0, 4000, 400)]
    # First byte picks the tokenizer (fixture, llama2, llama3, mistral, qwen2, smollm).
    seeds = []
    for i, text in enumerate(texts):
        seeds.append(bytes([i % 6]) + text.encode("utf-8"))
    return seeds


# ---- LongBench JSONL ------------------------------------------------------------------------
def longbench_seeds():
    paths = glob.glob(os.path.join(FIXTURES, "longbench-syn", "*.jsonl"))
    paths += glob.glob(os.path.join(SOURCE, "tests", "data", "longbench-official", "data", "*.jsonl"))
    seeds = []
    for path in sorted(paths):
        for line in read(path).splitlines()[:3]:
            record = json.loads(line)
            for key in ("context", "input"):
                if isinstance(record.get(key), str):
                    record[key] = record[key][:300]
            seeds.append(json.dumps(record, ensure_ascii=False))
    pred = glob.glob(os.path.join(SOURCE, "tests", "data", "longbench-official", "pred", "*.jsonl"))
    for path in sorted(pred):  # prediction lines: other keys, same shapes
        for line in read(path).splitlines()[:1]:
            record = json.loads(line)
            record.update({"_id": "p", "input": record.get("pred", ""), "context": "Paragraph 3: x",
                           "dataset": os.path.basename(path)[:-6]})
            seeds.append(json.dumps(record, ensure_ascii=False))
    return seeds


# ---- MLA spec -------------------------------------------------------------------------------
def mla_spec_seeds():
    specs = set()
    sources = glob.glob(os.path.join(SOURCE, "tests", "**", "*.cpp"), recursive=True)
    sources.append(os.path.join(SOURCE, "README.md"))
    for path in sources:
        for match in re.finditer(r'"(strategy=[^"\\]*)"', read(path)):
            specs.add(match.group(1))
    specs |= {"strategy=uniform,r=2,start=1", "strategy=high,r=8,d_kv=64,kv_bits=4,kv_group=32,residual=0",
              "strategy=low,r=2,svd=none", "strategy=full", " strategy = high , r = 2 "}
    return sorted(specs)


# ---- scores and masks -----------------------------------------------------------------------
def scores_text(n_layer, n_head, n_kv, n_pairs, variant="product", calibration=True):
    def cube(rows, cols, scale):
        return [[[round(scale * (1 + l + 2 * h + 3 * k) / 7.0, 6) for k in range(n_pairs)] for h in range(cols)]
                for l in range(rows)]
    q, k = cube(n_layer, n_head, 1.0), cube(n_layer, n_kv, 0.5)
    group = n_head // n_kv
    scores = [[[sum(q[l][h][p] * k[l][g][p] if variant == "product" else q[l][h][p] + k[l][g][p]
                    for h in range(g * group, (g + 1) * group)) for p in range(n_pairs)]
               for g in range(n_kv)] for l in range(n_layer)]
    j = {"format": "mlawb-rope-scores", "variant": variant, "n_layer": n_layer, "n_head": n_head,
         "n_kv_head": n_kv, "n_pairs": n_pairs}
    if calibration:
        j["calibration"] = {"model": "m", "text_file": "t.txt", "windows": 2, "seq_len": 16, "tokens": 32}
    j.update({"scores": scores, "q_norms": q, "k_norms": k})
    return json.dumps(j)


def rope_scores_seeds():
    return [scores_text(1, 1, 1, 1), scores_text(2, 4, 2, 4), scores_text(2, 2, 2, 3, "sum"),
            scores_text(1, 2, 1, 2, calibration=False)]


def prediction_folder_seeds():
    # First byte: the dataset (hotpotqa, trec, samsum, lcc, passage_count, passage_retrieval_en, ...).
    names = ["hotpotqa", "trec", "samsum", "lcc", "passage_count", "passage_retrieval_en", "gov_report"]
    seeds = []
    for path in sorted(glob.glob(os.path.join(SOURCE, "tests", "data", "longbench-official", "pred", "*.jsonl"))):
        dataset = os.path.basename(path)[:-len(".jsonl")]
        if dataset in names:
            seeds.append(bytes([names.index(dataset)]) + read(path, "rb"))
    return seeds


def custom_mask_seeds():
    seeds = []
    for n_layer, n_kv, n_pairs in [(1, 1, 4), (2, 2, 8), (4, 1, 16), (3, 4, 2)]:
        mask = {"kept_pairs": [[list(range(0, n_pairs, 2)) for _ in range(n_kv)] for _ in range(n_layer)]}
        seeds.append(bytes([n_layer - 1, n_kv - 1, n_pairs - 1]) + json.dumps(mask).encode())
    seeds.append(bytes([0, 0, 3]) + b'{"kept_pairs": [[[]]]}')
    return seeds


write_seeds("fuzz_safetensors", safetensors_seeds())
write_seeds("fuzz_config", config_seeds())
write_seeds("fuzz_tokenizer_load", tokenizer_load_seeds())
write_seeds("fuzz_tokenizer_encode", tokenizer_encode_seeds())
write_seeds("fuzz_longbench", longbench_seeds())
write_seeds("fuzz_mla_spec", mla_spec_seeds())
write_seeds("fuzz_rope_scores", rope_scores_seeds())
write_seeds("fuzz_custom_mask", custom_mask_seeds())
write_seeds("fuzz_prediction_folder", prediction_folder_seeds())
