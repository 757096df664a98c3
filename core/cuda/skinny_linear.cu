// out[b, n] = sum_k x[b, k] W[n, k] (+ bias[n]) (+ residual[b, n]) for 1..32 rows of x
// (core/cuda/skinny_linear.h), on the tensor cores: mma m16n8k16 with A = 16 rows of W and
// B = x^T (8 columns: 8 rows of x, zero past `rows`; MT such groups for up to 8 MT rows).
//
// The sum over k does not care which k sits in which fragment slot, as long as A and B agree.
// So lane (g = lane / 4, c = lane % 4) loads 8 consecutive k of W row g, of W row g + 8 and of
// x row g with one 16-byte load each, and feeds elements 0-3 to one mma and 4-7 to the next
// (slots 2c, 2c+1, 2c+8, 2c+9 of a0/a2 and a1/a3, b0 and b1): the weights stream with full
// 16-byte loads and no shared memory, 32 consecutive k a row per 4 lanes (a 32-k "slice").
//
// Version 2 (the first, commit 7fb0dae, was 0.84-0.90x of cuBLAS on the large shapes): blocks are
// persistent and walk units of 16 W rows (full k) with a grid stride, so no block is launched
// for a few microseconds of work; the WARPS warps of a block take interleaved slices of a unit
// (adjacent warps read adjacent 64-byte pieces of the same rows) through a register pipeline
// DEPTH slices deep (each slice's loads are issued DEPTH slices before its mma), sum their
// accumulators in shared memory (double-buffered: one barrier a unit), and the epilogue adds
// bias and residual in float32 before the one rounding (as cuBLAS's addmm epilogue).
#include "core/cuda/skinny_linear.h"

#include "core/cuda/device_common.cuh"

#include <algorithm>
#include <cstdlib>

namespace mlawb::cuda {

namespace {

constexpr int kRowsPerUnit = 16;  // W rows: the m of the mma

// Weights are streamed once: read-only, not allocated in L1 (x, read by every block, stays).
__device__ __forceinline__ uint4 load_stream16(const void* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

template <typename T, int MT, int WARPS, int DEPTH>
__global__ void __launch_bounds__(WARPS * 32) skinny_linear_kernel(const SkinnyLinearArgs a, int units) {
    constexpr int COLS = 8 * MT;  // x rows a unit covers
    __shared__ float s_part[2][WARPS][kRowsPerUnit * COLS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, c = lane & 3;
    const T* w = static_cast<const T*>(a.w);
    const T* x = static_cast<const T*>(a.x);
    const int slices = (a.k + 31) / 32;
    const uint4 zero = make_uint4(0, 0, 0, 0);
    bool x_row[MT];
    const T* x_g[MT];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
        x_row[mt] = mt * 8 + g < a.rows;
        x_g[mt] = x + static_cast<int64_t>(mt * 8 + g) * a.x_stride + c * 8;
    }
    int parity = 0;
    for (int unit = blockIdx.x; unit < units; unit += gridDim.x, parity ^= 1) {
        const int n0 = unit * kRowsPerUnit;
        const bool row_lo = n0 + g < a.n, row_hi = n0 + g + 8 < a.n;
        const T* w_lo = w + static_cast<int64_t>(n0 + g) * a.k + c * 8;
        const T* w_hi = w_lo + static_cast<int64_t>(8) * a.k;
        // Slice s of this warp is warp + s WARPS; its lane reads k = 32 (warp + s WARPS) + 8 c.
        uint4 lo[DEPTH], hi[DEPTH], xv[DEPTH][MT];
        auto load = [&](int i, int s) {
            const int slice = warp + s * WARPS;
            const int k = slice * 32 + c * 8;
            const bool in = slice < slices && k < a.k;  // a.k is a multiple of 8
            lo[i] = in && row_lo ? load_stream16(w_lo + slice * 32) : zero;
            hi[i] = in && row_hi ? load_stream16(w_hi + slice * 32) : zero;
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) xv[i][mt] = in && x_row[mt] ? load16(x_g[mt] + slice * 32) : zero;
        };
        float d[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) d[mt][0] = d[mt][1] = d[mt][2] = d[mt][3] = 0.f;
        const int mine = (slices - warp + WARPS - 1) / WARPS;  // this warp's slices
#pragma unroll
        for (int i = 0; i < DEPTH; ++i) load(i, i);
        for (int s0 = 0; s0 < mine; s0 += DEPTH) {
#pragma unroll
            for (int i = 0; i < DEPTH; ++i) {
                const uint32_t first[4] = {lo[i].x, hi[i].x, lo[i].y, hi[i].y};   // elements 0-3
                const uint32_t second[4] = {lo[i].z, hi[i].z, lo[i].w, hi[i].w};  // elements 4-7
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    mma16816<T>(d[mt], first, xv[i][mt].x, xv[i][mt].y);
                    mma16816<T>(d[mt], second, xv[i][mt].z, xv[i][mt].w);
                }
                load(i, s0 + i + DEPTH);  // zero (no load) past this warp's last slice
            }
        }
        // D fragment: d0, d1 = (W row g, x rows 2c, 2c+1 of group mt); d2, d3 = (W row g + 8, same).
        float* part = s_part[parity][warp];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
            part[g * COLS + mt * 8 + 2 * c] = d[mt][0];
            part[g * COLS + mt * 8 + 2 * c + 1] = d[mt][1];
            part[(g + 8) * COLS + mt * 8 + 2 * c] = d[mt][2];
            part[(g + 8) * COLS + mt * 8 + 2 * c + 1] = d[mt][3];
        }
        __syncthreads();  // the other buffer is free: every thread is past the last unit's epilogue
        for (int t = threadIdx.x; t < kRowsPerUnit * COLS; t += WARPS * 32) {
            const int r = t / COLS, b = t % COLS, n = n0 + r;
            if (n < a.n && b < a.rows) {
                float v = 0.f;
#pragma unroll
                for (int i = 0; i < WARPS; ++i) v += s_part[parity][i][t];
                if (a.bias) v += Elem<T>::load(static_cast<const T*>(a.bias)[n]);
                if (a.residual) v += Elem<T>::load(static_cast<const T*>(a.residual)[b * a.residual_stride + n]);
                static_cast<T*>(a.out)[b * a.out_stride + n] = Elem<T>::store(v);
            }
        }
    }
}

// Blocks of one instance that fit on the GPU at once (read once per instance).
template <typename T, int MT, int WARPS, int DEPTH>
int resident_blocks() {
    static const int blocks = [] {
        int dev = 0, sms = 0, per_sm = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, skinny_linear_kernel<T, MT, WARPS, DEPTH>, WARPS * 32,
                                                          0) != cudaSuccess) {
            (void)cudaGetLastError();
            return 132;
        }
        return std::max(1, sms * per_sm);
    }();
    return blocks;
}

template <typename T, int MT, int WARPS, int DEPTH>
const char* launch_instance(const SkinnyLinearArgs& a, cudaStream_t stream) {
    const int units = (a.n + kRowsPerUnit - 1) / kRowsPerUnit;
    const int grid = std::min(units, resident_blocks<T, MT, WARPS, DEPTH>());
    skinny_linear_kernel<T, MT, WARPS, DEPTH><<<grid, WARPS * 32, 0, stream>>>(a, units);
    const cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? nullptr : cuda_message("skinny linear kernel", e);
}

// MLAWB_SKINNY_VARIANT (benchmarks only): 0 the default, 1..3 other warp counts and depths.
int variant() {
    static const int v = [] {
        const char* s = std::getenv("MLAWB_SKINNY_VARIANT");
        return s ? std::atoi(s) : 0;
    }();
    return v;
}

template <typename T, int MT>
const char* launch_rows(const SkinnyLinearArgs& a, cudaStream_t stream) {
    switch (variant()) {
        case 1: return launch_instance<T, MT, 8, 4>(a, stream);
        case 2: return launch_instance<T, MT, 4, 8>(a, stream);
        case 3: return launch_instance<T, MT, 8, 2>(a, stream);
        default: return launch_instance<T, MT, 4, 4>(a, stream);
    }
}

template <typename T>
const char* launch_typed(const SkinnyLinearArgs& a, cudaStream_t stream) {
    if (a.rows <= 8) return launch_rows<T, 1>(a, stream);
    if (a.rows <= 16) return launch_rows<T, 2>(a, stream);
    return launch_rows<T, 4>(a, stream);
}

}  // namespace

const char* skinny_linear_unsupported(const SkinnyLinearArgs& a) {
    if (a.dtype == DType::F32) return "skinny linear: bf16 or f16 only";
    if (a.rows < 1 || a.rows > kSkinnyMaxRows) return "skinny linear: 1 to 32 rows";
    if (a.n <= 0 || a.k <= 0 || a.k % 8) return "skinny linear: k must be a positive multiple of 8";
    if (!a.x || !a.w || !a.out) return "skinny linear: null pointer";
    if (!aligned16(a.x) || !aligned16(a.w) || a.x_stride % 8) return "skinny linear: x and W must be 16-byte aligned";
    return nullptr;
}

const char* launch_skinny_linear(const SkinnyLinearArgs& a, void* stream_ptr) {
    if (const char* why = skinny_linear_unsupported(a)) return why;
    cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
    return a.dtype == DType::F16 ? launch_typed<__half>(a, stream) : launch_typed<__nv_bfloat16>(a, stream);
}

}  // namespace mlawb::cuda
