// GPU decode speed of a random-weight Llama-2-7B-shaped model (32 layers, hidden 4096, 32 heads of
// 128, ffn 11008, vocab 32000, bf16) in our batched decode path (core/batched_decode): original
// MHA, and MLA (2-norm-like random pairs, r 8, joint latent d_kv 64 and d_kv 16, absorbed,
// tensor-core kernel), at batch 1, 8, 32 and context 2k, 8k, 32k. Per point: median milliseconds
// per decode step (the CUDA-graph step plus the argmax feeding the next token, event-timed),
// tokens/s, cache bytes held, and achieved HBM bandwidth = (weight bytes + cache bytes read) /
// step time as a share of the peak. The cache is filled with random values instead of a prefill
// (the prefill is not what is measured). Also the largest batch at each context that fits in
// the GPU's memory, verified by running it.
//
//   gpu_decode [--batches 1,8,32] [--contexts 2048,8192,32768] [--steps 16] [--warmup 3]
//              [--engines mha,mla64,mla16] [--kernel auto|simt|tensor-core] [--no-graph]
//              [--peak-tbs 3.35] [--hf FILE.json] [--json OUT.json] [--no-fit]
//   gpu_decode --device cpu --small      a tiny model on the CPU (a smoke run of this program)
//   gpu_decode --table OURS.json --hf HF.json   print the side-by-side table of two earlier runs
//
// --hf reads what tests/bench/hf_decode.py wrote (transformers on the same GPU) and prints it in
// the same table, with our tokens/s over transformers'.
#include "core/batched_decode.h"
#include "core/config.h"
#include "core/error.h"

#include <torch/cuda.h>

#ifdef MLAWB_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

using namespace mlawb;
using json = nlohmann::json;

namespace {

struct Engine {
    std::string name;  // "ours MHA", "ours MLA d_kv 64", ...
    std::string key;   // mha, mla64, mla16
    bool mla = false;
    RandomMlaShape shape;
};

struct Point {
    std::string engine;
    int64_t batch = 0, ctx = 0;
    bool fits = false;
    double ms = 0, tok_s = 0;
    int64_t cache_bytes = 0;   // held at this context (batch x ctx tokens)
    int64_t weight_bytes = 0;  // read per step
    double tbs = 0, share = 0;
    std::string note;
};

std::vector<int64_t> int_list(const std::string& text) {
    std::vector<int64_t> v;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) v.push_back(std::stoll(item));
    return v;
}

ModelConfig llama2_7b() {
    ModelConfig c;
    c.source = "(Llama-2-7B shape, random weights)";
    c.model_type = "llama";
    c.architecture = "LlamaForCausalLM";
    c.n_layer = 32;
    c.n_head = 32;
    c.n_kv_head = 32;
    c.head_dim = 128;
    c.hidden = 4096;
    c.ffn = 11008;
    c.vocab = 32000;
    c.max_position = 1 << 16;
    c.rms_eps = 1e-5;
    c.rope_theta = 10000.0;
    return c;
}

ModelConfig tiny() {
    ModelConfig c = llama2_7b();
    c.source = "(tiny smoke shape)";
    c.n_layer = 2;
    c.n_head = c.n_kv_head = 4;
    c.head_dim = 64;
    c.hidden = 256;
    c.ffn = 512;
    c.vocab = 1000;
    return c;
}

double gb(int64_t bytes) { return static_cast<double>(bytes) / 1e9; }

int64_t free_device_bytes(const torch::Device& device) {
#ifdef MLAWB_CUDA
    if (device.is_cuda()) {
        c10::cuda::CUDACachingAllocator::emptyCache();
        size_t free = 0, total = 0;
        if (cudaMemGetInfo(&free, &total) == cudaSuccess) return static_cast<int64_t>(free);
    }
#endif
    return int64_t(1) << 62;  // CPU: not the limit here
}

void release(const torch::Device& device) {
#ifdef MLAWB_CUDA
    if (device.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
}

void sync(const torch::Device& device) {
    if (device.is_cuda()) torch::cuda::synchronize();
}

// Median ms per step of `steps` timed steps after `warmup`, each step fed the argmax of the last.
double time_steps(BatchedDecoder& dec, int64_t warmup, int64_t steps) {
    const torch::Device device = dec.device();
    torch::Tensor next = torch::zeros({dec.batch()}, torch::TensorOptions().dtype(torch::kInt64).device(device));
    for (int64_t i = 0; i < warmup; ++i) next = dec.step(next).argmax(-1);
    sync(device);
    std::vector<double> ms;
#ifdef MLAWB_CUDA
    if (device.is_cuda()) {
        std::vector<cudaEvent_t> ev(2 * steps);
        for (auto& e : ev) cudaEventCreate(&e);
        // Only the timed steps are profiled under `ncu --profile-from-start off` (a no-op otherwise).
        cudaProfilerStart();
        for (int64_t i = 0; i < steps; ++i) {
            cudaEventRecord(ev[2 * i], nullptr);
            next = dec.step(next).argmax(-1);
            cudaEventRecord(ev[2 * i + 1], nullptr);
        }
        cudaEventSynchronize(ev.back());
        cudaProfilerStop();
        for (int64_t i = 0; i < steps; ++i) {
            float t = 0;
            cudaEventElapsedTime(&t, ev[2 * i], ev[2 * i + 1]);
            ms.push_back(t);
        }
        for (auto& e : ev) cudaEventDestroy(e);
    }
#endif
    if (ms.empty()) {
        for (int64_t i = 0; i < steps; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            next = dec.step(next).argmax(-1);
            sync(device);
            ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

struct Bench {
    ModelConfig config;
    torch::Device device{torch::kCPU};
    torch::ScalarType dtype = torch::kBFloat16;
    BatchedDecodeOptions base;
    int64_t warmup = 3, steps = 16;
    double peak_tbs = 3.35;
    int64_t margin = int64_t(3) << 30;  // activations, graph pool, workspace, cuBLAS

    std::unique_ptr<BatchedDecoder> make(const Engine& e, int64_t batch, int64_t max_length) {
        BatchedDecodeOptions o = base;
        o.batch = batch;
        o.max_length = max_length;
        return std::make_unique<BatchedDecoder>(config, e.mla ? &e.shape : nullptr, device, dtype, o, 1234);
    }

    Point measure(const Engine& e, int64_t batch, int64_t ctx, int64_t per_token, int64_t weights) {
        Point p;
        p.engine = e.name;
        p.batch = batch;
        p.ctx = ctx;
        const int64_t alloc = ctx + warmup + steps + 1;
        p.cache_bytes = batch * ctx * per_token;
        p.weight_bytes = weights;
        const int64_t need = weights + batch * alloc * per_token + margin;
        const int64_t free = free_device_bytes(device);
        if (need > free) {
            char buf[96];
            std::snprintf(buf, sizeof buf, "does not fit: needs %.1f GB, %.1f GB free", gb(need), gb(free));
            p.note = buf;
            return p;
        }
        try {
            std::unique_ptr<BatchedDecoder> dec = make(e, batch, alloc);
            dec->fill_random(std::vector<int64_t>(batch, ctx), 99);
            p.ms = time_steps(*dec, warmup, steps);
            p.fits = true;
            p.tok_s = batch * 1000.0 / p.ms;
            const int64_t read = dec->weight_bytes_per_step() + batch * (ctx + warmup + steps / 2) * per_token;
            p.weight_bytes = dec->weight_bytes_per_step();
            p.tbs = read / (p.ms * 1e-3) / 1e12;
            p.share = p.tbs / peak_tbs;
            p.note = dec->attention_backend() + (dec->graph_captured() ? ", graph" : ", eager");
        } catch (const c10::Error& err) {
            const std::string what = err.what_without_backtrace();
            p.note = what.find("out of memory") != std::string::npos ? "does not fit (out of memory)"
                                                                      : "failed: " + what.substr(0, what.find('\n'));
        } catch (const Error& err) {
            p.note = std::string("failed: ") + err.what();
        }
        release(device);
        return p;
    }

    // Largest batch at `ctx` that runs (estimated from free memory, then verified downward).
    std::string largest_batch(const Engine& e, int64_t ctx, int64_t per_token, int64_t weights) {
        const int64_t alloc = ctx + 3;
        const int64_t free = free_device_bytes(device);
        int64_t batch = (free - weights - margin) / (alloc * per_token);
        for (int attempt = 0; attempt < 4 && batch > 0; ++attempt) {
            try {
                BatchedDecodeOptions o = base;
                o.batch = batch;
                o.max_length = alloc;
                BatchedDecoder dec(config, e.mla ? &e.shape : nullptr, device, dtype, o, 7);
                dec.fill_random(std::vector<int64_t>(batch, ctx), 3);
                torch::Tensor next = torch::zeros({batch}, torch::TensorOptions().dtype(torch::kInt64).device(device));
                for (int i = 0; i < 2; ++i) next = dec.step(next).argmax(-1);
                sync(device);
                release(device);
                char buf[128];
                std::snprintf(buf, sizeof buf, "%lld x %lld tokens (%.1f GB cache, ran 2 steps)", (long long)batch,
                              (long long)ctx, gb(batch * ctx * per_token));
                return buf;
            } catch (const c10::Error&) {
                release(device);
                batch = batch * 9 / 10;
            }
        }
        return batch > 0 ? "none verified" : "0 (weights alone do not fit)";
    }
};

Point point_of(const json& r, double peak_tbs) {
    Point p;
    p.engine = r.value("engine", std::string("transformers MHA"));
    p.batch = r["batch"];
    p.ctx = r["ctx"];
    p.fits = r["fits"];
    p.ms = r.value("ms", 0.0);
    p.tok_s = r.value("tok_s", 0.0);
    p.cache_bytes = r.value("cache_bytes", int64_t(0));
    p.weight_bytes = r.value("weight_bytes", int64_t(0));
    p.tbs = r.value("tbs", 0.0);
    p.share = p.tbs / peak_tbs;
    p.note = r.value("note", std::string());
    return p;
}

void print_table(const std::vector<Point>& points, const std::map<std::pair<int64_t, int64_t>, double>& hf_tok_s) {
    std::printf("%-20s %5s %6s %9s %9s %8s %9s %8s %7s %7s  %s\n", "engine", "batch", "ctx", "ms/step", "tok/s",
                "x HF", "cache GB", "TB/s", "% peak", "wts GB", "note");
    for (const Point& p : points) {
        if (!p.fits) {
            std::printf("%-20s %5lld %6lld %9s %9s %8s %9.2f %8s %7s %7.2f  %s\n", p.engine.c_str(), (long long)p.batch,
                        (long long)p.ctx, "-", "-", "-", gb(p.cache_bytes), "-", "-", gb(p.weight_bytes), p.note.c_str());
            continue;
        }
        auto it = hf_tok_s.find({p.batch, p.ctx});
        char ratio[16] = "-";
        if (it != hf_tok_s.end() && it->second > 0 && p.engine.rfind("transformers", 0) != 0)
            std::snprintf(ratio, sizeof ratio, "%.1fx", p.tok_s / it->second);
        std::printf("%-20s %5lld %6lld %9.2f %9.1f %8s %9.2f %8.2f %6.0f%% %7.2f  %s\n", p.engine.c_str(),
                    (long long)p.batch, (long long)p.ctx, p.ms, p.tok_s, ratio, gb(p.cache_bytes), p.tbs,
                    100.0 * p.share, gb(p.weight_bytes), p.note.c_str());
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<int64_t> batches = {1, 8, 32}, contexts = {2048, 8192, 32768};
    std::string engines_arg = "mha,mla64,mla16", kernel = "auto", hf_file, json_file, device_arg = "cuda", table_file;
    bool small = false, fit = true;
    Bench bench;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw Error("", a, "needs a value");
            return argv[++i];
        };
        if (a == "--batches") batches = int_list(next());
        else if (a == "--contexts") contexts = int_list(next());
        else if (a == "--steps") bench.steps = std::stoll(next());
        else if (a == "--warmup") bench.warmup = std::stoll(next());
        else if (a == "--engines") engines_arg = next();
        else if (a == "--kernel") kernel = next();
        else if (a == "--no-graph") bench.base.cuda_graph = false;
        else if (a == "--peak-tbs") bench.peak_tbs = std::stod(next());
        else if (a == "--hf") hf_file = next();
        else if (a == "--json") json_file = next();
        else if (a == "--device") device_arg = next();
        else if (a == "--small") small = true;
        else if (a == "--no-fit") fit = false;
        else if (a == "--table") table_file = next();
        else {
            std::fprintf(stderr, "gpu_decode: unknown option %s\n", a.c_str());
            return 2;
        }
    }
    bench.base.kernel = kernel == "simt" ? 1 : kernel == "tensor-core" ? 2 : 0;
    if (device_arg == "cpu") {
        bench.device = torch::Device(torch::kCPU);
        bench.dtype = torch::kFloat32;
    } else {
        if (!torch::cuda::is_available() && table_file.empty()) {
            std::fprintf(stderr, "gpu_decode: no CUDA device (use --device cpu --small for a smoke run)\n");
            return 1;
        }
        bench.device = torch::Device(torch::kCUDA, 0);
    }
    bench.config = small ? tiny() : llama2_7b();
    if (bench.device.is_cpu()) fit = false;  // the fit search sizes itself by GPU memory
    if (small) {
        batches = {1, 2};
        contexts = {64, 128};
        bench.margin = 0;
    }
    const ModelConfig& c = bench.config;
    std::vector<Engine> engines;
    for (const std::string& key : {std::string("mha"), std::string("mla64"), std::string("mla16")}) {
        if (engines_arg.find(key) == std::string::npos) continue;
        Engine e;
        e.key = key;
        e.mla = key != "mha";
        e.shape.r = 8;
        e.shape.d_kv = key == "mla16" ? 16 : 64;
        e.name = key == "mha" ? "ours MHA" : key == "mla64" ? "ours MLA d_kv 64" : "ours MLA d_kv 16";
        engines.push_back(e);
    }

    if (table_file.empty()) {
    std::printf("decode of a random-weight %s model: %lld layers, hidden %lld, %lld heads x %lld, ffn %lld, vocab %lld, %s on %s\n",
                small ? "tiny" : "Llama-2-7B-shaped", (long long)c.n_layer, (long long)c.hidden, (long long)c.n_head,
                (long long)c.head_dim, (long long)c.ffn, (long long)c.vocab,
                bench.dtype == torch::kBFloat16 ? "bf16" : "f32", bench.device.str().c_str());
    std::printf("cache filled with random values up to the context (no prefill run); median of %lld event-timed steps "
                "after %lld warm-up; MLA: r 8 random pairs per KV head, joint latent, absorbed\n",
                (long long)bench.steps, (long long)bench.warmup);
    std::printf("HBM share: (weight bytes + cache bytes read per step) / step time / %.2f TB/s\n\n", bench.peak_tbs);
    }

    std::vector<Point> points;
    std::map<std::pair<int64_t, int64_t>, double> hf_tok_s;
    json hf_json;
    if (!hf_file.empty()) {
        std::ifstream in(hf_file);
        if (!in) {
            std::fprintf(stderr, "gpu_decode: cannot read %s\n", hf_file.c_str());
        } else {
            hf_json = json::parse(in);
            for (const auto& r : hf_json["points"]) {
                Point p = point_of(r, bench.peak_tbs);
                p.engine = "transformers MHA";
                points.push_back(p);
                if (p.fits) hf_tok_s[{p.batch, p.ctx}] = p.tok_s;
            }
        }
    }
    if (!table_file.empty()) {
        // Table of an earlier run (ours) beside --hf: nothing is measured.
        std::ifstream in(table_file);
        if (!in) {
            std::fprintf(stderr, "gpu_decode: cannot read %s\n", table_file.c_str());
            return 1;
        }
        const json ours = json::parse(in);
        for (const auto& r : ours["points"]) points.push_back(point_of(r, bench.peak_tbs));
        std::stable_sort(points.begin(), points.end(), [](const Point& a, const Point& b) {
            return std::make_pair(a.ctx, a.batch) < std::make_pair(b.ctx, b.batch);
        });
        print_table(points, hf_tok_s);
        std::printf("\nlargest batch that fits (verified by running it):\n");
        if (ours.contains("largest"))
            for (const auto& [engine, by_ctx] : ours["largest"].items())
                for (const auto& [ctx, text] : by_ctx.items())
                    std::printf("  %-20s ctx %6s: %s\n", engine.c_str(), ctx.c_str(), text.get<std::string>().c_str());
        if (hf_json.contains("largest"))
            for (const auto& [ctx, text] : hf_json["largest"].items())
                std::printf("  %-20s ctx %6s: %s\n", "transformers MHA", ctx.c_str(), text.get<std::string>().c_str());
        return 0;
    }
    json out = {{"device", bench.device.str()}, {"points", json::array()}, {"largest", json::object()}};
    // Written after every point, so a run cut short by a time limit still leaves its results.
    auto save = [&] {
        if (!json_file.empty()) std::ofstream(json_file) << out.dump(2) << "\n";
    };
    for (const Engine& e : engines) {
        // Bytes per token and of the weights, from a decoder of batch 1 and a short cache.
        int64_t per_token = 0, weights = 0;
        try {
            std::unique_ptr<BatchedDecoder> probe = bench.make(e, 1, 16);
            per_token = probe->cache_bytes_per_token();
            weights = probe->weight_bytes_per_step();
            std::printf("%s: weights %.2f GB, cache %lld bytes per token (all layers), attention kernel %s\n", e.name.c_str(),
                        gb(weights), (long long)per_token, probe->attention_backend().c_str());
        } catch (const std::exception& err) {
            std::printf("%s: cannot build: %s\n", e.name.c_str(), err.what());
            continue;
        }
        release(bench.device);
        for (int64_t ctx : contexts)
            for (int64_t batch : batches) {
                Point p = bench.measure(e, batch, ctx, per_token, weights);
                points.push_back(p);
                if (p.fits)
                    std::printf("  %-18s batch %3lld ctx %6lld: %8.2f ms/step %9.1f tok/s %5.2f TB/s (%.0f%% of peak)  %s\n",
                                p.engine.c_str(), (long long)batch, (long long)ctx, p.ms, p.tok_s, p.tbs, 100 * p.share,
                                p.note.c_str());
                else
                    std::printf("  %-18s batch %3lld ctx %6lld: %s\n", p.engine.c_str(), (long long)batch, (long long)ctx,
                                p.note.c_str());
                std::fflush(stdout);
                out["points"].push_back({{"engine", p.engine}, {"batch", p.batch}, {"ctx", p.ctx}, {"fits", p.fits},
                                         {"ms", p.ms}, {"tok_s", p.tok_s}, {"cache_bytes", p.cache_bytes},
                                         {"weight_bytes", p.weight_bytes}, {"tbs", p.tbs}, {"share", p.share},
                                         {"note", p.note}});
                save();
            }
        if (fit) {
            json largest = json::object();
            for (int64_t ctx : contexts) {
                const std::string r = bench.largest_batch(e, ctx, per_token, weights);
                largest[std::to_string(ctx)] = r;
                std::printf("%s: largest batch at context %lld: %s\n", e.name.c_str(), (long long)ctx, r.c_str());
                out["largest"][e.name] = largest;
                save();
            }
        }
    }
    std::printf("\n");
    // Side by side: every engine's row at each (batch, context), transformers first.
    std::stable_sort(points.begin(), points.end(), [](const Point& a, const Point& b) {
        return std::make_pair(a.ctx, a.batch) < std::make_pair(b.ctx, b.batch);
    });
    print_table(points, hf_tok_s);
    if (hf_json.contains("largest")) {
        std::printf("\ntransformers MHA largest batch: %s\n", hf_json["largest"].dump().c_str());
    }
    save();
    return 0;
}
