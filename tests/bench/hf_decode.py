#!/usr/bin/env python3
"""Hugging Face transformers decode speed: the baseline a user would otherwise run.

A random-weight Llama-2-7B-shaped LlamaForCausalLM (32 layers, hidden 4096, 32 heads of 128,
ffn 11008, vocab 32000), bf16, attn_implementation="sdpa", on the GPU, decoding with its default
DynamicCache. Same points and columns as tests/bench/gpu_decode (which reads the --json this writes
and prints both side by side): median ms per decode step (forward of one token per sequence plus
the argmax feeding the next, CUDA-event timed), tokens/s, cache bytes held, and achieved HBM
bandwidth = (weight bytes + cache bytes read) / step time as a share of the peak. The cache is
filled with random values up to the context instead of a prefill, as in gpu_decode.

    python3 tests/bench/hf_decode.py [--batches 1,8,32] [--contexts 2048,8192,32768]
                                     [--steps 10] [--warmup 3] [--json OUT] [--no-fit]
"""
import argparse
import json
import statistics
import sys

import torch


def build_model():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=65536,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
    )
    config._attn_implementation = "sdpa"
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            model = LlamaForCausalLM(config)  # initialized on the GPU directly, normal(0, 0.02)
    finally:
        torch.set_default_dtype(previous)
    model.eval()
    model.config._attn_implementation = "sdpa"
    return model, config


def random_cache(config, batch, ctx):
    from transformers.cache_utils import DynamicCache

    cache = DynamicCache()
    heads, dim = config.num_key_value_heads, config.hidden_size // config.num_attention_heads
    for layer in range(config.num_hidden_layers):
        k = torch.empty(batch, heads, ctx, dim, device="cuda", dtype=torch.bfloat16).uniform_(-1, 1)
        v = torch.empty(batch, heads, ctx, dim, device="cuda", dtype=torch.bfloat16).uniform_(-1, 1)
        cache.update(k, v, layer)
    return cache


@torch.inference_mode()
def time_steps(model, cache, batch, warmup, steps):
    tok = torch.zeros(batch, 1, dtype=torch.long, device="cuda")
    for _ in range(warmup):
        out = model(input_ids=tok, past_key_values=cache, use_cache=True)
        tok = out.logits[:, -1].argmax(-1, keepdim=True)
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = model(input_ids=tok, past_key_values=cache, use_cache=True)
        tok = out.logits[:, -1].argmax(-1, keepdim=True)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--contexts", default="2048,8192,32768")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--peak-tbs", type=float, default=3.35)
    parser.add_argument("--json", default="")
    parser.add_argument("--no-fit", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("hf_decode: no CUDA device", file=sys.stderr)
        return 1
    import transformers

    batches = [int(x) for x in args.batches.split(",")]
    contexts = [int(x) for x in args.contexts.split(",")]
    model, config = build_model()
    hidden = config.hidden_size
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    embed = model.model.embed_tokens.weight
    per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * (hidden // config.num_attention_heads) * 2
    margin = 3 << 30
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, {torch.cuda.get_device_name()}, "
          f"attention {model.config._attn_implementation}, DynamicCache, bf16; weights {params / 1e9:.2f} GB, "
          f"cache {per_token} bytes per token")
    points = []
    for ctx in contexts:
        for batch in batches:
            weights = params - embed.numel() * embed.element_size() + batch * hidden * 2  # embedding: B rows read
            point = {"engine": "transformers MHA", "batch": batch, "ctx": ctx, "fits": False,
                     "cache_bytes": batch * ctx * per_token, "weight_bytes": weights}
            torch.cuda.empty_cache()
            free, _ = torch.cuda.mem_get_info()
            # The cache, one layer's K and V copied by torch.cat as it grows, and activations.
            need = batch * (ctx + args.warmup + args.steps) * per_token * (1 + 1 / config.num_hidden_layers) + margin
            if need > free:
                point["note"] = f"does not fit: needs {need / 1e9:.1f} GB over the weights, {free / 1e9:.1f} GB free"
            else:
                try:
                    cache = random_cache(config, batch, ctx)
                    ms = time_steps(model, cache, batch, args.warmup, args.steps)
                    read = weights + batch * (ctx + args.warmup + args.steps // 2) * per_token
                    point.update(fits=True, ms=ms, tok_s=batch * 1000.0 / ms, tbs=read / (ms * 1e-3) / 1e12,
                                 note="sdpa, DynamicCache")
                    del cache
                except torch.cuda.OutOfMemoryError:
                    point["note"] = "does not fit (out of memory)"
            torch.cuda.empty_cache()
            points.append(point)
            if point["fits"]:
                print(f"  batch {batch:3d} ctx {ctx:6d}: {point['ms']:8.2f} ms/step {point['tok_s']:8.1f} tok/s "
                      f"{point['tbs']:.2f} TB/s ({100 * point['tbs'] / args.peak_tbs:.0f}% of peak)", flush=True)
            else:
                print(f"  batch {batch:3d} ctx {ctx:6d}: {point['note']}", flush=True)
    largest = {}
    if not args.no_fit:
        for ctx in contexts:
            torch.cuda.empty_cache()
            free, _ = torch.cuda.mem_get_info()
            batch = int((free - margin) / ((ctx + 3) * per_token * (1 + 1 / config.num_hidden_layers)))
            found = "0 (weights alone do not fit)" if batch <= 0 else "none verified"
            for _ in range(4):
                if batch <= 0:
                    break
                try:
                    cache = random_cache(config, batch, ctx)
                    time_steps(model, cache, batch, 0, 2)
                    del cache
                    found = f"{batch} x {ctx} tokens ({batch * ctx * per_token / 1e9:.1f} GB cache, ran 2 steps)"
                    break
                except torch.cuda.OutOfMemoryError:
                    cache = None
                    torch.cuda.empty_cache()
                    batch = batch * 9 // 10
            torch.cuda.empty_cache()
            largest[str(ctx)] = found
            print(f"  largest batch at context {ctx}: {found}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"points": points, "largest": largest}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
