// resolve_setting: an MlaSpec checked against one model, its scores obtained (file or
// calibration) and checked against the model's shape, and its strategy run.
#include "analysis/setting.h"

#include "core/config.h"
#include "core/error.h"

namespace mlawb {

namespace {

// Refuses scores whose shape is not the model's: [n_layer][n_kv_head][head_dim/2] scores and
// [n_layer][n_head][head_dim/2] query norms. `source` names the scores or calibration file.
void check_scores_shape(const RopeScores& s, const ModelConfig& config, const std::string& source) {
    struct Dimension {
        const char* key;
        int64_t scores, model;
    };
    const Dimension dims[] = {{"n_layer", s.n_layer, config.n_layer},
                              {"n_head", s.n_head, config.n_head},
                              {"n_kv_head", s.n_kv_head, config.n_kv_head},
                              {"n_pairs", s.n_pairs, config.head_dim / 2}};
    for (const auto& d : dims)
        if (d.scores != d.model)
            throw Error(source, d.key,
                        "scores are for " + std::to_string(d.scores) + ", but the model (" + config.source + ") has " +
                            std::to_string(d.model));
    if (static_cast<int64_t>(s.scores.size()) != s.n_layer * s.n_kv_head * s.n_pairs)
        throw Error(source, "scores",
                    "holds " + std::to_string(s.scores.size()) + " values, expected n_layer x n_kv_head x n_pairs = " +
                        std::to_string(s.n_layer * s.n_kv_head * s.n_pairs));
}

// The spec's variant decides the scores: a file written with the other variant is recombined
// from its q_norms and k_norms, so "strategy=2-norm,scores=F" always means the same setting.
void match_variant(RopeScores& s, const std::string& variant, const std::string& source) {
    if (s.variant == variant) return;
    const auto per_head = [&](int64_t heads) { return static_cast<size_t>(s.n_layer * heads * s.n_pairs); };
    if (s.q_norms.size() != per_head(s.n_head) || s.k_norms.size() != per_head(s.n_kv_head))
        throw Error(source, "variant",
                    "scores are '" + s.variant + "' and hold no q_norms/k_norms to recombine as '" + variant + "'");
    s.combine(variant);
}

RopeScores obtain_scores(const MlaSpec& spec, const ModelConfig& config,
                         const std::function<RopeScores(const std::string&)>& calibrate) {
    RopeScores scores;
    std::string source;
    if (!spec.scores_file.empty()) {
        source = spec.scores_file;
        scores = RopeScores::load(spec.scores_file);
    } else {
        source = spec.calib_file;
        if (!calibrate)
            throw Error("", "--mla",
                        "calib: calibration is not available here; give scores=FILE (from mlawb rope-scores --out)");
        scores = calibrate(spec.calib_file);
    }
    check_scores_shape(scores, config, source);
    match_variant(scores, spec.variant, source);
    return scores;
}

}  // namespace

ResolvedSetting resolve_setting(const MlaSpec& spec, const ModelConfig& config,
                                const std::function<RopeScores(const std::string& calib_file)>& calibrate) {
    spec.validate(config);
    ResolvedSetting resolved;
    resolved.spec = spec;
    if (spec.strategy == "full") resolved.spec.r = config.head_dim / 2;  // full keeps every pair
    const StrategyInfo& strategy = find_strategy(spec.strategy);
    if (strategy.needs_scores) resolved.scores = obtain_scores(spec, config, calibrate);

    StrategyInput input;
    input.config = &config;
    input.r = resolved.spec.r;  // -1 for custom without r: any count per head
    input.start = spec.start;
    input.scores = resolved.scores ? &*resolved.scores : nullptr;
    input.mask_file = spec.mask_file;
    resolved.kept = strategy.select(input);
    return resolved;
}

}  // namespace mlawb
