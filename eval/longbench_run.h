// One LongBench dataset as a recorded, resumable run of the results store: the loop `mlawb eval`
// (and through it `mlawb sweep`) and the workbench's Eval panel share, so that both record the
// same rows and resume each other's runs. Begin or resume the run keyed by the request, evaluate
// the records not yet recorded (each sample stored as soon as it is scored: a killed process
// loses at most the sample in flight), then aggregate every recorded sample, record the metric
// rows and the memory row, and finish the run.
#pragma once

#include "eval/runner.h"
#include "eval/store.h"

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace mlawb {

struct LoadedModel;
struct MemoryEstimate;
struct MlaSpec;

// The memory row of a run: the memory model's nominal and real KV bytes per token (all layers)
// for the setting's cache (bits, group, residual window), and this process's peak RSS.
MemoryRow memory_row(const MemoryEstimate& memory, const MlaSpec& spec);

struct LongBenchRunOptions {
    int64_t limit = -1;                 // first N records only
    int64_t max_prompt = -1;            // tokens; -1: the model's context minus maxlen
    std::vector<int64_t> bucket_edges;  // prompt-token buckets of the scores
    std::string stop_reason = "cancelled";  // recorded when the run is cancelled
};

struct LongBenchRunEvents {
    // The run was begun or resumed; `recorded` samples (their scores summing to `score_sum`)
    // were already in the store.
    std::function<void(const RunHandle& run, int64_t recorded, double score_sum)> started;
    // A new sample was scored and recorded (not called for one another process recorded first).
    std::function<void(const SampleResult& sample)> recorded;
    std::function<void(int64_t done, int64_t total, int64_t prompt_tokens)> progress;
    std::function<bool()> cancelled;  // polled between samples; true stops with mlawb::Cancelled
};

struct LongBenchRunOutcome {
    RunHandle run;                         // as begun: resumed, already finished
    std::map<std::string, double> scores;  // aggregate_scores over every recorded sample
};

// `request` names the model, setting, options, device...; task and dataset are set here. On
// Cancelled the run is marked cancelled (options.stop_reason), on any other exception failed
// with its message; both are rethrown. A run that had finished is only read.
LongBenchRunOutcome run_longbench_dataset(LoadedModel& model, const LongBenchTaskSet& tasks,
                                          const LongBenchDataset& dataset, ResultsStore& store, RunRequest request,
                                          const MemoryEstimate& memory, const MlaSpec& spec,
                                          const LongBenchRunOptions& options, const LongBenchRunEvents& events);

}  // namespace mlawb
