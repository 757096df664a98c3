// LongBench-style evaluation throughput on the bundled model and the fixture tasks: prompt
// tokens/s and samples/s, median of 3 runs, the original model against MLA d_kv 16 side by side.
//
//   build/tests/bench/bench_eval [--limit N]   (records per dataset, default 10)
#include "analysis/convert.h"
#include "analysis/setting.h"
#include "core/llama_model.h"
#include "eval/longbench.h"
#include "eval/runner.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

using namespace mlawb;

namespace {

struct Rate {
    double prompt_tokens_per_s, samples_per_s, mean_score;
};

Rate measure(LoadedModel& m, const LongBenchTaskSet& tasks, int64_t limit) {
    std::vector<double> tok_rates, sample_rates;
    double score = 0;
    for (int run = 0; run < 3; ++run) {
        int64_t tokens = 0, samples = 0;
        double score_sum = 0;
        const auto t0 = std::chrono::steady_clock::now();
        for (const std::string& name : tasks.datasets()) {
            LongBenchDataset data = tasks.load(name, true);
            DatasetEvalOptions options;
            options.limit = limit;
            for (const SampleResult& s : evaluate_dataset(m, tasks, data, options)) {
                tokens += s.prompt_tokens;
                ++samples;
                score_sum += s.score;
            }
        }
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        tok_rates.push_back(tokens / secs);
        sample_rates.push_back(samples / secs);
        score = 100.0 * score_sum / samples;
    }
    std::sort(tok_rates.begin(), tok_rates.end());
    std::sort(sample_rates.begin(), sample_rates.end());
    return {tok_rates[1], sample_rates[1], score};
}

}  // namespace

int main(int argc, char** argv) {
    int64_t limit = 10;
    for (int i = 1; i + 1 < argc; ++i)
        if (std::string(argv[i]) == "--limit") limit = std::stoll(argv[++i]);
    const std::string model_dir = std::string(MLAWB_SOURCE_DIR) + "/resources/models/wb-tiny-mha";
    const LongBenchTaskSet tasks = LongBenchTaskSet::open(std::string(MLAWB_SHARED_DIR) + "/fixtures/longbench-syn");
    std::printf("eval throughput, wb-tiny-mha, longbench-syn, %lld records per dataset, median of 3\n", (long long)limit);
    std::printf("%-40s %16s %12s %12s\n", "setting", "prompt tok/s", "samples/s", "mean score");
    Rate base{};
    for (const char* text : {"strategy=full", "strategy=high,r=4,d_kv=16,svd=joint"}) {
        LoadedModel m = load_model(model_dir);
        MlaSpec spec = MlaSpec::parse(text);
        if (!spec.is_original()) {
            ResolvedSetting s = resolve_setting(spec, m.config, {});
            convert_to_mla(*m.model, s.spec, s.kept);
        }
        Rate r = measure(m, tasks, limit);
        if (spec.is_original()) base = r;
        std::printf("%-40s %16.0f %12.2f %12.2f   (%.2fx samples/s of original)\n", text, r.prompt_tokens_per_s,
                    r.samples_per_s, r.mean_score, r.samples_per_s / base.samples_per_s);
    }
    return 0;
}
