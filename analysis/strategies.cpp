// The partial-RoPE strategy registry (MHA2MLA sec. 3.1) and the kept-pair mask's JSON form.
// Pair k = dims (k, k + d/2), k = 0 the highest frequency. Every strategy but `custom` keeps
// exactly r pairs per KV head.
#include "analysis/strategies.h"

#include "core/config.h"
#include "core/error.h"
#include "core/json_io.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

namespace mlawb {

using json = nlohmann::json;

std::vector<int64_t> KeptPairs::pairs(int64_t l, int64_t g) const {
    std::vector<int64_t> out;
    for (int64_t k = 0; k < n_pairs; ++k)
        if (kept(l, g, k)) out.push_back(k);
    return out;
}

int64_t KeptPairs::count(int64_t l, int64_t g) const {
    int64_t n = 0;
    for (int64_t k = 0; k < n_pairs; ++k) n += kept(l, g, k) ? 1 : 0;
    return n;
}

std::string KeptPairs::to_json_text() const {
    // One layer per line so a mask stays readable and editable by hand.
    std::ostringstream s;
    s << "{\n  \"kept_pairs\": [\n";
    for (int64_t l = 0; l < n_layer; ++l) {
        s << "    [";
        for (int64_t g = 0; g < n_kv_head; ++g) {
            s << (g ? ", [" : "[");
            const std::vector<int64_t> kept_here = pairs(l, g);
            for (size_t i = 0; i < kept_here.size(); ++i) s << (i ? ", " : "") << kept_here[i];
            s << "]";
        }
        s << "]" << (l + 1 < n_layer ? "," : "") << "\n";
    }
    s << "  ]\n}\n";
    return s.str();
}

KeptPairs KeptPairs::from_json_text(const std::string& text, const std::string& source, int64_t n_layer,
                                    int64_t n_kv_head, int64_t n_pairs) {
    const json root = parse_json_text(text, source, "", "not valid JSON");  // depth-capped; "1e400" is an Error
    const std::string form = "expected {\"kept_pairs\": [layer][kv_head][pair indices]}";
    if (!root.is_object() || !root.contains("kept_pairs") || !root["kept_pairs"].is_array())
        throw Error(source, "kept_pairs", "missing or not an array; " + form);
    const json& layers = root["kept_pairs"];
    if (static_cast<int64_t>(layers.size()) != n_layer)
        throw Error(source, "kept_pairs",
                    "has " + std::to_string(layers.size()) + " layers; the model has " + std::to_string(n_layer));
    KeptPairs kept(n_layer, n_kv_head, n_pairs);
    for (int64_t l = 0; l < n_layer; ++l) {
        const std::string at_layer = "kept_pairs[" + std::to_string(l) + "]";
        const json& heads = layers[l];
        if (!heads.is_array() || static_cast<int64_t>(heads.size()) != n_kv_head)
            throw Error(source, at_layer,
                        "must list " + std::to_string(n_kv_head) + " KV heads (got " +
                            (heads.is_array() ? std::to_string(heads.size()) : std::string(heads.type_name())) + ")");
        for (int64_t g = 0; g < n_kv_head; ++g) {
            const std::string at_head = at_layer + "[" + std::to_string(g) + "]";
            const json& list = heads[g];
            if (!list.is_array()) throw Error(source, at_head, "must be an array of pair indices");
            for (size_t i = 0; i < list.size(); ++i) {
                const std::string at_pair = at_head + "[" + std::to_string(i) + "]";
                if (!list[i].is_number_integer()) throw Error(source, at_pair, "must be an integer pair index");
                const int64_t k = list[i].get<int64_t>();
                if (k < 0 || k >= n_pairs)
                    throw Error(source, at_pair,
                                "pair " + std::to_string(k) + " is out of range 0.." + std::to_string(n_pairs - 1));
                if (kept.kept(l, g, k)) throw Error(source, at_pair, "pair " + std::to_string(k) + " is listed twice");
                kept.set(l, g, k);
            }
        }
    }
    return kept;
}

namespace {

int64_t pairs_per_head(const ModelConfig& c) { return c.head_dim / 2; }

KeptPairs empty_mask(const StrategyInput& in) {
    const ModelConfig& c = *in.config;
    return KeptPairs(c.n_layer, c.n_kv_head, pairs_per_head(c));
}

// The same pair set for every layer and KV head.
KeptPairs same_everywhere(const StrategyInput& in, const std::vector<int64_t>& chosen) {
    KeptPairs kept = empty_mask(in);
    for (int64_t l = 0; l < kept.n_layer; ++l)
        for (int64_t g = 0; g < kept.n_kv_head; ++g)
            for (int64_t k : chosen) kept.set(l, g, k);
    return kept;
}

void require_r(const StrategyInput& in, const char* strategy) {
    const int64_t pairs = pairs_per_head(*in.config);
    if (in.r < 1 || in.r > pairs)
        throw Error("", "--mla", std::string("r: strategy ") + strategy + " needs r in 1.." + std::to_string(pairs) +
                                     " (got " + std::to_string(in.r) + ")");
}

const RopeScores& require_scores(const StrategyInput& in, const char* strategy) {
    if (!in.scores) throw Error("", "--mla", std::string("strategy: ") + strategy + " needs 2-norm scores");
    const RopeScores& s = *in.scores;
    const ModelConfig& c = *in.config;
    if (s.n_layer != c.n_layer || s.n_kv_head != c.n_kv_head || s.n_pairs != pairs_per_head(c) ||
        static_cast<int64_t>(s.scores.size()) != s.n_layer * s.n_kv_head * s.n_pairs)
        throw Error("", "--mla",
                    "scores: shape [" + std::to_string(s.n_layer) + "][" + std::to_string(s.n_kv_head) + "][" +
                        std::to_string(s.n_pairs) + "] does not match the model's [" + std::to_string(c.n_layer) + "][" +
                        std::to_string(c.n_kv_head) + "][" + std::to_string(pairs_per_head(c)) + "]");
    return s;
}

KeptPairs select_full(const StrategyInput& in) {
    std::vector<int64_t> all(pairs_per_head(*in.config));
    std::iota(all.begin(), all.end(), 0);
    return same_everywhere(in, all);
}

// S_high: the r highest-frequency pairs {0, ..., r-1}.
KeptPairs select_high(const StrategyInput& in) {
    require_r(in, "high");
    std::vector<int64_t> chosen(in.r);
    std::iota(chosen.begin(), chosen.end(), 0);
    return same_everywhere(in, chosen);
}

// S_low: the r lowest-frequency pairs {d/2 - r, ..., d/2 - 1}.
KeptPairs select_low(const StrategyInput& in) {
    require_r(in, "low");
    const int64_t pairs = pairs_per_head(*in.config);
    std::vector<int64_t> chosen(in.r);
    std::iota(chosen.begin(), chosen.end(), pairs - in.r);
    return same_everywhere(in, chosen);
}

// S_uniform: {s, s + D, s + 2D, ...} with D = (d/2)/r (integer steps) and start s.
KeptPairs select_uniform(const StrategyInput& in) {
    require_r(in, "uniform");
    const int64_t pairs = pairs_per_head(*in.config);
    const int64_t step = pairs / in.r;
    const int64_t last = in.start + (in.r - 1) * step;
    if (in.start < 0 || last >= pairs)
        throw Error("", "--mla", "start: uniform from " + std::to_string(in.start) + " by " + std::to_string(step) +
                                     " reaches pair " + std::to_string(last) + "; the last pair is " +
                                     std::to_string(pairs - 1));
    std::vector<int64_t> chosen;
    for (int64_t i = 0; i < in.r; ++i) chosen.push_back(in.start + i * step);
    return same_everywhere(in, chosen);
}

// S_2-norm: per layer and KV head, the r pairs of largest score S[l,g,k]; ties go to the
// lower k (the higher frequency), so the choice is deterministic.
KeptPairs select_two_norm(const StrategyInput& in) {
    require_r(in, "2-norm");
    const RopeScores& s = require_scores(in, "2-norm");
    KeptPairs kept = empty_mask(in);
    for (int64_t l = 0; l < kept.n_layer; ++l)
        for (int64_t g = 0; g < kept.n_kv_head; ++g)
            for (int64_t k : s.top_pairs(l, g, in.r)) kept.set(l, g, k);
    return kept;
}

// Layer budget: per layer, the n_kv x r largest scores over all (KV head, pair) of the layer,
// so one head may keep more pairs than another; ties go to the lower g, then the lower k.
KeptPairs select_two_norm_layer(const StrategyInput& in) {
    require_r(in, "2-norm-layer");
    const RopeScores& s = require_scores(in, "2-norm-layer");
    KeptPairs kept = empty_mask(in);
    const int64_t cells = kept.n_kv_head * kept.n_pairs, budget = kept.n_kv_head * in.r;
    std::vector<int64_t> order(cells);  // flattened g * n_pairs + k: ascending = lower g, then lower k
    for (int64_t l = 0; l < kept.n_layer; ++l) {
        auto score_of = [&](int64_t cell) { return s.score(l, cell / kept.n_pairs, cell % kept.n_pairs); };
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score_of(a) > score_of(b); });
        for (int64_t i = 0; i < budget; ++i) kept.set(l, order[i] / kept.n_pairs, order[i] % kept.n_pairs);
    }
    return kept;
}

// A mask written by hand or by another tool. With r given, every head must keep exactly r
// pairs; without r, any count (0 included) per head.
KeptPairs select_custom(const StrategyInput& in) {
    if (in.mask_file.empty()) throw Error("", "--mla", "mask: strategy custom needs mask=FILE");
    std::ifstream file(in.mask_file, std::ios::binary);
    if (!file) throw Error(in.mask_file, "", "cannot open mask file");
    std::ostringstream text;
    text << file.rdbuf();
    const ModelConfig& c = *in.config;
    KeptPairs kept = KeptPairs::from_json_text(text.str(), in.mask_file, c.n_layer, c.n_kv_head, pairs_per_head(c));
    if (in.r > 0)
        for (int64_t l = 0; l < kept.n_layer; ++l)
            for (int64_t g = 0; g < kept.n_kv_head; ++g)
                if (kept.count(l, g) != in.r)
                    throw Error(in.mask_file, "kept_pairs[" + std::to_string(l) + "][" + std::to_string(g) + "]",
                                "keeps " + std::to_string(kept.count(l, g)) + " pairs; the setting has r=" +
                                    std::to_string(in.r));
    return kept;
}

}  // namespace

const std::vector<StrategyInfo>& strategy_registry() {
    static const std::vector<StrategyInfo> registry = {
        {"full", "all d/2 pairs keep RoPE (the original model)", false, select_full},
        {"high", "the r highest-frequency pairs {0..r-1}", false, select_high},
        {"low", "the r lowest-frequency pairs {d/2-r..d/2-1}", false, select_low},
        {"uniform", "every D-th pair {s, s+D, ...}, D = (d/2)/r, from start s", false, select_uniform},
        {"2-norm", "per layer and KV head, the r pairs of largest 2-norm score", true, select_two_norm},
        {"2-norm-layer", "per layer, the n_kv x r largest scores over all KV heads (heads may differ)", true,
         select_two_norm_layer},
        {"custom", "pairs read from mask=FILE {\"kept_pairs\": [layer][kv_head][pairs]}", false, select_custom},
    };
    return registry;
}

const StrategyInfo& find_strategy(const std::string& name) {
    for (const auto& s : strategy_registry())
        if (s.name == name) return s;
    std::string names;
    for (const auto& s : strategy_registry()) names += (names.empty() ? "" : ", ") + s.name;
    throw Error("", "--mla", "strategy: '" + name + "' is not one of " + names);
}

}  // namespace mlawb
