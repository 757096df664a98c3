// RunCatalog: the results store as the Results and Pareto tabs read it. Plain C++ over
// eval/store.h (no widgets), so tests check the Pareto points and front without a plot.
//
// The Pareto view (accuracy vs KV bytes per token) of one model, one task and one dataset, or
// the mean over the datasets every setting was run on: one point per setting (the latest
// finished run per dataset, among runs with the chosen options), x = the memory row's
// bytes_formula (nominal KV bytes per token, all layers), y = the run's headline metric. The
// front holds the points no other point beats on both axes (fewer or equal bytes and a better
// or equal score, one of them strictly).
#pragma once

#include "eval/store.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mlawb::gui {

// Every run of the file, with metrics and memory rows (ResultsStore::run for each), by id.
// Opens the file read-only in spirit (ExistingOnly): a missing file is an error, not a new DB.
std::vector<RunDetail> load_runs(const std::string& db_path);

struct ParetoPoint {
    int64_t run_id = 0;             // the run a click opens (mean view: the first dataset's run)
    std::vector<int64_t> run_ids;   // every run the point stands for
    std::string setting;            // canonical spec as stored
    std::string label;              // setting_label(setting)
    double kv_bytes_per_token = 0;  // memory.bytes_formula
    double score = 0;               // headline metric (percent for LongBench)
    bool baseline = false;          // the original model (strategy=full, 16-bit cache)
    bool on_front = false;
};

struct ParetoQuery {
    std::string model_hash;          // the model (RunSummary::model_hash)
    std::string task = "longbench";
    std::string dataset;             // "" = mean over the datasets
    std::string options_json;        // "" = any options; else only runs with these (canonical)
};

struct ParetoData {
    ParetoQuery query;
    std::string model_path;
    std::string metric;               // the headline metric's name ("mean of datasets" for the mean)
    bool higher_is_better = true;     // false for perplexity
    std::vector<ParetoPoint> points;  // by bytes, then score
    std::optional<ParetoPoint> baseline;
    std::vector<std::string> datasets;  // the datasets of the view
    int64_t left_out = 0;               // settings missing a finished run on some dataset (mean view)
};

ParetoData build_pareto(const std::vector<RunDetail>& runs, const ParetoQuery& query);

// Sets on_front on `points`.
void mark_pareto_front(std::vector<ParetoPoint>& points, bool higher_is_better);

// "original", "2-norm r4 d_kv16", "high r8 d_kv32 split kv4", "uniform r4 s1 (no latent)": a
// short label for a canonical spec (file paths left out); the spec itself when it does not parse.
std::string setting_label(const std::string& spec);

// "limit 2 · max prompt auto · buckets 0,512,1024,2048" for a LongBench options object.
std::string options_summary(const std::string& options_json);

// True for the original model's setting (strategy=full, no latent, 16-bit cache).
bool is_baseline_setting(const std::string& spec);

}  // namespace mlawb::gui
