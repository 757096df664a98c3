// Decode-step projections with few rows (core/batched_decode_step.cpp): out = x W^T (+ bias)
// (+ residual) for x of 1..32 rows, on the tensor cores. At decode batch sizes every projection
// is a stream over its weight matrix; cuBLAS's kernels for such products read the weights at
// 2.2-2.6 TB/s on the H100 (scripts/gpu/NOTES.md, version 2); this kernel aims at the HBM's
// ~3 TB/s (tests/gpu/test_skinny_linear --bench compares the two).
#pragma once

#include "core/cuda/decode_attention.h"

#include <cstdint>

namespace mlawb::cuda {

struct SkinnyLinearArgs {
    DType dtype = DType::BF16;   // bf16 or f16 (f32 stays on cuBLAS)
    int rows = 0;                // x rows, 1..kSkinnyMaxRows
    int n = 0, k = 0;            // W is [n, k], row-major, contiguous; k a multiple of 8
    const void* x = nullptr;     // [rows, k], row stride x_stride (elements)
    int64_t x_stride = 0;
    const void* w = nullptr;
    const void* bias = nullptr;      // [n] or null
    const void* residual = nullptr;  // [rows, n], row stride residual_stride, or null
    int64_t residual_stride = 0;
    void* out = nullptr;             // [rows, n], row stride out_stride
    int64_t out_stride = 0;
};

constexpr int kSkinnyMaxRows = 32;

// nullptr when launch_skinny_linear can run `a`, else why not (a static string).
const char* skinny_linear_unsupported(const SkinnyLinearArgs& a);

// Enqueues the product on `stream` (a cudaStream_t); nullptr or an error message.
const char* launch_skinny_linear(const SkinnyLinearArgs& a, void* stream);

}  // namespace mlawb::cuda
