// The LongBench-style evaluation loop for one dataset: prompt = template filled with context
// and input, truncated in the middle when longer than the maximum prompt (LongBench's pred.py:
// keep the first and last halves of the tokens, decoded and re-encoded), greedy decoding of at
// most maxlen new tokens stopping at eos, LongBench's post-processing, and the metric.
// Storage is the caller's: samples already recorded are skipped through `already_done`, each
// new one is handed to `on_sample` as soon as it is scored (so a killed run loses at most the
// sample in flight).
#pragma once

#include "eval/longbench.h"

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace mlawb {

struct LoadedModel;

struct SampleResult {
    std::string id;
    int64_t prompt_tokens = 0;   // after truncation
    bool truncated = false;
    std::string prediction;      // decoded continuation (special tokens skipped)
    double score = 0;            // metric in [0, 1], max over answers
    double latency_ms = 0;
    int64_t generated_tokens = 0;
    int64_t length = 0;          // the record's `length` field (LongBench-E buckets)
};

struct DatasetEvalOptions {
    int64_t limit = -1;          // first N records only
    int64_t max_prompt = -1;     // tokens; -1: model context minus maxlen
    std::function<bool(const std::string& id)> already_done;       // skip recorded samples
    std::function<void(const SampleResult&)> on_sample;            // record one scored sample
    std::function<void(int64_t done, int64_t total, int64_t prompt_tokens)> progress;
    std::function<bool()> cancelled;                               // polled between samples
};

// Runs the dataset's records (not those already done); returns the new samples.
std::vector<SampleResult> evaluate_dataset(LoadedModel& model, const LongBenchTaskSet& tasks,
                                           const LongBenchDataset& dataset, const DatasetEvalOptions& options);

// Scores in percent (two decimals, LongBench's rounding): {"<dataset>": s} plus
// {"<dataset>@<lo>-<hi>": s} per non-empty bucket of prompt tokens with the given edges (a
// sample with prompt_tokens p lands in [lo, hi)); see eval/metrics.h.
// The options a LongBench run is keyed by (canonical JSON text; nlohmann sorts the keys), shared
// by `mlawb eval`, `mlawb sweep` and the GUI so each resumes the others' runs. The tasks folder is
// made absolute and normal ("a/../b" = "b"); dtype (f32 | bf16 | f16) enters only when not f32,
// since 16-bit weights change results, while f32 keys stay what they were before dtypes existed.
std::string longbench_run_options_json(int64_t limit, int64_t max_prompt, const std::vector<int64_t>& bucket_edges,
                                       const std::string& tasks_folder, const std::string& dtype = "f32");

std::map<std::string, double> aggregate_scores(const std::string& dataset, const std::vector<SampleResult>& samples,
                                               const std::vector<int64_t>& bucket_edges);

}  // namespace mlawb
