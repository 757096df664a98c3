// Decode attention (FlashDecoding) and the fused element-wise steps of the batched decode.
// core/cuda/decode_attention.h describes the problem; core/decode_attention_ref.cpp is the CPU
// reference the tests compare against.
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
//                    of 16 tokens stream into shared memory (cp.async, zero-filled past the
//                    range); warp w owns columns [w DW, (w+1) DW) of the latent for both
//                    products: S partials over its columns are summed across warps in shared
//                    memory (plus the small per-head r part on CUDA cores), the online softmax
//                    runs once per tile, and P (bf16) times the warp's value columns accumulates
//                    in registers.
#include "core/cuda/decode_attention.h"

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

// ---------------------------------------------------------------------------------------------
// Element types: 16-byte vectors unpacked to float.

template <typename T>
struct Elem;
template <>
struct Elem<float> {
    static constexpr int kVec = 4;
    __device__ static float load(float x) { return x; }
    __device__ static float store(float x) { return x; }
};
template <>
struct Elem<__half> {
    static constexpr int kVec = 8;
    __device__ static float load(__half x) { return __half2float(x); }
    __device__ static __half store(float x) { return __float2half_rn(x); }
};
template <>
struct Elem<__nv_bfloat16> {
    static constexpr int kVec = 8;
    __device__ static float load(__nv_bfloat16 x) { return __bfloat162float(x); }
    __device__ static __nv_bfloat16 store(float x) { return __float2bfloat16_rn(x); }
};

template <typename T>
__device__ __forceinline__ void unpack(const uint4& v, float* out);

template <>
__device__ __forceinline__ void unpack<float>(const uint4& v, float* out) {
    out[0] = __uint_as_float(v.x);
    out[1] = __uint_as_float(v.y);
    out[2] = __uint_as_float(v.z);
    out[3] = __uint_as_float(v.w);
}

template <>
__device__ __forceinline__ void unpack<__nv_bfloat16>(const uint4& v, float* out) {
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        out[2 * i] = __uint_as_float(w[i] << 16);            // low half: element 2i
        out[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);  // high half: element 2i+1
    }
}

template <>
__device__ __forceinline__ void unpack<__half>(const uint4& v, float* out) {
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        __half2 h = *reinterpret_cast<const __half2*>(&w[i]);
        float2 f = __half22float2(h);
        out[2 * i] = f.x;
        out[2 * i + 1] = f.y;
    }
}

__device__ __forceinline__ uint4 load16(const void* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }

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

// ---------------------------------------------------------------------------------------------
// CUDA-core partial kernel.
//
// Lane `li` of a LANES-thread group holds elements (c LANES + li) VEC .. +VEC-1 of a row for
// c < KCH (keys) and c < VCH (values). Grid: x = KV head x head chunk, y = split, z = sequence.

template <typename T, int LANES, int KCH, int VCH, int G, int UNROLL>
__global__ void __launch_bounds__(kSimtThreads) decode_simt(const DecodeAttentionParams p, int n_splits,
                                                            int chunks_per_kv, float* __restrict__ ws_acc,
                                                            float* __restrict__ ws_ml) {
    constexpr int VEC = Elem<T>::kVec;
    constexpr int GROUPS = 32 / LANES;  // key rows per warp pass
    constexpr int DV_MAX = LANES * VCH * VEC;
    __shared__ float s_acc[kSimtWarps][DV_MAX];
    __shared__ float s_m[kSimtWarps][G];
    __shared__ float s_l[kSimtWarps][G];

    const int b = blockIdx.z, split = blockIdx.y;
    const int group = p.q_heads / p.kv_heads;
    const int g = blockIdx.x / chunks_per_kv;
    const int h0 = g * group + (blockIdx.x % chunks_per_kv) * G;
    const int nh = min(G, g * group + group - h0);  // query heads of this block
    const int dk = p.key_a_dim + p.key_r_dim, dv = p.value_dim;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int li = lane % LANES, sub = lane / LANES;

    int t_begin, t_end;
    split_range(p, b, split, n_splits, t_begin, t_end);
    const int64_t slot0 = (static_cast<int64_t>(b) * p.q_heads + h0) * n_splits + split;
    if (t_begin >= t_end) {
        if (tid < nh) {
            ws_ml[(slot0 + static_cast<int64_t>(tid) * n_splits) * 2] = -INFINITY;
            ws_ml[(slot0 + static_cast<int64_t>(tid) * n_splits) * 2 + 1] = 0.f;
        }
        return;
    }

    const T* qb = static_cast<const T*>(p.q) + b * p.q_stride_b;
    const T* ka = static_cast<const T*>(p.key_a) + b * p.ka_stride_b + g * p.ka_stride_h;
    const T* kr = p.key_r ? static_cast<const T*>(p.key_r) + b * p.kr_stride_b + g * p.kr_stride_h : nullptr;
    const T* vb = static_cast<const T*>(p.value) + b * p.v_stride_b + g * p.v_stride_h;

    // Queries, pre-scaled so that exp2(q.k) is exp(scale q.k).
    const float qscale = p.scale * kLog2e;
    float q[G][KCH][VEC];
#pragma unroll
    for (int i = 0; i < G; ++i)
#pragma unroll
        for (int c = 0; c < KCH; ++c) {
            const int e = (c * LANES + li) * VEC;
            float f[VEC];
            if (i < nh && e < dk) {
                unpack<T>(load16(qb + (h0 + i) * p.q_stride_h + e), f);
            } else {
#pragma unroll
                for (int j = 0; j < VEC; ++j) f[j] = 0.f;
            }
#pragma unroll
            for (int j = 0; j < VEC; ++j) q[i][c][j] = f[j] * qscale;
        }

    float m[G], l[G], acc[G][VCH * VEC];
#pragma unroll
    for (int i = 0; i < G; ++i) {
        m[i] = -INFINITY;
        l[i] = 0.f;
#pragma unroll
        for (int j = 0; j < VCH * VEC; ++j) acc[i][j] = 0.f;
    }

    constexpr int STEP = kSimtWarps * GROUPS * UNROLL;
    for (int base = t_begin; base < t_end; base += STEP) {
        uint4 kv[UNROLL][KCH], vv[UNROLL][VCH];
        bool valid[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            const int t = base + (u * kSimtWarps + warp) * GROUPS + sub;
            valid[u] = t < t_end;
#pragma unroll
            for (int c = 0; c < KCH; ++c) {
                const int e = (c * LANES + li) * VEC;
                kv[u][c] = make_uint4(0, 0, 0, 0);
                if (valid[u]) {
                    if (e < p.key_a_dim) kv[u][c] = load16(ka + t * p.ka_stride_t + e);
                    else if (e < dk) kv[u][c] = load16(kr + t * p.kr_stride_t + (e - p.key_a_dim));
                }
            }
#pragma unroll
            for (int c = 0; c < VCH; ++c) {
                const int e = (c * LANES + li) * VEC;
                vv[u][c] = make_uint4(0, 0, 0, 0);
                if (valid[u] && e < dv) vv[u][c] = load16(vb + t * p.v_stride_t + e);
            }
        }
        float s[UNROLL][G];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            float kf[KCH][VEC];
#pragma unroll
            for (int c = 0; c < KCH; ++c) unpack<T>(kv[u][c], kf[c]);
#pragma unroll
            for (int i = 0; i < G; ++i) {
                float dot = 0.f;
#pragma unroll
                for (int c = 0; c < KCH; ++c)
#pragma unroll
                    for (int j = 0; j < VEC; ++j) dot = fmaf(q[i][c][j], kf[c][j], dot);
#pragma unroll
                for (int off = LANES / 2; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
                s[u][i] = valid[u] ? dot : -INFINITY;
            }
        }
        // Online softmax, once per UNROLL rows.
#pragma unroll
        for (int i = 0; i < G; ++i) {
            float mx = s[0][i];
#pragma unroll
            for (int u = 1; u < UNROLL; ++u) mx = fmaxf(mx, s[u][i]);
            const float m_new = fmaxf(m[i], mx);
            if (m_new == -INFINITY) {
#pragma unroll
                for (int u = 0; u < UNROLL; ++u) s[u][i] = 0.f;
                continue;
            }
            const float alpha = exp2f(m[i] - m_new);  // m[i] = -inf gives 0
            l[i] *= alpha;
#pragma unroll
            for (int j = 0; j < VCH * VEC; ++j) acc[i][j] *= alpha;
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                s[u][i] = valid[u] ? exp2f(s[u][i] - m_new) : 0.f;  // now the weight p
                l[i] += s[u][i];
            }
            m[i] = m_new;
        }
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            float vf[VCH * VEC];
#pragma unroll
            for (int c = 0; c < VCH; ++c) unpack<T>(vv[u][c], vf + c * VEC);
#pragma unroll
            for (int i = 0; i < G; ++i)
#pragma unroll
                for (int j = 0; j < VCH * VEC; ++j) acc[i][j] = fmaf(s[u][i], vf[j], acc[i][j]);
        }
    }

    // Merge the row groups of the warp (butterfly: every lane ends with the warp's state).
#pragma unroll
    for (int off = LANES; off < 32; off <<= 1) {
#pragma unroll
        for (int i = 0; i < G; ++i) {
            const float m_o = __shfl_xor_sync(0xffffffffu, m[i], off);
            const float l_o = __shfl_xor_sync(0xffffffffu, l[i], off);
            float m_n, fa, fb;
            merge_factors(m[i], m_o, m_n, fa, fb);
            l[i] = l[i] * fa + l_o * fb;
#pragma unroll
            for (int j = 0; j < VCH * VEC; ++j) {
                const float a_o = __shfl_xor_sync(0xffffffffu, acc[i][j], off);
                acc[i][j] = acc[i][j] * fa + a_o * fb;
            }
            m[i] = m_n;
        }
    }

    // Merge the warps through shared memory, one query head at a time.
#pragma unroll
    for (int i = 0; i < G; ++i) {
        if (lane < LANES) {
#pragma unroll
            for (int c = 0; c < VCH; ++c)
#pragma unroll
                for (int j = 0; j < VEC; ++j) {
                    const int e = (c * LANES + li) * VEC + j;
                    if (e < dv) s_acc[warp][e] = acc[i][c * VEC + j];
                }
            if (lane == 0) {
                s_m[warp][i] = m[i];
                s_l[warp][i] = l[i];
            }
        }
        __syncthreads();
        if (i < nh) {
            float mw = -INFINITY;
#pragma unroll
            for (int w = 0; w < kSimtWarps; ++w) mw = fmaxf(mw, s_m[w][i]);
            float f[kSimtWarps];
            float lsum = 0.f;
#pragma unroll
            for (int w = 0; w < kSimtWarps; ++w) {
                f[w] = s_m[w][i] == -INFINITY ? 0.f : exp2f(s_m[w][i] - mw);
                lsum += s_l[w][i] * f[w];
            }
            const int64_t slot = slot0 + static_cast<int64_t>(i) * n_splits;
            for (int e = tid; e < dv; e += kSimtThreads) {
                float a = 0.f;
#pragma unroll
                for (int w = 0; w < kSimtWarps; ++w) a += s_acc[w][e] * f[w];
                ws_acc[slot * dv + e] = a;
            }
            if (tid == 0) {
                ws_ml[slot * 2] = mw;
                ws_ml[slot * 2 + 1] = lsum;
            }
        }
        __syncthreads();
    }
}

// ---------------------------------------------------------------------------------------------
// Tensor-core partial kernel (absorbed MLA). Needs value == key_a (same strides), one key-a row
// for all heads of a block (ka_stride_h == 0, or the block's heads within one KV head).

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
    const int bytes = valid ? 16 : 0;  // 0: nothing is read, the 16 bytes are zero-filled
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);

template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                        uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Shared-memory layout of decode_mma (in bytes from the dynamic base), rows padded by 16 bytes
// so that the 8 rows an ldmatrix reads fall in different banks.
struct MmaSmem {
    int row;        // elements per padded row of Q and K (dv + 8)
    int p_row;      // elements per padded row of P (16 + 8)
    size_t q, k, kr, s, qr, pm, m, l, alpha, total;
};

// q_in_smem false: the queries' a part lives in registers (decode_mma with DW 256), no sQ.
// kr_row > 0: the block's rope keys (kr_row elements a token: its KV heads' r parts side by side)
// are staged beside each K tile, so the softmax step reads them from shared memory instead of
// waiting on a global load between two barriers every tile.
__host__ __device__ inline MmaSmem mma_smem(int bm, int dv, int dr, int warps, int stages, int elem, bool q_in_smem,
                                            int kr_row) {
    MmaSmem s;
    s.row = dv + 8;
    s.p_row = kMmaTokens + 8;
    size_t at = 0;
    s.q = at;
    if (q_in_smem) at += static_cast<size_t>(bm) * s.row * elem;
    s.k = at;
    at += static_cast<size_t>(stages) * kMmaTokens * s.row * elem;
    s.kr = at;
    at += static_cast<size_t>(stages) * kMmaTokens * kr_row * elem;
    s.s = at;
    at += static_cast<size_t>(warps) * bm * kMmaTokens * 4;
    s.qr = at;
    at += static_cast<size_t>(bm) * (dr > 0 ? dr : 1) * 4;
    s.pm = at;
    at += static_cast<size_t>(bm) * s.p_row * elem;
    at = (at + 15) / 16 * 16;
    s.m = at;
    at += bm * 4;
    s.l = at;
    at += bm * 4;
    s.alpha = at;
    at += bm * 4;
    s.total = (at + 15) / 16 * 16;
    return s;
}

template <typename T, int MT, int DW, int STAGES>
__global__ void __launch_bounds__(256, (MT * DW <= 128) ? 2 : 1)
    decode_mma(const DecodeAttentionParams p, int n_splits, int kr_row, float* __restrict__ ws_acc,
               float* __restrict__ ws_ml, int skip) {
    constexpr int BM = 16 * MT;
    constexpr int NT = kMmaTokens;
    // With 256 latent columns per warp (L = 2048) the queries' A fragments stay in registers
    // (64 per thread): the 66 KB of sQ go to a third K stage instead.
    constexpr bool QREG = DW >= 256;
    extern __shared__ __align__(16) unsigned char smem[];
    const int warps = blockDim.x / 32;
    const int dv = p.value_dim, dr = p.key_r_dim;
    const MmaSmem L = mma_smem(BM, dv, dr, warps, STAGES, sizeof(T), !QREG, kr_row);
    T* sQ = reinterpret_cast<T*>(smem + L.q);  // unused when QREG
    T* sK = reinterpret_cast<T*>(smem + L.k);
    T* sKr = reinterpret_cast<T*>(smem + L.kr);  // [STAGES][16 tokens][kr_row], when kr_row > 0
    float* sS = reinterpret_cast<float*>(smem + L.s);
    float* sQr = reinterpret_cast<float*>(smem + L.qr);
    T* sP = reinterpret_cast<T*>(smem + L.pm);
    float* sM = reinterpret_cast<float*>(smem + L.m);
    float* sL = reinterpret_cast<float*>(smem + L.l);
    float* sAlpha = reinterpret_cast<float*>(smem + L.alpha);

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nthreads = blockDim.x;
    const int b = blockIdx.z, split = blockIdx.y;
    const int h0 = blockIdx.x * BM;
    const int group = p.q_heads / p.kv_heads;
    const int nh = min(BM, p.q_heads - h0);
    const int g_a = h0 / group;  // the key-a row's head (all heads share it, or one KV head)

    int t_begin, t_end;
    split_range(p, b, split, n_splits, t_begin, t_end);
    const int64_t slot0 = (static_cast<int64_t>(b) * p.q_heads + h0) * n_splits + split;
    if (t_begin >= t_end) {
        if (tid < nh) {
            ws_ml[(slot0 + static_cast<int64_t>(tid) * n_splits) * 2] = -INFINITY;
            ws_ml[(slot0 + static_cast<int64_t>(tid) * n_splits) * 2 + 1] = 0.f;
        }
        return;
    }

    const T* kbase = static_cast<const T*>(p.key_a) + b * p.ka_stride_b + g_a * p.ka_stride_h;
    const T* krb = dr > 0 ? static_cast<const T*>(p.key_r) + b * p.kr_stride_b : nullptr;
    const int chunks_per_row = dv / 8;  // 16-byte chunks per key-a row
    const int g_lo = h0 / group;        // the block's first KV head (staged rope keys start there)
    const int kr_chunks = kr_row > 0 ? ((h0 + nh - 1) / group - g_lo + 1) * (dr / 8) : 0;
    // A thread's first (row, chunk) of a tile and its step, computed once: the per-tile loop
    // then only adds (integer division per element cost as much as the copies' issue).
    const int k_r0 = tid / chunks_per_row, k_c0 = tid % chunks_per_row;
    const int k_dr = nthreads / chunks_per_row, k_dc = nthreads % chunks_per_row;
    const int r_chunks_head = dr / 8;  // 16-byte chunks of one KV head's rope keys
    auto load_tile = [&](int tile, int stage) {
        const int t0 = t_begin + tile * NT;
        T* dst = sK + static_cast<size_t>(stage) * NT * L.row;
        for (int r = k_r0, c = k_c0; r < NT;) {
            const int t = t0 + r;
            const bool valid = t < t_end;
            const T* src = valid ? kbase + static_cast<int64_t>(t) * p.ka_stride_t + c * 8 : kbase;
            cp_async16(dst + r * L.row + c * 8, src, valid);
            r += k_dr;
            c += k_dc;
            if (c >= chunks_per_row) {
                c -= chunks_per_row;
                ++r;
            }
        }
        // Rope keys staged head-major, [KV head][token][dr]: the softmax step's 16 lanes of one
        // head read 16 consecutive tokens without bank conflicts.
        T* rdst = sKr + static_cast<size_t>(stage) * NT * kr_row;
        for (int idx = tid; idx < NT * kr_chunks; idx += nthreads) {
            const int g = idx / (NT * r_chunks_head), rem = idx % (NT * r_chunks_head);
            const int r = rem / r_chunks_head, cc = rem % r_chunks_head;
            const int t = t0 + r;
            const bool valid = t < t_end;
            const T* src = valid ? krb + (g_lo + g) * p.kr_stride_h + static_cast<int64_t>(t) * p.kr_stride_t + cc * 8
                                 : krb;
            cp_async16(rdst + (g * NT + r) * dr + cc * 8, src, valid);
        }
    };
    const int n_tiles = (t_end - t_begin + NT - 1) / NT;
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < n_tiles) load_tile(s, s);
        cp_async_commit();
    }

    // Queries: the a part (bf16/f16) for the tensor cores, the r part in float32.
    const T* qb = static_cast<const T*>(p.q) + b * p.q_stride_b;
    const int col0 = warp * DW;
    uint32_t qf[QREG ? MT : 1][QREG ? DW / 16 : 1][4];
    if constexpr (QREG) {
        // A fragments straight from global memory: a0 (row l/4, k 2(l%4)..+1), a1 row+8, a2 k+8, a3 both.
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int kk = 0; kk < DW / 16; ++kk)
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    const int row = mt * 16 + (lane >> 2) + (j & 1) * 8;
                    const int col = col0 + kk * 16 + (lane & 3) * 2 + (j >> 1) * 8;
                    qf[mt][kk][j] = row < nh ? *reinterpret_cast<const uint32_t*>(
                                                   qb + static_cast<int64_t>(h0 + row) * p.q_stride_h + col)
                                             : 0u;
                }
    } else {
        for (int idx = tid; idx < BM * chunks_per_row; idx += nthreads) {
            const int r = idx / chunks_per_row, c = idx % chunks_per_row;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (r < nh) v = load16(qb + static_cast<int64_t>(h0 + r) * p.q_stride_h + c * 8);
            *reinterpret_cast<uint4*>(sQ + r * L.row + c * 8) = v;
        }
    }
    for (int idx = tid; idx < BM * dr; idx += nthreads) {
        const int r = idx / dr, c = idx % dr;
        sQr[idx] = r < nh ? Elem<T>::load(qb[static_cast<int64_t>(h0 + r) * p.q_stride_h + dv + c]) : 0.f;
    }
    if (tid < BM) {
        sM[tid] = -INFINITY;
        sL[tid] = 0.f;
    }

    float o[MT][DW / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int n = 0; n < DW / 8; ++n)
#pragma unroll
            for (int c = 0; c < 4; ++c) o[mt][n][c] = 0.f;

    const float qscale = p.scale * kLog2e;

    for (int tile = 0; tile < n_tiles; ++tile) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();  // tile landed for every thread; the buffer refilled below is free
        if (!(skip & 8) && tile + STAGES - 1 < n_tiles) load_tile(tile + STAGES - 1, (tile + STAGES - 1) % STAGES);
        cp_async_commit();
        const T* K = sK + static_cast<size_t>(tile % STAGES) * NT * L.row;
        const int t0 = t_begin + tile * NT;

        // S partial over this warp's columns: [BM heads] x [16 tokens].
        float sacc[MT][2][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int n = 0; n < 2; ++n)
#pragma unroll
                for (int c = 0; c < 4; ++c) sacc[mt][n][c] = 0.f;
        if (!(skip & 1))
#pragma unroll(QREG ? DW / 16 : 4)
        for (int kk = 0; kk < DW / 16; ++kk) {
            const int k0 = col0 + kk * 16;
            uint32_t bf[4];
            ldmatrix_x4(bf, K + ((lane >> 4) * 8 + (lane & 7)) * L.row + k0 + ((lane >> 3) & 1) * 8);
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                if constexpr (QREG) {
                    mma16816<T>(sacc[mt][0], qf[mt][kk], bf[0], bf[1]);
                    mma16816<T>(sacc[mt][1], qf[mt][kk], bf[2], bf[3]);
                } else {
                    uint32_t af[4];
                    ldmatrix_x4(af, sQ + (mt * 16 + (lane & 15)) * L.row + k0 + (lane >> 4) * 8);
                    mma16816<T>(sacc[mt][0], af, bf[0], bf[1]);
                    mma16816<T>(sacc[mt][1], af, bf[2], bf[3]);
                }
            }
        }
        float* Sw = sS + warp * BM * NT;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int n = 0; n < 2; ++n) {
                const int row = mt * 16 + (lane >> 2), col = n * 8 + (lane & 3) * 2;
                *reinterpret_cast<float2*>(Sw + row * NT + col) = make_float2(sacc[mt][n][0], sacc[mt][n][1]);
                *reinterpret_cast<float2*>(Sw + (row + 8) * NT + col) = make_float2(sacc[mt][n][2], sacc[mt][n][3]);
            }
        if (!(skip & 16)) __syncthreads();

        // Sum over warps, add the r part, online softmax per head (16 lanes per head row).
        for (int e = tid; e < ((skip & 2) ? 0 : BM * NT); e += nthreads) {
            const int row = e / NT, col = e % NT;
            const int t = t0 + col;
            const bool valid = t < t_end && row < nh;
            float s = 0.f;
#pragma unroll 8
            for (int w = 0; w < warps; ++w) s += sS[(w * BM + row) * NT + col];
            if (valid && dr > 0) {
                const int g = (h0 + row) / group;
                const T* kr = kr_row > 0 ? sKr + static_cast<size_t>(tile % STAGES) * NT * kr_row + ((g - g_lo) * NT + col) * dr
                                         : krb + g * p.kr_stride_h + static_cast<int64_t>(t) * p.kr_stride_t;
                const float* qr = sQr + row * dr;
                for (int c = 0; c < dr; c += 8) {
                    float kf[8];  // staged: a shared-memory load (ld.global.nc must not see it)
                    unpack<T>(kr_row > 0 ? *reinterpret_cast<const uint4*>(kr + c) : load16(kr + c), kf);
#pragma unroll
                    for (int j = 0; j < 8; ++j) s = fmaf(qr[c + j], kf[j], s);
                }
            }
            s = valid ? s * qscale : -INFINITY;
            float mx = s;
#pragma unroll
            for (int off = NT / 2; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            const float m_old = sM[row];
            const float m_new = fmaxf(m_old, mx);
            const float pr = (s == -INFINITY) ? 0.f : exp2f(s - m_new);
            float sum = pr;
#pragma unroll
            for (int off = NT / 2; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
            __syncwarp();
            sP[row * L.p_row + col] = Elem<T>::store(pr);
            if (col == 0) {
                const float alpha = m_new == -INFINITY ? 1.f : exp2f(m_old - m_new);
                sM[row] = m_new;
                sL[row] = sL[row] * alpha + sum;
                sAlpha[row] = alpha;
            }
        }
        if (!(skip & 16)) __syncthreads();

        // O = O * alpha + P V over this warp's value columns.
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
            const float a_lo = sAlpha[mt * 16 + (lane >> 2)], a_hi = sAlpha[mt * 16 + (lane >> 2) + 8];
#pragma unroll
            for (int n = 0; n < DW / 8; ++n) {
                o[mt][n][0] *= a_lo;
                o[mt][n][1] *= a_lo;
                o[mt][n][2] *= a_hi;
                o[mt][n][3] *= a_hi;
            }
        }
        uint32_t pf[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) ldmatrix_x4(pf[mt], sP + (mt * 16 + (lane & 15)) * L.p_row + (lane >> 4) * 8);
        if (!(skip & 4))
#pragma unroll
        for (int np = 0; np < DW / 16; ++np) {
            const int n0 = col0 + np * 16;
            uint32_t vf[4];
            ldmatrix_x4_trans(vf, K + (((lane >> 3) & 1) * 8 + (lane & 7)) * L.row + n0 + (lane >> 4) * 8);
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                mma16816<T>(o[mt][2 * np], pf[mt], vf[0], vf[1]);
                mma16816<T>(o[mt][2 * np + 1], pf[mt], vf[2], vf[3]);
            }
        }
    }
    cp_async_wait<0>();

    // Partials: o against the block's running max, plus m and l per head.
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int row = mt * 16 + (lane >> 2) + half * 8;
            if (row < nh) {
                float* dst = ws_acc + (slot0 + static_cast<int64_t>(row) * n_splits) * dv;
#pragma unroll
                for (int n = 0; n < DW / 8; ++n) {
                    const int col = col0 + n * 8 + (lane & 3) * 2;
                    *reinterpret_cast<float2*>(dst + col) = make_float2(o[mt][n][2 * half], o[mt][n][2 * half + 1]);
                }
            }
        }
    if (tid < nh) {
        ws_ml[(slot0 + static_cast<int64_t>(tid) * n_splits) * 2] = sM[tid];
        ws_ml[(slot0 + static_cast<int64_t>(tid) * n_splits) * 2 + 1] = sL[tid];
    }
}

// ---------------------------------------------------------------------------------------------
// Combine the splits: blocks over (sequence, query head) x 512-column chunks of the value
// (blockIdx.y), one float4 column group a thread, the splits' loads unrolled to overlap.
constexpr int kCombineThreads = 128;
constexpr int kCombineColumns = 4 * kCombineThreads;

template <typename T>
__global__ void __launch_bounds__(128) decode_combine(const DecodeAttentionParams p, int n_splits,
                                                      const float* __restrict__ ws_acc,
                                                      const float* __restrict__ ws_ml) {
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
            const float w = (m == -INFINITY) ? 0.f : exp2f(m - mx);
            s_w[s] = w;
            lsum += w * ml[2 * s + 1];
        }
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) lsum += __shfl_xor_sync(0xffffffffu, lsum, off);
        if (tid == 0) s_inv_l = lsum > 0.f ? 1.f / lsum : 0.f;  // no visible key: output 0
    }
    __syncthreads();
    const float inv_l = s_inv_l;
    const float* acc = ws_acc + static_cast<int64_t>(bh) * n_splits * dv;
    T* out = static_cast<T*>(p.out) + b * p.out_stride_b + h * p.out_stride_h;
    const int e0 = blockIdx.y * kCombineColumns + tid * 4;
    for (int e = e0; e < min(dv, (blockIdx.y + 1) * kCombineColumns); e += blockDim.x * 4) {
        float4 r = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 4
        for (int s = 0; s < n_splits; ++s) {
            const float w = s_w[s];
            if (w == 0.f) continue;  // empty split: its partial was never written
            const float4 a = __ldg(reinterpret_cast<const float4*>(acc + static_cast<int64_t>(s) * dv + e));
            r.x = fmaf(w, a.x, r.x);
            r.y = fmaf(w, a.y, r.y);
            r.z = fmaf(w, a.z, r.z);
            r.w = fmaf(w, a.w, r.w);
        }
        out[e] = Elem<T>::store(r.x * inv_l);
        out[e + 1] = Elem<T>::store(r.y * inv_l);
        out[e + 2] = Elem<T>::store(r.z * inv_l);
        out[e + 3] = Elem<T>::store(r.w * inv_l);
    }
}

// ---------------------------------------------------------------------------------------------
// Host side: which kernel, how many splits, launch.

int elem_bytes(DType t) { return t == DType::F32 ? 4 : 2; }

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

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; }

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
                               p.v_stride_t};
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

size_t workspace_floats(const DecodeAttentionParams& p, int n_splits) {
    const size_t slots = static_cast<size_t>(p.batch) * p.q_heads * n_splits;
    return slots * p.value_dim + slots * 2 + 4;  // +4: the m/l block starts 16-byte aligned
}

thread_local std::string g_message;

const char* cuda_message(const char* what, cudaError_t e) {
    g_message = std::string(what) + ": " + cudaGetErrorString(e);
    return g_message.c_str();
}

using SimtFn = void (*)(const DecodeAttentionParams, int, int, float*, float*);
using MmaFn = void (*)(const DecodeAttentionParams, int, int, float*, float*, int);

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
template <typename T, int MT, int DW, int STAGES>
MmaFn mma_prepared(cudaError_t& error) {
    static const cudaError_t raised = cudaFuncSetAttribute(
        decode_mma<T, MT, DW, STAGES>, cudaFuncAttributeMaxDynamicSharedMemorySize, device_smem_optin());
    error = raised;
    return decode_mma<T, MT, DW, STAGES>;
}

template <typename T>
MmaFn mma_instance(const MmaConfig& c, cudaError_t& error) {
    if constexpr (std::is_same_v<T, float>) {
        return nullptr;
    } else {
#define MLAWB_MMA(MT, DW, ST) \
    if (c.mt == MT && c.dw == DW && c.stages == ST) return mma_prepared<T, MT, DW, ST>(error);
        MLAWB_MMA(1, 16, 3)
        MLAWB_MMA(1, 32, 3)
        MLAWB_MMA(1, 64, 3)
        MLAWB_MMA(1, 128, 3)
        MLAWB_MMA(1, 128, 2)
        MLAWB_MMA(1, 256, 3)
        MLAWB_MMA(2, 16, 3)
        MLAWB_MMA(2, 32, 3)
        MLAWB_MMA(2, 64, 3)
        MLAWB_MMA(2, 128, 3)
        MLAWB_MMA(2, 128, 2)
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
        // Stage the rope keys with the K tiles where that costs no resident block: the most KV
        // heads any block's query heads span, times key_r_dim.
        if (p.key_r_dim > 0) {
            const int group = p.q_heads / p.kv_heads;
            int span = 1;
            for (int h0 = 0; h0 < p.q_heads; h0 += bm)
                span = std::max(span, (std::min(h0 + bm, p.q_heads) - 1) / group - h0 / group + 1);
            const int kr_row = span * p.key_r_dim;
            const size_t with = mma_smem(bm, p.value_dim, p.key_r_dim, c.warps, c.stages, sizeof(T), c.dw < 256, kr_row).total;
            int blocks_without = 0, blocks_with = 0;
            if (static_cast<int>(with) <= device_smem_optin() &&
                cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_without, fn, plan.threads, plan.smem) == cudaSuccess &&
                cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_with, fn, plan.threads, with) == cudaSuccess &&
                blocks_with >= blocks_without && blocks_with > 0) {
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
const char* launch_plan(const DecodeAttentionParams& p, const Plan& plan, float* acc, float* ml, cudaStream_t stream) {
    const dim3 grid(plan.grid_x, plan.n_splits, p.batch);
    if (plan.kernel == DecodeKernel::TensorCore)
        plan.mma<<<grid, plan.threads, plan.smem, stream>>>(p, plan.n_splits, plan.kr_row, acc, ml, ablation_mask());
    else plan.simt<<<grid, plan.threads, 0, stream>>>(p, plan.n_splits, plan.chunks_per_kv, acc, ml);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return cuda_message("decode attention partial kernel", e);
    const dim3 combine_grid(p.batch * p.q_heads, (p.value_dim + kCombineColumns - 1) / kCombineColumns);
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
    return workspace_floats(p, plan.n_splits) * sizeof(float);
}

const char* launch_decode_attention(const DecodeAttentionParams& p, DecodeKernel kernel, void* workspace,
                                    size_t workspace_bytes, void* stream_ptr) {
    if (const char* why = decode_attention_unsupported(p, kernel)) return why;
    const DecodeKernel k = decode_attention_resolve(p, kernel);
    if (k == DecodeKernel::Auto) return "no decode-attention kernel supports this shape";
    Plan plan;
    if (const char* why = make_plan(p, k, plan)) return why;
    const size_t need = workspace_floats(p, plan.n_splits) * sizeof(float);
    if (!workspace || workspace_bytes < need || !aligned16(workspace)) return "workspace too small or unaligned";
    float* acc = static_cast<float*>(workspace);
    const size_t acc_floats = static_cast<size_t>(p.batch) * p.q_heads * plan.n_splits * p.value_dim;
    float* ml = acc + (acc_floats + 3) / 4 * 4;
    cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
    switch (p.dtype) {
        case DType::F32: return launch_plan<float>(p, plan, acc, ml, stream);
        case DType::F16: return launch_plan<__half>(p, plan, acc, ml, stream);
        case DType::BF16: return launch_plan<__nv_bfloat16>(p, plan, acc, ml, stream);
    }
    return "unknown dtype";
}

// ---------------------------------------------------------------------------------------------
// Element-wise steps.

namespace {

template <typename T>
__global__ void __launch_bounds__(256) rms_norm_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                                       T* __restrict__ out, int dim, float eps) {
    constexpr int VEC = Elem<T>::kVec;
    __shared__ float s_part[8];
    const T* row = x + static_cast<int64_t>(blockIdx.x) * dim;
    T* orow = out + static_cast<int64_t>(blockIdx.x) * dim;
    float ss = 0.f;
    for (int e = threadIdx.x * VEC; e < dim; e += blockDim.x * VEC) {
        float f[VEC];
        unpack<T>(load16(row + e), f);
#pragma unroll
        for (int j = 0; j < VEC; ++j) ss = fmaf(f[j], f[j], ss);
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
    if ((threadIdx.x & 31) == 0) s_part[threadIdx.x >> 5] = ss;
    __syncthreads();
    float total = 0.f;
    for (int i = 0; i < static_cast<int>(blockDim.x / 32); ++i) total += s_part[i];
    const float r = rsqrtf(total / static_cast<float>(dim) + eps);
    for (int e = threadIdx.x * VEC; e < dim; e += blockDim.x * VEC) {
        float f[VEC], wf[VEC];
        unpack<T>(load16(row + e), f);
        unpack<T>(load16(w + e), wf);
        alignas(16) T o[VEC];
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
            // transformers: weight * (x * rsqrt(...)).to(dtype): the normalized value is rounded first.
            const float normed = Elem<T>::load(Elem<T>::store(f[j] * r));
            o[j] = Elem<T>::store(wf[j] * normed);
        }
        *reinterpret_cast<uint4*>(orow + e) = *reinterpret_cast<const uint4*>(o);
    }
}

template <typename T>
__global__ void silu_mul_kernel(const T* __restrict__ gu, T* __restrict__ out, int rows, int ffn) {
    const int64_t n = static_cast<int64_t>(rows) * ffn;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t r = i / ffn, c = i % ffn;
        const float g = Elem<T>::load(gu[r * 2 * ffn + c]);
        const float u = Elem<T>::load(gu[r * 2 * ffn + ffn + c]);
        out[i] = Elem<T>::store(g / (1.f + __expf(-g)) * u);
    }
}

template <typename T>
__global__ void rope_store_kernel(const RopeStoreArgs a) {
    const int64_t n = static_cast<int64_t>(a.batch) * a.heads * a.pairs;
    const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    const int k = static_cast<int>(i % a.pairs);
    const int h = static_cast<int>((i / a.pairs) % a.heads);
    const int b = static_cast<int>(i / (static_cast<int64_t>(a.pairs) * a.heads));
    const T* x = static_cast<const T*>(a.x) + b * a.x_stride_b + a.offset + h * a.head_stride;
    const float x1 = Elem<T>::load(x[k]), x2 = Elem<T>::load(x[k + a.pairs]);
    const int pos = a.positions[b];
    const float angle = static_cast<float>(pos) * a.inv_freq[(h / a.freq_group) * a.freq_stride + k];
    float sn, cs;
    sincosf(angle, &sn, &cs);
    const T o1 = Elem<T>::store(x1 * cs - x2 * sn);
    const T o2 = Elem<T>::store(x2 * cs + x1 * sn);
    if (a.out) {
        T* o = static_cast<T*>(a.out) + b * a.out_stride_b + h * a.out_head_stride;
        o[k] = o1;
        o[k + a.pairs] = o2;
    }
    if (a.cache) {
        T* c = static_cast<T*>(a.cache) + b * a.cache_stride_b + static_cast<int64_t>(pos) * a.cache_stride_t +
               h * a.cache_stride_h;
        c[k] = o1;
        c[k + a.pairs] = o2;
    }
}

template <typename T>
__global__ void store_rows_kernel(const T* __restrict__ x, int64_t x_stride_b, int64_t x_head_stride, int batch,
                                  int heads, int width, T* __restrict__ cache, int64_t cs_b, int64_t cs_t, int64_t cs_h,
                                  const int32_t* __restrict__ positions) {
    const int64_t n = static_cast<int64_t>(batch) * heads * width;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int e = static_cast<int>(i % width);
        const int h = static_cast<int>((i / width) % heads);
        const int b = static_cast<int>(i / (static_cast<int64_t>(width) * heads));
        cache[b * cs_b + static_cast<int64_t>(positions[b]) * cs_t + h * cs_h + e] = x[b * x_stride_b + h * x_head_stride + e];
    }
}

const char* after_launch(const char* what) {
    cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? nullptr : cuda_message(what, e);
}

int grid_for(int64_t n, int threads) {
    return static_cast<int>(std::min<int64_t>((n + threads - 1) / threads, 65535));
}

}  // namespace

const char* launch_rms_norm(DType dtype, const void* x, const void* weight, void* out, int rows, int dim, float eps,
                            void* stream_ptr) {
    cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
    if (dim % (16 / elem_bytes(dtype)) || !aligned16(x) || !aligned16(weight) || !aligned16(out))
        return "rms_norm: width must be a multiple of 16 bytes and pointers 16-byte aligned";
    if (rows <= 0) return nullptr;
    switch (dtype) {
        case DType::F32:
            rms_norm_kernel<float><<<rows, 256, 0, stream>>>(static_cast<const float*>(x), static_cast<const float*>(weight),
                                                             static_cast<float*>(out), dim, eps);
            break;
        case DType::F16:
            rms_norm_kernel<__half><<<rows, 256, 0, stream>>>(static_cast<const __half*>(x),
                                                              static_cast<const __half*>(weight),
                                                              static_cast<__half*>(out), dim, eps);
            break;
        case DType::BF16:
            rms_norm_kernel<__nv_bfloat16><<<rows, 256, 0, stream>>>(static_cast<const __nv_bfloat16*>(x),
                                                                     static_cast<const __nv_bfloat16*>(weight),
                                                                     static_cast<__nv_bfloat16*>(out), dim, eps);
            break;
    }
    return after_launch("rms_norm");
}

const char* launch_silu_mul(DType dtype, const void* gate_up, void* out, int rows, int ffn, void* stream_ptr) {
    cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
    const int64_t n = static_cast<int64_t>(rows) * ffn;
    if (n <= 0) return nullptr;
    const int grid = grid_for(n, 256);
    switch (dtype) {
        case DType::F32:
            silu_mul_kernel<float><<<grid, 256, 0, stream>>>(static_cast<const float*>(gate_up), static_cast<float*>(out),
                                                             rows, ffn);
            break;
        case DType::F16:
            silu_mul_kernel<__half><<<grid, 256, 0, stream>>>(static_cast<const __half*>(gate_up),
                                                              static_cast<__half*>(out), rows, ffn);
            break;
        case DType::BF16:
            silu_mul_kernel<__nv_bfloat16><<<grid, 256, 0, stream>>>(static_cast<const __nv_bfloat16*>(gate_up),
                                                                     static_cast<__nv_bfloat16*>(out), rows, ffn);
            break;
    }
    return after_launch("silu_mul");
}

const char* launch_rope_store(const RopeStoreArgs& a, void* stream_ptr) {
    cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
    const int64_t n = static_cast<int64_t>(a.batch) * a.heads * a.pairs;
    if (n <= 0) return nullptr;
    if (!a.x || !a.positions || !a.inv_freq || a.freq_group <= 0) return "rope_store: missing input";
    const int grid = static_cast<int>((n + 255) / 256);
    switch (a.dtype) {
        case DType::F32:
            rope_store_kernel<float><<<grid, 256, 0, stream>>>(a);
            break;
        case DType::F16:
            rope_store_kernel<__half><<<grid, 256, 0, stream>>>(a);
            break;
        case DType::BF16:
            rope_store_kernel<__nv_bfloat16><<<grid, 256, 0, stream>>>(a);
            break;
    }
    return after_launch("rope_store");
}

const char* launch_store_rows(DType dtype, const void* x, int64_t x_stride_b, int64_t x_head_stride, int batch,
                              int heads, int width, void* cache, int64_t cache_stride_b, int64_t cache_stride_t,
                              int64_t cache_stride_h, const int32_t* positions, void* stream_ptr) {
    cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
    const int64_t n = static_cast<int64_t>(batch) * heads * width;
    if (n <= 0) return nullptr;
    const int grid = grid_for(n, 256);
    switch (dtype) {
        case DType::F32:
            store_rows_kernel<float><<<grid, 256, 0, stream>>>(static_cast<const float*>(x), x_stride_b, x_head_stride,
                                                               batch, heads, width, static_cast<float*>(cache),
                                                               cache_stride_b, cache_stride_t, cache_stride_h, positions);
            break;
        case DType::F16:
            store_rows_kernel<__half><<<grid, 256, 0, stream>>>(static_cast<const __half*>(x), x_stride_b,
                                                                x_head_stride, batch, heads, width,
                                                                static_cast<__half*>(cache), cache_stride_b,
                                                                cache_stride_t, cache_stride_h, positions);
            break;
        case DType::BF16:
            store_rows_kernel<__nv_bfloat16><<<grid, 256, 0, stream>>>(
                static_cast<const __nv_bfloat16*>(x), x_stride_b, x_head_stride, batch, heads, width,
                static_cast<__nv_bfloat16*>(cache), cache_stride_b, cache_stride_t, cache_stride_h, positions);
            break;
    }
    return after_launch("store_rows");
}

}  // namespace mlawb::cuda
