// The decode-attention kernels (core/cuda/decode_attention.cu) against the float64 CPU reference
// (core/decode_attention_ref.cpp): standard MHA/GQA caches [B, Hkv, Tmax, D] and the absorbed
// MLA latent cache [B, Tmax, L + Hkv 2r] (keys [c_kv | k_rope_g], values c_kv), ragged lengths,
// lengths that are no multiple of the split or tile, sliding windows, f32/f16/bf16.
//
// Each case draws fresh random inputs, fills the cache past every length with NaN (a read of
// an invisible key shows), poisons the output with NaN (an unwritten element shows), and runs
// every kernel that supports the case twice: the two results must be bit-identical (a race
// would move them) and ||out - ref|| / ||ref|| under the bound of the dtype.
//
//   test_decode_attention            the checks (ctest -L gpu)
//   test_decode_attention --bench [SHAPE]   plus kernel-only timings at Llama-2-7B shapes (those whose
//                                           name contains SHAPE, e.g. "MLA L 2048 + 32")
//   test_decode_attention --bench-only [SHAPE]   the timings alone (for a profiler)
#include "core/cuda/decode_attention.h"
#include "core/decode_attention_ref.h"
#include "gpu_check.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace mlawb;
using cuda::DecodeKernel;
using cuda::DType;

namespace {

#define CUDA_OK(expr)                                                                                   \
    do {                                                                                                \
        cudaError_t e_ = (expr);                                                                        \
        if (e_ != cudaSuccess) {                                                                        \
            std::printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_));     \
            std::exit(1);                                                                               \
        }                                                                                               \
    } while (0)

enum class Layout { Standard, Mla };

struct Case {
    std::string name;
    DType dtype;
    Layout layout;
    int batch, q_heads, kv_heads;
    int da, dr;  // Standard: head dim da (dr 0); Mla: latent L = da, rope 2r = dr
    std::vector<int> lengths;
    int max_length;
    int window = 0;
    bool per_head_latent = false;  // Mla: latent per KV head [B, T, Hkv, da + dr] instead of shared
};

int elem_size(DType t) { return t == DType::F32 ? 4 : 2; }
const char* dtype_name(DType t) { return t == DType::F32 ? "f32" : t == DType::F16 ? "f16" : "bf16"; }
const char* kernel_name(DecodeKernel k) {
    switch (k) {
        case DecodeKernel::Simt: return "simt";
        case DecodeKernel::TensorCore: return "tensor-core";
        default: return "auto";
    }
}

// A host buffer of `n` elements of `dtype`, as raw bytes.
struct HostBuf {
    DType dtype;
    std::vector<unsigned char> bytes;
    HostBuf(DType t, size_t n) : dtype(t), bytes(n * elem_size(t)) {}
    size_t size() const { return bytes.size() / elem_size(dtype); }
    void set(size_t i, float v) {
        if (dtype == DType::F32) std::memcpy(bytes.data() + 4 * i, &v, 4);
        else {
            const uint16_t b = dtype == DType::F16 ? float_to_f16_bits(v) : float_to_bf16_bits(v);
            std::memcpy(bytes.data() + 2 * i, &b, 2);
        }
    }
    float get(size_t i) const {
        if (dtype == DType::F32) {
            float v;
            std::memcpy(&v, bytes.data() + 4 * i, 4);
            return v;
        }
        uint16_t b;
        std::memcpy(&b, bytes.data() + 2 * i, 2);
        return dtype == DType::F16 ? f16_bits_to_float(b) : bf16_bits_to_float(b);
    }
};

struct DevBuf {
    void* ptr = nullptr;
    size_t bytes = 0;
    explicit DevBuf(size_t n) : bytes(n) { CUDA_OK(cudaMalloc(&ptr, std::max<size_t>(n, 16))); }
    ~DevBuf() { cudaFree(ptr); }
    DevBuf(const DevBuf&) = delete;
    DevBuf& operator=(const DevBuf&) = delete;
};

// The problem of a case, laid out in host buffers; `params` points at host memory until moved.
struct Problem {
    HostBuf q, cache_a, cache_v;  // cache_v unused for Mla
    cuda::DecodeAttentionParams params;
    Problem(DType t) : q(t, 0), cache_a(t, 0), cache_v(t, 0) {}
};

Problem make_problem(const Case& c, std::mt19937& rng) {
    std::uniform_real_distribution<float> uni(-1.f, 1.f);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    Problem pr(c.dtype);
    cuda::DecodeAttentionParams& p = pr.params;
    p.dtype = c.dtype;
    p.batch = c.batch;
    p.q_heads = c.q_heads;
    p.kv_heads = c.kv_heads;
    p.max_length = c.max_length;
    p.window = c.window;
    const int dk = c.da + c.dr;
    pr.q = HostBuf(c.dtype, static_cast<size_t>(c.batch) * c.q_heads * dk);
    for (size_t i = 0; i < pr.q.size(); ++i) pr.q.set(i, uni(rng));
    p.q_stride_b = static_cast<int64_t>(c.q_heads) * dk;
    p.q_stride_h = dk;
    const int64_t T = c.max_length;
    if (c.layout == Layout::Standard) {
        const int d = c.da;
        p.scale = 1.0f / std::sqrt(static_cast<float>(d));
        const size_t n = static_cast<size_t>(c.batch) * c.kv_heads * T * d;
        pr.cache_a = HostBuf(c.dtype, n);
        pr.cache_v = HostBuf(c.dtype, n);
        for (int b = 0; b < c.batch; ++b)
            for (int g = 0; g < c.kv_heads; ++g)
                for (int64_t t = 0; t < T; ++t)
                    for (int e = 0; e < d; ++e) {
                        const size_t i = ((static_cast<size_t>(b) * c.kv_heads + g) * T + t) * d + e;
                        const bool visible = t < c.lengths[b];
                        pr.cache_a.set(i, visible ? uni(rng) : nan);
                        pr.cache_v.set(i, visible ? uni(rng) : nan);
                    }
        p.key_a_dim = d;
        p.ka_stride_b = static_cast<int64_t>(c.kv_heads) * T * d;
        p.ka_stride_h = T * d;
        p.ka_stride_t = d;
        p.value_dim = d;
        p.v_stride_b = p.ka_stride_b;
        p.v_stride_h = p.ka_stride_h;
        p.v_stride_t = p.ka_stride_t;
    } else {
        // Scores of an absorbed MLA head: the original head_dim sets the scale (128 here).
        p.scale = 1.0f / std::sqrt(128.0f);
        const int64_t row = c.per_head_latent ? static_cast<int64_t>(c.kv_heads) * (c.da + c.dr)
                                              : c.da + static_cast<int64_t>(c.kv_heads) * c.dr;
        pr.cache_a = HostBuf(c.dtype, static_cast<size_t>(c.batch) * T * row);
        for (int b = 0; b < c.batch; ++b)
            for (int64_t t = 0; t < T; ++t)
                for (int64_t e = 0; e < row; ++e)
                    pr.cache_a.set((static_cast<size_t>(b) * T + t) * row + e, t < c.lengths[b] ? uni(rng) : nan);
        p.key_a_dim = c.da;
        p.ka_stride_b = T * row;
        p.ka_stride_t = row;
        p.key_r_dim = c.dr;
        p.kr_stride_b = T * row;
        p.kr_stride_t = row;
        if (c.per_head_latent) {
            p.ka_stride_h = c.da + c.dr;
            p.kr_stride_h = c.da + c.dr;
        } else {
            p.ka_stride_h = 0;
            p.kr_stride_h = c.dr;
        }
        p.value_dim = c.da;
        p.v_stride_b = p.ka_stride_b;
        p.v_stride_h = p.ka_stride_h;
        p.v_stride_t = p.ka_stride_t;
    }
    p.out_stride_b = static_cast<int64_t>(c.q_heads) * p.value_dim;
    p.out_stride_h = p.value_dim;
    // Host pointers for the reference.
    p.q = pr.q.bytes.data();
    p.key_a = pr.cache_a.bytes.data();
    p.value = c.layout == Layout::Standard ? static_cast<const void*>(pr.cache_v.bytes.data()) : p.key_a;
    p.key_r = c.dr > 0 ? static_cast<const void*>(pr.cache_a.bytes.data() +
                                                  static_cast<size_t>(c.per_head_latent ? c.da : c.da) * elem_size(c.dtype))
                       : nullptr;
    p.lengths = c.lengths.data();
    return pr;
}

double bound(DType t) { return t == DType::F32 ? 1e-5 : t == DType::F16 ? 4e-3 : 1.5e-2; }

void run_case(const Case& c, unsigned seed) {
    std::mt19937 rng(seed);
    Problem pr = make_problem(c, rng);
    const cuda::DecodeAttentionParams host = pr.params;
    const std::vector<double> ref = decode_attention_reference(host);
    double ref_norm = 0;
    for (double v : ref) ref_norm += v * v;
    ref_norm = std::sqrt(ref_norm);

    DevBuf dq(pr.q.bytes.size()), da(pr.cache_a.bytes.size()), dv(pr.cache_v.bytes.size()),
        dlen(c.lengths.size() * sizeof(int32_t));
    CUDA_OK(cudaMemcpy(dq.ptr, pr.q.bytes.data(), dq.bytes, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(da.ptr, pr.cache_a.bytes.data(), da.bytes, cudaMemcpyHostToDevice));
    if (dv.bytes) CUDA_OK(cudaMemcpy(dv.ptr, pr.cache_v.bytes.data(), dv.bytes, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dlen.ptr, c.lengths.data(), dlen.bytes, cudaMemcpyHostToDevice));
    const size_t out_elems = static_cast<size_t>(c.batch) * c.q_heads * host.value_dim;
    DevBuf dout(out_elems * elem_size(c.dtype));

    cuda::DecodeAttentionParams p = host;
    const unsigned char* host_base = pr.cache_a.bytes.data();
    p.q = dq.ptr;
    p.key_a = da.ptr;
    p.key_r = host.key_r ? static_cast<unsigned char*>(da.ptr) + (static_cast<const unsigned char*>(host.key_r) - host_base)
                         : nullptr;
    p.value = c.layout == Layout::Standard ? dv.ptr : da.ptr;
    p.lengths = static_cast<const int32_t*>(dlen.ptr);
    p.out = dout.ptr;

    int ran = 0;
    for (DecodeKernel k : {DecodeKernel::Simt, DecodeKernel::TensorCore, DecodeKernel::Auto}) {
        const char* why = cuda::decode_attention_unsupported(p, k);
        const std::string label = c.name + " [" + dtype_name(c.dtype) + ", " + kernel_name(k) + "]";
        if (why) {
            std::printf("  %-58s not applicable: %s\n", label.c_str(), why);
            continue;
        }
        const size_t ws_bytes = cuda::decode_attention_workspace_bytes(p, k);
        DevBuf ws(ws_bytes);
        std::vector<std::vector<unsigned char>> results;
        for (int rep = 0; rep < 2; ++rep) {
            CUDA_OK(cudaMemset(dout.ptr, 0xff, dout.bytes));  // NaN in every dtype
            CUDA_OK(cudaMemset(ws.ptr, 0xff, ws.bytes));
            const char* err = cuda::launch_decode_attention(p, k, ws.ptr, ws.bytes, nullptr);
            MLAWB_CHECK(err == nullptr, label + ": " + (err ? err : ""));
            if (err) return;
            CUDA_OK(cudaDeviceSynchronize());
            std::vector<unsigned char> out(dout.bytes);
            CUDA_OK(cudaMemcpy(out.data(), dout.ptr, dout.bytes, cudaMemcpyDeviceToHost));
            results.push_back(std::move(out));
        }
        MLAWB_CHECK(results[0] == results[1], label + ": two runs on the same inputs differ (race?)");
        HostBuf out(c.dtype, out_elems);
        out.bytes = results[0];
        double diff = 0;
        size_t bad = 0;
        for (size_t i = 0; i < out_elems; ++i) {
            const double v = out.get(i);
            if (!std::isfinite(v)) ++bad;
            diff += (v - ref[i]) * (v - ref[i]);
        }
        const double rel = std::sqrt(diff) / ref_norm;
        std::printf("  %-58s rel err %.2e (bound %.0e)%s\n", label.c_str(), rel, bound(c.dtype),
                    bad ? "  NON-FINITE OUTPUT" : "");
        MLAWB_CHECK(bad == 0, label + ": " + std::to_string(bad) + " output elements not finite (unwritten or NaN read)");
        MLAWB_CHECK(rel < bound(c.dtype), label + ": relative error " + std::to_string(rel));
        ++ran;
    }
    MLAWB_CHECK(ran > 0, c.name + ": no kernel supports this case");
}

std::vector<Case> cases() {
    std::vector<Case> v;
    // Standard caches.
    v.push_back({"mha d128 ragged 1/37/1000", DType::BF16, Layout::Standard, 3, 4, 4, 128, 0, {1, 37, 1000}, 1024});
    v.push_back({"mha d128 ragged 513/64/17", DType::F16, Layout::Standard, 3, 4, 4, 128, 0, {513, 64, 17}, 600});
    v.push_back({"mha d128 f32 300/1", DType::F32, Layout::Standard, 2, 4, 4, 128, 0, {300, 1}, 320});
    v.push_back({"gqa g4 d64 window 128", DType::BF16, Layout::Standard, 2, 8, 2, 64, 0, {700, 90}, 777, 128});
    v.push_back({"gqa g7 d128 (Qwen2-like)", DType::BF16, Layout::Standard, 2, 28, 4, 128, 0, {257, 1500}, 2048});
    v.push_back({"gqa g4 d128 f32 window 50", DType::F32, Layout::Standard, 2, 16, 4, 128, 0, {333, 20}, 400, 50});
    // Absorbed MLA, shared latent.
    v.push_back({"mla L2048 2r16 h32 (7B d_kv 64)", DType::BF16, Layout::Mla, 2, 32, 32, 2048, 16, {777, 4099}, 4200});
    v.push_back({"mla L512 2r16 h32 (7B d_kv 16)", DType::BF16, Layout::Mla, 3, 32, 32, 512, 16, {1, 2000, 333}, 2048});
    v.push_back({"mla L512 2r16 h32 f16", DType::F16, Layout::Mla, 2, 32, 32, 512, 16, {1029, 15}, 1100});
    v.push_back({"mla L1024 2r16 h32", DType::BF16, Layout::Mla, 2, 32, 32, 1024, 16, {640, 17}, 700});
    // The CTA-pair kernel's shapes (16 or 32 heads, L 1024 or 2048): GQA rope rows, no rope, f16, window.
    v.push_back({"mla L2048 2r16 h16 kv4 (pair)", DType::BF16, Layout::Mla, 3, 16, 4, 2048, 16, {2, 1500, 16}, 1536});
    v.push_back({"mla L1024 2r0 h32 kv8 (pair)", DType::BF16, Layout::Mla, 2, 32, 8, 1024, 0, {31, 900}, 1000});
    v.push_back({"mla L2048 2r32 h32 f16 window 300 (pair)", DType::F16, Layout::Mla, 2, 32, 32, 2048, 32, {1200, 77}, 1280, 300});
    // L 2048 with four head tiles a sequence and GQA rope rows, an empty sequence, one shorter
    // than the pipeline's stages, a ragged tail; no rope in f16.
    v.push_back({"mla L2048 2r16 h64 kv8", DType::BF16, Layout::Mla, 4, 64, 8, 2048, 16, {0, 3, 2100, 40}, 2200});
    v.push_back({"mla L2048 2r0 h32 kv32 f16", DType::F16, Layout::Mla, 2, 32, 32, 2048, 0, {4111, 1}, 4200});
    v.push_back({"mla L1024 2r16 h16 kv16 (pair)", DType::BF16, Layout::Mla, 1, 16, 16, 1024, 16, {4097}, 4100});
    v.push_back({"mla L128 2r16 h8 kv4", DType::BF16, Layout::Mla, 2, 8, 4, 128, 16, {50, 129}, 160});
    v.push_back({"mla L128 2r8 f32", DType::F32, Layout::Mla, 2, 8, 4, 128, 8, {77, 3}, 100});
    v.push_back({"mla L256 2r32 h16 kv2 window 100", DType::BF16, Layout::Mla, 2, 16, 2, 256, 32, {1000, 60}, 1024, 100});
    v.push_back({"mla L64 2r0 h24 kv3", DType::BF16, Layout::Mla, 1, 24, 3, 64, 0, {95}, 128});
    // Latent per KV head (no sharing across KV heads).
    Case per_head{"mla per-head L64 2r16 h32 kv2", DType::BF16, Layout::Mla, 2, 32, 2, 64, 16, {300, 45}, 320};
    per_head.per_head_latent = true;
    v.push_back(per_head);
    return v;
}

// Kernel-only time at Llama-2-7B shapes (one layer): median of 20 event-timed launches over
// 4 rotating caches, bytes = the visible cache read once.
void bench(const std::string& only) {
    struct Shape {
        const char* name;
        Layout layout;
        int heads, da, dr;
    };
    const Shape shapes[] = {{"MHA 32 x 128", Layout::Standard, 32, 128, 0},
                            {"MLA L 2048 + 32 x 16", Layout::Mla, 32, 2048, 16},
                            {"MLA L 2048 + 16 x 16", Layout::Mla, 16, 2048, 16},
                            {"MLA L 512 + 32 x 16", Layout::Mla, 32, 512, 16}};
    std::printf("\nkernel only, one layer, bf16, median of 20 (4 rotating caches):\n");
    std::printf("%-22s %6s %7s %-12s %10s %10s %8s\n", "shape", "batch", "ctx", "kernel", "us", "GB/s", "of 3.35");
    for (const Shape& s : shapes)
        for (int batch : {1, 8, 32})
            if (only.empty() || std::string(s.name).find(only) != std::string::npos)
            for (int ctx : {2048, 8192}) {
                const int64_t row = s.layout == Layout::Standard ? 2LL * s.da * s.heads : s.da + 1LL * s.heads * s.dr;
                const size_t cache_bytes = static_cast<size_t>(batch) * ctx * row * 2;
                if (cache_bytes * 4 > (size_t(8) << 30)) continue;
                cuda::DecodeAttentionParams p;
                p.dtype = DType::BF16;
                p.batch = batch;
                p.q_heads = s.heads;
                p.kv_heads = s.heads;
                p.max_length = ctx;
                const int dk = s.da + s.dr;
                p.q_stride_b = static_cast<int64_t>(s.heads) * dk;
                p.q_stride_h = dk;
                std::vector<DevBuf*> caches;
                for (int i = 0; i < 4; ++i) {
                    caches.push_back(new DevBuf(cache_bytes));
                    CUDA_OK(cudaMemset(caches.back()->ptr, 0x3c, cache_bytes));  // bf16 0x3c3c ~ 0.0115, not zero
                }
                DevBuf dq(static_cast<size_t>(batch) * s.heads * dk * 2), dlen(batch * 4),
                    dout(static_cast<size_t>(batch) * s.heads * s.da * 2);
                CUDA_OK(cudaMemset(dq.ptr, 0x3d, dq.bytes));
                std::vector<int32_t> lens(batch, ctx);
                CUDA_OK(cudaMemcpy(dlen.ptr, lens.data(), dlen.bytes, cudaMemcpyHostToDevice));
                p.q = dq.ptr;
                p.lengths = static_cast<const int32_t*>(dlen.ptr);
                p.out = dout.ptr;
                p.out_stride_b = static_cast<int64_t>(s.heads) * s.da;
                p.out_stride_h = s.da;
                p.scale = 0.088f;
                auto point = [&](void* base) {
                    if (s.layout == Layout::Standard) {
                        const int64_t half = static_cast<int64_t>(batch) * s.heads * ctx * s.da;
                        p.key_a = base;
                        p.value = static_cast<uint16_t*>(base) + half;
                        p.key_a_dim = p.value_dim = s.da;
                        p.ka_stride_b = p.v_stride_b = static_cast<int64_t>(s.heads) * ctx * s.da;
                        p.ka_stride_h = p.v_stride_h = static_cast<int64_t>(ctx) * s.da;
                        p.ka_stride_t = p.v_stride_t = s.da;
                    } else {
                        p.key_a = p.value = base;
                        p.key_r = static_cast<uint16_t*>(base) + s.da;
                        p.key_a_dim = p.value_dim = s.da;
                        p.key_r_dim = s.dr;
                        p.ka_stride_b = p.v_stride_b = p.kr_stride_b = ctx * row;
                        p.ka_stride_h = p.v_stride_h = 0;
                        p.kr_stride_h = s.dr;
                        p.ka_stride_t = p.v_stride_t = p.kr_stride_t = row;
                    }
                };
                point(caches[0]->ptr);
                for (DecodeKernel k : {DecodeKernel::Simt, DecodeKernel::TensorCore}) {
                    if (cuda::decode_attention_unsupported(p, k)) continue;
                    DevBuf ws(cuda::decode_attention_workspace_bytes(p, k));
                    cudaEvent_t e0, e1;
                    CUDA_OK(cudaEventCreate(&e0));
                    CUDA_OK(cudaEventCreate(&e1));
                    std::vector<float> ms;
                    for (int it = 0; it < 25; ++it) {
                        point(caches[it % 4]->ptr);
                        CUDA_OK(cudaEventRecord(e0));
                        const char* err = cuda::launch_decode_attention(p, k, ws.ptr, ws.bytes, nullptr);
                        if (err) {
                            std::printf("launch failed: %s\n", err);
                            break;
                        }
                        CUDA_OK(cudaEventRecord(e1));
                        CUDA_OK(cudaEventSynchronize(e1));
                        float t = 0;
                        CUDA_OK(cudaEventElapsedTime(&t, e0, e1));
                        if (it >= 5) ms.push_back(t);
                    }
                    cudaEventDestroy(e0);
                    cudaEventDestroy(e1);
                    if (ms.empty()) continue;
                    std::sort(ms.begin(), ms.end());
                    const double us = ms[ms.size() / 2] * 1e3;
                    const double gbs = cache_bytes / (us * 1e-6) / 1e9;
                    std::printf("%-22s %6d %7d %-12s %10.1f %10.0f %7.0f%%\n", s.name, batch, ctx, kernel_name(k), us, gbs,
                                100.0 * gbs / 3350.0);
                }
                for (DevBuf* c : caches) delete c;
            }
}

}  // namespace

int main(int argc, char** argv) {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        std::printf("FAIL: no CUDA device (this test is labelled gpu)\n");
        return 1;
    }
    const std::string mode = argc > 1 ? argv[1] : "";
    unsigned seed = 1234;
    if (mode != "--bench-only")
        for (const Case& c : cases()) {
            std::printf("%s\n", c.name.c_str());
            run_case(c, seed++);
        }
    if (mode == "--bench" || mode == "--bench-only") bench(argc > 2 ? argv[2] : "");
    return test::finish("test_decode_attention");
}
