// out[b, n] = sum_k x[b, k] W[n, k] (+ bias[n]) (+ residual[b, n]) for 1..8 rows of x
// (core/cuda/skinny_linear.h), on the tensor cores: mma m16n8k16 with A = 16 rows of W and
// B = x^T (8 columns: the rows of x, zero past `rows`).
//
// The sum over k does not care which k sits in which fragment slot, as long as A and B agree.
// So lane (g = lane / 4, c = lane % 4) loads 8 consecutive k of W row g, of W row g + 8 and of
// x row g with one 16-byte load each, and feeds elements 0-3 to one mma and 4-7 to the next
// (slots 2c, 2c+1, 2c+8, 2c+9 of a0/a2 and a1/a3, b0 and b1): the weights stream with full
// 16-byte loads and no shared memory, 32 consecutive k a row per 4 lanes. A block owns 16 rows
// of W; its 8 warps take interleaved 128-k steps (4 such 32-k slices, 8 W loads in flight per
// lane), sum their 16 x 8 accumulators in shared memory, and the epilogue adds bias and residual
// in float32 before the one rounding (as cuBLAS's addmm epilogue).
#include "core/cuda/skinny_linear.h"

#include "core/cuda/device_common.cuh"

namespace mlawb::cuda {

namespace {

constexpr int kRowsPerBlock = 16;  // W rows: the m of the mma
constexpr int kWarps = 8;
constexpr int kSlices = 4;         // 32-k slices a warp step (one 16-byte W load a row each)
constexpr int kStep = 32 * kSlices;

// Weights are streamed once: read-only, not allocated in L1 (x, read by every block, stays).
__device__ __forceinline__ uint4 load_stream16(const void* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

template <typename T>
__global__ void __launch_bounds__(kWarps * 32) skinny_linear_kernel(const SkinnyLinearArgs a) {
    __shared__ float s_part[kWarps][kRowsPerBlock * kSkinnyMaxRows];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, c = lane & 3;
    const int n0 = blockIdx.x * kRowsPerBlock;
    const T* w = static_cast<const T*>(a.w);
    const T* x = static_cast<const T*>(a.x);
    const bool row_lo = n0 + g < a.n, row_hi = n0 + g + 8 < a.n, x_row = g < a.rows;
    const T* w_lo = w + static_cast<int64_t>(n0 + g) * a.k + c * 8;
    const T* w_hi = w_lo + static_cast<int64_t>(8) * a.k;
    const T* x_g = x + static_cast<int64_t>(g) * a.x_stride + c * 8;
    float d[4] = {0.f, 0.f, 0.f, 0.f};  // rows g, g+8 of this W tile x x rows 2c, 2c+1
    const uint4 zero = make_uint4(0, 0, 0, 0);
    for (int k0 = warp * kStep; k0 < a.k; k0 += kWarps * kStep) {
        uint4 lo[kSlices], hi[kSlices], xv[kSlices];
#pragma unroll
        for (int s = 0; s < kSlices; ++s) {
            const int k = k0 + s * 32 + c * 8;  // this lane's 8 elements; a.k is a multiple of 8
            const bool in = k < a.k;
            lo[s] = in && row_lo ? load_stream16(w_lo + k0 + s * 32) : zero;
            hi[s] = in && row_hi ? load_stream16(w_hi + k0 + s * 32) : zero;
            xv[s] = in && x_row ? load16(x_g + k0 + s * 32) : zero;
        }
#pragma unroll
        for (int s = 0; s < kSlices; ++s) {
            const uint32_t first[4] = {lo[s].x, hi[s].x, lo[s].y, hi[s].y};   // elements 0-3
            const uint32_t second[4] = {lo[s].z, hi[s].z, lo[s].w, hi[s].w};  // elements 4-7
            mma16816<T>(d, first, xv[s].x, xv[s].y);
            mma16816<T>(d, second, xv[s].z, xv[s].w);
        }
    }
    // D fragment: d0, d1 = (W row g, x rows 2c, 2c+1); d2, d3 = (W row g + 8, same x rows).
    float* part = s_part[warp];
    part[g * kSkinnyMaxRows + 2 * c] = d[0];
    part[g * kSkinnyMaxRows + 2 * c + 1] = d[1];
    part[(g + 8) * kSkinnyMaxRows + 2 * c] = d[2];
    part[(g + 8) * kSkinnyMaxRows + 2 * c + 1] = d[3];
    __syncthreads();
    const int t = threadIdx.x;
    if (t < kRowsPerBlock * kSkinnyMaxRows) {
        const int r = t / kSkinnyMaxRows, b = t % kSkinnyMaxRows, n = n0 + r;
        if (n < a.n && b < a.rows) {
            float v = 0.f;
#pragma unroll
            for (int i = 0; i < kWarps; ++i) v += s_part[i][t];
            if (a.bias) v += Elem<T>::load(static_cast<const T*>(a.bias)[n]);
            if (a.residual) v += Elem<T>::load(static_cast<const T*>(a.residual)[b * a.residual_stride + n]);
            static_cast<T*>(a.out)[b * a.out_stride + n] = Elem<T>::store(v);
        }
    }
}

template <typename T>
const char* launch_typed(const SkinnyLinearArgs& a, cudaStream_t stream) {
    const dim3 grid((a.n + kRowsPerBlock - 1) / kRowsPerBlock);
    skinny_linear_kernel<T><<<grid, kWarps * 32, 0, stream>>>(a);
    const cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? nullptr : cuda_message("skinny linear kernel", e);
}

}  // namespace

const char* skinny_linear_unsupported(const SkinnyLinearArgs& a) {
    if (a.dtype == DType::F32) return "skinny linear: bf16 or f16 only";
    if (a.rows < 1 || a.rows > kSkinnyMaxRows) return "skinny linear: 1 to 8 rows";
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
