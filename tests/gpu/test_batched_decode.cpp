// The batched decode path (core/batched_decode) against the engine's own decoding, on both
// fixture models, original attention and MLA (joint SVD, r 4, d_kv 16, absorbed):
// three sequences of ragged prompt lengths are prefilled by the engine, loaded into the
// preallocated cache, and advanced together by random tokens; every step's logits must match the
// engine decoding each sequence alone.
//
//   test_batched_decode cpu    CPU float32, reference attention (label cpu)
//   test_batched_decode cuda   CUDA f32 and bf16, kernels, with and without the CUDA graph,
//                              against the engine on the same device and dtype and against the
//                              CPU float32 engine (label gpu)
#include "analysis/convert.h"
#include "analysis/mla_spec.h"
#include "analysis/strategies.h"
#include "core/batched_decode.h"
#include "core/error.h"
#include "core/llama_model.h"
#include "gpu_check.h"

#include <torch/cuda.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

using namespace mlawb;

namespace {

std::string model_dir(const std::string& name) { return std::string(MLAWB_SHARED_DIR) + "/fixtures/models/" + name; }

LoadedModel load(const std::string& name, bool mla) {
    LoadedModel m = load_model(model_dir(name));
    if (mla) {
        const ModelConfig& c = m.config;
        KeptPairs kept(c.n_layer, c.n_kv_head, c.head_dim / 2);
        // Pairs 1, 5, 9, 13 in every layer and head (any fixed choice; the decode path must not care).
        for (int64_t l = 0; l < c.n_layer; ++l)
            for (int64_t g = 0; g < c.n_kv_head; ++g)
                for (int64_t k : {1, 5, 9, 13}) kept.set(l, g, (k + g) % (c.head_dim / 2));
        convert_to_mla(*m.model, MlaSpec::parse("strategy=high,r=4,d_kv=16,svd=joint"), kept);
    }
    return m;
}

struct Run {
    std::string label;
    Placement place;
    BatchedDecodeOptions options;
};

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kCPU, torch::kFloat64) - b.to(torch::kCPU, torch::kFloat64)).abs().max().item<double>();
}
double rel_norm(const torch::Tensor& a, const torch::Tensor& b) {
    torch::Tensor x = a.to(torch::kCPU, torch::kFloat64), y = b.to(torch::kCPU, torch::kFloat64);
    return ((x - y).norm() / y.norm()).item<double>();
}

// Decodes `steps` tokens for prompts of `prompt_lengths` with the batched decoder and with the
// engine (one sequence at a time, on the decoder's placement and on the CPU in float32).
void check(const std::string& name, bool mla, const Run& run) {
    torch::NoGradGuard no_grad;
    const std::string label = name + (mla ? " mla" : " original") + " " + run.label;
    LoadedModel engine = load(name, mla);
    LoadedModel cpu = load(name, mla);
    engine.model->place(run.place);
    const std::vector<int64_t> prompt_lengths = {5, 17, 40};
    const int64_t B = static_cast<int64_t>(prompt_lengths.size()), steps = 6;
    BatchedDecodeOptions options = run.options;
    options.batch = B;
    options.max_length = 48;
    std::unique_ptr<BatchedDecoder> dec;
    try {
        dec = std::make_unique<BatchedDecoder>(*engine.model, options);
    } catch (const Error& e) {
        MLAWB_CHECK(false, label + ": decoder refused: " + e.what());
        return;
    }
    MLAWB_CHECK(dec->mla() == mla, label + ": MLA not detected");
    const int64_t elem = static_cast<int64_t>(c10::elementSize(run.place.dtype));
    const ModelConfig& c = engine.config;  // converted in memory: its mla block is not filled in
    const int64_t expected = (mla ? c.n_layer * c.n_kv_head * (2 * 4 + 16) : c.kv_elements_per_token()) * elem;
    MLAWB_CHECK(dec->cache_bytes_per_token() == expected, label + ": cache bytes per token " +
                                                              std::to_string(dec->cache_bytes_per_token()) +
                                                              " != " + std::to_string(expected));

    torch::manual_seed(11);
    const int64_t vocab = engine.config.vocab;
    std::vector<KVCache> caches, cpu_caches;
    for (int64_t b = 0; b < B; ++b) {
        torch::Tensor prompt = torch::randint(1, vocab, {1, prompt_lengths[b]}, torch::kInt64);
        caches.push_back(engine.model->make_cache());
        cpu_caches.push_back(cpu.model->make_cache());
        engine.model->forward(prompt.to(engine.model->device()), caches.back(), LogitsFor::Last);
        cpu.model->forward(prompt, cpu_caches.back(), LogitsFor::Last);
        dec->load_sequence(b, caches.back());
    }
    const bool f32 = run.place.dtype == torch::kFloat32;
    double worst_same = 0, worst_cpu = 0;
    for (int64_t s = 0; s < steps; ++s) {
        torch::Tensor tokens = torch::randint(1, vocab, {B}, torch::kInt64);
        torch::Tensor logits = dec->step(tokens.to(dec->device())).to(torch::kCPU).clone();  // [B, vocab]
        MLAWB_CHECK(torch::isfinite(logits).all().item<bool>(), label + ": non-finite logits");
        for (int64_t b = 0; b < B; ++b) {
            torch::Tensor id = tokens.narrow(0, b, 1).view({1, 1});
            torch::Tensor same = engine.model->forward(id.to(engine.model->device()), caches[b], LogitsFor::Last).view({-1});
            torch::Tensor ref = cpu.model->forward(id, cpu_caches[b], LogitsFor::Last).view({-1});
            const double e_same = f32 ? max_abs(logits[b], same) : rel_norm(logits[b], same);
            const double e_cpu = f32 ? max_abs(logits[b], ref) : rel_norm(logits[b], ref);
            worst_same = std::max(worst_same, e_same);
            worst_cpu = std::max(worst_cpu, e_cpu);
        }
        for (int64_t b = 0; b < B; ++b)
            MLAWB_CHECK(dec->lengths()[b] == prompt_lengths[b] + s + 1, label + ": length not advanced");
    }
    // f32: max |diff| of logits; bf16/f16: ||diff|| / ||ref|| (16-bit weights and cache against float32).
    const double bound_same = f32 ? 1e-3 : 3e-2, bound_cpu = f32 ? 1e-3 : 5e-2;
    std::printf("  %-48s attention %-15s graph %-3s  vs engine same placement %.2e (bound %.0e), vs cpu f32 %.2e (bound %.0e)\n",
                label.c_str(), dec->attention_backend().c_str(), dec->graph_captured() ? "on" : "off", worst_same,
                bound_same, worst_cpu, bound_cpu);
    MLAWB_CHECK(worst_same < bound_same, label + ": differs from the engine on the same placement: " + std::to_string(worst_same));
    MLAWB_CHECK(worst_cpu < bound_cpu, label + ": differs from the CPU float32 engine: " + std::to_string(worst_cpu));

    // Full sequences are refused, not overwritten past the cache.
    bool refused = false;
    try {
        for (int i = 0; i < 64; ++i) dec->step(torch::ones({B}, torch::kInt64).to(dec->device()));
    } catch (const Error& e) {
        refused = std::string(e.what()).find("full") != std::string::npos;
    }
    MLAWB_CHECK(refused, label + ": stepping past max_length was not refused");
}

// A decoder with random weights (the benchmark's constructor) runs and reports its bytes.
void check_random(const Placement& place) {
    torch::NoGradGuard no_grad;
    ModelConfig c = ModelConfig::from_file(model_dir("wb-tiny-mha") + "/config.json");
    for (bool mla : {false, true}) {
        BatchedDecodeOptions options;
        options.batch = 2;
        options.max_length = 64;
        RandomMlaShape shape;
        shape.r = 4;
        shape.d_kv = 16;
        BatchedDecoder dec(c, mla ? &shape : nullptr, place.device, place.dtype, options, 5);
        dec.fill_random({10, 33}, 6);
        torch::Tensor logits = dec.step(torch::tensor({3, 4}, torch::kInt64).to(place.device)).to(torch::kCPU);
        MLAWB_CHECK(torch::isfinite(logits).all().item<bool>(), "random decoder: non-finite logits");
        const int64_t elem = static_cast<int64_t>(c10::elementSize(place.dtype));
        const int64_t per_layer = mla ? c.n_kv_head * (2 * 4 + 16) : 2 * c.n_kv_head * c.head_dim;
        MLAWB_CHECK(dec.cache_bytes_per_token() == c.n_layer * per_layer * elem, "random decoder: cache bytes");
        MLAWB_CHECK(dec.cache_bytes_allocated() == dec.cache_bytes_per_token() * 2 * 64, "random decoder: allocated bytes");
        MLAWB_CHECK(dec.weight_bytes_per_step() > c.n_layer * c.hidden * c.ffn * 3 * elem, "random decoder: weight bytes");
    }
}

}  // namespace

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "cpu";
    for (const char* m : {"wb-tiny-mha", "wb-tiny-gqa"}) {
        if (!std::filesystem::exists(model_dir(m) + "/model.safetensors")) {
            std::printf("FAIL: test data missing: %s\n", model_dir(m).c_str());
            return 1;
        }
    }
    std::vector<Run> runs;
    if (mode == "cpu") {
        runs.push_back({"cpu f32", Placement{}, {}});
    } else if (mode == "cuda") {
        if (!torch::cuda::is_available()) {
            std::printf("FAIL: no CUDA device (this test is labelled gpu)\n");
            return 1;
        }
        const torch::Device gpu(torch::kCUDA, 0);
        BatchedDecodeOptions eager, graph;
        eager.cuda_graph = false;
        graph.cuda_graph = true;
        runs.push_back({"cuda f32 eager", Placement{gpu, torch::kFloat32}, eager});
        runs.push_back({"cuda f32 graph", Placement{gpu, torch::kFloat32}, graph});
        runs.push_back({"cuda bf16 eager", Placement{gpu, torch::kBFloat16}, eager});
        runs.push_back({"cuda bf16 graph", Placement{gpu, torch::kBFloat16}, graph});
        runs.push_back({"cuda f16 graph", Placement{gpu, torch::kFloat16}, graph});
        BatchedDecodeOptions simt = graph;
        simt.kernel = 1;
        runs.push_back({"cuda bf16 graph simt", Placement{gpu, torch::kBFloat16}, simt});
    } else {
        std::printf("usage: test_batched_decode cpu|cuda\n");
        return 2;
    }
    try {
        for (const Run& run : runs)
            for (const char* m : {"wb-tiny-mha", "wb-tiny-gqa"})
                for (bool mla : {false, true}) check(m, mla, run);
        // The tensor-core kernel on a converted fixture (wb-tiny-mha: latent 4 x 16 = 64 wide).
        if (mode == "cuda") {
            BatchedDecodeOptions tc;
            tc.kernel = 2;
            check("wb-tiny-mha", true, Run{"cuda bf16 graph tensor-core", Placement{torch::Device(torch::kCUDA, 0), torch::kBFloat16}, tc});
        }
        check_random(runs.front().place);
    } catch (const std::exception& e) {
        MLAWB_CHECK(false, std::string("exception: ") + e.what());
    }
    return test::finish(("test_batched_decode " + mode).c_str());
}
