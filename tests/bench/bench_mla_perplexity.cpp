// Held-out perplexity of converted models with no fine-tuning (the damage a setting does before
// recovery training), for both fixture models, every setting of the Conversion issue's table.
// 2-norm scores are calibrated once per model on finetune/text.txt (16 x 2048 tokens).
//
//   build/tests/bench/bench_mla_perplexity [--windows N]   (default: the whole heldout.txt)
#include "analysis/calibration.h"
#include "analysis/convert.h"
#include "analysis/setting.h"
#include "core/llama_model.h"
#include "eval/perplexity.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace mlawb;

int main(int argc, char** argv) {
    int64_t windows = -1;
    for (int i = 1; i < argc; ++i)
        if (std::string(argv[i]) == "--windows" && i + 1 < argc) windows = std::stoll(argv[++i]);
    const std::string fixtures = std::string(MLAWB_SHARED_DIR) + "/fixtures";
    std::ifstream in(fixtures + "/heldout.txt", std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "bench_mla_perplexity: missing %s/heldout.txt\n", fixtures.c_str());
        return 2;
    }
    std::stringstream text;
    text << in.rdbuf();
    const std::string calib = fixtures + "/finetune/text.txt";
    const std::vector<std::string> specs = {
        "strategy=full",
        "strategy=high,r=4",
        "strategy=low,r=4",
        "strategy=uniform,r=4",
        "strategy=2-norm,r=4",
        "strategy=2-norm,r=4,d_kv=8,svd=joint",
        "strategy=2-norm,r=4,d_kv=16,svd=joint",
        "strategy=2-norm,r=4,d_kv=32,svd=joint",
        "strategy=2-norm,r=4,d_kv=64,svd=joint",
        "strategy=2-norm,r=4,d_kv=16,svd=split",
        "strategy=high,r=4,d_kv=16,svd=joint",
    };
    std::printf("held-out perplexity, no fine-tuning (%s)\n", windows < 0 ? "all of heldout.txt" : "first windows only");
    std::printf("%-40s %14s %14s\n", "setting", "wb-tiny-mha", "wb-tiny-gqa");
    std::vector<std::vector<double>> table(specs.size(), std::vector<double>(2, 0));
    const char* models[2] = {"wb-tiny-mha", "wb-tiny-gqa"};
    for (int mi = 0; mi < 2; ++mi) {
        const std::string dir = fixtures + "/models/" + models[mi];
        LoadedModel base = load_model(dir);
        std::vector<int32_t> ids32 = base.tokenizer.encode(text.str());
        std::vector<int64_t> ids(ids32.begin(), ids32.end());
        RopeScores scores = calibrate_rope_scores_from_file(base, calib, CalibrationOptions{});
        for (size_t s = 0; s < specs.size(); ++s) {
            LoadedModel m = load_model(dir);
            MlaSpec spec = MlaSpec::parse(specs[s]);
            const std::string scores_path = "/tmp/bench-mla-scores-" + std::string(models[mi]) + ".json";
            if (spec.strategy.rfind("2-norm", 0) == 0) {
                scores.save(scores_path);
                spec.scores_file = scores_path;
            }
            ResolvedSetting setting = resolve_setting(spec, m.config, {});
            if (!setting.spec.is_original()) convert_to_mla(*m.model, setting.spec, setting.kept);
            PerplexityOptions options;
            options.max_windows = windows;
            table[s][mi] = compute_perplexity(*m.model, ids, options).perplexity;
            std::fprintf(stderr, "%s %s: %.3f\n", models[mi], specs[s].c_str(), table[s][mi]);
        }
    }
    for (size_t s = 0; s < specs.size(); ++s)
        std::printf("%-40s %14.3f %14.3f\n", specs[s].c_str(), table[s][0], table[s][1]);
    return 0;
}
