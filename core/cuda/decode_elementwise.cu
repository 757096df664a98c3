// Fused element-wise steps of the batched decode (core/batched_decode.cpp): RMSNorm, SiLU-mul,
// RoPE-and-store into the preallocated cache, and plain row stores. Declared in
// core/cuda/decode_attention.h.
#include "core/cuda/device_common.cuh"

#include <algorithm>
#include <cmath>

namespace mlawb::cuda {

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

// Element i of a RoPE job (i < batch * heads * pairs).
template <typename T>
__device__ __forceinline__ void rope_one(const RopeStoreArgs& a, int64_t i) {
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

// Element i of a row-store job (i < batch * heads * width).
template <typename T>
__device__ __forceinline__ void store_one(const StoreRowsArgs& a, int64_t i) {
    const int e = static_cast<int>(i % a.width);
    const int h = static_cast<int>((i / a.width) % a.heads);
    const int b = static_cast<int>(i / (static_cast<int64_t>(a.width) * a.heads));
    static_cast<T*>(a.cache)[b * a.cache_stride_b + static_cast<int64_t>(a.positions[b]) * a.cache_stride_t +
                             h * a.cache_stride_h + e] = static_cast<const T*>(a.x)[b * a.x_stride_b + h * a.x_head_stride + e];
}

// The three jobs of a step's writes before attention in one launch (one index space: q's RoPE
// elements, then k's, then the stored rows): each was its own ~3 us launch, three a layer.
template <typename T>
__global__ void rope_and_store_kernel(const RopeStoreArgs q, const RopeStoreArgs k, const StoreRowsArgs rows, int64_t nq,
                                      int64_t nk, int64_t n) {
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        if (i < nq) rope_one<T>(q, i);
        else if (i < nq + nk) rope_one<T>(k, i - nq);
        else store_one<T>(rows, i - nq - nk);
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

const char* launch_rope_and_store(const RopeStoreArgs& q, const RopeStoreArgs& k, const StoreRowsArgs& rows,
                                  void* stream_ptr) {
    cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
    auto rope_elems = [](const RopeStoreArgs& a) { return static_cast<int64_t>(a.batch) * a.heads * a.pairs; };
    const int64_t nq = rope_elems(q), nk = rope_elems(k);
    const int64_t nr = static_cast<int64_t>(rows.batch) * rows.heads * rows.width;
    for (const RopeStoreArgs* a : {&q, &k}) {
        if (rope_elems(*a) > 0 && (!a->x || !a->positions || !a->inv_freq || a->freq_group <= 0))
            return "rope_and_store: missing RoPE input (x, positions, inv_freq or freq_group)";
        if (rope_elems(*a) > 0 && a->dtype != q.dtype) return "rope_and_store: q and k of different dtypes";
    }
    if (nr > 0 && (!rows.x || !rows.cache || !rows.positions)) return "rope_and_store: missing row input";
    const int64_t n = nq + nk + nr;
    if (n <= 0) return nullptr;
    const int grid = grid_for(n, 256);
    switch (q.dtype) {
        case DType::F32: rope_and_store_kernel<float><<<grid, 256, 0, stream>>>(q, k, rows, nq, nk, n); break;
        case DType::F16: rope_and_store_kernel<__half><<<grid, 256, 0, stream>>>(q, k, rows, nq, nk, n); break;
        case DType::BF16: rope_and_store_kernel<__nv_bfloat16><<<grid, 256, 0, stream>>>(q, k, rows, nq, nk, n); break;
    }
    return after_launch("rope_and_store");
}

}  // namespace mlawb::cuda
