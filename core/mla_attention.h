// Multi-head Latent Attention converted from a standard attention (MHA2MLA, arXiv 2502.14837).
//
// Per layer, with r kept RoPE pairs per KV head g (pair k = dims k and k + d/2) and a latent of
// width L = n_kv * d_kv (joint SVD) or two halves of n_kv * d_kv / 2 (split SVD):
//   q       = W_q x                            full head_dim d, RoPE only on g's kept dims
//   k_rope  = W_k_rope x                       [n_kv, 2r], RoPE applied, cached
//   c_kv    = W_down x                         [L], cached (the only other thing cached)
//   k_nope  = W_up_k c_kv (+ b)                [n_kv, d - 2r], rebuilt, never cached
//   v       = W_up_v c_kv (+ b)                [n_kv, d], rebuilt, never cached
//   score   = (q_rope . k_rope + q_nope . k_nope) / sqrt(d)
// Without SVD (svd=none, partial RoPE only) k_nope and v are cached as they are.
//
// Within a head the dims are regrouped as [kept firsts, kept seconds, not kept]: a dot product
// does not change under a permutation applied to both sides, so the plain path reuses the
// standard grouped attention. Absorbed decode (one new token) scores against the latent
// directly: q_lat = W_up_k,g^T q_nope, score = q_lat . c_kv, output = W_up_v,g (sum_s p_s c_s).
#pragma once

#include "core/attention.h"

#include <vector>

namespace mlawb {

enum class MlaKind { PartialRopeOnly, Joint, Split };

// What a converted layer caches per token: c_kv and k_rope (or k_rope, k_nope and v).
class MlaLayerCache : public LayerCache {
public:
    explicit MlaLayerCache(const CacheOptions& options = {})
        : latent(options), k_rope(options), k_nope(options), values(options) {}
    CachedSequence latent;  // [B, 1, T, L] (empty for PartialRopeOnly)
    CachedSequence k_rope;  // [B, n_kv, T, 2r] after RoPE
    CachedSequence k_nope;  // [B, n_kv, T, d - 2r] (PartialRopeOnly only)
    CachedSequence values;  // [B, n_kv, T, d]      (PartialRopeOnly only)

    int64_t length() const override { return k_rope.length(); }
    int64_t bytes() const override { return latent.bytes() + k_rope.bytes() + k_nope.bytes() + values.bytes(); }
    int64_t allocated_bytes() const override {
        return latent.allocated_bytes() + k_rope.allocated_bytes() + k_nope.allocated_bytes() + values.allocated_bytes();
    }
    void clear() override {
        latent.clear();
        k_rope.clear();
        k_nope.clear();
        values.clear();
    }
};

struct MlaLayerShape {
    MlaKind kind = MlaKind::Joint;
    std::vector<std::vector<int64_t>> kept_pairs;  // [n_kv][r] ascending pair indices
    int64_t d_kv = 0;                              // latent width per KV head (0 for PartialRopeOnly)
};

class MlaAttention : public AttentionBase {
public:
    MlaAttention(const ModelConfig& config, MlaLayerShape shape);
    torch::Tensor forward(const torch::Tensor& x, const RotaryEmbedding& rope, LayerCache& cache) override;
    std::unique_ptr<LayerCache> make_cache() const override;
    std::unique_ptr<LayerCache> make_cache(const CacheOptions& options) const override;

    // Decode of single tokens scores against the latent (absorbed); off = rebuild K/V (reference).
    void set_absorbed_decode(bool on) { absorbed_decode_ = on; }
    const MlaLayerShape& shape() const { return shape_; }
    int64_t rope_dims() const { return 2 * r_; }        // 2r
    int64_t latent_width() const { return latent_; }     // L

    torch::nn::Linear q_proj{nullptr};       // [n_head d, hidden]
    torch::nn::Linear k_rope_proj{nullptr};  // [n_kv 2r, hidden]
    torch::nn::Linear kv_down_proj{nullptr}; // [L, hidden], no bias (Joint, Split)
    torch::nn::Linear k_up_proj{nullptr};    // [n_kv (d-2r), L or L/2] (Joint, Split)
    torch::nn::Linear v_up_proj{nullptr};    // [n_kv d, L or L/2]       (Joint, Split)
    torch::nn::Linear k_nope_proj{nullptr};  // [n_kv (d-2r), hidden]    (PartialRopeOnly)
    torch::nn::Linear v_proj{nullptr};       // [n_kv d, hidden]         (PartialRopeOnly)
    torch::nn::Linear o_proj{nullptr};       // [hidden, n_head d]

    // Per KV head, the head's dims regrouped: rope dims (2r) then nope dims (d - 2r). [n_kv, d]
    const torch::Tensor& dim_order() const { return dim_order_; }

private:
    void rotate_compact(torch::Tensor& x, int64_t past, int64_t t, bool grouped) const;
    torch::Tensor absorbed_step(const torch::Tensor& q_rope, const torch::Tensor& q_nope, MlaLayerCache& cache) const;
    // The same over a quantized cache, dequantizing one block of tokens at a time.
    torch::Tensor absorbed_step_blocks(const torch::Tensor& q_regrouped, const torch::Tensor& q_nope,
                                       MlaLayerCache& cache) const;

    MlaLayerShape shape_;
    int64_t n_head_, n_kv_, d_, r_, latent_, sliding_window_;
    torch::Tensor dim_order_;     // [n_kv, d] int64
    torch::Tensor kept_inv_freq_; // [n_kv, r] float32
    bool absorbed_decode_ = true;
};

}  // namespace mlawb
