// Device helpers shared by the decode kernels (core/cuda/decode_attention.cu and
// core/cuda/decode_elementwise.cu): element types unpacked from 16-byte vectors, read-only
// 16-byte loads, and the host checks both launch paths make. Included in an unnamed namespace
// per translation unit (inline helpers only).
#pragma once

#include "core/cuda/decode_attention.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

namespace mlawb::cuda {
namespace {

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

inline int elem_bytes(DType t) { return t == DType::F32 ? 4 : 2; }

inline bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; }

// A CUDA error as the static-lifetime message the launchers return (one per thread).
inline const char* cuda_message(const char* what, cudaError_t e) {
    static thread_local std::string message;
    message = std::string(what) + ": " + cudaGetErrorString(e);
    return message.c_str();
}

}  // namespace
}  // namespace mlawb::cuda
