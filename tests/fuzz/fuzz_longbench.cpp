// LongBench JSONL records: parse_longbench_record on one arbitrary line, then what the runner
// does with an accepted record: the prompt template filled (the record's own input serves as
// a template too, so arbitrary templates are covered) and the record scored with a metric
// (the dataset's official one, else one picked by `length`) on its own text.
#include "eval/longbench.h"
#include "eval/metrics.h"
#include "fuzz_support.h"

#include <cmath>

using namespace mlawb;

namespace {

// The metrics are quadratic in words (ROUGE-L's LCS); keep each run short.
std::string clip(const std::string& s) { return s.substr(0, 512); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::refuse_only_with_errors([&] {
        const LongBenchRecord r = parse_longbench_record(fuzz::as_text(data, size), "fuzz.jsonl", 7);
        FUZZ_CHECK(r.line == 7);
        const std::string prompt = fill_prompt("Read: {context}\n{{not a field}} Q: {input}\nA:", r);
        FUZZ_CHECK(prompt.size() >= r.context.size() + r.input.size());
        (void)fill_prompt(r.input, r);

        std::string metric = official_metric_name(r.dataset);
        if (metric.empty()) {
            const std::vector<std::string> names = metric_names();
            metric = names[static_cast<uint64_t>(r.length) % names.size()];
        }
        std::vector<std::string> answers, classes;
        for (size_t i = 0; i < r.answers.size() && i < 4; ++i) answers.push_back(clip(r.answers[i]));
        for (size_t i = 0; i < r.all_classes.size() && i < 8; ++i) classes.push_back(clip(r.all_classes[i]));
        const MetricFn& fn = find_metric(metric);  // the jieba metrics refuse with an Error
        const double score = score_record(fn, r.dataset, clip(r.context), answers, classes);
        FUZZ_CHECK(score >= 0.0 && score <= 1.0);
    });
    return 0;
}
