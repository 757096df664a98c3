// KV-cache memory model; the layouts and byte rules are described in memory_model.h.
#include "analysis/memory_model.h"

#include "analysis/mla_spec.h"
#include "core/config.h"
#include "core/error.h"

#include <algorithm>

namespace mlawb {

namespace {

constexpr double kUnquantizedBits = 16.0;  // the original cache: fp16 / bf16
constexpr double kGroupOverheadBytes = 4.0;  // fp16 scale + fp16 zero point per group

CachedPart make_part(const char* name, int64_t elements, int kv_bits, int64_t kv_group) {
    CachedPart part;
    part.name = name;
    part.elements_per_token_layer = elements;
    // Groups along the token's values; a part shorter than a group is one group.
    part.groups_per_token_layer = kv_bits < 16 ? (elements + kv_group - 1) / kv_group : 0;
    return part;
}

double percent_smaller(double value, double original) { return original > 0 ? 100.0 * (1.0 - value / original) : 0.0; }

}  // namespace

MemoryEstimate estimate_memory(const ModelConfig& config, const MlaSpec& spec, int64_t ctx, int64_t batch,
                               int compute_element_bytes) {
    spec.validate_sizes(config);
    if (ctx < 1) throw Error("", "ctx", "must be at least 1 token (got " + std::to_string(ctx) + ")");
    if (batch < 1) throw Error("", "batch", "must be at least 1 sequence (got " + std::to_string(batch) + ")");
    if (compute_element_bytes != 2 && compute_element_bytes != 4)
        throw Error("", "compute_element_bytes", "must be 2 (fp16) or 4 (float32), got " + std::to_string(compute_element_bytes));
    if (spec.svd != SvdMode::None && spec.kept_pairs(config) < 0)
        throw Error("", "--mla", "r: the memory model needs r for strategy custom");

    const int64_t n_kv = config.n_kv_head, d = config.head_dim;
    MemoryEstimate m;
    m.n_layer = config.n_layer;
    m.kept_pairs = spec.kept_pairs(config);
    m.kv_bits = spec.kv_bits;
    m.kv_group = spec.kv_group;
    m.context_tokens = ctx;
    m.batch = batch;
    m.residual_tokens = spec.kv_bits < 16 ? std::min(ctx, spec.residual) : 0;

    if (spec.svd == SvdMode::None) {
        // The original and partial-RoPE caches both hold full K and V (see the header).
        m.layout = spec.strategy != "full" ? "partial-RoPE" : config.is_mha() ? "MHA" : "GQA";
        m.parts[0] = make_part("k", n_kv * d, spec.kv_bits, spec.kv_group);
        m.parts[1] = make_part("v", n_kv * d, spec.kv_bits, spec.kv_group);
    } else {
        m.layout = spec.svd == SvdMode::Joint ? "MLA joint" : "MLA split";
        m.parts[0] = make_part("c_kv", n_kv * spec.d_kv, spec.kv_bits, spec.kv_group);
        m.parts[1] = make_part("k_rope", n_kv * 2 * m.kept_pairs, spec.kv_bits, spec.kv_group);
    }

    m.original_elements_per_token_layer = config.kv_elements_per_token_layer();
    for (const CachedPart& part : m.parts) {
        m.elements_per_token_layer += part.elements_per_token_layer;
        m.groups_per_token_layer += part.groups_per_token_layer;
    }
    m.original_elements_per_token = m.original_elements_per_token_layer * m.n_layer;
    m.elements_per_token = m.elements_per_token_layer * m.n_layer;

    const double elements = static_cast<double>(m.elements_per_token_layer);
    m.original_bytes_per_token_layer = m.original_elements_per_token_layer * kUnquantizedBits / 8.0;
    m.nominal_bytes_per_token_layer = elements * spec.kv_bits / 8.0;
    m.real_bytes_per_token_layer = m.nominal_bytes_per_token_layer + kGroupOverheadBytes * m.groups_per_token_layer;
    m.unquantized_bytes_per_token_layer = elements * kUnquantizedBits / 8.0;

    const double layers = static_cast<double>(m.n_layer);
    m.original_bytes_per_token = m.original_bytes_per_token_layer * layers;
    m.nominal_bytes_per_token = m.nominal_bytes_per_token_layer * layers;
    m.real_bytes_per_token = m.real_bytes_per_token_layer * layers;

    const double sequences = static_cast<double>(batch);
    const double window = static_cast<double>(m.residual_tokens);
    m.original_total_bytes = m.original_bytes_per_token * ctx * sequences;
    m.nominal_total_bytes = m.nominal_bytes_per_token * ctx * sequences;
    m.real_total_bytes =
        ((ctx - window) * m.real_bytes_per_token + window * m.unquantized_bytes_per_token_layer * layers) * sequences;

    m.reduction_percent = percent_smaller(m.nominal_bytes_per_token_layer, m.original_bytes_per_token_layer);
    m.reduction_percent_real = percent_smaller(m.real_bytes_per_token_layer, m.original_bytes_per_token_layer);
    m.total_reduction_percent_real = percent_smaller(m.real_total_bytes, m.original_total_bytes);

    // Exact: the window rule and packing of core/kv_quant.h.
    m.residual = spec.residual;
    m.compute_element_bytes = compute_element_bytes;
    const int64_t unquantized_per_token = m.elements_per_token * compute_element_bytes;
    if (spec.kv_bits < 16) {
        m.exact_window_tokens = spec.residual == 0 ? 0 : (ctx - 1) % spec.residual + 1;
        for (const CachedPart& part : m.parts) {
            m.exact_packed_bytes_per_token += (part.elements_per_token_layer * spec.kv_bits + 7) / 8 * m.n_layer;
            m.exact_scale_zero_bytes_per_token +=
                part.groups_per_token_layer * static_cast<int64_t>(kGroupOverheadBytes) * m.n_layer;
        }
        const int64_t quantized_tokens = ctx - m.exact_window_tokens;
        m.exact_total_bytes = (quantized_tokens * (m.exact_packed_bytes_per_token + m.exact_scale_zero_bytes_per_token) +
                               m.exact_window_tokens * unquantized_per_token) *
                              batch;
    } else {
        m.exact_total_bytes = ctx * unquantized_per_token * batch;
    }
    return m;
}

}  // namespace mlawb
