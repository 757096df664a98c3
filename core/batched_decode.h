// Batched decoding over a preallocated cache: B sequences of their own lengths each advance one
// token per step, with no cat or reallocation per token. The cache is allocated once for
// max_length tokens per sequence:
//   standard MHA/GQA   K and V per layer, [B, n_kv, max_length, head_dim] each
//   MLA (joint SVD)    one latent row per token and layer, [B, max_length, L + n_kv 2r]:
//                      c_kv (L = n_kv d_kv, shared by all heads) then k_rope per KV head (2r)
// The weights are copied from a model (fused: q|k|v or q|k_rope|down, gate|up) or drawn at
// random in the right shapes (benchmarks). Projections are torch matrix products; attention is
// the decode-attention kernel (core/cuda) on a CUDA device built with MLAWB_CUDA, with RoPE,
// RMSNorm, SiLU and cache writes fused in small kernels and the whole step captured once in a
// CUDA graph and replayed; on the CPU the same step runs on torch operations and the float64
// reference attention (core/decode_attention_ref).
//
// MLA decode is absorbed: q_lat = W_uk,g^T q_nope scores against c_kv directly, the output
// W_uv,g (sum_s p_s c_s). k_up's bias adds q_nope . b_k to every score of a head alike, which
// the softmax cancels, so it is left out.
#pragma once

#include "core/config.h"

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mlawb {

class LlamaForCausalLMImpl;
class KVCache;

struct BatchedDecodeOptions {
    int64_t batch = 1;
    int64_t max_length = 2048;  // cache capacity per sequence, in tokens
    bool cuda_graph = true;     // CUDA: capture the step once, replay it every step
    // CUDA attention kernel (core/cuda/decode_attention.h DecodeKernel): 0 auto, 1 simt, 2 tensor core.
    int kernel = 0;
};

// The shape of a random MLA model for benchmarks: every layer keeps r pairs per KV head (drawn at
// random, as a 2-norm choice would differ per head) and a joint latent of n_kv d_kv.
struct RandomMlaShape {
    int64_t r = 8;
    int64_t d_kv = 64;
};

class BatchedDecoder {
public:
    // Copies the weights of `model` (original attention, or MLA with joint SVD) on the model's
    // device and dtype. Throws mlawb::Error for what it cannot run (split SVD, partial-RoPE-only
    // MLA, a CUDA device in a build without MLAWB_CUDA, a shape no kernel supports, and a model
    // whose layers are split across devices, `--device a,b`: the fused engine runs on one device,
    // error naming --device).
    BatchedDecoder(const LlamaForCausalLMImpl& model, const BatchedDecodeOptions& options);
    // Random weights of `config` (N(0, 0.02), norms near 1) made directly on `device` in `dtype`;
    // with `mla`, the converted shapes. For speed measurements: no file, no CPU copy.
    BatchedDecoder(const ModelConfig& config, const RandomMlaShape* mla, torch::Device device, torch::ScalarType dtype,
                   const BatchedDecodeOptions& options, uint64_t seed);
    ~BatchedDecoder();
    BatchedDecoder(const BatchedDecoder&) = delete;
    BatchedDecoder& operator=(const BatchedDecoder&) = delete;

    // Copies what `cache` holds (an engine cache of batch 1, after a prefill of the prompt with
    // the model this decoder was built from) into sequence b and sets its length.
    void load_sequence(int64_t b, KVCache& cache);
    // Fills the whole cache with uniform random values in [-1, 1] and sets the lengths
    // (benchmarks: a prefill of 32k tokens is not what is being measured).
    void fill_random(const std::vector<int64_t>& lengths, uint64_t seed);

    // Appends one token to every sequence (tokens [B] int64, any device) and returns the logits
    // of the next position [B, vocab] float32 on the decoder's device. The tensor is the decoder's
    // output buffer: read it before the next step.
    torch::Tensor step(const torch::Tensor& tokens);

    const std::vector<int64_t>& lengths() const;
    int64_t batch() const;
    int64_t max_length() const;
    bool mla() const;
    torch::Device device() const;
    torch::ScalarType dtype() const;
    int64_t cache_bytes_allocated() const;      // the preallocated cache, all layers
    int64_t cache_bytes_per_token() const;      // one token of one sequence, all layers
    int64_t weight_bytes_per_step() const;      // weights a step reads (every matrix once, B embedding rows)
    std::string attention_backend() const;      // "reference (cpu)", "simt", "tensor-core"
    bool graph_captured() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace mlawb
