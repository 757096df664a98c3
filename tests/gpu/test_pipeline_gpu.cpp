// Pipeline by layer across a GPU and the CPU (issue 13), label gpu; runs on one GPU:
//   --device cuda:0,cpu and cpu,cuda:0 (balanced and with --layer-split), both fixture models
//   (tied and untied output weight), original attention and MLA (joint SVD, float and 4-bit
//   caches): logits and greedy steps against the CPU float32 model (max |diff| < 1e-4 with float
//   caches), every parameter and every layer's cache tensors on the device asked, placing never
//   holding more on the GPU than its share (the allocator's peak), the fused batched decode
//   refusing a split model by naming --device, and `mlawb perplexity --device cuda:0,cpu` (and
//   cpu,cuda:0 with a split) within 0.1% of the CPU value.
//
//   test_pipeline_gpu [path/to/mlawb]
#include "analysis/convert.h"
#include "analysis/mla_spec.h"
#include "analysis/setting.h"
#include "core/batched_decode.h"
#include "core/error.h"
#include "core/kv_cache.h"
#include "core/llama_model.h"
#include "core/mla_attention.h"
#include "gpu_check.h"

#include <c10/cuda/CUDACachingAllocator.h>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>

#include <cmath>
#include <cstdio>
#include <optional>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

using namespace mlawb;
using json = nlohmann::json;

namespace {

std::string fixtures() { return std::string(MLAWB_SHARED_DIR) + "/fixtures"; }
std::string model_dir(const std::string& name) { return fixtures() + "/models/" + name; }

LoadedModel load(const std::string& name, const std::string& mla) {
    LoadedModel m = load_model(model_dir(name));
    if (!mla.empty()) {
        ResolvedSetting s = resolve_setting(MlaSpec::parse(mla), m.config, nullptr);
        convert_to_mla(*m.model, s.spec, s.kept);
        m.model->set_cache_options(CacheOptions{s.spec.kv_bits, s.spec.kv_group, s.spec.residual});
    }
    return m;
}

std::vector<int64_t> prompt_ids(const LoadedModel& m, size_t tokens) {
    std::ifstream in(fixtures() + "/heldout.txt");
    std::string text(20000, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
    std::vector<int32_t> ids = m.tokenizer.encode(text);
    ids.resize(std::min(ids.size(), tokens));
    return std::vector<int64_t>(ids.begin(), ids.end());
}

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kCPU, torch::kFloat64) - b.to(torch::kCPU, torch::kFloat64)).abs().max().item<double>();
}

// Every tensor a layer's cache holds must be on `where`.
void check_cache_devices(const std::string& label, KVCache& cache, const std::vector<torch::Device>& devices) {
    for (size_t l = 0; l < cache.layer_count(); ++l) {
        const std::string at = label + ": layer " + std::to_string(l) + " cache";
        std::vector<const CachedSequence*> parts;
        if (auto* s = dynamic_cast<StandardLayerCache*>(&cache.layer(l))) {
            parts = {&s->keys, &s->values};
        } else if (auto* s = dynamic_cast<MlaLayerCache*>(&cache.layer(l))) {
            parts = {&s->latent, &s->k_rope, &s->k_nope, &s->values};
        } else {
            MLAWB_CHECK(false, at + ": unknown cache kind");
        }
        int held = 0;
        for (const CachedSequence* part : parts) {
            if (part->length() == 0) continue;
            ++held;
            const torch::Device d = part->range(0, part->length()).device();
            MLAWB_CHECK(d == devices[l], at + " on " + d.str() + ", expected " + devices[l].str());
        }
        MLAWB_CHECK(held >= 2, at + ": holds " + std::to_string(held) + " tensors");
    }
}

void check_parameters(const std::string& label, LlamaForCausalLMImpl& m, const Placement& asked) {
    const std::vector<torch::Device> devices = asked.layer_devices(m.config().n_layer);
    MLAWB_CHECK(m.model->embed_tokens->weight.device() == asked.first_device(), label + ": embedding not on the first device");
    MLAWB_CHECK(m.model->norm->weight.device() == asked.last_device(), label + ": final norm not on the last device");
    if (!m.lm_head.is_empty())
        MLAWB_CHECK(m.lm_head->weight.device() == asked.last_device(), label + ": lm_head not on the last device");
    for (int64_t l = 0; l < m.config().n_layer; ++l) {
        MLAWB_CHECK(m.layer_device(l) == devices[static_cast<size_t>(l)], label + ": layer_device " + std::to_string(l));
        for (const auto& p : m.layer(l)->named_parameters())
            MLAWB_CHECK(p.value().device() == devices[static_cast<size_t>(l)],
                        label + ": layer " + std::to_string(l) + " " + p.key() + " on " + p.value().device().str());
    }
}

// Prompt logits and `steps` greedy steps of the pipelined model against the CPU float32 model.
void check_logits(const std::string& name, const std::string& mla, const std::string& device, const std::string& split) {
    torch::NoGradGuard no_grad;
    const bool quantized = mla.find("kv_bits") != std::string::npos;
    const std::string label = name + " " + (mla.empty() ? "original" : mla) + " --device " + device +
                              (split.empty() ? "" : " --layer-split " + split);
    LoadedModel cpu = load(name, mla);
    LoadedModel piped = load(name, mla);
    const Placement asked = parse_placement(device, "f32", split);
    piped.model->place(asked);
    check_parameters(label, *piped.model, asked);
    MLAWB_CHECK(piped.model->placement().pipelined(), label + ": not pipelined");

    const std::vector<int64_t> prompt = prompt_ids(cpu, 300);
    KVCache cpu_cache = cpu.model->make_cache(), piped_cache = piped.model->make_cache();
    const torch::Tensor ids = torch::tensor(prompt, torch::kInt64).unsqueeze(0);
    torch::Tensor ref = cpu.model->forward(ids, cpu_cache)[0];
    // Ids on the first stage's device, as generate does: the logits come back there.
    torch::Tensor got = piped.model->forward(ids.to(piped.model->device()), piped_cache)[0];
    MLAWB_CHECK(got.device() == piped.model->device(), label + ": logits not on the ids' device");
    // 4-bit caches: CUDA may round a code differently from the CPU (a code flip moves logits by
    // ~0.1), so the scale of "equal" is what one CUDA device alone gives against the CPU; and a
    // split over cuda:0 only must equal that single-device run.
    const bool all_cuda = asked.first_device().is_cuda() && asked.last_device().is_cuda() &&
                          device.find("cpu") == std::string::npos;
    LoadedModel single = quantized ? load(name, mla) : LoadedModel{};
    std::optional<KVCache> single_cache;
    torch::Tensor single_last;
    double single_vs_cpu = 0, piped_vs_single = 0;
    if (quantized) {
        single.model->place(Placement(torch::Device(torch::kCUDA, 0), torch::kFloat32));
        single_cache.emplace(single.model->make_cache());
        const torch::Tensor s0 = single.model->forward(ids.to(single.model->device()), *single_cache)[0].to(torch::kCPU);
        single_vs_cpu = max_abs(s0, ref);
        piped_vs_single = max_abs(got.to(torch::kCPU), s0);
        single_last = s0[-1];
    }
    double worst = max_abs(got, ref);
    bool same_ids = true;
    torch::Tensor ref_last = ref[-1], got_last = got[-1];
    for (int s = 0; s < 8; ++s) {
        const int64_t a = ref_last.argmax().item<int64_t>(), b = got_last.argmax().item<int64_t>();
        same_ids = same_ids && a == b;
        ref_last = cpu.model->forward(torch::full({1, 1}, a, torch::kInt64), cpu_cache, LogitsFor::Last).view({-1});
        got_last = piped.model->forward(torch::full({1, 1}, a, torch::kInt64), piped_cache, LogitsFor::Last).view({-1});
        MLAWB_CHECK(got_last.device().is_cpu(), label + ": CPU ids must give CPU logits");
        worst = std::max(worst, max_abs(got_last, ref_last));
        if (quantized) {
            single_last = single.model
                              ->forward(torch::full({1, 1}, a, torch::kInt64).to(single.model->device()), *single_cache,
                                        LogitsFor::Last)
                              .view({-1})
                              .to(torch::kCPU);
            single_vs_cpu = std::max(single_vs_cpu, max_abs(single_last, ref_last));
            piped_vs_single = std::max(piped_vs_single, max_abs(got_last, single_last));
        }
    }
    // Float caches: the same arithmetic up to rounding. 4-bit caches: a value that lands within
    // rounding of a code boundary can be quantized to the neighbouring code when the inputs differ
    // in the last bits (another device, or the other side of a device boundary), which moves the
    // logits by one code's worth: 0.12 (wb-tiny-mha) and 0.29 (wb-tiny-gqa) were measured on the
    // H100, for a single CUDA device against the CPU as for mixed placements. So there the bound
    // is a few flips (0.5, far below what a cache on the wrong device or stale rows gives) and the
    // greedy ids must agree; the exact check of the mechanics is the split over cuda:0 alone.
    const double bound = quantized ? std::max(0.5, 2.0 * single_vs_cpu) : 1e-4;
    std::printf("  %-96s max |logits - cpu f32| %.2e (bound %.1e), greedy ids %s", label.c_str(), worst, bound,
                same_ids ? "equal" : "DIFFER");
    if (quantized) std::printf("; cuda:0 alone vs cpu %.2e, vs cuda:0 alone %.2e", single_vs_cpu, piped_vs_single);
    std::printf("\n");
    std::fflush(stdout);
    MLAWB_CHECK(worst < bound, label + ": logits differ from the CPU by " + std::to_string(worst));
    if (quantized && all_cuda)
        MLAWB_CHECK(piped_vs_single < 1e-4,
                    label + ": a split over cuda:0 only differs from cuda:0 alone by " + std::to_string(piped_vs_single));
    MLAWB_CHECK(same_ids, label + ": greedy ids differ from the CPU");
    check_cache_devices(label, piped_cache, asked.layer_devices(piped.config.n_layer));
    MLAWB_CHECK(piped_cache.bytes() == cpu_cache.bytes(), label + ": cache bytes differ from the CPU's");

    // The fused batched decode runs on one device: a split model is refused, naming --device.
    bool refused = false;
    try {
        BatchedDecoder dec(*piped.model, BatchedDecodeOptions{});
    } catch (const Error& e) {
        refused = std::string(e.what()).find("--device") != std::string::npos;
    }
    MLAWB_CHECK(refused, label + ": the batched decoder did not refuse a split model by naming --device");
}

int64_t bytes_on(LlamaForCausalLMImpl& m, const torch::Device& d) {
    int64_t total = 0;
    for (const auto& p : m.parameters())
        if (p.device() == d) total += p.numel() * p.element_size();
    return total;
}

// Placing `cpu,cuda:0 --layer-split 5,1` must never hold the whole model on the GPU: the
// allocator's peak stays at the GPU's share (one layer, the final norm and lm_head).
void check_placing_memory() {
    const torch::Device gpu(torch::kCUDA, 0);
    for (const char* name : {"wb-tiny-mha", "wb-tiny-gqa"}) {
        LoadedModel m = load(name, "");
        const int64_t whole = bytes_on(*m.model, torch::Device(torch::kCPU));
        c10::cuda::CUDACachingAllocator::emptyCache();
        const int64_t before = static_cast<int64_t>(c10::cuda::CUDACachingAllocator::getDeviceStats(0).allocated_bytes[0].current);
        c10::cuda::CUDACachingAllocator::resetPeakStats(0);
        m.model->place(parse_placement("cpu,cuda:0", "f32", "5,1"));
        const int64_t peak = static_cast<int64_t>(c10::cuda::CUDACachingAllocator::getDeviceStats(0).allocated_bytes[0].peak) - before;
        const int64_t share = bytes_on(*m.model, gpu);
        std::printf("  %-12s placing cpu,cuda:0 5+1: GPU peak %lld bytes, its share %lld, whole model %lld\n", name,
                    static_cast<long long>(peak), static_cast<long long>(share), static_cast<long long>(whole));
        MLAWB_CHECK(share > 0 && share < whole / 2, std::string(name) + ": the GPU holds " + std::to_string(share) + " bytes");
        MLAWB_CHECK(peak <= share + (1 << 20), std::string(name) + ": placing peaked at " + std::to_string(peak) +
                                                   " bytes on the GPU, its share is " + std::to_string(share));
    }
}

// stdout of `command`; its stderr (progress lines) goes to a file, printed when it fails.
std::string run_command(const std::string& command) {
    const std::string err_file =
        (std::filesystem::temp_directory_path() / ("test_pipeline_gpu." + std::to_string(getpid()) + ".err")).string();
    std::string out;
    FILE* pipe = popen((command + " 2>'" + err_file + "'").c_str(), "r");
    if (!pipe) return out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
    const int status = pclose(pipe);
    if (status != 0) {
        std::ifstream in(err_file);
        std::string line, last;
        while (std::getline(in, line))
            if (line.rfind("error", 0) == 0) last = line;
        std::printf("  command failed (%d): %s\n    %s\n", status, command.c_str(), last.c_str());
    }
    std::filesystem::remove(err_file);
    return out;
}

double cli_perplexity(const std::string& mlawb, const std::string& model, const std::string& extra) {
    const std::string command = "'" + mlawb + "' perplexity '" + model + "' --text '" + fixtures() +
                                "/heldout.txt' --window 2048 --max-windows 8 --json " + extra;
    const std::string out = run_command(command);
    try {
        return json::parse(out)["perplexity"].get<double>();
    } catch (const std::exception& e) {
        MLAWB_CHECK(false, "no perplexity from: " + command + ": " + out);
        return NAN;
    }
}

void check_cli(const std::string& mlawb) {
    if (!std::filesystem::exists(mlawb)) {
        MLAWB_CHECK(false, "mlawb binary missing: " + mlawb);
        return;
    }
    for (const char* name : {"wb-tiny-mha", "wb-tiny-gqa"}) {
        for (const std::string mla : {"", "--mla strategy=high,r=4,d_kv=16"}) {
            const std::string model = model_dir(name);
            const double cpu = cli_perplexity(mlawb, model, mla);
            for (const std::string device : {"--device cuda:0,cpu", "--device cpu,cuda:0 --layer-split 2,4"}) {
                const double got = cli_perplexity(mlawb, model, mla + " " + device);
                const double rel = std::abs(got - cpu) / cpu;
                std::printf("  mlawb perplexity %-12s %-32s %-40s %.4f vs cpu %.4f (rel %.1e, bound 1e-3)\n", name,
                            mla.c_str(), device.c_str(), got, cpu, rel);
                std::fflush(stdout);
                MLAWB_CHECK(rel < 1e-3, std::string(name) + " " + mla + " " + device + ": perplexity " + std::to_string(got) +
                                            " vs cpu " + std::to_string(cpu));
            }
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (!torch::cuda::is_available()) {
        std::printf("FAIL: no CUDA device (this test is labelled gpu)\n");
        return 1;
    }
    for (const char* m : {"wb-tiny-mha", "wb-tiny-gqa"})
        if (!std::filesystem::exists(model_dir(m) + "/model.safetensors")) {
            std::printf("FAIL: test data missing: %s\n", model_dir(m).c_str());
            return 1;
        }
    const std::string mlawb = argc > 1 ? argv[1] : MLAWB_BIN;
    try {
        (void)torch::zeros({1}, torch::Device(torch::kCUDA, 0));  // CUDA context first: the memory check measures placing only
        check_placing_memory();
        for (const char* name : {"wb-tiny-mha", "wb-tiny-gqa"})
            for (const char* mla : {"", "strategy=high,r=4,d_kv=16,svd=joint",
                                    "strategy=high,r=4,d_kv=16,svd=joint,kv_bits=4,kv_group=16,residual=16"})
                for (const auto& [device, split] : std::vector<std::pair<std::string, std::string>>{
                         {"cuda:0,cpu", ""}, {"cpu,cuda:0", ""}, {"cuda:0,cpu", "1,5"}, {"cpu,cuda:0", "5,1"},
                         {"cpu,cuda:0,cpu", ""}, {"cuda:0,cuda:0", "3,3"}})
                    check_logits(name, mla, device, split);
        check_cli(mlawb);
    } catch (const std::exception& e) {
        MLAWB_CHECK(false, std::string("exception: ") + e.what());
    }
    return test::finish("test_pipeline_gpu");
}
