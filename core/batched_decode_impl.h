// Internals of core/batched_decode.cpp (construction, public interface) and
// core/batched_decode_step.cpp (one decode step): the per-layer weights, the shape, small tensor
// helpers and BatchedDecoder::Impl. Not for other includers.
#pragma once

#include "core/batched_decode.h"

#include "core/attention.h"
#include "core/cuda/decode_attention.h"
#include "core/decode_attention_ref.h"
#include "core/error.h"
#include "core/kv_cache.h"
#include "core/llama_model.h"
#include "core/mla_attention.h"
#include "core/rope.h"

#include <torch/cuda.h>

#ifdef MLAWB_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <algorithm>
#include <cmath>
#include <random>

namespace mlawb {
namespace batched_detail {

// Per layer: fused weights in the decode dtype, and the layer's cache.
struct LayerWeights {
    torch::Tensor in_norm, post_norm;  // [hidden]
    torch::Tensor w_in, b_in;          // [n_in, hidden]: q | k | v, or MLA q ([rope | nope] per head) | k_rope | c_kv
    torch::Tensor w_uk;                // MLA [n_kv, d - 2r, L]
    torch::Tensor w_uv, b_uv;          // MLA [n_kv, d, L], [n_kv, d] (or undefined)
    torch::Tensor w_o, b_o;            // [hidden, n_head d]
    torch::Tensor w_gu, b_gu;          // [2 ffn, hidden]: gate | up
    torch::Tensor w_down, b_down;      // [hidden, ffn]
    torch::Tensor kept_inv_freq;       // MLA [n_kv, r] float32: inv_freq of each KV head's kept pairs
    torch::Tensor k_cache, v_cache;    // standard [B, n_kv, T, d]
    torch::Tensor latent_cache;        // MLA [B, T, L + n_kv 2r]
};

struct Shape {
    bool mla = false;
    int64_t n_layer = 0, hidden = 0, ffn = 0, vocab = 0, n_head = 0, n_kv = 0, d = 0, group = 1;
    int64_t r = 0, latent = 0;  // MLA: kept pairs per KV head, latent width L
    int64_t window = 0;
    double eps = 1e-6;
    bool tied = false;
    int64_t rope_w() const { return 2 * r; }
    int64_t nope() const { return d - 2 * r; }
    int64_t n_in() const { return mla ? n_head * d + n_kv * 2 * r + latent : (n_head + 2 * n_kv) * d; }
    int64_t latent_row() const { return latent + n_kv * 2 * r; }
    int64_t q_width() const { return mla ? latent + 2 * r : d; }  // per head, what attention reads
    int64_t v_width() const { return mla ? latent : d; }
};

inline Shape shape_of(const ModelConfig& c) {
    Shape s;
    s.n_layer = c.n_layer;
    s.hidden = c.hidden;
    s.ffn = c.ffn;
    s.vocab = c.vocab;
    s.n_head = c.n_head;
    s.n_kv = c.n_kv_head;
    s.d = c.head_dim;
    s.group = c.n_head / c.n_kv_head;
    s.window = c.sliding_window;
    s.eps = c.rms_eps;
    s.tied = c.tie_word_embeddings;
    return s;
}

inline cuda::DType kernel_dtype(torch::ScalarType t) {
    switch (t) {
        case torch::kFloat32: return cuda::DType::F32;
        case torch::kFloat16: return cuda::DType::F16;
        case torch::kBFloat16: return cuda::DType::BF16;
        default: throw Error("", "--dtype", "batched decode runs f32, bf16 or f16");
    }
}

inline torch::Tensor rotate_half(const torch::Tensor& x) {
    const int64_t half = x.size(-1) / 2;
    return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

inline torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
    return b.defined() ? torch::addmm(b, x, w.t()) : torch::mm(x, w.t());
}

// x + a W^T (+ b): one matrix product whose epilogue adds the residual.
inline torch::Tensor residual(const torch::Tensor& x, const torch::Tensor& a, const torch::Tensor& w, const torch::Tensor& b) {
    torch::Tensor out = torch::addmm(x, a, w.t());
    if (b.defined()) out.add_(b);
    return out;
}

inline void* at_offset(const torch::Tensor& t, int64_t elements) {
    return static_cast<char*>(t.data_ptr()) + elements * static_cast<int64_t>(t.element_size());
}

}  // namespace batched_detail

using namespace batched_detail;

struct BatchedDecoder::Impl {
    Shape s;
    BatchedDecodeOptions opt;
    torch::Device device{torch::kCPU};
    torch::ScalarType dtype = torch::kFloat32;
    std::vector<LayerWeights> layers;
    torch::Tensor embed, final_norm, lm_head;  // lm_head is embed when tied
    torch::Tensor inv_freq;                    // [d/2] float32 (standard RoPE)

    std::vector<int64_t> host_lengths;  // tokens held per sequence
    torch::Tensor tokens;               // [B] int64: the tokens of this step
    torch::Tensor positions;            // [B] int32: where they go (the lengths before the step)
    torch::Tensor lens;                 // [B] int32: keys each sequence sees this step (positions + 1)
    torch::Tensor q_buf;                // [B, n_head, q_width]: attention queries
    torch::Tensor out_buf;              // [B, n_head, v_width]: attention outputs
    torch::Tensor logits;               // [B, vocab] float32
    torch::Tensor workspace;            // kernel partials (uint8)
    bool use_kernels = false;           // CUDA device (MLAWB_CUDA): fused kernels + decode-attention kernel
    cuda::DecodeKernel kernel = cuda::DecodeKernel::Auto;
#ifdef MLAWB_CUDA
    std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif

    torch::TensorOptions options() const { return torch::TensorOptions().dtype(dtype).device(device); }
    void allocate();
    cuda::DecodeAttentionParams attention_params(const LayerWeights& w, const int32_t* lengths) const;
    torch::Tensor rms(const torch::Tensor& x, const torch::Tensor& weight) const;
    torch::Tensor silu_mul(const torch::Tensor& gu) const;
    void attend(const LayerWeights& w);
    torch::Tensor standard_attention(const LayerWeights& w, const torch::Tensor& proj);
    torch::Tensor mla_attention(const LayerWeights& w, const torch::Tensor& proj);
    void run_step();
    void sync_positions();
    void capture();
};

}  // namespace mlawb
