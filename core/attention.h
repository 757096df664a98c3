// Self-attention of one decoder layer. AttentionBase is what a decoder layer holds, so a
// later conversion can swap standard attention for an MLA attention with its own cache
// (`replace_module("self_attn", ...)`), keeping the checkpoint's names.
#pragma once

#include "core/config.h"
#include "core/kv_cache.h"
#include "core/rope.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include <memory>

namespace mlawb {

class AttentionBase : public torch::nn::Module {
public:
    // x [B, T, hidden] for the T positions that follow what `cache` holds; appends this step's
    // keys/values (or latents) to `cache` and returns [B, T, hidden].
    virtual torch::Tensor forward(const torch::Tensor& x, const RotaryEmbedding& rope, LayerCache& cache) = 0;
    virtual std::unique_ptr<LayerCache> make_cache() const = 0;
    // A cache storing its values as `options` says (quantized when options.bits < 16). The
    // default refuses quantization: an attention kind opts in by overriding it.
    virtual std::unique_ptr<LayerCache> make_cache(const CacheOptions& options) const;
};

// RoPE tables for positions past..past+t-1 on `like`'s device and in its dtype.
RopeTables rope_tables_for(const RotaryEmbedding& rope, int64_t past, int64_t t, const torch::Tensor& like);

// Additive attention mask [T, S] for T queries at positions past..past+T-1 over S = past + T
// keys: -inf above the causal diagonal and, with a sliding window w > 0, for keys more than
// w - 1 positions behind the query (transformers' Mistral convention). Undefined tensor when
// nothing is masked (single-token decode without a window).
torch::Tensor causal_mask(int64_t past, int64_t t, int64_t sliding_window, const torch::TensorOptions& options);

// Causal softmax(q k^T * scale + mask) v with grouped KV heads, no repeat of K/V in memory.
// q [B, n_head, T, d_qk] at positions past..past+T-1, k [B, n_kv, S, d_qk], v [B, n_kv, S, d_v]
// with S = past + T -> [B, n_head, T, d_v]. Long prompts run in blocks of query rows, each
// against only the keys it may see, so the score matrix stays small and half of it is skipped.
torch::Tensor grouped_causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       int64_t past, int64_t sliding_window, double scale);

// Llama / Mistral / Qwen2 attention: q/k/v/o projections named as in the checkpoint, full
// RoPE on q and k, standard cache of K (after RoPE) and V.
class LlamaAttention : public AttentionBase {
public:
    explicit LlamaAttention(const ModelConfig& config);
    torch::Tensor forward(const torch::Tensor& x, const RotaryEmbedding& rope, LayerCache& cache) override;
    std::unique_ptr<LayerCache> make_cache() const override;
    std::unique_ptr<LayerCache> make_cache(const CacheOptions& options) const override;

    torch::nn::Linear q_proj{nullptr};  // [n_head * d, hidden]
    torch::nn::Linear k_proj{nullptr};  // [n_kv * d, hidden]
    torch::nn::Linear v_proj{nullptr};  // [n_kv * d, hidden]
    torch::nn::Linear o_proj{nullptr};  // [hidden, n_head * d]

private:
    int64_t n_head_, n_kv_head_, head_dim_, sliding_window_;
};

}  // namespace mlawb
