#include "analysis/convert.h"

#include "core/error.h"
#include "core/llama_model.h"
#include "core/mla_attention.h"


namespace mlawb {

namespace {

struct LowRank {
    torch::Tensor down;  // [rank, in]
    torch::Tensor up;    // [out, rank]
};

// Truncated SVD in float64: m [out, in] ~ up @ down, Sigma wholly in `up`.
LowRank truncated_svd(const torch::Tensor& m, int64_t rank) {
    auto [u, s, vh] = at::linalg_svd(m.to(torch::kFloat64), /*full_matrices=*/false, /*driver=*/c10::nullopt);
    rank = std::min<int64_t>(rank, s.size(0));
    LowRank out;
    out.down = vh.narrow(0, 0, rank).to(torch::kFloat32);
    out.up = (u.narrow(1, 0, rank) * s.narrow(0, 0, rank).unsqueeze(0)).to(torch::kFloat32);
    return out;
}

// Pads a rank-deficient factorization (rank < wanted) with zero rows/columns, so the cache
// keeps the width the memory model states.
LowRank pad_rank(LowRank f, int64_t wanted) {
    const int64_t have = f.down.size(0);
    if (have == wanted) return f;
    f.down = torch::cat({f.down, torch::zeros({wanted - have, f.down.size(1)})}, 0);
    f.up = torch::cat({f.up, torch::zeros({f.up.size(0), wanted - have})}, 1);
    return f;
}

void copy_linear(torch::nn::Linear& dst, const torch::Tensor& weight, const torch::Tensor& bias) {
    dst->weight.copy_(weight);
    if (bias.defined()) dst->bias.copy_(bias);
}

}  // namespace

void convert_to_mla(LlamaForCausalLMImpl& model, const MlaSpec& spec, const KeptPairs& kept,
                    const ConvertOptions& options) {
    const ModelConfig& c = model.config();
    torch::NoGradGuard no_grad;
    if (kept.n_layer != c.n_layer || kept.n_kv_head != c.n_kv_head || kept.n_pairs != c.head_dim / 2)
        throw Error("", "--mla", "kept-pair mask does not match the model's layers / KV heads / pairs");
    MlaKind kind = spec.svd == SvdMode::Joint ? MlaKind::Joint
                   : spec.svd == SvdMode::Split ? MlaKind::Split
                                                : MlaKind::PartialRopeOnly;
    for (int64_t l = 0; l < c.n_layer; ++l) {
        if (options.cancelled && options.cancelled()) throw Cancelled();
        DecoderLayer layer = model.layer(l);
        auto original = std::dynamic_pointer_cast<LlamaAttention>(layer->self_attn);
        if (!original) throw Error("", "--mla", "the model is already converted to MLA (layer " + std::to_string(l) + ")");
        MlaLayerShape shape;
        shape.kind = kind;
        shape.d_kv = kind == MlaKind::PartialRopeOnly ? 0 : spec.d_kv;
        for (int64_t g = 0; g < c.n_kv_head; ++g) shape.kept_pairs.push_back(kept.pairs(l, g));
        auto mla = std::make_shared<MlaAttention>(c, shape);

        // Rows of W_k (and its bias) per KV head in the regrouped order [rope | nope].
        const int64_t d = c.head_dim, rope_w = mla->rope_dims();
        torch::Tensor head_base = torch::arange(c.n_kv_head, torch::kInt64).unsqueeze(1) * d;  // [n_kv, 1]
        torch::Tensor rows = (mla->dim_order() + head_base);                                  // [n_kv, d]
        torch::Tensor rope_rows = rows.narrow(1, 0, rope_w).reshape({-1});
        torch::Tensor nope_rows = rows.narrow(1, rope_w, d - rope_w).reshape({-1});
        const torch::Tensor& wk = original->k_proj->weight;  // [n_kv d, hidden]
        const torch::Tensor& wv = original->v_proj->weight;  // [n_kv d, hidden]
        torch::Tensor bk = original->k_proj->bias, bv = original->v_proj->bias;
        auto rows_of = [](const torch::Tensor& t, const torch::Tensor& idx) {
            return t.defined() ? t.index_select(0, idx) : torch::Tensor();
        };
        torch::Tensor wk_nope = wk.index_select(0, nope_rows);

        copy_linear(mla->q_proj, original->q_proj->weight, original->q_proj->bias);
        copy_linear(mla->o_proj, original->o_proj->weight, original->o_proj->bias);
        copy_linear(mla->k_rope_proj, wk.index_select(0, rope_rows), rows_of(bk, rope_rows));
        if (kind == MlaKind::PartialRopeOnly) {
            copy_linear(mla->k_nope_proj, wk_nope, rows_of(bk, nope_rows));
            copy_linear(mla->v_proj, wv, bv);
        } else if (kind == MlaKind::Joint) {
            const int64_t rank = c.n_kv_head * spec.d_kv;
            LowRank f = pad_rank(truncated_svd(torch::cat({wk_nope, wv}, 0), rank), rank);
            const int64_t nope_out = wk_nope.size(0);
            mla->kv_down_proj->weight.copy_(f.down);
            copy_linear(mla->k_up_proj, f.up.narrow(0, 0, nope_out), rows_of(bk, nope_rows));
            copy_linear(mla->v_up_proj, f.up.narrow(0, nope_out, f.up.size(0) - nope_out), bv);
        } else {
            const int64_t half = c.n_kv_head * spec.d_kv / 2;
            LowRank fk = pad_rank(truncated_svd(wk_nope, half), half);
            LowRank fv = pad_rank(truncated_svd(wv, half), half);
            mla->kv_down_proj->weight.copy_(torch::cat({fk.down, fv.down}, 0));
            copy_linear(mla->k_up_proj, fk.up, rows_of(bk, nope_rows));
            copy_linear(mla->v_up_proj, fv.up, bv);
        }
        for (auto& p : mla->parameters()) p.set_requires_grad(false);
        layer->replace_attention(mla);
        if (options.progress) options.progress(l + 1, c.n_layer);
    }
}

}  // namespace mlawb
