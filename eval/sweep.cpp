// Sweep grids, work items, their cost and the deterministic sharding (see eval/sweep.h).
#include "eval/sweep.h"

#include "analysis/strategies.h"
#include "core/config.h"
#include "core/error.h"
#include "core/tokenizer.h"
#include "eval/longbench.h"
#include "eval/store.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

namespace mlawb {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const char* const kGridOption = "--grid";

// The keys MlaSpec::parse accepts (analysis/mla_spec.cpp); a grid axis must name one of them.
// test_sweep checks every one of these parses, so a key renamed there is noticed here.
const std::vector<std::string> kSpecKeys = {"strategy", "r",       "d_kv",    "svd",      "start",    "scores",
                                            "calib",    "mask",    "variant", "kv_bits",  "kv_group", "residual"};

std::string trim(const std::string& s) {
    const size_t begin = s.find_first_not_of(" \t\n");
    if (begin == std::string::npos) return "";
    return s.substr(begin, s.find_last_not_of(" \t\n") - begin + 1);
}

std::vector<std::string> split(const std::string& text, char sep) {
    std::vector<std::string> out;
    std::string item;
    std::stringstream in(text);
    while (std::getline(in, item, sep)) out.push_back(item);
    if (!text.empty() && text.back() == sep) out.push_back("");  // getline drops a trailing empty item
    return out;
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
    return out;
}

}  // namespace

SweepGrid SweepGrid::parse(const std::string& text) {
    if (trim(text).empty())
        throw Error("", kGridOption, "empty grid; expected axes such as \"strategy=high,2-norm;r=2,4;d_kv=8,16\"");
    SweepGrid grid;
    std::set<std::string> keys;
    for (const std::string& raw : split(text, ';')) {
        const std::string axis_text = trim(raw);
        if (axis_text.empty()) throw Error("", kGridOption, "empty axis in '" + text + "' (axes are separated by ';')");
        const size_t eq = axis_text.find('=');
        if (eq == std::string::npos)
            throw Error("", kGridOption, "'" + axis_text + "' is not key=value,value,... (keys: " + join(kSpecKeys, ", ") + ")");
        GridAxis axis;
        axis.key = trim(axis_text.substr(0, eq));
        if (std::find(kSpecKeys.begin(), kSpecKeys.end(), axis.key) == kSpecKeys.end())
            throw Error("", kGridOption, "unknown key '" + axis.key + "' (keys: " + join(kSpecKeys, ", ") + ")");
        if (!keys.insert(axis.key).second) throw Error("", kGridOption, axis.key + ": given twice");
        std::set<std::string> seen;
        for (const std::string& v : split(axis_text.substr(eq + 1), ',')) {
            const std::string value = trim(v);
            if (value.empty()) throw Error("", kGridOption, axis.key + ": empty value in '" + axis_text + "'");
            if (!seen.insert(value).second) throw Error("", kGridOption, axis.key + ": value '" + value + "' given twice");
            axis.values.push_back(value);
        }
        grid.axes.push_back(std::move(axis));
    }
    return grid;
}

int64_t SweepGrid::combinations() const {
    int64_t n = 1;
    for (const GridAxis& a : axes) n *= static_cast<int64_t>(a.values.size());
    return n;
}

MlaSpec canonical_setting(const MlaSpec& spec, const ModelConfig& config) {
    const MlaSpec defaults;
    MlaSpec out = spec;
    if (out.strategy == "full" && out.r == config.head_dim / 2) out.r = defaults.r;
    if (out.strategy != "uniform") out.start = defaults.start;
    if (!find_strategy(out.strategy).needs_scores) {
        out.scores_file.clear();
        out.calib_file.clear();
        out.variant = defaults.variant;
    }
    if (out.strategy != "custom") out.mask_file.clear();
    if (out.kv_bits >= 16) {
        out.kv_group = defaults.kv_group;
        out.residual = defaults.residual;
    }
    return out;
}

GridExpansion expand_grid(const SweepGrid& grid, const ModelConfig& config) {
    GridExpansion out;
    out.combinations = grid.combinations();
    if (grid.axes.empty()) throw Error("", kGridOption, "no axes");
    // Caps what a typo like r=1,2,...,1000 x d_kv=... would make before anything runs.
    constexpr int64_t kMaxCombinations = 100000;
    if (out.combinations > kMaxCombinations)
        throw Error("", kGridOption, std::to_string(out.combinations) + " combinations; at most " +
                                         std::to_string(kMaxCombinations) + " (split the grid)");
    std::set<std::string> listed;
    std::vector<size_t> at(grid.axes.size(), 0);  // odometer, last axis fastest
    for (int64_t n = 0; n < out.combinations; ++n) {
        std::vector<std::string> parts;
        for (size_t a = 0; a < grid.axes.size(); ++a) {
            const std::string& value = grid.axes[a].values[at[a]];
            if (value != "-") parts.push_back(grid.axes[a].key + "=" + value);
        }
        const std::string combination = parts.empty() ? "strategy=full" : join(parts, ",");
        try {
            const MlaSpec spec = canonical_setting(MlaSpec::parse(combination), config);
            spec.validate(config);
            const std::string text = spec.to_string();
            if (listed.insert(text).second) out.settings.push_back(text);
            else out.collapsed.push_back({combination, text});
        } catch (const Error& e) {
            out.refused.push_back({combination, e.reason()});
        }
        for (size_t a = grid.axes.size(); a-- > 0;) {
            if (++at[a] < grid.axes[a].values.size()) break;
            at[a] = 0;
        }
    }
    if (out.settings.empty())
        throw Error("", kGridOption, "no valid setting in the grid's " + std::to_string(out.combinations) +
                                         " combination(s); first refusal: " + out.refused.front().combination + ": " +
                                         out.refused.front().reason);
    return out;
}

DatasetWork measure_dataset(const LongBenchTaskSet& tasks, const std::string& dataset, const Tokenizer& tokenizer,
                            const ModelConfig& config, int64_t limit, int64_t max_prompt) {
    const LongBenchDataset data = tasks.load(dataset, /*strict=*/false);
    const int64_t maxlen = tasks.max_new_tokens(dataset);
    const int64_t cap = max_prompt > 0 ? max_prompt : config.max_position - maxlen;
    const std::string& tmpl = tasks.prompt_template(dataset);
    DatasetWork w;
    w.dataset = dataset;
    w.records = static_cast<int64_t>(data.records.size());
    if (limit >= 0) w.records = std::min(w.records, limit);
    for (int64_t i = 0; i < w.records; ++i) {
        const int64_t tokens = static_cast<int64_t>(tokenizer.encode(fill_prompt(tmpl, data.records[i])).size());
        w.prompt_tokens += std::min(tokens, std::max<int64_t>(cap, 1));
    }
    w.new_tokens = w.records * maxlen;
    return w;
}

// Measured on wb-tiny-mha, CPU, `mlawb eval --limit 3` on the four longbench-syn datasets (12
// samples), user CPU seconds with model load and conversion (one run each, a loaded machine):
// original 1.67, strategy=high,r=4 1.76, high,r=4,d_kv=16 1.81, full,kv_bits=4 2.01,
// high,r=8,d_kv=16,kv_bits=4 2.09; i.e. 1.00 / 1.05 / 1.08 / 1.20 / 1.25.
int64_t setting_cost_permille(const MlaSpec& spec) {
    return 1000 + (spec.strategy != "full" || spec.svd != SvdMode::None ? kConvertedPermille : 0) +
           (spec.kv_bits < 16 ? kQuantizedCachePermille : 0);
}

std::vector<SweepItem> make_sweep_items(const std::vector<std::string>& settings, const std::vector<DatasetWork>& work) {
    std::vector<SweepItem> items;
    for (const std::string& s : settings) {
        const int64_t factor = setting_cost_permille(MlaSpec::parse(s));
        for (const DatasetWork& w : work) items.push_back({s, w.dataset, (factor * w.work() + 500) / 1000});
    }
    return items;
}

ShardSpec ShardSpec::parse(const std::string& text) {
    const std::string form = "expected i/N with 0 <= i < N (e.g. 0/4), got '" + text + "'";
    const size_t slash = text.find('/');
    if (slash == std::string::npos) throw Error("", "--shard", form);
    auto number = [&](const std::string& s) {
        if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
            throw Error("", "--shard", form);
        return static_cast<int64_t>(std::stoll(s));
    };
    ShardSpec shard;
    shard.index = number(text.substr(0, slash));
    shard.count = number(text.substr(slash + 1));
    if (shard.count < 1 || shard.index >= shard.count) throw Error("", "--shard", form);
    return shard;
}

namespace {

// Item indices in dealing order: cost descending, then key ascending.
std::vector<size_t> dealing_order(const std::vector<SweepItem>& items) {
    std::vector<size_t> order(items.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::vector<std::string> keys;
    keys.reserve(items.size());
    for (const SweepItem& it : items) keys.push_back(it.key());
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        if (items[a].cost != items[b].cost) return items[a].cost > items[b].cost;
        return keys[a] < keys[b];
    });
    for (size_t i = 1; i < order.size(); ++i)
        if (keys[order[i]] == keys[order[i - 1]])
            throw Error("", "--grid", "the item " + items[order[i]].setting + " x " + items[order[i]].dataset + " is listed twice");
    return order;
}

}  // namespace

std::vector<int64_t> assign_shards(const std::vector<SweepItem>& items, int64_t count) {
    if (count < 1) throw Error("", "--shard", "needs at least one shard");
    std::vector<int64_t> shard(items.size(), 0), load(static_cast<size_t>(count), 0);
    for (size_t i : dealing_order(items)) {
        // min_element returns the first of equal minima: the lowest shard index on ties.
        const auto least = std::min_element(load.begin(), load.end()) - load.begin();
        shard[i] = least;
        load[least] += items[i].cost;
    }
    return shard;
}

std::vector<SweepItem> shard_items(const std::vector<SweepItem>& items, const ShardSpec& shard) {
    const std::vector<int64_t> owner = assign_shards(items, shard.count);
    std::vector<SweepItem> out;
    for (size_t i : dealing_order(items))
        if (owner[i] == shard.index) out.push_back(items[i]);
    return out;
}


std::set<std::string> finished_item_keys(const std::string& db_path, const std::string& model_hash,
                                         const std::string& options_json, const ModelConfig& config) {
    std::set<std::string> done;
    std::error_code ec;
    if (!fs::exists(db_path, ec)) return done;
    const std::string wanted = json::parse(options_json).dump();
    const ResultsStore store = ResultsStore::open(db_path, ResultsStore::OpenMode::ExistingOnly);
    for (const RunSummary& run : store.list_runs()) {
        if (run.status != RunStatus::Finished || run.task != "longbench" || run.model_hash != model_hash) continue;
        if (json::parse(store.run(run.id).options_json).dump() != wanted) continue;
        std::string setting;
        try {
            setting = canonical_setting(MlaSpec::parse(run.setting_spec), config).to_string();
        } catch (const Error&) {
            continue;  // a spec this program does not read (hand-made row): not one of ours
        }
        done.insert(SweepItem{setting, run.dataset, 0}.key());
    }
    return done;
}

}  // namespace mlawb
