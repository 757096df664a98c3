// Held-out perplexity with a quantized KV cache, alone and combined with MLA, for both fixture
// models: float32 cache vs int8 / int4 / int2 (group 64, residual 128), and MLA 2-norm r 4
// joint d_kv 16 in float32 and int4. Bytes per token, all layers:
//   nominal   the memory model's elements x kv_bits / 8 (16-bit values for the unquantized rows)
//   exact16   the memory model's exact footprint at 2048 tokens / 2048, residual window at fp16
//   measured  this engine's cache bytes after a 2048-token prefill / 2048 (float32 compute, so
//             unquantized values and the residual window cost 4 bytes)
// 2-norm scores are calibrated on finetune/text.txt (16 x 2048 tokens) unless
// --scores-dir DIR holds DIR/<model>.json (from `mlawb rope-scores --out`).
//
//   build/tests/bench/bench_kv_quant [--windows N] [--scores-dir DIR]   (default: all of heldout.txt)
#include "analysis/calibration.h"
#include "analysis/convert.h"
#include "analysis/memory_model.h"
#include "analysis/setting.h"
#include "core/llama_model.h"
#include "eval/perplexity.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace mlawb;

namespace {

struct Row {
    double perplexity = 0;
    double nominal_bytes_per_token = 0;
    double exact_fp16_bytes_per_token = 0;
    double measured_bytes_per_token = 0;
};

constexpr int64_t kBytesContext = 2048;

double measured_bytes_per_token(LlamaForCausalLMImpl& model, const std::vector<int64_t>& ids) {
    torch::NoGradGuard no_grad;
    const int64_t n = std::min<int64_t>(kBytesContext, static_cast<int64_t>(ids.size()));
    KVCache cache = model.make_cache();
    model.forward(torch::tensor(std::vector<int64_t>(ids.begin(), ids.begin() + n)).view({1, n}), cache, LogitsFor::Last);
    return static_cast<double>(cache.bytes()) / n;
}

}  // namespace

int main(int argc, char** argv) {
    at::set_num_threads(1);
    int64_t windows = -1;
    std::string scores_dir;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--windows" && i + 1 < argc) windows = std::stoll(argv[++i]);
        else if (arg == "--scores-dir" && i + 1 < argc) scores_dir = argv[++i];
        else {
            std::fprintf(stderr, "usage: bench_kv_quant [--windows N] [--scores-dir DIR]\n");
            return 2;
        }
    }
    const std::string fixtures = std::string(MLAWB_SHARED_DIR) + "/fixtures";
    std::ifstream in(fixtures + "/heldout.txt", std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "bench_kv_quant: missing %s/heldout.txt\n", fixtures.c_str());
        return 2;
    }
    std::stringstream text;
    text << in.rdbuf();
    const std::vector<std::string> specs = {
        "strategy=full",
        "strategy=full,kv_bits=8",
        "strategy=full,kv_bits=4",
        "strategy=full,kv_bits=2",
        "strategy=2-norm,r=4,d_kv=16,svd=joint",
        "strategy=2-norm,r=4,d_kv=16,svd=joint,kv_bits=4",
    };
    const char* models[2] = {"wb-tiny-mha", "wb-tiny-gqa"};
    std::vector<std::vector<Row>> table(2, std::vector<Row>(specs.size()));
    for (int mi = 0; mi < 2; ++mi) {
        const std::string dir = fixtures + "/models/" + models[mi];
        LoadedModel base = load_model(dir);
        std::vector<int32_t> ids32 = base.tokenizer.encode(text.str());
        std::vector<int64_t> ids(ids32.begin(), ids32.end());
        std::string scores_path = scores_dir.empty() ? "" : scores_dir + "/" + models[mi] + ".json";
        if (scores_path.empty() || !std::filesystem::exists(scores_path)) {
            scores_path = "/tmp/bench-kv-quant-scores-" + std::string(models[mi]) + ".json";
            calibrate_rope_scores_from_file(base, fixtures + "/finetune/text.txt", CalibrationOptions{}).save(scores_path);
        }
        for (size_t s = 0; s < specs.size(); ++s) {
            LoadedModel m = load_model(dir);
            MlaSpec spec = MlaSpec::parse(specs[s]);
            if (spec.strategy == "2-norm") spec.scores_file = scores_path;
            ResolvedSetting setting = resolve_setting(spec, m.config, {});
            if (!setting.spec.is_original()) convert_to_mla(*m.model, setting.spec, setting.kept);
            m.model->set_cache_options(CacheOptions{spec.kv_bits, spec.kv_group, spec.residual});
            PerplexityOptions options;
            options.max_windows = windows;
            Row& row = table[mi][s];
            row.perplexity = compute_perplexity(*m.model, ids, options).perplexity;
            const MemoryEstimate est = estimate_memory(m.config, setting.spec, kBytesContext, 1, 2);
            row.nominal_bytes_per_token = est.nominal_bytes_per_token;
            row.exact_fp16_bytes_per_token = static_cast<double>(est.exact_total_bytes) / kBytesContext;
            row.measured_bytes_per_token = measured_bytes_per_token(*m.model, ids);
            std::fprintf(stderr, "%s %s: %.4f\n", models[mi], specs[s].c_str(), row.perplexity);
        }
    }
    std::printf("held-out perplexity with a quantized KV cache (%s; group 64, residual 128)\n",
                windows < 0 ? "all of heldout.txt" : ("first " + std::to_string(windows) + " windows").c_str());
    std::printf("%-12s %-48s %10s %8s %10s %10s %10s\n", "model", "setting", "ppl", "vs fp32", "nominal", "exact16",
                "measured");
    for (int mi = 0; mi < 2; ++mi)
        for (size_t s = 0; s < specs.size(); ++s) {
            const Row& row = table[mi][s];
            std::printf("%-12s %-48s %10.4f %+7.2f%% %10.1f %10.1f %10.1f\n", models[mi], specs[s].c_str(), row.perplexity,
                        100.0 * (row.perplexity / table[mi][0].perplexity - 1.0), row.nominal_bytes_per_token,
                        row.exact_fp16_bytes_per_token, row.measured_bytes_per_token);
        }
    std::printf("bytes per token, all layers: nominal = elements x bits / 8; exact16 = packed + scales + zeros + "
                "residual window at fp16 (2048 tokens); measured = this float32 engine's cache after 2048 tokens\n");
    return 0;
}
