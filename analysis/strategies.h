// Partial-RoPE strategies (MHA2MLA sec. 3.1): which r frequency pairs of each KV head keep
// RoPE. The result is a kept-pair mask [n_layer][n_kv_head][head_dim/2]; query heads use
// their KV head's pairs. Strategies live in a registry so the CLI and the GUI list them.
#pragma once

#include "analysis/rope_scores.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mlawb {

struct ModelConfig;

struct KeptPairs {
    int64_t n_layer = 0, n_kv_head = 0, n_pairs = 0;
    std::vector<uint8_t> mask;  // [n_layer][n_kv_head][n_pairs], 1 = pair keeps RoPE

    KeptPairs() = default;
    KeptPairs(int64_t layers, int64_t kv_heads, int64_t pairs)
        : n_layer(layers), n_kv_head(kv_heads), n_pairs(pairs), mask(layers * kv_heads * pairs, 0) {}
    bool kept(int64_t l, int64_t g, int64_t k) const { return mask[(l * n_kv_head + g) * n_pairs + k] != 0; }
    void set(int64_t l, int64_t g, int64_t k, bool keep = true) { mask[(l * n_kv_head + g) * n_pairs + k] = keep; }
    std::vector<int64_t> pairs(int64_t l, int64_t g) const;  // kept pair indices, ascending
    int64_t count(int64_t l, int64_t g) const;

    // {"kept_pairs": [layer][kv_head][pair indices ascending]}
    std::string to_json_text() const;
    static KeptPairs from_json_text(const std::string& text, const std::string& source, int64_t n_layer,
                                    int64_t n_kv_head, int64_t n_pairs);
};

struct StrategyInput {
    const ModelConfig* config = nullptr;
    int64_t r = 0;                    // pairs per head to keep; custom: -1 = as the mask lists them
    int64_t start = 0;                // uniform's first pair
    const RopeScores* scores = nullptr;  // 2-norm strategies
    std::string mask_file;            // custom
};

struct StrategyInfo {
    std::string name;
    std::string description;
    bool needs_scores = false;
    std::function<KeptPairs(const StrategyInput&)> select;
};

// full, high, low, uniform, 2-norm, 2-norm-layer, custom.
const std::vector<StrategyInfo>& strategy_registry();
const StrategyInfo& find_strategy(const std::string& name);  // throws Error listing the names

}  // namespace mlawb
