// Decode attention (FlashDecoding): kernel choice, split planning, launch and the combine step.
// core/cuda/decode_attention.h describes the problem; the partial kernels are in decode_simt.cuh
// and decode_mma.cuh; core/decode_attention_ref.cpp is the CPU reference the tests compare against.
//
// Two partial kernels write, per (sequence, query head, split), the float32 output accumulated
// against the split's own running max m (log2 domain: scores are multiplied by scale*log2(e) and
// exponentiated with exp2), the max m and the sum l of exp2(s - m). decode_combine then rescales
// the splits to the common max and divides by the total sum.
//   decode_simt      CUDA cores. A group of LANES threads holds one key row (16-byte loads,
//                    32 / LANES rows per warp, UNROLL rows per group in flight), dot products
//                    reduced with shuffles, one to eight query heads of one KV head per block.
//   decode_mma       tensor cores (mma.sync m16n8k16, bf16/f16, f32 accumulate) for many query
//                    heads sharing one key row whose prefix is the value (absorbed MLA). Tiles
//                    of 16 tokens stream into shared memory (a bulk copy a row, counted on the
//                    stage's mbarrier; rows past the range repeat the last visible row, whose
//                    P is 0); warp w owns columns [w DW, (w+1) DW) of the latent for both
//                    products: S partials over its columns are summed across warps in shared
//                    memory (plus the small per-head r part on CUDA cores), the online softmax
//                    runs once per tile, and P (bf16) times the warp's value columns accumulates
//                    in registers.
#include "core/cuda/device_common.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

namespace mlawb::cuda {

namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr int kSimtThreads = 128;  // 4 warps
constexpr int kSimtWarps = kSimtThreads / 32;
constexpr int kMmaTokens = 16;     // tokens per tile (the k of P.V, two n8 tiles of Q.K^T)
constexpr int kMaxSplits = 256;
constexpr int kMinTokensPerSplit = 64;

// Merges (m_b, l_b) into (m_a, l_a); returns the factors that rescale a's and b's accumulators.
__device__ __forceinline__ void merge_factors(float m_a, float m_b, float& m_out, float& fa, float& fb) {
    m_out = fmaxf(m_a, m_b);
    fa = m_a == -INFINITY ? 0.f : exp2f(m_a - m_out);
    fb = m_b == -INFINITY ? 0.f : exp2f(m_b - m_out);
}

// The keys sequence b sees, cut into n_splits ranges: [begin, end) of split `split`.
__device__ __forceinline__ void split_range(const DecodeAttentionParams& p, int b, int split, int n_splits, int& begin,
                                            int& end) {
    int len = p.lengths[b];
    len = len < 0 ? 0 : (len > p.max_length ? p.max_length : len);
    const int start = (p.window > 0 && len > p.window) ? len - p.window : 0;
    const int visible = len - start;
    int chunk = (visible + n_splits - 1) / n_splits;
    chunk = (chunk + kMmaTokens - 1) / kMmaTokens * kMmaTokens;
    begin = start + split * chunk;
    end = min(begin + chunk, len);
}

// A split with no visible key (a short or empty sequence): its heads' partials are marked empty
// (m = -inf, l = 0; the combine gives them weight 0 and never reads their accumulators).
__device__ __forceinline__ void mark_empty_split(float* __restrict__ ws_ml, int64_t slot0, int n_splits, int nh,
                                                 int tid) {
    if (tid < nh) {
        ws_ml[(slot0 + static_cast<int64_t>(tid) * n_splits) * 2] = -INFINITY;
        ws_ml[(slot0 + static_cast<int64_t>(tid) * n_splits) * 2 + 1] = 0.f;
    }
}

#include "core/cuda/decode_simt.cuh"
#include "core/cuda/decode_mma.cuh"

// ---------------------------------------------------------------------------------------------
// Combine the splits: blocks over (sequence, query head) x column chunks of the value
// (blockIdx.y), 16 bytes of partials (VEC columns) a thread, the splits' loads unrolled to
// overlap. A split's partial is its output normalized by its own sum (o / l, in the element
// type: half the bytes of float32 partials); its weight is l * 2^(m - max) over all splits.
constexpr int kCombineThreads = 128;
template <typename T>
__host__ __device__ constexpr int combine_columns() {
    return Elem<T>::kVec * kCombineThreads;
}

template <typename T>
__global__ void __launch_bounds__(128) decode_combine(const DecodeAttentionParams p, int n_splits,
                                                      const void* __restrict__ ws_acc_raw,
                                                      const float* __restrict__ ws_ml) {
    constexpr int VEC = Elem<T>::kVec;
    __shared__ float s_w[kMaxSplits];
    __shared__ float s_inv_l;
    const int bh = blockIdx.x;
    const int b = bh / p.q_heads, h = bh % p.q_heads;
    const int dv = p.value_dim, tid = threadIdx.x;
    const float* ml = ws_ml + static_cast<int64_t>(bh) * n_splits * 2;
    if (tid < 32) {
        float mx = -INFINITY;
        for (int s = tid; s < n_splits; s += 32) mx = fmaxf(mx, ml[2 * s]);
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
        float lsum = 0.f;
        for (int s = tid; s < n_splits; s += 32) {
            const float m = ml[2 * s];
            const float w = (m == -INFINITY) ? 0.f : exp2f(m - mx) * ml[2 * s + 1];
            s_w[s] = w;
            lsum += w;
        }
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) lsum += __shfl_xor_sync(0xffffffffu, lsum, off);
        if (tid == 0) s_inv_l = lsum > 0.f ? 1.f / lsum : 0.f;  // no visible key: output 0
    }
    __syncthreads();
    const float inv_l = s_inv_l;
    const T* acc = static_cast<const T*>(ws_acc_raw) + static_cast<int64_t>(bh) * n_splits * dv;
    T* out = static_cast<T*>(p.out) + b * p.out_stride_b + h * p.out_stride_h;
    const int e = blockIdx.y * combine_columns<T>() + tid * VEC;
    if (e >= dv) return;
    float r[VEC];
#pragma unroll
    for (int j = 0; j < VEC; ++j) r[j] = 0.f;
#pragma unroll 4
    for (int s = 0; s < n_splits; ++s) {
        const float w = s_w[s];
        if (w == 0.f) continue;  // empty split: its partial was never written
        float f[VEC];
        unpack<T>(load16(acc + static_cast<int64_t>(s) * dv + e), f);
#pragma unroll
        for (int j = 0; j < VEC; ++j) r[j] = fmaf(w, f[j], r[j]);
    }
    T o[VEC];
#pragma unroll
    for (int j = 0; j < VEC; ++j) o[j] = Elem<T>::store(r[j] * inv_l);
    *reinterpret_cast<uint4*>(out + e) = *reinterpret_cast<const uint4*>(o);
}

// ---------------------------------------------------------------------------------------------
// Host side: which kernel, how many splits, launch.

// Read once (the split count must not change between a graph's capture and its replays).
int device_sm_count() {
    static const int count = [] {
        int dev = 0, n = 0;
        if (cudaGetDevice(&dev) != cudaSuccess) return 132;
        if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n <= 0) return 132;
        return n;
    }();
    return count;
}

int device_smem_optin() {
    static const int bytes = [] {
        int dev = 0, n = 0;
        if (cudaGetDevice(&dev) != cudaSuccess) return 48 * 1024;
        if (cudaDeviceGetAttribute(&n, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess || n <= 0)
            return 48 * 1024;
        return n;
    }();
    return bytes;
}

// Benchmarks only: MLAWB_DECODE_STAGE_ROPE=0 reads the rope keys from global memory in the softmax
// step instead of staging them with the K tiles (the default wherever they fit).
int stage_rope_knob() {
    static const int knob = [] {
        const char* v = std::getenv("MLAWB_DECODE_STAGE_ROPE");
        return v ? std::atoi(v) : -1;
    }();
    return knob;
}

// Profiling only (scripts/gpu/profile_step.sh): MLAWB_DECODE_ABLATION=<mask> leaves stages of the
// tensor-core kernel out (1 Q.K^T, 2 softmax, 4 P.V, 8 tile loads, 16 mid-tile barriers); the
// results are then wrong. Read once.
int ablation_mask() {
    static const int mask = [] {
        const char* v = std::getenv("MLAWB_DECODE_ABLATION");
        return v ? std::atoi(v) : 0;
    }();
    return mask;
}

// SIMT configuration: LANES threads per key row, KCH/VCH 16-byte chunks per lane, G heads.
struct SimtConfig {
    int lanes = 0, kch = 0, vch = 0, g = 0;
};

bool simt_config(const DecodeAttentionParams& p, SimtConfig& c) {
    const int vec = 16 / elem_bytes(p.dtype);
    const int width = std::max(p.key_a_dim + p.key_r_dim, p.value_dim);
    if (width <= 16 * vec) c = {16, 1, 1, 0};
    else if (width <= 32 * vec) c = {32, 1, 1, 0};
    else if (width <= 64 * vec) c = {32, 2, 2, 0};
    else return false;
    // Registers: queries and accumulators of G heads, G (KCH + VCH) VEC floats <= 128.
    const int per_head = (c.kch + c.vch) * vec;
    const int group = p.q_heads / p.kv_heads;
    int g = 1;
    while (g < 8 && g < group && (2 * g) * per_head <= 128) g *= 2;
    c.g = g;
    return true;
}

// Tensor-core configuration: MT m16 tiles of heads per block, DW latent columns per warp.
struct MmaConfig {
    int mt = 0, dw = 0, warps = 0, stages = 0;
};

bool mma_config(const DecodeAttentionParams& p, MmaConfig& c) {
    const int dv = p.value_dim;
    // Prefer 8 warps; a warp's columns are a multiple of 16 (k of Q.K^T, two n8 tiles of P.V).
    for (int warps : {8, 4, 2, 1}) {
        if (dv % (16 * warps)) continue;
        const int dw = dv / warps;
        if (dw != 16 && dw != 32 && dw != 64 && dw != 128 && dw != 256) continue;
        c.warps = warps;
        c.dw = dw;
        // 16 x 256 or 32 x 128 accumulators per warp; a block's heads must share the key-a row.
        const int group = p.q_heads / p.kv_heads;
        const bool shared_pair = p.ka_stride_h == 0 || group % 32 == 0;
        c.mt = (dw <= 128 && p.q_heads > 16 && shared_pair) ? 2 : 1;
        // Stages of 16-token K tiles: three, except at 128 columns a warp with L = 1024 (sQ + 3 x 33 KB
        // would pass the 227 KB a block may have); with 256 a warp the queries sit in registers.
        c.stages = (dw == 128 && dv >= 1024) ? 2 : 3;
        return true;
    }
    return false;
}

}  // namespace

const char* decode_attention_unsupported(const DecodeAttentionParams& p, DecodeKernel kernel) {
    if (p.batch <= 0 || p.q_heads <= 0 || p.kv_heads <= 0) return "batch and head counts must be positive";
    if (p.q_heads % p.kv_heads) return "q_heads must be a multiple of kv_heads";
    if (!p.q || !p.key_a || !p.value || !p.lengths || !p.out) return "null pointer";
    if (p.key_r_dim > 0 && !p.key_r) return "key_r is null but key_r_dim > 0";
    if (p.max_length <= 0) return "max_length must be positive";
    const int vec = 16 / elem_bytes(p.dtype);
    if (p.key_a_dim <= 0 || p.value_dim <= 0 || p.key_a_dim % vec || p.key_r_dim % vec || p.value_dim % vec)
        return "key and value widths must be positive multiples of 16 bytes";
    if (!aligned16(p.q) || !aligned16(p.key_a) || !aligned16(p.value) || (p.key_r && !aligned16(p.key_r)) ||
        !aligned16(p.out))
        return "pointers must be 16-byte aligned";
    const int64_t strides[] = {p.q_stride_b,  p.q_stride_h,  p.ka_stride_b, p.ka_stride_h, p.ka_stride_t,
                               p.kr_stride_b, p.kr_stride_h, p.kr_stride_t, p.v_stride_b,  p.v_stride_h,
                               p.v_stride_t,  p.out_stride_b, p.out_stride_h};
    for (int64_t s : strides)
        if (s % vec) return "strides must be multiples of 16 bytes";
    if (kernel == DecodeKernel::Simt) {
        SimtConfig c;
        if (!simt_config(p, c)) return "simt kernel: key or value wider than 512 (16-bit) or 256 (f32) elements";
        return nullptr;
    }
    if (kernel == DecodeKernel::TensorCore) {
        if (p.dtype == DType::F32) return "tensor-core kernel: bf16 or f16 only";
        if (p.value != p.key_a || p.v_stride_b != p.ka_stride_b || p.v_stride_h != p.ka_stride_h ||
            p.v_stride_t != p.ka_stride_t || p.value_dim != p.key_a_dim)
            return "tensor-core kernel: the values must be the keys' a part (absorbed MLA)";
        if (p.key_r_dim > 64) return "tensor-core kernel: key_r_dim must be at most 64";
        MmaConfig c;
        if (!mma_config(p, c)) return "tensor-core kernel: value_dim must be 16..256 columns per warp (64..2048)";
        const int group = p.q_heads / p.kv_heads;
        if (p.ka_stride_h != 0 && group % (16 * c.mt) != 0)
            return "tensor-core kernel: heads of a block must share the key-a row (head stride 0)";
        if (p.value_dim < 64) return "tensor-core kernel: value_dim must be at least 64";
        return nullptr;
    }
    // Auto: either.
    if (!decode_attention_unsupported(p, DecodeKernel::TensorCore)) return nullptr;
    return decode_attention_unsupported(p, DecodeKernel::Simt);
}

DecodeKernel decode_attention_resolve(const DecodeAttentionParams& p, DecodeKernel kernel) {
    if (kernel != DecodeKernel::Auto) return decode_attention_unsupported(p, kernel) ? DecodeKernel::Auto : kernel;
    // Tensor cores pay off when many heads share a row; one or two heads per row stay on CUDA cores.
    if (!decode_attention_unsupported(p, DecodeKernel::TensorCore) && p.q_heads / p.kv_heads * (p.ka_stride_h == 0 ? p.kv_heads : 1) >= 8)
        return DecodeKernel::TensorCore;
    if (!decode_attention_unsupported(p, DecodeKernel::Simt)) return DecodeKernel::Simt;
    if (!decode_attention_unsupported(p, DecodeKernel::TensorCore)) return DecodeKernel::TensorCore;
    return DecodeKernel::Auto;
}

namespace {

// The partials in the workspace: [slots][value_dim] in the element type (o / l of each split),
// then, 16-byte aligned, [slots][2] float32 (m, l); a slot is (sequence, query head, split).
struct WorkspaceLayout {
    size_t ml_offset = 0, bytes = 0;
};

WorkspaceLayout workspace_layout(const DecodeAttentionParams& p, int n_splits) {
    const size_t slots = static_cast<size_t>(p.batch) * p.q_heads * n_splits;
    WorkspaceLayout w;
    w.ml_offset = (slots * p.value_dim * elem_bytes(p.dtype) + 15) / 16 * 16;
    w.bytes = w.ml_offset + slots * 2 * sizeof(float);
    return w;
}

using SimtFn = void (*)(const DecodeAttentionParams, int, int, void*, float*);
using MmaFn = void (*)(const DecodeAttentionParams, int, int, void*, float*, int);

template <typename T>
SimtFn simt_instance(const SimtConfig& c) {
#define MLAWB_SIMT(L, KC, VC, G, U) \
    if (c.lanes == L && c.kch == KC && c.vch == VC && c.g == G) return decode_simt<T, L, KC, VC, G, U>;
    MLAWB_SIMT(16, 1, 1, 1, 4)
    MLAWB_SIMT(16, 1, 1, 2, 4)
    MLAWB_SIMT(16, 1, 1, 4, 2)
    MLAWB_SIMT(16, 1, 1, 8, 2)
    MLAWB_SIMT(32, 1, 1, 1, 4)
    MLAWB_SIMT(32, 1, 1, 2, 4)
    MLAWB_SIMT(32, 1, 1, 4, 2)
    MLAWB_SIMT(32, 1, 1, 8, 2)
    MLAWB_SIMT(32, 2, 2, 1, 2)
    MLAWB_SIMT(32, 2, 2, 2, 2)
    MLAWB_SIMT(32, 2, 2, 4, 2)
    if constexpr (std::is_same_v<T, float>) {
        MLAWB_SIMT(32, 2, 2, 8, 2)  // 16-bit types stop at 4 heads here (register budget)
    }
#undef MLAWB_SIMT
    return nullptr;
}

// The instance, with its dynamic shared-memory limit raised to the device's once (on the first,
// eager call: not a call to make while a CUDA graph is being captured).
template <typename T, int MT, int DW, int STAGES, int WARPS>
MmaFn mma_prepared(cudaError_t& error) {
    static const cudaError_t raised = cudaFuncSetAttribute(
        decode_mma<T, MT, DW, STAGES, WARPS>, cudaFuncAttributeMaxDynamicSharedMemorySize, device_smem_optin());
    error = raised;
    return decode_mma<T, MT, DW, STAGES, WARPS>;
}

template <typename T>
MmaFn mma_instance(const MmaConfig& c, cudaError_t& error) {
    if constexpr (std::is_same_v<T, float>) {
        return nullptr;
    } else {
        // Every configuration mma_config can pick (4 warps only at L = 64).
#define MLAWB_MMA(MT, DW, ST, W) \
    if (c.mt == MT && c.dw == DW && c.stages == ST && c.warps == W) return mma_prepared<T, MT, DW, ST, W>(error);
        MLAWB_MMA(1, 16, 3, 4)
        MLAWB_MMA(2, 16, 3, 4)
        MLAWB_MMA(1, 16, 3, 8)
        MLAWB_MMA(1, 32, 3, 8)
        MLAWB_MMA(1, 64, 3, 8)
        MLAWB_MMA(1, 128, 2, 8)
        MLAWB_MMA(1, 256, 3, 8)
        MLAWB_MMA(2, 16, 3, 8)
        MLAWB_MMA(2, 32, 3, 8)
        MLAWB_MMA(2, 64, 3, 8)
        MLAWB_MMA(2, 128, 2, 8)
#undef MLAWB_MMA
        return nullptr;
    }
}

// A resolved kernel: the function, its block shape and how the problem splits into blocks.
struct Plan {
    DecodeKernel kernel = DecodeKernel::Auto;
    SimtFn simt = nullptr;
    MmaFn mma = nullptr;
    int grid_x = 0;        // blocks per (split, sequence)
    int threads = 0;
    size_t smem = 0;       // dynamic shared memory
    int chunks_per_kv = 0; // simt
    int n_splits = 1;
    int kr_row = 0;        // tensor core: rope-key elements staged per token (0: read from global)
};

template <typename T>
const char* plan_typed(const DecodeAttentionParams& p, DecodeKernel kernel, Plan& plan) {
    plan.kernel = kernel;
    const void* fn = nullptr;
    if (kernel == DecodeKernel::TensorCore) {
        MmaConfig c;
        mma_config(p, c);
        cudaError_t error = cudaSuccess;
        plan.mma = mma_instance<T>(c, error);
        if (!plan.mma) return "tensor-core kernel: no instance for this shape";
        if (error != cudaSuccess) return cuda_message("tensor-core kernel: shared memory", error);
        plan.grid_x = (p.q_heads + 16 * c.mt - 1) / (16 * c.mt);
        plan.threads = c.warps * 32;
        const int bm = 16 * c.mt;
        plan.smem = mma_smem(bm, p.value_dim, p.key_r_dim, c.warps, c.stages, sizeof(T), c.dw < 256, 0).total;
        if (static_cast<int>(plan.smem) > device_smem_optin())
            return "tensor-core kernel: needs more shared memory than a block may have";
        fn = reinterpret_cast<const void*>(plan.mma);
        // Stage the rope keys with the K tiles wherever they fit (the most KV heads any block's
        // query heads span, times key_r_dim), even where that costs a resident block: at L 512
        // the global loads in the softmax step were 29% of the stall samples, and staged (one
        // block an SM instead of two) the kernel is 1.12-1.2x faster at batch 8 and as fast
        // at 32 x 8k (scripts/gpu/NOTES.md, version 5).
        if (p.key_r_dim > 0) {
            const int group = p.q_heads / p.kv_heads;
            int span = 1;
            for (int h0 = 0; h0 < p.q_heads; h0 += bm)
                span = std::max(span, (std::min(h0 + bm, p.q_heads) - 1) / group - h0 / group + 1);
            const int kr_row = span * p.key_r_dim;
            const size_t with =
                mma_smem(bm, p.value_dim, p.key_r_dim, c.warps, c.stages, sizeof(T), c.dw < 256, kr_row).total;
            int blocks_with = 0;
            if (static_cast<int>(with) <= device_smem_optin() &&
                cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_with, fn, plan.threads, with) == cudaSuccess &&
                blocks_with > 0 && stage_rope_knob() != 0) {
                plan.kr_row = kr_row;
                plan.smem = with;
            }
            (void)cudaGetLastError();  // an occupancy query that failed leaves the global path
        }
    } else {
        SimtConfig c;
        simt_config(p, c);
        plan.simt = simt_instance<T>(c);
        if (!plan.simt) return "simt kernel: no instance for this shape";
        const int group = p.q_heads / p.kv_heads;
        plan.chunks_per_kv = (group + c.g - 1) / c.g;
        plan.grid_x = p.kv_heads * plan.chunks_per_kv;
        plan.threads = kSimtThreads;
        plan.smem = 0;
        fn = reinterpret_cast<const void*>(plan.simt);
    }
    // Splits: the tensor-core kernel writes wide partials (value_dim floats per head and split),
    // so it fills the GPU once; the CUDA-core kernel writes narrow ones and aims at four waves so
    // that the last one is short. Never fewer than 64 (tensor core) / 128 tokens per split.
    int per_sm = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fn, plan.threads, plan.smem) != cudaSuccess || per_sm < 1)
        per_sm = 1;
    const int resident = per_sm * device_sm_count();
    const int units = p.batch * plan.grid_x;
    const bool tensor = kernel == DecodeKernel::TensorCore;
    const int want = tensor ? std::max(1, resident / units) : (4 * resident + units - 1) / units;
    const int min_tokens = tensor ? kMinTokensPerSplit : 2 * kMinTokensPerSplit;
    const int by_length = std::max(1, (p.max_length + min_tokens - 1) / min_tokens);
    plan.n_splits = std::max(1, std::min({want, by_length, kMaxSplits}));
    return nullptr;
}

const char* make_plan(const DecodeAttentionParams& p, DecodeKernel kernel, Plan& plan) {
    switch (p.dtype) {
        case DType::F32: return plan_typed<float>(p, kernel, plan);
        case DType::F16: return plan_typed<__half>(p, kernel, plan);
        case DType::BF16: return plan_typed<__nv_bfloat16>(p, kernel, plan);
    }
    return "unknown dtype";
}

template <typename T>
const char* launch_plan(const DecodeAttentionParams& p, const Plan& plan, void* acc, float* ml, cudaStream_t stream) {
    const dim3 grid(plan.grid_x, plan.n_splits, p.batch);
    if (plan.kernel == DecodeKernel::TensorCore)
        plan.mma<<<grid, plan.threads, plan.smem, stream>>>(p, plan.n_splits, plan.kr_row, acc, ml, ablation_mask());
    else plan.simt<<<grid, plan.threads, 0, stream>>>(p, plan.n_splits, plan.chunks_per_kv, acc, ml);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return cuda_message("decode attention partial kernel", e);
    const dim3 combine_grid(p.batch * p.q_heads, (p.value_dim + combine_columns<T>() - 1) / combine_columns<T>());
    decode_combine<T><<<combine_grid, kCombineThreads, 0, stream>>>(p, plan.n_splits, acc, ml);
    e = cudaGetLastError();
    if (e != cudaSuccess) return cuda_message("decode attention combine kernel", e);
    return nullptr;
}

}  // namespace

size_t decode_attention_workspace_bytes(const DecodeAttentionParams& p, DecodeKernel kernel) {
    const DecodeKernel k = decode_attention_resolve(p, kernel);
    if (k == DecodeKernel::Auto) return 0;
    Plan plan;
    if (make_plan(p, k, plan)) return 0;
    return workspace_layout(p, plan.n_splits).bytes;
}

const char* launch_decode_attention(const DecodeAttentionParams& p, DecodeKernel kernel, void* workspace,
                                    size_t workspace_bytes, void* stream_ptr) {
    if (const char* why = decode_attention_unsupported(p, kernel)) return why;
    const DecodeKernel k = decode_attention_resolve(p, kernel);
    if (k == DecodeKernel::Auto) return "no decode-attention kernel supports this shape";
    Plan plan;
    if (const char* why = make_plan(p, k, plan)) return why;
    const WorkspaceLayout layout = workspace_layout(p, plan.n_splits);
    if (!workspace || workspace_bytes < layout.bytes || !aligned16(workspace)) return "workspace too small or unaligned";
    void* acc = workspace;
    float* ml = reinterpret_cast<float*>(static_cast<unsigned char*>(workspace) + layout.ml_offset);
    cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
    switch (p.dtype) {
        case DType::F32: return launch_plan<float>(p, plan, acc, ml, stream);
        case DType::F16: return launch_plan<__half>(p, plan, acc, ml, stream);
        case DType::BF16: return launch_plan<__nv_bfloat16>(p, plan, acc, ml, stream);
    }
    return "unknown dtype";
}

}  // namespace mlawb::cuda
