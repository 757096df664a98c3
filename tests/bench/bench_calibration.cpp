// Calibration for the 2-norm RoPE scores on the bundled model: seconds and tokens/s (median
// of 3 runs, wall and CPU) of calibrate_rope_scores (forward pass + q/k pair norms + scores) beside a plain
// forward pass over the same windows, so the ratio shows what collecting the norms costs
// (the q and k projections run twice per layer: once for the norms, once in attention).
//
//   build/tests/bench/bench_calibration [MODEL] [TEXT] [--windows 16] [--seq-len 2048] [--runs 3]
#include "analysis/calibration.h"
#include "core/llama_model.h"

#include <ATen/Parallel.h>
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

using namespace mlawb;

namespace {

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// Wall seconds and process CPU seconds (all threads, BLAS ones included) of one call. On
// a shared machine the CPU time is the steadier of the two: waiting for a core costs none.
struct Timing {
    double wall = 0, cpu = 0;
};

Timing time_of(const std::function<void()>& work) {
    const auto wall_start = std::chrono::steady_clock::now();
    const std::clock_t cpu_start = std::clock();
    work();
    return {std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count(),
            static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC};
}

}  // namespace

int main(int argc, char** argv) {
    std::string model_dir = std::string(MLAWB_SOURCE_DIR) + "/resources/models/wb-tiny-mha";
    std::string text_path = std::string(MLAWB_SHARED_DIR) + "/fixtures/finetune/text.txt";
    CalibrationOptions options;  // 16 x 2048, the benchmark setting
    int runs = 3;
    std::vector<std::string> positional;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--windows" && i + 1 < argc) options.windows = std::stoll(argv[++i]);
        else if (a == "--seq-len" && i + 1 < argc) options.seq_len = std::stoll(argv[++i]);
        else if (a == "--runs" && i + 1 < argc) runs = std::max(1, std::stoi(argv[++i]));
        else positional.push_back(a);
    }
    if (positional.size() > 0) model_dir = positional[0];
    if (positional.size() > 1) text_path = positional[1];
    std::ifstream in(text_path, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "bench_calibration: cannot open %s\n", text_path.c_str());
        return 2;
    }
    std::stringstream text;
    text << in.rdbuf();
    LoadedModel m = load_model(model_dir);
    const std::vector<int32_t> ids32 = m.tokenizer.encode(text.str());
    const std::vector<int64_t> ids(ids32.begin(), ids32.end());
    const std::vector<CalibrationWindow> plan =
        calibration_windows(static_cast<int64_t>(ids.size()), options.windows, options.seq_len);
    int64_t tokens = 0;
    for (const auto& w : plan) tokens += w.length;

    // Baseline: the engine's forward over the same windows, each from an empty cache. The two
    // passes alternate run by run, so load from other processes falls on both alike.
    const torch::Tensor all = torch::tensor(ids, torch::kInt64);
    auto plain_forward = [&] {
        torch::NoGradGuard no_grad;
        for (const auto& w : plan) {
            KVCache cache = m.model->make_cache();
            m.model->forward_hidden(all.narrow(0, w.begin, w.length).unsqueeze(0), cache);
        }
    };
    RopeScores scores;
    std::vector<double> forward_wall, forward_cpu, calibration_wall, calibration_cpu, wall_ratios, cpu_ratios;
    for (int run = 0; run < runs; ++run) {
        const Timing forward = time_of(plain_forward);
        const Timing calibration = time_of([&] { scores = calibrate_rope_scores(*m.model, ids, options); });
        forward_wall.push_back(forward.wall);
        forward_cpu.push_back(forward.cpu);
        calibration_wall.push_back(calibration.wall);
        calibration_cpu.push_back(calibration.cpu);
        wall_ratios.push_back(calibration.wall / forward.wall);
        cpu_ratios.push_back(calibration.cpu / forward.cpu);
    }
    if (scores.provenance.tokens != tokens) {
        std::fprintf(stderr, "bench_calibration: calibration ran %lld tokens, expected %lld\n",
                     static_cast<long long>(scores.provenance.tokens), static_cast<long long>(tokens));
        return 1;
    }

    std::printf("2-norm calibration, %s\n%s: %zu windows x %lld = %lld tokens, median of %d runs, %d intra-op thread(s)\n\n",
                model_dir.c_str(), text_path.c_str(), plan.size(), static_cast<long long>(options.seq_len),
                static_cast<long long>(tokens), runs, at::get_num_threads());
    std::printf("%-30s %9s %9s %9s %11s %11s\n", "pass", "wall s", "tok/s", "CPU s", "wall ratio", "CPU ratio");
    std::printf("%-30s %9.2f %9.0f %9.2f %10.2fx %10.2fx\n", "plain forward (baseline)", median(forward_wall),
                tokens / median(forward_wall), median(forward_cpu), 1.0, 1.0);
    std::printf("%-30s %9.2f %9.0f %9.2f %10.2fx %10.2fx\n", "calibration: norms + scores", median(calibration_wall),
                tokens / median(calibration_wall), median(calibration_cpu), median(wall_ratios), median(cpu_ratios));
    std::printf("(seconds and tok/s: medians over runs; ratios: medians over runs of calibration / the same run's plain\n"
                " forward, the two alternating; > 1 is the cost of collecting the pair norms)\n");
    return 0;
}
