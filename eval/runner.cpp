#include "eval/runner.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/generate.h"
#include "core/llama_model.h"
#include "eval/metrics.h"

#include <chrono>
#include <cmath>

namespace mlawb {

std::vector<SampleResult> evaluate_dataset(LoadedModel& m, const LongBenchTaskSet& tasks, const LongBenchDataset& dataset,
                                           const DatasetEvalOptions& options) {
    const std::string& tmpl = tasks.prompt_template(dataset.name);
    const int64_t maxlen = tasks.max_new_tokens(dataset.name);
    const std::string metric = tasks.metric_name(dataset.name);
    if (metric.empty())
        throw Error(tasks.folder(), dataset.name, "no metric known for this dataset (add it to dataset2metric.json)");
    const MetricFn& score_fn = find_metric(metric);  // throws for unknown / unsupported metrics
    const int64_t max_prompt = options.max_prompt > 0 ? options.max_prompt : m.config.max_position - maxlen;
    if (max_prompt < 2) throw Error("", "--max-prompt", "leaves no room for a prompt");

    int64_t total = static_cast<int64_t>(dataset.records.size());
    if (options.limit >= 0) total = std::min(total, options.limit);
    std::vector<SampleResult> results;
    int64_t prompt_tokens_done = 0;
    for (int64_t i = 0; i < total; ++i) {
        const LongBenchRecord& rec = dataset.records[i];
        if (options.already_done && options.already_done(rec.id)) {
            if (options.progress) options.progress(i + 1, total, prompt_tokens_done);
            continue;
        }
        if (options.cancelled && options.cancelled()) throw Cancelled();
        const auto t0 = std::chrono::steady_clock::now();
        SampleResult s;
        s.id = rec.id;
        s.length = rec.length;
        std::string prompt = fill_prompt(tmpl, rec);
        std::vector<int32_t> ids = m.tokenizer.encode(prompt);
        if (static_cast<int64_t>(ids.size()) > max_prompt) {
            // LongBench: keep the first and last max_prompt/2 tokens, decoded and re-encoded.
            const int64_t half = max_prompt / 2;
            std::vector<int32_t> head(ids.begin(), ids.begin() + half), tail(ids.end() - half, ids.end());
            prompt = m.tokenizer.decode_skip_special(head) + m.tokenizer.decode_skip_special(tail);
            ids = m.tokenizer.encode(prompt);
            s.truncated = true;
        }
        s.prompt_tokens = static_cast<int64_t>(ids.size());
        GenerateOptions gen;
        gen.max_new_tokens = maxlen;
        gen.cancelled = options.cancelled;
        GenerateResult out = greedy_generate(*m.model, std::vector<int64_t>(ids.begin(), ids.end()), gen);
        std::vector<int32_t> generated(out.ids.begin(), out.ids.end());
        s.generated_tokens = static_cast<int64_t>(generated.size());
        s.prediction = m.tokenizer.decode_skip_special(generated);
        s.score = score_record(score_fn, dataset.name, s.prediction, rec.answers, rec.all_classes);
        s.latency_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        prompt_tokens_done += s.prompt_tokens;
        if (options.on_sample) options.on_sample(s);
        results.push_back(std::move(s));
        if (options.progress) options.progress(i + 1, total, prompt_tokens_done);
    }
    return results;
}

std::map<std::string, double> aggregate_scores(const std::string& dataset, const std::vector<SampleResult>& samples,
                                               const std::vector<int64_t>& edges) {
    std::vector<double> scores;
    std::vector<int64_t> tokens;
    for (const auto& s : samples) {
        scores.push_back(s.score);
        tokens.push_back(s.prompt_tokens);
    }
    return dataset_and_bucket_scores(dataset, scores, tokens, edges);
}

std::string longbench_run_options_json(int64_t limit, int64_t max_prompt, const std::vector<int64_t>& bucket_edges,
                                       const std::string& tasks_folder, const std::string& dtype) {
    nlohmann::json options = {{"limit", limit},
                              {"max_prompt", max_prompt},
                              {"buckets", bucket_edges},
                              {"tasks", std::filesystem::absolute(tasks_folder).lexically_normal().string()}};
    if (dtype != "f32") options["dtype"] = dtype;
    return options.dump();
}

}  // namespace mlawb
