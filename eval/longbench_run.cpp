#include "eval/longbench_run.h"

#include "analysis/memory_model.h"
#include "analysis/mla_spec.h"
#include "core/error.h"

#include <sys/resource.h>

namespace mlawb {

MemoryRow memory_row(const MemoryEstimate& memory, const MlaSpec& spec) {
    MemoryRow mem;
    mem.kv_elements_per_token = memory.elements_per_token;
    mem.bytes_formula = memory.nominal_bytes_per_token;
    mem.bytes_real = memory.real_bytes_per_token;
    mem.kv_bits = spec.kv_bits;
    mem.kv_group = spec.kv_bits < 16 ? spec.kv_group : 0;
    mem.kv_residual = spec.kv_bits < 16 ? spec.residual : 0;
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    mem.peak_rss_bytes = static_cast<int64_t>(usage.ru_maxrss) * 1024;  // ru_maxrss is in KiB
    return mem;
}

LongBenchRunOutcome run_longbench_dataset(LoadedModel& model, const LongBenchTaskSet& tasks,
                                          const LongBenchDataset& dataset, ResultsStore& store, RunRequest request,
                                          const MemoryEstimate& memory, const MlaSpec& spec,
                                          const LongBenchRunOptions& options, const LongBenchRunEvents& events) {
    request.task = "longbench";
    request.dataset = dataset.name;
    request.malformed_lines = static_cast<int64_t>(dataset.malformed.size());
    LongBenchRunOutcome outcome;
    outcome.run = store.begin_or_resume_run(request);
    const RunHandle& run = outcome.run;
    if (events.started) {
        double score_sum = 0;
        int64_t recorded = 0;
        for (const SampleRow& row : store.samples(run.run_id)) {
            score_sum += row.score;
            ++recorded;
        }
        events.started(run, recorded, score_sum);
    }
    if (!run.finished) {
        DatasetEvalOptions eval;
        eval.limit = options.limit;
        eval.max_prompt = options.max_prompt;
        eval.already_done = [&](const std::string& id) { return run.recorded_sample_ids.count(id) > 0; };
        eval.on_sample = [&](const SampleResult& s) {
            SampleRow row;
            row.sample_id = s.id;
            row.prompt_tokens = s.prompt_tokens;
            row.truncated = s.truncated;
            row.prediction = s.prediction;
            row.score = s.score;
            row.latency_ms = s.latency_ms;
            row.generated_tokens = s.generated_tokens;
            row.length = s.length;
            if (!store.record_sample(run.run_id, row)) return;  // another process recorded it first
            if (events.recorded) events.recorded(s);
        };
        eval.progress = events.progress;
        eval.cancelled = events.cancelled;
        try {
            evaluate_dataset(model, tasks, dataset, eval);
        } catch (const Cancelled&) {
            store.finish_run(run.run_id, RunStatus::Cancelled, options.stop_reason);
            throw;
        } catch (const std::exception& e) {
            store.finish_run(run.run_id, RunStatus::Failed, e.what());
            throw;
        }
    }
    // Scores from everything recorded for the run (this process's samples and earlier ones).
    std::vector<SampleResult> all;
    for (const SampleRow& row : store.samples(run.run_id)) {
        SampleResult s;
        s.id = row.sample_id;
        s.prompt_tokens = row.prompt_tokens;
        s.score = row.score;
        all.push_back(s);
    }
    outcome.scores = aggregate_scores(dataset.name, all, options.bucket_edges);
    if (!run.finished) {
        std::vector<MetricRow> metric_rows;
        for (const auto& [key, value] : outcome.scores) {
            const auto at = key.find('@');
            metric_rows.push_back({tasks.metric_name(dataset.name), at == std::string::npos ? "" : key.substr(at + 1), value});
        }
        store.record_metrics(run.run_id, metric_rows);
        store.record_memory(run.run_id, memory_row(memory, spec));
        store.finish_run(run.run_id, RunStatus::Finished);
    }
    return outcome;
}

}  // namespace mlawb
