// Candidates within a KV budget, their analysis scores and Pareto fronts (see eval/recommend.h).
#include "eval/recommend.h"

#include "analysis/memory_model.h"
#include "analysis/spectrum.h"
#include "analysis/strategies.h"
#include "core/config.h"
#include "core/error.h"
#include "eval/sweep.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace mlawb {

std::string Candidate::family() const {
    return "kv_bits=" + std::to_string(spec.kv_bits) + ",svd=" + svd_mode_name(spec.svd);
}

double parse_budget(const std::string& text) {
    const std::string form = "expected a share of the original KV cache, e.g. 20% or 0.2, got '" + text + "'";
    if (text.empty()) throw Error("", "--budget", form);
    const bool percent = text.back() == '%';
    const std::string number = percent ? text.substr(0, text.size() - 1) : text;
    double value = 0;
    try {
        size_t used = 0;
        value = std::stod(number, &used);
        if (used != number.size()) throw std::invalid_argument(number);
    } catch (const std::exception&) {
        throw Error("", "--budget", form);
    }
    if (percent) value /= 100.0;
    if (!(value > 0.0) || value > 1.0) throw Error("", "--budget", "must be more than 0% and at most 100% (" + text + ")");
    return value;
}

namespace {

std::vector<int64_t> default_r(const ModelConfig& config) {
    std::vector<int64_t> out;
    for (int64_t r = 1; r < config.head_dim / 2; r *= 2) out.push_back(r);
    return out;
}

// 4, 6, 8, 12, 16, 24, 32, 48, ...: powers of two and 1.5 times them, up to 2 head_dim
// (the joint matrix's rank caps it further; validate_sizes refuses what does not fit).
std::vector<int64_t> default_d_kv(const ModelConfig& config) {
    std::set<int64_t> out;
    for (int64_t p = 4; p <= 2 * config.head_dim; p *= 2) {
        out.insert(p);
        if (p * 3 / 2 <= 2 * config.head_dim) out.insert(p * 3 / 2);
    }
    return {out.begin(), out.end()};
}

}  // namespace

std::vector<Candidate> enumerate_candidates(const ModelConfig& config, double budget_share, const CandidateAxes& axes,
                                            const std::string& scores_file) {
    const std::vector<int64_t> rs = axes.r.empty() ? default_r(config) : axes.r;
    const std::vector<int64_t> dkvs = axes.d_kv.empty() ? default_d_kv(config) : axes.d_kv;
    std::map<std::string, Candidate> found;
    for (const std::string& strategy : axes.strategies) {
        const StrategyInfo& info = find_strategy(strategy);  // throws listing the names
        if (info.needs_scores && scores_file.empty()) continue;
        if (strategy == "custom") throw Error("", "--strategies", "custom needs a mask file; not a candidate strategy");
        const std::vector<int64_t> strategy_rs = strategy == "full" ? std::vector<int64_t>{-1} : rs;
        for (int64_t r : strategy_rs)
            for (SvdMode svd : axes.svd)
                for (int64_t d_kv : svd == SvdMode::None ? std::vector<int64_t>{-1} : dkvs)
                    for (int bits : axes.kv_bits) {
                        MlaSpec spec;
                        spec.strategy = strategy;
                        spec.r = r;
                        spec.svd = svd;
                        spec.d_kv = d_kv;
                        spec.kv_bits = bits;
                        if (info.needs_scores) spec.scores_file = scores_file;
                        MemoryEstimate mem;
                        try {
                            spec = canonical_setting(spec, config);
                            mem = estimate_memory(config, spec, config.max_position, 1);  // validate_sizes first
                        } catch (const Error&) {
                            continue;  // not a valid setting for this model (r too large, group width, ...)
                        }
                        const double share = mem.nominal_bytes_per_token / mem.original_bytes_per_token;
                        if (share > budget_share * (1.0 + 1e-12)) continue;
                        Candidate c;
                        c.spec = spec;
                        c.text = spec.to_string();
                        c.nominal_bytes = mem.nominal_bytes_per_token;
                        c.real_bytes = mem.real_bytes_per_token;
                        c.share = share;
                        c.quant_fidelity = quantization_fidelity(bits);
                        found.emplace(c.text, c);
                    }
    }
    std::vector<Candidate> out;
    for (auto& [text, c] : found) out.push_back(std::move(c));
    return out;
}

double quantization_fidelity(int kv_bits) {
    if (kv_bits >= 16) return 1.0;
    const double levels = std::ldexp(1.0, kv_bits) - 1.0;  // 2^b - 1 steps across the range
    return 1.0 - 1.0 / (levels * levels);
}

double rope_mass_kept(const RopeScores& scores, const KeptPairs& kept) {
    if (scores.n_layer != kept.n_layer || scores.n_kv_head != kept.n_kv_head || scores.n_pairs != kept.n_pairs)
        throw Error("", "scores", "scores [" + std::to_string(scores.n_layer) + "][" + std::to_string(scores.n_kv_head) +
                                      "][" + std::to_string(scores.n_pairs) + "] do not match the mask [" +
                                      std::to_string(kept.n_layer) + "][" + std::to_string(kept.n_kv_head) + "][" +
                                      std::to_string(kept.n_pairs) + "]");
    double sum = 0;
    int64_t heads = 0;
    for (int64_t l = 0; l < kept.n_layer; ++l)
        for (int64_t g = 0; g < kept.n_kv_head; ++g) {
            double all = 0, mine = 0;
            for (int64_t k = 0; k < kept.n_pairs; ++k) {
                const double s = scores.score(l, g, k);
                all += s;
                if (kept.kept(l, g, k)) mine += s;
            }
            sum += all > 0 ? mine / all : 1.0;
            ++heads;
        }
    return heads ? sum / static_cast<double>(heads) : 1.0;
}

double spectral_energy_kept(const std::vector<LayerSpectrum>& layers, SvdMode svd, int64_t d_kv, int64_t n_kv_head) {
    if (svd == SvdMode::None || layers.empty()) return 1.0;
    double sum = 0;
    for (const LayerSpectrum& l : layers) {
        if (svd == SvdMode::Joint) {
            sum += truncate_spectrum(l.sigma_joint, n_kv_head * d_kv).energy();
        } else {
            const Truncation k = truncate_spectrum(l.sigma_k_nope, n_kv_head * (d_kv / 2));
            const Truncation v = truncate_spectrum(l.sigma_v, n_kv_head * (d_kv / 2));
            const double total = k.total() + v.total();
            sum += total > 0 ? (k.kept + v.kept) / total : 1.0;
        }
    }
    return sum / static_cast<double>(layers.size());
}

std::vector<size_t> shortlist(const std::vector<Candidate>& candidates, int64_t per_family) {
    std::map<std::string, std::vector<size_t>> families;
    for (size_t i = 0; i < candidates.size(); ++i) families[candidates[i].family()].push_back(i);
    auto better = [&](size_t a, size_t b) {
        const Candidate &x = candidates[a], &y = candidates[b];
        if (x.analysis != y.analysis) return x.analysis > y.analysis;
        if (x.nominal_bytes != y.nominal_bytes) return x.nominal_bytes > y.nominal_bytes;
        return x.text < y.text;
    };
    std::vector<std::vector<size_t>> picked;
    for (auto& [name, members] : families) {
        std::sort(members.begin(), members.end(), better);
        members.resize(std::min<size_t>(members.size(), static_cast<size_t>(std::max<int64_t>(per_family, 0))));
        if (!members.empty()) picked.push_back(members);
    }
    std::sort(picked.begin(), picked.end(), [&](const auto& a, const auto& b) { return better(a.front(), b.front()); });
    std::vector<size_t> out;
    for (const auto& members : picked) out.insert(out.end(), members.begin(), members.end());
    return out;
}

std::vector<size_t> pareto_front(const std::vector<ParetoPoint>& points) {
    std::vector<size_t> front;
    for (size_t i = 0; i < points.size(); ++i) {
        bool dominated = false;
        for (size_t j = 0; j < points.size() && !dominated; ++j) {
            const ParetoPoint &p = points[i], &q = points[j];
            dominated = q.bytes <= p.bytes && q.value >= p.value && (q.bytes < p.bytes || q.value > p.value);
        }
        if (!dominated) front.push_back(i);
    }
    std::sort(front.begin(), front.end(), [&](size_t a, size_t b) {
        if (points[a].bytes != points[b].bytes) return points[a].bytes < points[b].bytes;
        return a < b;
    });
    return front;
}

double front_gap(const ParetoPoint& p, const std::vector<ParetoPoint>& front) {
    double best = -INFINITY;
    for (const ParetoPoint& q : front)
        if (q.bytes <= p.bytes) best = std::max(best, q.value);
    return std::isfinite(best) ? std::max(0.0, best - p.value) : 0.0;
}

}  // namespace mlawb
