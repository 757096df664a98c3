// bench_load_rss: peak resident memory and time of loading a SmolLM-360M-shaped checkpoint.
//
// Writes a random-weight checkpoint with the real SmolLM-360M config.json
// (tests/data/configs/smollm-360m.json: 32 layers, hidden 960, 15/5 heads, tied, 361.8 M
// parameters, ~724 MB in BF16) with our safetensors writer into a temporary folder, then loads
// it in fresh child processes (this binary re-run with --child MODE), each reporting its peak
// RSS (VmHWM of /proc/self/status, which counts mapped file pages once touched) and load time:
//
//   baseline  the child with LibTorch loaded but no model: the process floor
//   mapped    Checkpoint::open_folder + every page of every tensor read: the weights stay in
//             their stored dtype (BF16), mapped, not copied -- the goal is peak <= 1.1 x file
//   construct the float32 modules alone (LibTorch's random initialization, no weights read):
//             the part of the engine's load time and memory that precedes reading the file
//   engine    load_model(): the forward pass's modules in float32 (BF16 upcast on load), so its
//             peak is the mapping plus a float32 copy of every weight (about 3 x the BF16 file)
//
// Usage: bench_load_rss [--dir DIR] [--keep] [--runs N]               (prints a table; exit 0)
//        bench_load_rss --child baseline|mapped|construct|engine DIR  (internal: one measurement)
#include "core/config.h"
#include "core/checkpoint_layout.h"
#include "core/error.h"
#include "core/llama_model.h"
#include "core/safetensors.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

using namespace mlawb;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A field of /proc/self/status in kB ("VmHWM", "VmRSS").
int64_t status_kb(const char* field) {
    std::ifstream in("/proc/self/status");
    std::string line;
    const std::string prefix = std::string(field) + ":";
    while (std::getline(in, line))
        if (line.rfind(prefix, 0) == 0) return std::stoll(line.substr(prefix.size()));
    return -1;
}

volatile uint64_t g_sink = 0;  // keeps the page reads from being optimized away

// One measurement in this (fresh) process; prints {"seconds", "hwm_kb", "rss_kb", ...}.
int run_child(const std::string& mode, const std::string& dir) {
    const auto start = std::chrono::steady_clock::now();
    json out = {{"mode", mode}};
    if (mode == "mapped") {
        Checkpoint checkpoint = Checkpoint::open_folder(dir);
        uint64_t sum = 0;
        for (const std::string& name : checkpoint.names()) {
            const TensorView& t = checkpoint.get(name);
            for (size_t i = 0; i < t.nbytes; i += 4096) sum += t.data[i];  // fault in every page
        }
        g_sink = sum;
        out["bytes"] = checkpoint.total_bytes();
    } else if (mode == "construct") {
        const LlamaForCausalLM model(ModelConfig::from_file(dir + "/config.json"));
        out["parameters"] = int64_t(model->parameters().size());
    } else if (mode == "engine") {
        LoadedModel m = load_model(dir);
        int64_t params = 0;
        for (const auto& p : m.model->parameters()) params += p.numel();
        out["parameters"] = params;
    } else if (mode != "baseline") {
        throw Error("", "--child", "unknown mode '" + mode + "'");
    }
    out["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    out["hwm_kb"] = status_kb("VmHWM");
    out["rss_kb"] = status_kb("VmRSS");
    std::printf("%s\n", out.dump().c_str());
    return 0;
}

std::string self_path() {
    std::array<char, 4096> buffer{};
    const ssize_t n = readlink("/proc/self/exe", buffer.data(), buffer.size() - 1);
    if (n <= 0) throw Error("/proc/self/exe", "", "cannot resolve this binary's path");
    return std::string(buffer.data(), size_t(n));
}

json run_in_child(const std::string& mode, const std::string& dir) {
    const std::string command = "'" + self_path() + "' --child " + mode + " '" + dir + "'";
    FILE* pipe = popen(command.c_str(), "r");
    if (!pipe) throw Error("", "popen", "cannot start " + command);
    std::string output;
    std::array<char, 4096> buffer{};
    while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
    const int status = pclose(pipe);
    if (status != 0) throw Error("", mode, "child failed (status " + std::to_string(status) + "): " + output);
    return json::parse(output.substr(output.rfind('{')));
}

// xorshift64*: cheap bytes for the weights (their values do not matter to the loader).
void fill_random(std::vector<uint16_t>& values, uint64_t seed) {
    uint64_t x = seed | 1;
    for (uint16_t& v : values) {
        x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
        // BF16 with exponent around 2^-7..2^-4: finite, weight-like magnitudes.
        const uint16_t r = uint16_t((x * 0x2545F4914F6CDD1DULL) >> 48);
        v = uint16_t((r & 0x807F) | 0x3C00);
    }
}

// Writes DIR/config.json (the real SmolLM-360M one), tokenizer.json (load_model needs one;
// any valid file serves) and model.safetensors with random BF16 weights of the config's shapes.
uint64_t write_checkpoint(const std::string& dir) {
    const std::string source = MLAWB_SOURCE_DIR;
    fs::create_directories(dir);
    fs::copy_file(source + "/tests/data/configs/smollm-360m.json", dir + "/config.json",
                  fs::copy_options::overwrite_existing);
    fs::copy_file(source + "/tests/data/arch/smollm/tokenizer.json", dir + "/tokenizer.json",
                  fs::copy_options::overwrite_existing);
    const ModelConfig config = ModelConfig::from_file(dir + "/config.json");
    const std::vector<ExpectedTensor> expected = expected_tensors(config);
    // One random buffer as large as the largest tensor; every tensor points into it, so the
    // writer's input costs ~94 MB, not the whole checkpoint.
    int64_t largest = 0;
    for (const ExpectedTensor& t : expected) largest = std::max(largest, numel_of(t.shape));
    std::vector<uint16_t> random(static_cast<size_t>(largest));
    fill_random(random, 360);
    std::vector<TensorToWrite> tensors;
    for (const ExpectedTensor& t : expected) tensors.push_back({t.name, DType::BF16, t.shape, random.data()});
    write_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});
    return fs::file_size(dir + "/model.safetensors");
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc == 4 && std::strcmp(argv[1], "--child") == 0) return run_child(argv[2], argv[3]);
        std::string dir = (fs::temp_directory_path() / "mlawb-bench-load-rss").string();
        bool keep = false;
        int runs = 3;
        for (int i = 1; i < argc; ++i) {
            const std::string arg = argv[i];
            if (arg == "--dir" && i + 1 < argc) dir = argv[++i];
            else if (arg == "--keep") keep = true;
            else if (arg == "--runs" && i + 1 < argc) runs = std::max(1, std::atoi(argv[++i]));
            else throw Error("", arg, "usage: bench_load_rss [--dir DIR] [--keep] [--runs N]");
        }
        const auto write_start = std::chrono::steady_clock::now();
        const uint64_t file_bytes = write_checkpoint(dir);
        const double write_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - write_start).count();
        const double file_mb = double(file_bytes) / 1e6;
        std::printf("bench_load_rss: random SmolLM-360M-shaped checkpoint (real config.json), %.1f MB BF16 written "
                    "with write_safetensors in %.2f s\n  %s\n", file_mb, write_seconds, dir.c_str());
        std::printf("peak RSS = VmHWM of a fresh process per load (mapped pages count once read); median of %d runs; "
                    "page cache warm (file just written)\n\n", runs);
        std::printf("%-40s %12s %12s %10s %10s %9s\n", "load", "peak RSS MB", "- baseline", "peak/file",
                    "net/file", "time s");
        double baseline_mb = 0, mapped_net = 0, engine_net = 0;
        for (const char* mode : {"baseline", "mapped", "construct", "engine"}) {
            std::vector<double> peaks, seconds;
            for (int r = 0; r < runs; ++r) {
                const json j = run_in_child(mode, dir);
                peaks.push_back(j["hwm_kb"].get<double>() * 1024 / 1e6);
                seconds.push_back(j["seconds"].get<double>());
            }
            const double peak = median(peaks), net = peak - baseline_mb;
            if (std::strcmp(mode, "baseline") == 0) baseline_mb = peak;
            if (std::strcmp(mode, "mapped") == 0) mapped_net = net;
            if (std::strcmp(mode, "engine") == 0) engine_net = net;
            const char* label = std::strcmp(mode, "baseline") == 0    ? "baseline (process, LibTorch, no model)"
                                : std::strcmp(mode, "mapped") == 0    ? "mapped, stored BF16 (Checkpoint)"
                                : std::strcmp(mode, "construct") == 0 ? "float32 modules only (random init)"
                                                                      : "engine load_model (float32 copy)";
            std::printf("%-40s %12.1f %12.1f %10.2f %10.2f %9.3f\n", label, peak,
                        std::strcmp(mode, "baseline") == 0 ? 0.0 : net, peak / file_mb,
                        std::strcmp(mode, "baseline") == 0 ? 0.0 : net / file_mb, median(seconds));
        }
        std::printf("\ngoal: weights kept in their stored dtype peak <= 1.1 x file: mapped %.2f x (net of the process "
                    "baseline) -> %s\n", mapped_net / file_mb, mapped_net / file_mb <= 1.1 ? "met" : "NOT met");
        std::printf("the engine upcasts BF16 to float32 on load (4 bytes per 2 stored): %.2f x the file net of the "
                    "baseline\n", engine_net / file_mb);
        if (!keep) fs::remove_all(dir);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    }
}
