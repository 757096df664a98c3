#include "app/gui/RunCatalog.h"

#include "analysis/mla_spec.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

namespace mlawb::gui {

namespace {

using json = nlohmann::json;

// Runs of one setting: the key groups equal specs with equal masks (2-norm masks differ by scores).
std::string settingKey(const RunDetail& d) { return d.summary.setting_spec + "\n" + d.kept_pairs_hash; }

std::string canonicalOptions(const std::string& text) {
    try {
        return json::parse(text).dump();
    } catch (const std::exception&) {
        return text;
    }
}

}  // namespace

std::vector<RunDetail> load_runs(const std::string& db_path) {
    const ResultsStore store = ResultsStore::open(db_path, ResultsStore::OpenMode::ExistingOnly);
    std::vector<RunDetail> out;
    for (const RunSummary& summary : store.list_runs()) out.push_back(store.run(summary.id));
    return out;
}

bool is_baseline_setting(const std::string& spec) {
    try {
        const MlaSpec parsed = MlaSpec::parse(spec);
        return parsed.is_original() && parsed.kv_bits == 16;
    } catch (const std::exception&) {
        return false;
    }
}

std::string setting_label(const std::string& spec) {
    MlaSpec s;
    try {
        s = MlaSpec::parse(spec);
    } catch (const std::exception&) {
        return spec;
    }
    if (s.is_original() && s.kv_bits == 16) return "original";
    std::ostringstream out;
    out << s.strategy;
    if (s.r != -1 && s.strategy != "full") out << " r" << s.r;
    if (s.strategy == "uniform" && s.start != 0) out << " s" << s.start;
    if (s.svd == SvdMode::None) {
        if (!s.is_original()) out << " (no latent)";
    } else {
        out << " d_kv" << s.d_kv;
        if (s.svd == SvdMode::Split) out << " split";
    }
    if (s.variant != "product") out << " " << s.variant;
    if (s.kv_bits != 16) out << " kv" << s.kv_bits;
    return out.str();
}

std::string options_summary(const std::string& options_json) {
    json o;
    try {
        o = json::parse(options_json);
    } catch (const std::exception&) {
        return options_json;
    }
    if (!o.is_object()) return options_json;
    std::ostringstream out;
    const auto number = [&](const char* key) -> std::string {
        if (!o.contains(key) || !o[key].is_number_integer()) return "?";
        const int64_t v = o[key].get<int64_t>();
        return v < 0 ? std::string(key == std::string("limit") ? "all" : "auto") : std::to_string(v);
    };
    out << "limit " << number("limit") << " · max prompt " << number("max_prompt");
    if (o.contains("buckets") && o["buckets"].is_array()) {
        out << " · buckets ";
        bool first = true;
        for (const auto& edge : o["buckets"]) {
            out << (first ? "" : ",") << edge.dump();
            first = false;
        }
    }
    return out.str();
}

void mark_pareto_front(std::vector<ParetoPoint>& points, bool higher_is_better) {
    const auto better = [higher_is_better](double a, double b) { return higher_is_better ? a > b : a < b; };
    for (ParetoPoint& p : points) {
        p.on_front = true;
        for (const ParetoPoint& q : points) {
            if (&p == &q) continue;
            const bool noWorse = q.kv_bytes_per_token <= p.kv_bytes_per_token && !better(p.score, q.score);
            const bool strictly = q.kv_bytes_per_token < p.kv_bytes_per_token || better(q.score, p.score);
            if (noWorse && strictly) {
                p.on_front = false;
                break;
            }
        }
    }
}

ParetoData build_pareto(const std::vector<RunDetail>& runs, const ParetoQuery& query) {
    ParetoData data;
    data.query = query;
    const std::string options = query.options_json.empty() ? "" : canonicalOptions(query.options_json);

    // The latest finished run per (setting, dataset) of the model, task and options.
    std::map<std::string, std::map<std::string, const RunDetail*>> bySetting;  // setting key -> dataset -> run
    std::set<std::string> datasets;
    for (const RunDetail& d : runs) {
        const RunSummary& s = d.summary;
        if (s.model_hash != query.model_hash || s.task != query.task || s.status != RunStatus::Finished) continue;
        if (!options.empty() && canonicalOptions(d.options_json) != options) continue;
        if (!query.dataset.empty() && s.dataset != query.dataset) continue;
        if (!s.main_metric || !d.memory) continue;
        data.model_path = s.model_path;
        const RunDetail*& slot = bySetting[settingKey(d)][s.dataset];
        if (!slot || slot->summary.id < s.id) slot = &d;
        datasets.insert(s.dataset);
    }
    data.datasets.assign(datasets.begin(), datasets.end());

    for (const auto& [key, perDataset] : bySetting) {
        if (perDataset.size() < datasets.size()) {  // the mean needs every dataset of the view
            ++data.left_out;
            continue;
        }
        ParetoPoint p;
        double sum = 0;
        for (const auto& [dataset, run] : perDataset) {
            p.run_ids.push_back(run->summary.id);
            sum += run->summary.main_metric->value;
            if (data.metric.empty()) data.metric = run->summary.main_metric->name;
        }
        const RunDetail& first = *perDataset.begin()->second;
        p.run_id = first.summary.id;
        p.setting = first.summary.setting_spec;
        p.label = setting_label(p.setting);
        p.kv_bytes_per_token = first.memory->bytes_formula;
        p.score = sum / static_cast<double>(perDataset.size());
        p.baseline = is_baseline_setting(p.setting);
        data.points.push_back(p);
    }
    if (query.dataset.empty() && datasets.size() > 1) data.metric = "mean of " + std::to_string(datasets.size()) + " datasets";
    data.higher_is_better = data.metric != "perplexity";
    mark_pareto_front(data.points, data.higher_is_better);
    std::sort(data.points.begin(), data.points.end(), [&](const ParetoPoint& a, const ParetoPoint& b) {
        if (a.kv_bytes_per_token != b.kv_bytes_per_token) return a.kv_bytes_per_token < b.kv_bytes_per_token;
        return data.higher_is_better ? a.score > b.score : a.score < b.score;
    });
    for (const ParetoPoint& p : data.points)
        if (p.baseline) data.baseline = p;
    return data;
}

}  // namespace mlawb::gui
