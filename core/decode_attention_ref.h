// CPU reference of decode attention (core/cuda/decode_attention.h): the same problem description
// with host pointers (the lengths too), computed with plain loops in float64. The GPU test
// compares the kernels with it, and the batched decode runs on it on the CPU.
#pragma once

#include "core/cuda/decode_attention.h"

#include <cstdint>
#include <vector>

namespace mlawb {

// Attention output [batch, q_heads, value_dim] in float64, contiguous (p.out is not written).
// Throws mlawb::Error("", "decode_attention", ...) when the description is inconsistent.
std::vector<double> decode_attention_reference(const cuda::DecodeAttentionParams& p);

// The same, written into p.out (dtype p.dtype, strides p.out_stride_*), rounded once.
void decode_attention_reference_into(const cuda::DecodeAttentionParams& p);

// Element conversions (round to nearest even) for 16-bit floats held as raw bits.
float bf16_bits_to_float(uint16_t bits);
uint16_t float_to_bf16_bits(float value);
float f16_bits_to_float(uint16_t bits);
uint16_t float_to_f16_bits(float value);

}  // namespace mlawb
