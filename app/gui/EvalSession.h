// EvalSession: one LongBench-style evaluation as the Eval tab runs it, off the GUI thread: load
// the model, apply the setting (converted in memory), and evaluate each chosen dataset, every
// sample recorded in the SQLite results store as soon as it is scored. The runs are keyed
// exactly as `mlawb eval` keys them (model content hash, setting, task "longbench", dataset, and
// the options {limit, max_prompt, buckets, tasks}), so a run the GUI cancelled resumes from the
// GUI or from the command line, and the other way round. Plain C++: no widgets, no LibTorch in
// this header.
#pragma once

#include "analysis/rope_scores.h"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mlawb::gui {

struct EvalRequest {
    std::string model_folder;               // a Hugging Face folder (original or converted)
    std::string tasks_folder;               // LongBench-format task folder
    std::string db_path;                    // SQLite results store (created when missing)
    std::vector<std::string> datasets;      // empty: every dataset of the folder
    int64_t limit = -1;                     // first N records per dataset; -1: all
    int64_t max_prompt = -1;                // tokens; -1: the model's context minus maxlen
    std::vector<int64_t> buckets = {0, 512, 1024, 2048};  // prompt-token bucket edges, as the CLI's default
    std::string spec = "strategy=full";     // --mla text; strategy=full is the original model
    std::optional<RopeScores> scores;       // in-memory 2-norm scores (see GuiSetting.h)
};

// What the worker tells the panel, in order: Stage while loading and converting, then per
// dataset DatasetStarted, one Sample per newly scored sample, DatasetFinished.
struct EvalProgress {
    enum class Event { Stage, DatasetStarted, Sample, DatasetFinished };
    Event event = Event::Stage;
    std::string stage;                 // Stage: "loading the model", "converting to MLA", ...
    std::string dataset;
    int64_t run_id = 0;
    bool resumed = false;              // DatasetStarted: the run existed (cancelled or killed before)
    bool already_finished = false;     // DatasetStarted: nothing left to do
    int64_t dataset_done = 0;          // samples of this dataset recorded, earlier ones included
    int64_t dataset_total = 0;         // samples of this dataset the request covers
    int64_t overall_done = 0, overall_total = 0;  // over every dataset of the request
    int64_t new_samples = 0;           // scored by this session so far (for the ETA)
    double score_percent = 0;          // Sample: mean score of the recorded samples x 100;
                                       // DatasetFinished: LongBench's dataset score (rounded)
    std::string sample_id;             // Sample: the record's _id
};

struct EvalOutcome {
    std::string db_path, spec;               // spec: canonical text as stored
    std::map<std::string, int64_t> run_ids;  // by dataset
    std::map<std::string, double> scores;    // "<dataset>" and "<dataset>@<bucket>", percent
    double overall = 0;                      // mean of the dataset scores
};

// Runs the request; `report` is called on the worker thread. Cancelled (polled between samples
// and between generated tokens): the run is marked cancelled and mlawb::Cancelled is thrown;
// running the same request again resumes it. Errors: the run is marked failed and the
// mlawb::Error is rethrown.
EvalOutcome run_longbench_evaluation(const EvalRequest& request,
                                     const std::function<void(const EvalProgress&)>& report,
                                     const std::function<bool()>& cancelled);


}  // namespace mlawb::gui
