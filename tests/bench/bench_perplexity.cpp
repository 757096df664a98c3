// Perplexity throughput on the bundled model: tokens/s (median of 3 runs) with LibTorch's
// default of 1 intra-op thread (matrix products threaded by the BLAS) against one intra-op
// thread per core, side by side, and the perplexity each run found.
//
//   build/tests/bench/bench_perplexity [MODEL] [TEXT] [--windows N]
#include "core/llama_model.h"
#include "eval/perplexity.h"

#include <ATen/Parallel.h>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace mlawb;

namespace {

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

struct Row {
    int threads;
    int64_t window;
    double tokens_per_second;
    double perplexity;
};

Row measure(LlamaForCausalLMImpl& model, const std::vector<int64_t>& ids, int threads, int64_t window, int64_t windows) {
    at::set_num_threads(threads);
    PerplexityOptions options;
    options.window = window;
    options.max_windows = windows;
    std::vector<double> rates;
    double ppl = 0;
    for (int run = 0; run < 3; ++run) {
        PerplexityResult r = compute_perplexity(model, ids, options);
        rates.push_back(r.tokens_total / r.seconds);
        ppl = r.perplexity;
    }
    return {threads, window, median(rates), ppl};
}

}  // namespace

int main(int argc, char** argv) {
    std::string model_dir = std::string(MLAWB_SOURCE_DIR) + "/resources/models/wb-tiny-mha";
    std::string text_path = std::string(MLAWB_SHARED_DIR) + "/fixtures/heldout.txt";
    int64_t windows = 4;
    std::vector<std::string> positional;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--windows" && i + 1 < argc) windows = std::stoll(argv[++i]);
        else positional.push_back(a);
    }
    if (positional.size() > 0) model_dir = positional[0];
    if (positional.size() > 1) text_path = positional[1];
    std::ifstream in(text_path, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "bench_perplexity: cannot open %s\n", text_path.c_str());
        return 2;
    }
    std::stringstream text;
    text << in.rdbuf();
    LoadedModel m = load_model(model_dir);
    std::vector<int32_t> ids32 = m.tokenizer.encode(text.str());
    std::vector<int64_t> ids(ids32.begin(), ids32.end());
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

    std::printf("perplexity throughput, %s, %lld windows, median of 3 runs\n", model_dir.c_str(), (long long)windows);
    std::printf("%-8s %18s %22s %10s %12s\n", "window", "tok/s (1 thread)", "tok/s (threads=cores)", "ratio",
                "perplexity");
    for (int64_t window : {512, 2048}) {
        Row one = measure(*m.model, ids, 1, window, windows * (2048 / window));
        Row all = measure(*m.model, ids, cores, window, windows * (2048 / window));
        std::printf("%-8lld %18.0f %22.0f %9.2fx %12.4f\n", (long long)window, one.tokens_per_second,
                    all.tokens_per_second, one.tokens_per_second / all.tokens_per_second, one.perplexity);
    }
    std::printf("(ratio = 1-thread default over %d intra-op threads; the default is what mlawb uses)\n", cores);
    return 0;
}
