#include "core/mla_attention.h"

#include "core/error.h"

#include <cmath>
#include <algorithm>
#include <limits>

namespace mlawb {

namespace {

torch::Tensor rotate_half(const torch::Tensor& x) {
    const int64_t half = x.size(-1) / 2;
    return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

MlaAttention::MlaAttention(const ModelConfig& c, MlaLayerShape shape)
    : shape_(std::move(shape)),
      n_head_(c.n_head),
      n_kv_(c.n_kv_head),
      d_(c.head_dim),
      sliding_window_(c.sliding_window) {
    if (static_cast<int64_t>(shape_.kept_pairs.size()) != n_kv_)
        throw Error("", "mla.kept_pairs", "expected one list per KV head (" + std::to_string(n_kv_) + ")");
    r_ = static_cast<int64_t>(shape_.kept_pairs[0].size());
    const int64_t half = d_ / 2;
    std::vector<int64_t> order;
    std::vector<int64_t> kept_flat;
    for (int64_t g = 0; g < n_kv_; ++g) {
        const auto& pairs = shape_.kept_pairs[g];
        if (static_cast<int64_t>(pairs.size()) != r_)
            throw Error("", "mla.kept_pairs", "every KV head must keep the same number of pairs");
        std::vector<bool> is_rope(d_, false);
        for (int64_t k : pairs) {
            if (k < 0 || k >= half) throw Error("", "mla.kept_pairs", "pair " + std::to_string(k) + " out of range");
            is_rope[k] = is_rope[k + half] = true;
            kept_flat.push_back(k);
        }
        for (int64_t k : pairs) order.push_back(k);
        for (int64_t k : pairs) order.push_back(k + half);
        for (int64_t i = 0; i < d_; ++i)
            if (!is_rope[i]) order.push_back(i);
    }
    dim_order_ = torch::tensor(order, torch::kInt64).view({n_kv_, d_});
    torch::Tensor inv_freq = rope_inv_freq(c);
    kept_inv_freq_ = inv_freq.index_select(0, torch::tensor(kept_flat, torch::kInt64)).view({n_kv_, r_});

    using torch::nn::Linear;
    using torch::nn::LinearOptions;
    const int64_t nope = n_kv_ * (d_ - 2 * r_);
    q_proj = register_module("q_proj", Linear(LinearOptions(c.hidden, n_head_ * d_).bias(c.qkv_bias)));
    k_rope_proj = register_module("k_rope_proj", Linear(LinearOptions(c.hidden, n_kv_ * 2 * r_).bias(c.qkv_bias)));
    if (shape_.kind == MlaKind::PartialRopeOnly) {
        latent_ = 0;
        k_nope_proj = register_module("k_nope_proj", Linear(LinearOptions(c.hidden, nope).bias(c.qkv_bias)));
        v_proj = register_module("v_proj", Linear(LinearOptions(c.hidden, n_kv_ * d_).bias(c.qkv_bias)));
    } else {
        latent_ = n_kv_ * shape_.d_kv;
        const int64_t up_in = shape_.kind == MlaKind::Joint ? latent_ : latent_ / 2;
        kv_down_proj = register_module("kv_down_proj", Linear(LinearOptions(c.hidden, latent_).bias(false)));
        k_up_proj = register_module("k_up_proj", Linear(LinearOptions(up_in, nope).bias(c.qkv_bias)));
        v_up_proj = register_module("v_up_proj", Linear(LinearOptions(up_in, n_kv_ * d_).bias(c.qkv_bias)));
    }
    o_proj = register_module("o_proj", Linear(LinearOptions(n_head_ * d_, c.hidden).bias(c.o_bias)));
}

std::unique_ptr<LayerCache> MlaAttention::make_cache() const { return std::make_unique<MlaLayerCache>(); }
std::unique_ptr<LayerCache> MlaAttention::make_cache(const CacheOptions& options) const {
    return std::make_unique<MlaLayerCache>(options);
}

// RoPE on compact rope dims laid out [firsts (r), seconds (r)] per KV head.
// x: [B, n_kv, T, 2r], or grouped [B, n_kv, group, T, 2r].
void MlaAttention::rotate_compact(torch::Tensor& x, int64_t past, int64_t t, bool grouped) const {
    if (r_ == 0) return;
    // Angles in float32 on the CPU (as the standard path's tables), cast like transformers does.
    torch::Tensor pos = torch::arange(past, past + t, torch::kInt64).to(torch::kFloat32);  // [T]
    torch::Tensor angles = pos.view({1, t, 1}) * kept_inv_freq_.unsqueeze(1);              // [n_kv, T, r]
    torch::Tensor emb = torch::cat({angles, angles}, -1);                                   // [n_kv, T, 2r]
    torch::Tensor cos = emb.cos().to(x.device(), x.scalar_type()), sin = emb.sin().to(x.device(), x.scalar_type());
    if (grouped) {
        cos = cos.unsqueeze(1);  // [n_kv, 1, T, 2r]
        sin = sin.unsqueeze(1);
    }
    x = x * cos + rotate_half(x) * sin;
}

torch::Tensor MlaAttention::forward(const torch::Tensor& x, const RotaryEmbedding& /*rope*/, LayerCache& layer_cache) {
    auto& cache = dynamic_cast<MlaLayerCache&>(layer_cache);
    if (dim_order_.device() != x.device()) dim_order_ = dim_order_.to(x.device());  // follows place()
    const int64_t b = x.size(0), t = x.size(1), group = n_head_ / n_kv_;
    const int64_t past = cache.length();
    const int64_t rope_w = 2 * r_, nope_w = d_ - 2 * r_;

    // Queries, regrouped per KV head into [rope dims | nope dims]: [B, n_kv, group, T, d].
    torch::Tensor q = q_proj->forward(x).view({b, t, n_kv_, group, d_}).permute({0, 2, 3, 1, 4});
    torch::Tensor order = dim_order_.view({1, n_kv_, 1, 1, d_}).expand({b, n_kv_, group, t, d_});
    q = torch::gather(q, -1, order);
    torch::Tensor q_rope = q.narrow(-1, 0, rope_w);
    torch::Tensor q_nope = q.narrow(-1, rope_w, nope_w);
    rotate_compact(q_rope, past, t, /*grouped=*/true);

    torch::Tensor k_rope = k_rope_proj->forward(x).view({b, t, n_kv_, rope_w}).transpose(1, 2);  // [B, n_kv, T, 2r]
    rotate_compact(k_rope, past, t, /*grouped=*/false);
    // Absorbed decode reads the cache itself (block by block when quantized): only store the token.
    const bool absorbed = t == 1 && absorbed_decode_ && shape_.kind != MlaKind::PartialRopeOnly;
    if (absorbed) {
        cache.k_rope.push(k_rope);
        cache.latent.push(kv_down_proj->forward(x).unsqueeze(1));  // [B, 1, 1, L]
        torch::Tensor out = absorbed_step(torch::cat({q_rope, q_nope}, -1), q_nope, cache);  // [B, n_head, 1, d]
        return o_proj->forward(out.transpose(1, 2).reshape({b, t, n_head_ * d_}));
    }
    torch::Tensor k_rope_all = cache.k_rope.append(k_rope);

    const double scale = 1.0 / std::sqrt(static_cast<double>(d_));  // the original head_dim's scale
    torch::Tensor k_nope_all, v_all;
    if (shape_.kind == MlaKind::PartialRopeOnly) {
        k_nope_all = cache.k_nope.append(k_nope_proj->forward(x).view({b, t, n_kv_, nope_w}).transpose(1, 2));
        v_all = cache.values.append(v_proj->forward(x).view({b, t, n_kv_, d_}).transpose(1, 2));
    } else {
        torch::Tensor latent_all = cache.latent.append(kv_down_proj->forward(x).unsqueeze(1));  // [B, 1, S, L]
        torch::Tensor lat = latent_all.squeeze(1);  // [B, S, L]
        const int64_t s = lat.size(1), half = latent_ / 2;
        torch::Tensor lat_k = shape_.kind == MlaKind::Joint ? lat : lat.narrow(-1, 0, half);
        torch::Tensor lat_v = shape_.kind == MlaKind::Joint ? lat : lat.narrow(-1, half, half);
        k_nope_all = k_up_proj->forward(lat_k).view({b, s, n_kv_, nope_w}).transpose(1, 2);
        v_all = v_up_proj->forward(lat_v).view({b, s, n_kv_, d_}).transpose(1, 2);
    }
    torch::Tensor keys = torch::cat({k_rope_all, k_nope_all}, -1);                 // [B, n_kv, S, d] regrouped dims
    torch::Tensor queries = torch::cat({q_rope, q_nope}, -1).reshape({b, n_head_, t, d_});
    torch::Tensor out = grouped_causal_attention(queries, keys, v_all, past, sliding_window_, scale);
    return o_proj->forward(out.transpose(1, 2).reshape({b, t, n_head_ * d_}));
}

// One new token per sequence, scored against the cached latent without rebuilding K/V.
// q_regrouped [B, n_kv, group, 1, d] ([rope | nope]); returns [B, n_head, 1, d].
torch::Tensor MlaAttention::absorbed_step(const torch::Tensor& q_regrouped, const torch::Tensor& q_nope,
                                          MlaLayerCache& cache) const {
    const int64_t b = q_regrouped.size(0), rope_w = 2 * r_, nope_w = d_ - 2 * r_;
    const bool joint = shape_.kind == MlaKind::Joint;
    const int64_t lat_w = joint ? latent_ : latent_ / 2;
    if (cache.latent.quantized() || cache.k_rope.quantized()) return absorbed_step_blocks(q_regrouped, q_nope, cache);
    torch::Tensor lat = cache.latent.view().squeeze(1);  // [B, S, L]
    torch::Tensor lat_k = joint ? lat : lat.narrow(-1, 0, lat_w);
    torch::Tensor lat_v = joint ? lat : lat.narrow(-1, lat_w, lat_w);
    // W_up_k per KV head: [n_kv, d-2r, lat_w]; q_lat = W_up_k,g^T q_nope: [B, n_kv, group, lat_w].
    torch::Tensor w_up_k = k_up_proj->weight.view({n_kv_, nope_w, lat_w});
    torch::Tensor q_lat = torch::einsum("bgqn,gnl->bgql", {q_nope.squeeze(3), w_up_k});
    torch::Tensor scores = torch::einsum("bgql,bsl->bgqs", {q_lat, lat_k});  // [B, n_kv, group, S]
    if (k_up_proj->bias.defined()) {
        // q_nope . b_k is the same for every key: kept for exactness, softmax would cancel it.
        torch::Tensor bias_k = k_up_proj->bias.view({n_kv_, nope_w});
        scores = scores + torch::einsum("bgqn,gn->bgq", {q_nope.squeeze(3), bias_k}).unsqueeze(-1);
    }
    if (r_ > 0) {
        torch::Tensor k_rope = cache.k_rope.view();  // [B, n_kv, S, 2r]
        torch::Tensor q_rope = q_regrouped.narrow(-1, 0, rope_w).squeeze(3);  // [B, n_kv, group, 2r]
        scores = scores + torch::einsum("bgqr,bgsr->bgqs", {q_rope, k_rope});
    }
    const int64_t s = lat.size(1);
    if (sliding_window_ > 0 && s > sliding_window_) {
        // Keys more than window - 1 positions behind the query are masked (Mistral).
        scores.narrow(-1, 0, s - sliding_window_).fill_(-std::numeric_limits<float>::infinity());
    }
    torch::Tensor probs = torch::softmax(scores * (1.0 / std::sqrt(static_cast<double>(d_))), -1, torch::kFloat32)
                              .to(scores.scalar_type());  // float32 softmax; a no-op cast for f32
    torch::Tensor out_lat = torch::einsum("bgqs,bsl->bgql", {probs, lat_v});  // [B, n_kv, group, lat_w]
    torch::Tensor w_up_v = v_up_proj->weight.view({n_kv_, d_, lat_w});
    torch::Tensor out = torch::einsum("bgql,gdl->bgqd", {out_lat, w_up_v});   // [B, n_kv, group, d]
    if (v_up_proj->bias.defined()) out = out + v_up_proj->bias.view({1, n_kv_, 1, d_});
    return out.reshape({b, n_head_, 1, d_});
}

// absorbed_step over a quantized cache: the latent and k_rope are dequantized one block of
// kBlockTokens tokens at a time (never the whole cache), with an online softmax (running max m,
// normalizer l, unnormalized output acc, all float32) as FlashAttention does:
//   m' = max(m, max_s z_s), l' = l e^(m - m') + sum_s e^(z_s - m'), acc' = acc e^(m - m') + sum_s e^(z_s - m') c_s
// so the result equals softmax(z) . c_v up to rounding.
torch::Tensor MlaAttention::absorbed_step_blocks(const torch::Tensor& q_regrouped, const torch::Tensor& q_nope,
                                                 MlaLayerCache& cache) const {
    constexpr int64_t kBlockTokens = 256;
    const int64_t b = q_regrouped.size(0), group = n_head_ / n_kv_, rope_w = 2 * r_, nope_w = d_ - 2 * r_;
    const bool joint = shape_.kind == MlaKind::Joint;
    const int64_t lat_w = joint ? latent_ : latent_ / 2;
    const torch::Tensor w_up_k = k_up_proj->weight.view({n_kv_, nope_w, lat_w});
    const torch::Tensor q_lat = torch::einsum("bgqn,gnl->bgql", {q_nope.squeeze(3), w_up_k});  // [B, n_kv, group, lat_w]
    const torch::Tensor q_rope = q_regrouped.narrow(-1, 0, rope_w).squeeze(3);                // [B, n_kv, group, 2r]
    torch::Tensor bias_score;  // [B, n_kv, group, 1]: q_nope . b_k, the same for every key
    if (k_up_proj->bias.defined())
        bias_score = torch::einsum("bgqn,gn->bgq", {q_nope.squeeze(3), k_up_proj->bias.view({n_kv_, nope_w})}).unsqueeze(-1);
    const double scale = 1.0 / std::sqrt(static_cast<double>(d_));

    const int64_t s = cache.latent.length();
    // Mistral's window: keys more than window - 1 positions behind the query are skipped.
    const int64_t first = sliding_window_ > 0 && s > sliding_window_ ? s - sliding_window_ : 0;
    const auto f32 = q_lat.options().dtype(torch::kFloat32);
    torch::Tensor m = torch::full({b, n_kv_, group, 1}, -std::numeric_limits<float>::infinity(), f32);
    torch::Tensor l = torch::zeros({b, n_kv_, group, 1}, f32);
    torch::Tensor acc = torch::zeros({b, n_kv_, group, lat_w}, f32);
    for (int64_t start = first; start < s; start += kBlockTokens) {
        const int64_t n = std::min(kBlockTokens, s - start);
        torch::Tensor lat = cache.latent.range(start, n).squeeze(1).to(q_lat.scalar_type());  // [B, n, L]
        torch::Tensor lat_k = joint ? lat : lat.narrow(-1, 0, lat_w);
        torch::Tensor lat_v = joint ? lat : lat.narrow(-1, lat_w, lat_w);
        torch::Tensor z = torch::einsum("bgql,bsl->bgqs", {q_lat, lat_k});  // [B, n_kv, group, n]
        if (bias_score.defined()) z = z + bias_score;
        if (r_ > 0) {
            torch::Tensor k_rope = cache.k_rope.range(start, n).to(q_rope.scalar_type());  // [B, n_kv, n, 2r]
            z = z + torch::einsum("bgqr,bgsr->bgqs", {q_rope, k_rope});
        }
        z = z.to(torch::kFloat32) * scale;
        torch::Tensor m_new = torch::maximum(m, std::get<0>(z.max(-1, /*keepdim=*/true)));
        torch::Tensor p = torch::exp(z - m_new), correction = torch::exp(m - m_new);
        l = l * correction + p.sum(-1, /*keepdim=*/true);
        acc = acc * correction + torch::einsum("bgqs,bsl->bgql", {p, lat_v.to(torch::kFloat32)});
        m = m_new;
    }
    torch::Tensor out_lat = (acc / l).to(q_lat.scalar_type());  // [B, n_kv, group, lat_w]
    torch::Tensor w_up_v = v_up_proj->weight.view({n_kv_, d_, lat_w});
    torch::Tensor out = torch::einsum("bgql,gdl->bgqd", {out_lat, w_up_v});  // [B, n_kv, group, d]
    if (v_up_proj->bias.defined()) out = out + v_up_proj->bias.view({1, n_kv_, 1, d_});
    return out.reshape({b, n_head_, 1, d_});
}

}  // namespace mlawb
