// `mlawb recommend MODEL --budget 20%`: settings within a KV-cache budget, ranked by analysis
// (spectral energy, RoPE score mass, quantization; eval/recommend.h), then by a quick perplexity
// on calibration text, the best few evaluated on a task folder through `mlawb eval` and their
// accuracy-against-bytes Pareto front reported.
#include "app/cli/commands.h"
#include "app/cli/progress.h"

#include "analysis/calibration.h"
#include "analysis/setting.h"
#include "analysis/spectrum.h"
#include "core/error.h"
#include "core/llama_model.h"
#include "core/safetensors.h"
#include "eval/longbench.h"
#include "eval/perplexity.h"
#include "eval/recommend.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>

namespace mlawb::cli {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const char* const kRecommendUsage =
    "mlawb recommend MODEL --budget 20% [--calib FILE] [--scores FILE] [--tasks DIR [--datasets a,b] [--limit N] "
    "[--evaluate K] [--db FILE]] [--per-family N] [--ppl-tokens N] [--strategies a,b] [--r 1,2,4] [--d-kv 8,16] "
    "[--kv-bits 16,4] [--device D[,D...]] [--layer-split N,M] [--dtype T] [--json]";

std::vector<int64_t> integer_list(const ParsedArgs& a, const std::string& name) {
    std::vector<int64_t> out;
    for (const std::string& s : split_list(a.value(name))) {
        size_t used = 0;
        long long v = -1;
        try {
            v = std::stoll(s, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != s.size() || v < 1) throw Error("", name, "expected positive integers separated by commas, got '" + s + "'");
        out.push_back(v);
    }
    if (out.empty()) throw Error("", name, "no value given");
    return out;
}

CandidateAxes candidate_axes(const ParsedArgs& a) {
    CandidateAxes axes;
    if (a.has("--strategies")) axes.strategies = split_list(a.value("--strategies"));
    if (a.has("--r")) axes.r = integer_list(a, "--r");
    if (a.has("--d-kv")) axes.d_kv = integer_list(a, "--d-kv");
    if (a.has("--kv-bits")) {
        axes.kv_bits.clear();
        for (int64_t b : integer_list(a, "--kv-bits")) {
            if (b != 16 && b != 8 && b != 4 && b != 2) throw Error("", "--kv-bits", "bits are 16, 8, 4 or 2");
            axes.kv_bits.push_back(static_cast<int>(b));
        }
    }
    if (a.has("--svd")) {
        axes.svd.clear();
        for (const std::string& s : split_list(a.value("--svd"))) {
            if (s == "joint") axes.svd.push_back(SvdMode::Joint);
            else if (s == "split") axes.svd.push_back(SvdMode::Split);
            else if (s == "none") axes.svd.push_back(SvdMode::None);
            else throw Error("", "--svd", "'" + s + "' is not one of joint, split, none");
        }
    }
    return axes;
}

// The converted model's perplexity on the tail of the calibration text (the calibration itself
// reads the head), which orders settings of different cache families against each other. Runs
// on --device / --dtype.
double quick_perplexity(const std::string& folder, const std::string& spec, const std::vector<int64_t>& ids,
                        int64_t window, const ParsedArgs& a, Io& io) {
    LoadedModel m = load_model(folder);
    if (spec != "strategy=full") {
        ParsedArgs mla;
        mla.values["--mla"] = spec;
        apply_mla_option(m, mla, io);
    }
    apply_device_option(m, a);
    PerplexityOptions options;
    options.window = window;
    return compute_perplexity(*m.model, ids, options).perplexity;
}

struct Evaluated {
    double accuracy = 0;
    json scores;
};

// `mlawb eval` in this process on the task folder; nullopt when it failed (its error printed).
std::optional<Evaluated> evaluate(const ParsedArgs& a, const std::string& folder, const std::string& spec, Io& io) {
    std::vector<std::string> args = {"eval", folder, "--tasks", a.value("--tasks"), "--mla", spec, "--json"};
    for (const char* name : {"--datasets", "--limit", "--max-prompt", "--db", "--device", "--dtype", "--layer-split"})
        if (a.has(name)) {
            args.push_back(name);
            args.push_back(a.value(name));
        }
    std::ostringstream out;
    const int status = run_cli(args, out, io.err);
    if (status == 130) throw Cancelled();
    if (status != 0) return std::nullopt;
    const json result = json::parse(out.str());
    return Evaluated{result["overall"].get<double>(), result["scores"]};
}

std::string fixed(double v, int digits) {
    std::ostringstream s;
    s << std::fixed << std::setprecision(digits) << v;
    return s.str();
}

int cmd_recommend(const ParsedArgs& a, Io& io) {
    require_positional(a, 1, kRecommendUsage);
    if (!a.has("--budget")) throw Error("", "--budget", "required, e.g. --budget 20% (share of the original KV cache)");
    if (a.has("--evaluate") && !a.has("--tasks")) throw Error("", "--evaluate", "needs --tasks DIR");
    const std::string folder = a.positional[0];
    if (!fs::is_directory(folder)) throw Error(folder, "", "not a model folder (recommend reads the weights)");
    const double budget = parse_budget(a.value("--budget"));
    const ModelConfig config = ModelConfig::from_file((fs::path(folder) / "config.json").string());
    if (config.mla.present)
        throw Error(folder + "/config.json", "mla", "already converted to MLA (" + config.mla.spec + "); start from the original");
    const int64_t per_family = a.integer("--per-family", 2, 1, 1000);
    const int64_t evaluate_count = a.integer("--evaluate", a.has("--tasks") ? 3 : 0, 0, 1000);
    const int64_t ppl_tokens = a.integer("--ppl-tokens", 4096, 16, 1LL << 30);
    if (a.has("--tasks")) LongBenchTaskSet::open(a.value("--tasks"));  // a bad folder fails before the work
    const auto t0 = std::chrono::steady_clock::now();

    // 2-norm scores: from --scores, or calibrated on --calib and saved so the 2-norm specs
    // (scores=FILE) can be evaluated and reproduced later. The --calib text's tail is also the
    // quick perplexity's text.
    std::optional<RopeScores> scores;
    std::string scores_file = a.value("--scores");
    std::vector<int64_t> ppl_ids;
    if (a.has("--scores")) scores = RopeScores::load(scores_file);
    if (a.has("--calib")) {
        LoadedModel m = load_model(folder);
        if (!scores) {
            on_device_in_f32(m, a, [&] { scores = calibrate_with_progress(m, a.value("--calib"), "product", io); });
            const fs::path beside = a.has("--db") ? fs::absolute(a.value("--db")).parent_path() : fs::current_path();
            scores_file = (beside / (fs::path(folder).filename().string() + ".rope-scores.json")).string();
            scores->save(scores_file);
            io.err << "2-norm scores saved to " << scores_file << "\n";
        }
        const std::vector<int32_t> ids = m.tokenizer.encode(read_text_file(a.value("--calib")));
        const size_t n = std::min<size_t>(ids.size(), static_cast<size_t>(ppl_tokens));
        ppl_ids.assign(ids.end() - static_cast<std::ptrdiff_t>(n), ids.end());
    }

    std::vector<Candidate> candidates = enumerate_candidates(config, budget, candidate_axes(a), scores_file);
    if (candidates.empty())
        throw Error("", "--budget", "no setting fits " + fixed(100 * budget, 2) + "% of the original KV cache");

    // Analysis: one mask and one set of spectra per (strategy, r); energies at every d_kv from them.
    const Checkpoint checkpoint = Checkpoint::open_folder(folder);
    std::map<std::string, std::pair<std::vector<LayerSpectrum>, std::optional<double>>> per_mask;
    const bool need_spectra =
        std::any_of(candidates.begin(), candidates.end(), [](const Candidate& c) { return c.spec.svd != SvdMode::None; });
    {
        ProgressLine progress(io.err, "analysis");
        int64_t done = 0;
        for (Candidate& c : candidates) {
            MlaSpec mask_spec = c.spec;  // the mask depends on strategy, r, start and scores only
            mask_spec.svd = SvdMode::None;
            mask_spec.d_kv = -1;
            mask_spec.kv_bits = 16;
            const std::string key = mask_spec.to_string();
            if (!per_mask.count(key)) {
                const ResolvedSetting s = resolve_setting(mask_spec, config, {});
                std::vector<LayerSpectrum> layers;
                if (need_spectra) layers = compute_spectra(checkpoint, config, s.kept, -1).layers;
                std::optional<double> mass;
                if (scores) mass = rope_mass_kept(*scores, s.kept);
                per_mask[key] = {std::move(layers), mass};
            }
            const auto& [layers, mass] = per_mask[key];
            c.energy = spectral_energy_kept(layers, c.spec.svd, c.spec.d_kv, config.n_kv_head);
            c.rope_mass = mass;
            c.analysis = c.energy * mass.value_or(1.0) * c.quant_fidelity;
            ++done;
            progress.update(done, static_cast<int64_t>(candidates.size()), done, "settings/s");
        }
        progress.finish();
    }

    // Quick perplexity of the shortlist (and of the original, for reference).
    const std::vector<size_t> short_idx = shortlist(candidates, per_family);
    std::map<size_t, double> ppl;
    std::optional<double> original_ppl;
    const int64_t window = std::min<int64_t>(1024, config.max_position);
    if (!ppl_ids.empty()) {
        if (ppl_ids.size() < 2) throw Error(a.value("--calib"), "", "too short for a perplexity");
        ProgressLine progress(io.err, "quick perplexity");
        original_ppl = quick_perplexity(folder, "strategy=full", ppl_ids, window, a, io);
        int64_t done = 0;
        for (size_t i : short_idx) {
            ppl[i] = quick_perplexity(folder, candidates[i].text, ppl_ids, window, a, io);
            ++done;
            progress.update(done, static_cast<int64_t>(short_idx.size()), done, "settings/s");
        }
        progress.finish();
    } else {
        io.err << "note: no --calib text: no quick perplexity" << (scores ? "" : " and no RoPE score mass (nor 2-norm)")
               << "; ranking by the analysis score only\n";
    }
    // Ranking: perplexity when measured, else the analysis score; ties to fewer bytes.
    std::vector<size_t> ranked = short_idx;
    std::stable_sort(ranked.begin(), ranked.end(), [&](size_t x, size_t y) {
        if (!ppl.empty() && ppl[x] != ppl[y]) return ppl[x] < ppl[y];
        if (ppl.empty() && candidates[x].analysis != candidates[y].analysis)
            return candidates[x].analysis > candidates[y].analysis;
        return candidates[x].nominal_bytes < candidates[y].nominal_bytes;
    });

    // Evaluation of the top K and their Pareto front.
    std::map<size_t, Evaluated> evaluated;
    for (size_t k = 0; k < ranked.size() && static_cast<int64_t>(k) < evaluate_count; ++k) {
        io.err << "evaluate " << k + 1 << "/" << std::min<int64_t>(evaluate_count, ranked.size()) << ": "
               << candidates[ranked[k]].text << "\n";
        if (auto e = evaluate(a, folder, candidates[ranked[k]].text, io)) evaluated[ranked[k]] = *e;
    }
    std::vector<size_t> eval_order;
    std::vector<ParetoPoint> points;
    for (const auto& [i, e] : evaluated) {
        eval_order.push_back(i);
        points.push_back({candidates[i].nominal_bytes, e.accuracy});
    }
    std::set<size_t> on_front;
    for (size_t p : pareto_front(points)) on_front.insert(eval_order[p]);
    std::optional<size_t> best;  // the most accurate evaluated setting, fewer bytes on ties
    for (size_t i : eval_order)
        if (!best || evaluated[i].accuracy > evaluated[*best].accuracy ||
            (evaluated[i].accuracy == evaluated[*best].accuracy && candidates[i].nominal_bytes < candidates[*best].nominal_bytes))
            best = i;
    if (!best && !ranked.empty()) best = ranked.front();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    const double original_bytes = candidates.front().nominal_bytes / candidates.front().share;
    if (a.flag("--json")) {
        json rows = json::array();
        for (size_t rank = 0; rank < ranked.size(); ++rank) {
            const size_t i = ranked[rank];
            const Candidate& c = candidates[i];
            json row = {{"rank", rank + 1},          {"setting", c.text},          {"family", c.family()},
                        {"bytes", c.nominal_bytes},  {"real_bytes", c.real_bytes}, {"share", c.share},
                        {"energy", c.energy},        {"quant_fidelity", c.quant_fidelity}, {"analysis", c.analysis},
                        {"rope_mass", c.rope_mass ? json(*c.rope_mass) : json(nullptr)},
                        {"perplexity", ppl.count(i) ? json(ppl[i]) : json(nullptr)}};
            if (evaluated.count(i)) {
                row["accuracy"] = evaluated[i].accuracy;
                row["scores"] = evaluated[i].scores;
                row["pareto"] = on_front.count(i) > 0;
            }
            rows.push_back(row);
        }
        json front = json::array();
        for (size_t i : eval_order)
            if (on_front.count(i))
                front.push_back({{"setting", candidates[i].text}, {"bytes", candidates[i].nominal_bytes},
                                 {"accuracy", evaluated[i].accuracy}});
        io.out << json{{"budget", budget},
                       {"original_bytes", original_bytes},
                       {"budget_bytes", budget * original_bytes},
                       {"candidates", candidates.size()},
                       {"original_perplexity", original_ppl ? json(*original_ppl) : json(nullptr)},
                       {"scores_file", scores_file},
                       {"shortlist", rows},
                       {"front", front},
                       {"recommended", best ? json(candidates[*best].text) : json(nullptr)},
                       {"seconds", seconds}}
                      .dump(2)
               << "\n";
        return 0;
    }
    io.out << "budget    " << fixed(100 * budget, 1) << "% of " << fixed(original_bytes, 0)
           << " KV bytes per token (original, 16-bit) = " << fixed(budget * original_bytes, 0) << " bytes\n"
           << "candidates " << candidates.size() << " within budget; shortlist " << ranked.size() << " (best "
           << per_family << " per cache family by analysis)";
    if (original_ppl) io.out << "; original perplexity " << fixed(*original_ppl, 2);
    size_t width = 8;
    for (size_t i : ranked) width = std::max(width, candidates[i].text.size() + 2);
    const int w = static_cast<int>(width);
    io.out << "\n\n"
           << std::left << std::setw(5) << "rank" << std::setw(w) << "setting" << std::right << std::setw(8) << "share"
           << std::setw(8) << "E" << std::setw(8) << "M" << std::setw(8) << "Q" << std::setw(9) << "E*M*Q" << std::setw(9)
           << "ppl" << std::setw(10) << "accuracy" << "\n";
    for (size_t rank = 0; rank < ranked.size(); ++rank) {
        const size_t i = ranked[rank];
        const Candidate& c = candidates[i];
        io.out << std::left << std::setw(5) << rank + 1 << std::setw(w) << c.text << std::right << std::setw(7)
               << fixed(100 * c.share, 1) << "%" << std::setw(8) << fixed(c.energy, 3) << std::setw(8)
               << (c.rope_mass ? fixed(*c.rope_mass, 3) : "-") << std::setw(8) << fixed(c.quant_fidelity, 3)
               << std::setw(9) << fixed(c.analysis, 3) << std::setw(9) << (ppl.count(i) ? fixed(ppl[i], 2) : "-")
               << std::setw(10)
               << (evaluated.count(i) ? fixed(evaluated[i].accuracy, 2) + (on_front.count(i) ? "*" : " ") : "-") << "\n";
    }
    if (!evaluated.empty()) io.out << "\n* on the Pareto front of the evaluated settings (accuracy against KV bytes)\n";
    if (best) io.out << "recommended: " << candidates[*best].text << "\n";
    return 0;
}

}  // namespace

std::vector<Command> recommend_commands() {
    return {
        {"recommend", kRecommendUsage,
         "settings within a KV budget (share of the original cache), ranked by spectral energy, RoPE score mass and a "
         "quick perplexity; the top K evaluated on --tasks with their Pareto front",
         with_device_options({{"--budget", "--calib", "--scores", "--tasks", "--datasets", "--limit", "--max-prompt",
                               "--evaluate", "--db", "--per-family", "--ppl-tokens", "--strategies", "--r", "--d-kv",
                               "--svd", "--kv-bits", "--threads"},
                              {"--json", "--help"}}),
         cmd_recommend},
    };
}

}  // namespace mlawb::cli
