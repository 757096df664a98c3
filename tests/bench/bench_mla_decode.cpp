// CPU decode speed and cache bytes at 2048 tokens of context: the original model against MLA
// d_kv 16 (joint SVD, r 4 high), absorbed decode and plain (K/V rebuilt) decode, median of 3.
//
//   build/tests/bench/bench_mla_decode [--steps N] [--context N]
#include "analysis/convert.h"
#include "analysis/mla_spec.h"
#include "analysis/strategies.h"
#include "core/llama_model.h"
#include "core/mla_attention.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

using namespace mlawb;

namespace {

struct Measure {
    double tokens_per_second;
    int64_t cache_bytes;
};

Measure decode(LlamaForCausalLMImpl& m, const torch::Tensor& prompt, int64_t steps) {
    torch::NoGradGuard no_grad;
    std::vector<double> rates;
    int64_t bytes = 0;
    for (int run = 0; run < 3; ++run) {
        KVCache cache = m.make_cache();
        torch::Tensor logits = m.forward(prompt, cache, LogitsFor::Last);
        bytes = cache.bytes();  // after the prefill: exactly `context` tokens
        const auto t0 = std::chrono::steady_clock::now();
        for (int64_t s = 0; s < steps; ++s) {
            const int64_t next = logits.reshape({-1}).argmax().item<int64_t>();
            logits = m.forward(torch::full({1, 1}, next, torch::kInt64), cache, LogitsFor::Last);
        }
        rates.push_back(steps / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(rates.begin(), rates.end());
    return {rates[1], bytes};
}

}  // namespace

int main(int argc, char** argv) {
    int64_t steps = 64, context = 2048;
    for (int i = 1; i + 1 < argc; ++i) {
        if (std::string(argv[i]) == "--steps") steps = std::stoll(argv[++i]);
        if (std::string(argv[i]) == "--context") context = std::stoll(argv[++i]);
    }
    const std::string fixtures = std::string(MLAWB_SHARED_DIR) + "/fixtures";
    std::printf("CPU decode at %lld tokens of context, %lld steps, median of 3\n", (long long)context, (long long)steps);
    std::printf("%-12s %-34s %10s %16s %10s\n", "model", "setting", "tok/s", "cache bytes", "vs orig");
    for (const char* name : {"wb-tiny-mha", "wb-tiny-gqa"}) {
        torch::manual_seed(1);
        torch::Tensor prompt = torch::randint(1, 4096, {1, context}, torch::kInt64);
        LoadedModel original = load_model(fixtures + "/models/" + name);
        Measure base = decode(*original.model, prompt, steps);
        std::printf("%-12s %-34s %10.1f %16lld %9.2fx\n", name, "original (MHA/GQA cache)", base.tokens_per_second,
                    (long long)base.cache_bytes, 1.0);
        LoadedModel mla = load_model(fixtures + "/models/" + name);
        const ModelConfig& c = mla.config;
        MlaSpec spec = MlaSpec::parse("strategy=high,r=4,d_kv=16,svd=joint");
        KeptPairs kept(c.n_layer, c.n_kv_head, c.head_dim / 2);
        for (int64_t l = 0; l < c.n_layer; ++l)
            for (int64_t g = 0; g < c.n_kv_head; ++g)
                for (int64_t k = 0; k < 4; ++k) kept.set(l, g, k);
        convert_to_mla(*mla.model, spec, kept);
        for (bool absorbed : {true, false}) {
            for (int64_t l = 0; l < c.n_layer; ++l)
                std::dynamic_pointer_cast<MlaAttention>(mla.model->layer(l)->self_attn)->set_absorbed_decode(absorbed);
            Measure r = decode(*mla.model, prompt, steps);
            std::printf("%-12s %-34s %10.1f %16lld %9.2fx\n", name,
                        absorbed ? "MLA d_kv 16 r 4, absorbed" : "MLA d_kv 16 r 4, K/V rebuilt", r.tokens_per_second,
                        (long long)r.cache_bytes, r.tokens_per_second / base.tokens_per_second);
        }
    }
    std::printf("(vs orig: decode tokens/s over the original model's; cache bytes are float32 tensors held)\n");
    return 0;
}
