#include "analysis/calibration.h"

#include "core/attention.h"
#include "core/error.h"
#include "core/llama_model.h"

#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>

namespace mlawb {

std::vector<CalibrationWindow> calibration_windows(int64_t n_tokens, int64_t windows, int64_t seq_len) {
    if (windows < 1) throw Error("", "windows", "must be at least 1 (got " + std::to_string(windows) + ")");
    if (seq_len < 2) throw Error("", "seq_len", "must be at least 2 tokens (got " + std::to_string(seq_len) + ")");
    std::vector<CalibrationWindow> plan;
    for (int64_t w = 0; w < windows; ++w) {
        const int64_t begin = w * seq_len;
        const int64_t length = std::min(seq_len, n_tokens - begin);
        // A final window shorter than 2 tokens has no attention to speak of; it is dropped.
        if (length < 2) break;
        plan.push_back({begin, length});
        if (length < seq_len) break;
    }
    return plan;
}

namespace {

// The standard attention of every layer; a converted (MLA) layer has no q_proj/k_proj whose
// pair norms the 2-norm criterion is defined on, so such a model is refused.
std::vector<std::shared_ptr<LlamaAttention>> standard_attentions(LlamaForCausalLMImpl& model) {
    std::vector<std::shared_ptr<LlamaAttention>> out;
    for (int64_t l = 0; l < model.config().n_layer; ++l) {
        auto attention = std::dynamic_pointer_cast<LlamaAttention>(model.layer(l)->self_attn);
        if (!attention)
            throw Error("", "model",
                        "layer " + std::to_string(l) +
                            " no longer has standard attention (already converted to MLA?); 2-norm scores are "
                            "calibrated on the original MHA/GQA model");
        out.push_back(std::move(attention));
    }
    return out;
}

// Sum over the T tokens of the pair norms ||(x[.., k], x[.., k + d/2])||_2 of a projection
// output [1, T, heads * d] in the rotate-half layout -> [heads, d/2] float64.
torch::Tensor summed_pair_norms(const torch::Tensor& projected, int64_t heads, int64_t head_dim) {
    const int64_t t = projected.size(1);
    // [T, heads, 2, d/2]: index 0 of dim 2 is the first half (dim k), 1 the second (k + d/2).
    torch::Tensor halves = projected.reshape({t, heads, 2, head_dim / 2});
    torch::Tensor norms = halves.pow(2).sum(2).sqrt();  // [T, heads, d/2]
    return norms.to(torch::kFloat64).sum(0).cpu();      // tokens accumulate in double, on the host
}

void poll_cancel(const CalibrationOptions& options) {
    if (options.cancelled && options.cancelled()) throw Cancelled();
}

}  // namespace

RopeScores calibrate_rope_scores(LlamaForCausalLMImpl& model, const std::vector<int64_t>& ids,
                                 const CalibrationOptions& options) {
    // Variant first: a typo should not cost a whole calibration.
    const auto& variants = RopeScores::variant_names();
    if (std::find(variants.begin(), variants.end(), options.variant) == variants.end())
        throw Error("", "variant", "unknown variant '" + options.variant + "'; valid values: product, sum");
    const std::vector<CalibrationWindow> plan =
        calibration_windows(static_cast<int64_t>(ids.size()), options.windows, options.seq_len);
    if (plan.empty())
        throw Error("", "text",
                    "too short to calibrate: needs at least 2 tokens (has " + std::to_string(ids.size()) + ")");

    const ModelConfig& c = model.config();
    const int64_t n_layer = c.n_layer, n_head = c.n_head, n_kv = c.n_kv_head, d = c.head_dim;
    if (d % 2 != 0) throw Error(c.source, "head_dim", "must be even for RoPE pairs");
    const std::vector<std::shared_ptr<LlamaAttention>> attentions = standard_attentions(model);

    torch::NoGradGuard no_grad;
    // Running sums over all calibration tokens, in double: [L][n_head][d/2] and [L][n_kv][d/2].
    torch::Tensor q_sums = torch::zeros({n_layer, n_head, d / 2}, torch::kFloat64);
    torch::Tensor k_sums = torch::zeros({n_layer, n_kv, d / 2}, torch::kFloat64);
    const torch::Tensor all_ids = torch::tensor(ids, torch::kInt64);
    int64_t tokens = 0;
    for (size_t w = 0; w < plan.size(); ++w) {
        poll_cancel(options);
        // Each window starts at position 0 from an empty cache, as perplexity windows do.
        KVCache cache = model.make_cache();
        torch::Tensor h = model.model->embed_tokens->forward(
            all_ids.narrow(0, plan[w].begin, plan[w].length).unsqueeze(0).to(model.device()));
        for (int64_t l = 0; l < n_layer; ++l) {
            poll_cancel(options);
            DecoderLayer layer = model.layer(l);
            LlamaAttention& attention = *attentions[l];
            // Layers split across devices (pipeline): the hidden state follows the layer.
            if (h.device() != model.layer_device(l)) h = h.to(model.layer_device(l));
            // The projections the layer's attention will compute again; norms are taken before
            // RoPE, which rotates each pair and so leaves its norm unchanged.
            torch::Tensor x = layer->input_layernorm->forward(h);
            q_sums[l] += summed_pair_norms(attention.q_proj->forward(x), n_head, d);
            k_sums[l] += summed_pair_norms(attention.k_proj->forward(x), n_kv, d);
            h = layer->forward(h, model.rope(), cache.layer(l));
        }
        tokens += plan[w].length;
        if (options.progress) options.progress(static_cast<int64_t>(w + 1), static_cast<int64_t>(plan.size()));
    }

    RopeScores s;
    s.n_layer = n_layer;
    s.n_head = n_head;
    s.n_kv_head = n_kv;
    s.n_pairs = d / 2;
    // Means over every calibration token (MHA2MLA: Qn = E_t ||q_t^(k)||, Kn likewise).
    torch::Tensor q_means = (q_sums / static_cast<double>(tokens)).contiguous();
    torch::Tensor k_means = (k_sums / static_cast<double>(tokens)).contiguous();
    s.q_norms.assign(q_means.data_ptr<double>(), q_means.data_ptr<double>() + q_means.numel());
    s.k_norms.assign(k_means.data_ptr<double>(), k_means.data_ptr<double>() + k_means.numel());
    s.combine(options.variant);
    s.provenance.windows = static_cast<int64_t>(plan.size());
    s.provenance.seq_len = options.seq_len;
    s.provenance.tokens = tokens;
    return s;
}

RopeScores calibrate_rope_scores_from_file(LoadedModel& model, const std::string& text_file,
                                           const CalibrationOptions& options) {
    std::ifstream in(text_file, std::ios::binary);
    if (!in) throw Error(text_file, "", "cannot open calibration text");
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw Error(text_file, "", "read failed");
    const std::vector<int32_t> ids32 = model.tokenizer.encode(text.str());
    if (ids32.size() < 2)
        throw Error(text_file, "", "too short to calibrate: needs at least 2 tokens (has " + std::to_string(ids32.size()) + ")");
    RopeScores s = calibrate_rope_scores(*model.model, std::vector<int64_t>(ids32.begin(), ids32.end()), options);
    s.provenance.model = model.folder;
    s.provenance.text_file = text_file;
    return s;
}

}  // namespace mlawb
