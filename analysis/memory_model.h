// KV-cache memory model: what one token costs in the cache of each layer, for the original
// model and for an MlaSpec, in values and in bytes, and the totals for a context and a batch.
// Plain arithmetic, no LibTorch, well under a microsecond per call: the GUI calls it on every
// slider move (tests/bench/bench_memory.cpp times it).
//
// What each layout caches per token and layer (n_kv KV heads, head_dim d, r kept pairs):
//   MHA / GQA (original)   K and V, n_kv d values each                   -> 2 n_kv d
//   partial-RoPE only      (svd=none) K keeps all d dims, only the rotation of the
//                          d - 2r non-RoPE dims is dropped, and V is unchanged, so the cache
//                          is the original's                              -> 2 n_kv d
//   MLA joint / split      the latent c_kv, n_kv d_kv values (split: c_k and c_v of n_kv d_kv/2
//                          each, stored side by side as one latent), plus the RoPE part of K,
//                          k_rope, n_kv 2r values                         -> n_kv (2r + d_kv)
//
// Bytes. "Nominal" = values x kv_bits / 8. "Real" adds, for kv_bits < 16, one fp16 scale and
// one fp16 zero point (4 bytes) per quantization group of kv_group values; groups run along
// each token's values, counted per cached part (a part shorter than a group is one group).
// With a context, the most recent min(ctx, residual) tokens stay at 16 bits (the residual
// window of KIVI-style caches); that is the simple estimate.
// "Exact" is what core/kv_quant.h stores after ctx tokens: the window holds
// W = ((ctx - 1) mod residual) + 1 tokens (0 when residual = 0), the other ctx - W tokens are
// quantized at ceil(part elements x kv_bits / 8) packed bytes + 4 bytes per group, per part;
// window tokens cost elements x compute_element_bytes (2 for an fp16 engine, the default;
// this engine computes in float32, 4). At 16 bits: ctx x elements x compute_element_bytes.
// Exact for the original model and MLA joint / split; partial-RoPE only (svd=none, r < d/2)
// caches k_rope and k_nope apart, so its group count can differ from the "k" part's here.
// Reductions are against the original at 16 bits.
#pragma once

#include <cstdint>

namespace mlawb {

struct ModelConfig;
struct MlaSpec;

// One tensor the cache holds per token and layer.
struct CachedPart {
    const char* name = "";                 // "k", "v", "c_kv", "k_rope"
    int64_t elements_per_token_layer = 0;  // cached values per token in one layer
    int64_t groups_per_token_layer = 0;    // quantization groups of kv_group values (0 at 16 bits)
};

struct MemoryEstimate {
    // Setting, echoed.
    const char* layout = "";        // "MHA", "GQA", "partial-RoPE", "MLA joint", "MLA split"
    int64_t n_layer = 0;
    int64_t kept_pairs = 0;         // r: RoPE pairs per KV head (head_dim/2 for full)
    int kv_bits = 16;               // bits per cached value
    int64_t kv_group = 0;           // values per quantization group
    int64_t context_tokens = 0;     // ctx: tokens per sequence
    int64_t batch = 0;              // sequences
    int64_t residual_tokens = 0;    // tokens kept at 16 bits: min(ctx, residual) when kv_bits < 16, else 0

    CachedPart parts[2];            // K and V, or c_kv and k_rope
    static constexpr int part_count = 2;

    // Cached values (elements) per token.
    int64_t original_elements_per_token_layer = 0;  // 2 n_kv d
    int64_t elements_per_token_layer = 0;           // this setting
    int64_t original_elements_per_token = 0;        // all layers
    int64_t elements_per_token = 0;                 // all layers
    int64_t groups_per_token_layer = 0;             // quantization groups over all parts

    // Bytes per token in one layer.
    double original_bytes_per_token_layer = 0;     // original at 16 bits
    double nominal_bytes_per_token_layer = 0;      // elements x kv_bits / 8
    double real_bytes_per_token_layer = 0;         // packed values + 4 B per group
    double unquantized_bytes_per_token_layer = 0;  // this setting at 16 bits (residual window)

    // Bytes per token, all layers.
    double original_bytes_per_token = 0;
    double nominal_bytes_per_token = 0;
    double real_bytes_per_token = 0;

    // Bytes for context_tokens x batch, all layers.
    double original_total_bytes = 0;  // original at 16 bits
    double nominal_total_bytes = 0;   // ctx x batch x nominal per token
    double real_total_bytes = 0;      // (ctx - window) x real + window x 16-bit, times batch

    // Reductions against the original at 16 bits, in percent; positive = smaller
    // (68.75 is the paper's "-68.75%").
    double reduction_percent = 0;             // nominal, per token
    double reduction_percent_real = 0;        // per token with scale/zero-point overhead
    double total_reduction_percent_real = 0;  // at ctx x batch, residual window included

    // Exact bytes as the quantized cache stores them (see the header comment).
    int64_t residual = 0;                  // the setting's residual window length
    int compute_element_bytes = 2;         // bytes per unquantized cached value
    int64_t exact_window_tokens = 0;       // W: tokens at compute precision
    int64_t exact_packed_bytes_per_token = 0;     // packed values, all layers, one quantized token
    int64_t exact_scale_zero_bytes_per_token = 0; // fp16 scales + zeros, all layers, one quantized token
    int64_t exact_total_bytes = 0;         // ctx x batch, all layers
};

// Checks the spec's sizes against the model (MlaSpec::validate_sizes; scores and mask files
// are not needed) and estimates. ctx >= 1 tokens, batch >= 1. Throws mlawb::Error.
// compute_element_bytes (2 or 4) only changes the exact_* figures.
MemoryEstimate estimate_memory(const ModelConfig& config, const MlaSpec& spec, int64_t ctx, int64_t batch,
                               int compute_element_bytes = 2);

}  // namespace mlawb
