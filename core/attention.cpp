#include "core/attention.h"

#include <cmath>
#include <algorithm>
#include <limits>

namespace mlawb {

RopeTables rope_tables_for(const RotaryEmbedding& rope, int64_t past, int64_t t, const torch::Tensor& like) {
    RopeTables tables = rope.tables(past, t);  // float32 on the CPU
    // transformers casts cos/sin to the activations' dtype; a no-op for CPU float32.
    tables.cos = tables.cos.to(like.device(), like.scalar_type());
    tables.sin = tables.sin.to(like.device(), like.scalar_type());
    return tables;
}

torch::Tensor causal_mask(int64_t past, int64_t t, int64_t sliding_window, const torch::TensorOptions& options) {
    const int64_t s = past + t;
    if (t == 1 && (sliding_window <= 0 || s <= sliding_window)) return {};
    const torch::TensorOptions ints = torch::TensorOptions().dtype(torch::kInt64).device(options.device());
    torch::Tensor q_pos = torch::arange(past, s, ints).unsqueeze(1);  // [T, 1]
    torch::Tensor k_pos = torch::arange(0, s, ints).unsqueeze(0);     // [1, S]
    torch::Tensor blocked = k_pos > q_pos;
    if (sliding_window > 0) blocked = blocked.logical_or(q_pos - k_pos >= sliding_window);
    torch::Tensor mask = torch::zeros({t, s}, options);
    return mask.masked_fill(blocked, -std::numeric_limits<float>::infinity());
}

namespace {

// One block of query rows against keys [0, S): q [B, n_kv, g, t, d] -> [B, n_kv, g, t, d_v].
torch::Tensor attend_block(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                           const torch::Tensor& mask, double scale) {
    const int64_t b = q.size(0), n_kv = q.size(1), group = q.size(2), t = q.size(3);
    // Query head h reads KV head h / group (transformers' repeat_kv order), so the g query
    // heads of a group are stacked on the row axis of one matmul against their KV head.
    torch::Tensor qg = q.reshape({b, n_kv, group * t, q.size(4)});
    torch::Tensor scores = torch::matmul(qg, k.transpose(-1, -2)).mul_(scale);  // [B, n_kv, g*t, S]
    if (mask.defined()) scores = scores.view({b, n_kv, group, t, -1}).add_(mask).view({b, n_kv, group * t, -1});
    // bf16/f16 scores: the softmax runs in float32 (as sdpa does), probabilities back in the dtype.
    torch::Tensor probs = scores.scalar_type() == torch::kFloat32 || scores.scalar_type() == torch::kFloat64  // f64: gradient check
                              ? torch::softmax(scores, -1)
                              : torch::softmax(scores, -1, torch::kFloat32).to(scores.scalar_type());
    return torch::matmul(probs, v).view({b, n_kv, group, t, v.size(3)});
}

// Query rows per block: 256 rows x 2048 keys x 4 heads of float32 is 8 MB of scores.
constexpr int64_t kQueryBlock = 256;

}  // namespace

torch::Tensor grouped_causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       int64_t past, int64_t sliding_window, double scale) {
    const int64_t b = q.size(0), n_head = q.size(1), t = q.size(2), n_kv = k.size(1);
    const int64_t group = n_head / n_kv;
    torch::Tensor q5 = q.view({b, n_kv, group, t, q.size(3)});
    if (t <= kQueryBlock) {
        torch::Tensor mask = causal_mask(past, t, sliding_window, q.options());
        return attend_block(q5, k, v, mask, scale).view({b, n_head, t, v.size(3)});
    }
    torch::Tensor out = torch::empty({b, n_kv, group, t, v.size(3)}, q.options());
    for (int64_t begin = 0; begin < t; begin += kQueryBlock) {
        const int64_t rows = std::min(kQueryBlock, t - begin);
        const int64_t keys = past + begin + rows;  // causal: later keys are never visible
        torch::Tensor mask = causal_mask(past + begin, rows, sliding_window, q.options());
        out.narrow(3, begin, rows)
            .copy_(attend_block(q5.narrow(3, begin, rows), k.narrow(2, 0, keys), v.narrow(2, 0, keys), mask, scale));
    }
    return out.view({b, n_head, t, v.size(3)});
}

LlamaAttention::LlamaAttention(const ModelConfig& c)
    : n_head_(c.n_head), n_kv_head_(c.n_kv_head), head_dim_(c.head_dim), sliding_window_(c.sliding_window) {
    using torch::nn::LinearOptions;
    q_proj = register_module("q_proj", torch::nn::Linear(LinearOptions(c.hidden, c.n_head * c.head_dim).bias(c.qkv_bias)));
    k_proj = register_module("k_proj", torch::nn::Linear(LinearOptions(c.hidden, c.n_kv_head * c.head_dim).bias(c.qkv_bias)));
    v_proj = register_module("v_proj", torch::nn::Linear(LinearOptions(c.hidden, c.n_kv_head * c.head_dim).bias(c.qkv_bias)));
    o_proj = register_module("o_proj", torch::nn::Linear(LinearOptions(c.n_head * c.head_dim, c.hidden).bias(c.o_bias)));
}

std::unique_ptr<LayerCache> AttentionBase::make_cache(const CacheOptions& options) const {
    TORCH_CHECK(!options.quantized(), "this attention kind has no quantized cache");
    return make_cache();
}

std::unique_ptr<LayerCache> LlamaAttention::make_cache() const { return std::make_unique<StandardLayerCache>(); }
std::unique_ptr<LayerCache> LlamaAttention::make_cache(const CacheOptions& options) const {
    return std::make_unique<StandardLayerCache>(options);
}

torch::Tensor LlamaAttention::forward(const torch::Tensor& x, const RotaryEmbedding& rope, LayerCache& layer_cache) {
    auto& cache = dynamic_cast<StandardLayerCache&>(layer_cache);
    const int64_t b = x.size(0), t = x.size(1);
    const int64_t past = cache.length();
    // [B, T, H*d] -> [B, H, T, d]
    torch::Tensor q = q_proj->forward(x).view({b, t, n_head_, head_dim_}).transpose(1, 2);
    torch::Tensor k = k_proj->forward(x).view({b, t, n_kv_head_, head_dim_}).transpose(1, 2);
    torch::Tensor v = v_proj->forward(x).view({b, t, n_kv_head_, head_dim_}).transpose(1, 2);
    RopeTables tables = rope_tables_for(rope, past, t, x);
    q = apply_rope(q, tables);
    k = apply_rope(k, tables);
    torch::Tensor keys = cache.keys.append(k);
    torch::Tensor values = cache.values.append(v);
    torch::Tensor out = grouped_causal_attention(q, keys, values, past, sliding_window_,
                                                 1.0 / std::sqrt(static_cast<double>(head_dim_)));
    return o_proj->forward(out.transpose(1, 2).reshape({b, t, n_head_ * head_dim_}));
}

}  // namespace mlawb
