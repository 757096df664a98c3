// bench_memory: the KV memory model must answer well under 1 ms (the GUI calls it on every
// slider move). Times estimate_memory per call, median of 5 batches, for the Llama-2-7B and
// SmolLM-135M configs, beside two baselines: parsing the spec text and estimating (the GUI
// path when it rebuilds the setting from text) and reading config.json (done once per model).
#include "analysis/memory_model.h"
#include "analysis/mla_spec.h"
#include "core/config.h"
#include "core/error.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

using namespace mlawb;

namespace {

volatile double g_sink = 0;  // keeps the optimizer from dropping the timed calls

// Median over `batches` of the mean time per call (microseconds) of `calls` calls.
double median_us_per_call(int64_t calls, int batches, const std::function<double()>& call) {
    std::vector<double> per_call;
    for (int b = 0; b < batches; ++b) {
        double sum = 0;
        const auto start = std::chrono::steady_clock::now();
        for (int64_t i = 0; i < calls; ++i) sum += call();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        g_sink = g_sink + sum;
        per_call.push_back(seconds * 1e6 / static_cast<double>(calls));
    }
    std::sort(per_call.begin(), per_call.end());
    return per_call[per_call.size() / 2];
}

struct Case {
    const char* label;
    const char* config_file;  // under tests/data/configs/
    const char* spec;
};

}  // namespace

int main() {
    const std::string configs = std::string(MLAWB_SOURCE_DIR) + "/tests/data/configs/";
    const Case cases[] = {
        {"Llama-2-7B", "llama-2-7b.json", "strategy=high,r=8,d_kv=64,svd=joint"},
        {"Llama-2-7B", "llama-2-7b.json", "strategy=2-norm,r=8,d_kv=64,svd=joint,kv_bits=4,scores=s.json"},
        {"SmolLM-135M", "smollm-135m.json", "strategy=2-norm,r=4,d_kv=16,svd=joint,calib=t.txt"},
        {"SmolLM-135M", "smollm-135m.json", "strategy=uniform,r=4,d_kv=8,svd=split,kv_bits=2,kv_group=32"},
    };
    constexpr int64_t kCalls = 100000, kConfigCalls = 2000;
    constexpr int kBatches = 5;
    std::printf("bench_memory: microseconds per call, median of %d batches (%lld calls per batch; config.json %lld)\n\n",
                kBatches, static_cast<long long>(kCalls), static_cast<long long>(kConfigCalls));
    std::printf("%-12s %-62s %10s %14s %12s %8s %6s\n", "config", "spec", "estimate", "parse+estimate", "config.json",
                "-nominal", "goal");
    bool all_fast = true;
    try {
        for (const Case& c : cases) {
            const std::string path = configs + c.config_file;
            const ModelConfig config = ModelConfig::from_file(path);
            const MlaSpec spec = MlaSpec::parse(c.spec);
            const int64_t ctx = config.max_position;
            int64_t slider = 0;  // varies ctx like a slider so no call repeats the previous one
            const double estimate_us = median_us_per_call(kCalls, kBatches, [&] {
                const MemoryEstimate m = estimate_memory(config, spec, 1 + (ctx + slider++) % (4 * ctx), 1);
                return m.real_total_bytes;
            });
            const std::string spec_text = c.spec;
            const double parse_us = median_us_per_call(kCalls, kBatches, [&] {
                return estimate_memory(config, MlaSpec::parse(spec_text), ctx, 1).reduction_percent;
            });
            const double config_us = median_us_per_call(kConfigCalls, kBatches, [&] {
                return static_cast<double>(ModelConfig::from_file(path).n_layer);
            });
            const MemoryEstimate m = estimate_memory(config, spec, ctx, 1);
            const bool fast = estimate_us < 1000.0;
            all_fast = all_fast && fast;
            std::printf("%-12s %-62s %10.3f %14.3f %12.2f %7.2f%% %6s\n", c.label, c.spec, estimate_us, parse_us, config_us,
                        m.reduction_percent, fast ? "<1ms" : "SLOW");
        }
    } catch (const Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    }
    std::printf("\ngoal: estimate_memory under 1000 us per call: %s\n", all_fast ? "met" : "MISSED");
    return all_fast ? 0 : 1;
}
