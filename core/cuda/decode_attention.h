// Decode attention on the GPU: one query token per sequence attends over that sequence's cached
// keys and values (FlashDecoding: the context is split across thread blocks, each keeps a
// partial max / sum / output, a second small kernel combines them).
//
// One description covers both cache kinds the engine has:
//   standard MHA/GQA   key = K[b, g, t, 0:D]                  value = V[b, g, t, 0:D]
//   absorbed MLA       key = [c_kv[b, t, 0:L] | k_rope[b, g, t, 0:2r]]   value = c_kv[b, t, 0:L]
// where query head h reads KV head g = h / (q_heads / kv_heads). A key is the concatenation of
// an "a" part and an optional "r" part, each addressed by (batch, head, token) strides; a head
// stride of 0 shares one row among all heads (MLA's latent). For MLA the query of head h is
// [W_uk,g^T q_nope | q_rope] (absorbed) and the output is the attention-weighted latent.
//
// This header has no CUDA and no LibTorch types: pointers are device pointers, the stream is a
// cudaStream_t passed as void*. Element strides, not bytes. Softmax runs in float32 (exp2 with
// the scale folded in), inputs are f32, f16 or bf16, accumulation is float32.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mlawb::cuda {

enum class DType : int { F32 = 0, F16 = 1, BF16 = 2 };

struct DecodeAttentionParams {
    DType dtype = DType::BF16;  // of q, keys, values and out
    int batch = 0;
    int q_heads = 0;
    int kv_heads = 0;  // divides q_heads

    const void* q = nullptr;  // [batch, q_heads, key_a_dim + key_r_dim], last dim contiguous
    int64_t q_stride_b = 0, q_stride_h = 0;

    const void* key_a = nullptr;  // key part a, last dim contiguous
    int64_t ka_stride_b = 0, ka_stride_h = 0, ka_stride_t = 0;
    int key_a_dim = 0;

    const void* key_r = nullptr;  // key part r (null when key_r_dim == 0)
    int64_t kr_stride_b = 0, kr_stride_h = 0, kr_stride_t = 0;
    int key_r_dim = 0;

    const void* value = nullptr;  // may equal key_a (MLA: the values are the key's a part)
    int64_t v_stride_b = 0, v_stride_h = 0, v_stride_t = 0;
    int value_dim = 0;

    const int32_t* lengths = nullptr;  // [batch] on the device: sequence b sees keys 0 .. lengths[b]-1
    int max_length = 0;                // upper bound of every lengths[b] (the cache capacity)
    int window = 0;                    // > 0: only the last `window` keys are visible (sliding window)
    float scale = 1.0f;                // softmax(scale * q.k)

    void* out = nullptr;  // [batch, q_heads, value_dim], last dim contiguous, dtype
    int64_t out_stride_b = 0, out_stride_h = 0;
};

// Which kernel computes the partials. Simt: CUDA cores, one to eight query heads per block,
// key and value widths up to 512 (bf16/f16) or 256 (f32) elements. TensorCore: mma.sync for
// many query heads sharing one key row (absorbed MLA: value == key_a with equal strides, bf16
// or f16, value_dim a multiple of 16 between 64 and 2048, key_r_dim <= 64). Auto: TensorCore
// where it applies, else Simt.
enum class DecodeKernel : int { Auto = 0, Simt = 1, TensorCore = 2 };

// nullptr when `kernel` can run `p`, else why not (a static string).
const char* decode_attention_unsupported(const DecodeAttentionParams& p, DecodeKernel kernel);

// The kernel Auto resolves to for `p` (Simt or TensorCore); Auto when neither applies.
DecodeKernel decode_attention_resolve(const DecodeAttentionParams& p, DecodeKernel kernel);

// Device workspace (the splits' partials) that launch_decode_attention needs for `p` on the current
// device. It depends only on batch, heads, value_dim, max_length and the kernel, never on the
// lengths, so one allocation serves every step of a decode and a captured CUDA graph.
size_t decode_attention_workspace_bytes(const DecodeAttentionParams& p, DecodeKernel kernel);

// Enqueues the partial and combine kernels on `stream` (a cudaStream_t). Returns nullptr on
// success, else a message (the launch was not made, or CUDA reported an error at launch).
// The grid does not depend on the lengths (they are read on the device), so the launches
// can be captured in a CUDA graph and replayed as the lengths grow.
const char* launch_decode_attention(const DecodeAttentionParams& p, DecodeKernel kernel, void* workspace,
                                    size_t workspace_bytes, void* stream);

// Fused element-wise steps of the batched decode (core/batched_decode). All tensors are
// contiguous, dtype `dtype`, on the device; each returns nullptr or an error message.

// out[r, :] = weight * (x[r, :] * rsqrt(mean(x[r, :]^2) + eps)), in float32 (transformers' RMSNorm).
const char* launch_rms_norm(DType dtype, const void* x, const void* weight, void* out, int rows, int dim, float eps,
                            void* stream);

// out[r, :] = silu(gate_up[r, 0:ffn]) * gate_up[r, ffn:2 ffn].
const char* launch_silu_mul(DType dtype, const void* gate_up, void* out, int rows, int ffn, void* stream);

// RoPE in the rotate-half layout on `heads` slices of width 2*pairs taken from each row of `x`
// (row stride x_stride_b, slice stride head_stride, first slice at column `offset`), written to
// `out` (row stride out_stride_b, slice stride out_head_stride) and, when cache is not null,
// also into cache + b*cache_stride_b + positions[b]*cache_stride_t + h*cache_stride_h.
// Angle of pair k of slice h at position p: p * inv_freq[(h / freq_group) * freq_stride + k]
// (float32 inv_freq on the device; freq_stride 0 shares one frequency row). pairs may be 0.
struct RopeStoreArgs {
    DType dtype = DType::BF16;
    int batch = 0, heads = 0, pairs = 0;
    const void* x = nullptr;
    int64_t x_stride_b = 0, head_stride = 0, offset = 0;
    void* out = nullptr;
    int64_t out_stride_b = 0, out_head_stride = 0;
    void* cache = nullptr;
    int64_t cache_stride_b = 0, cache_stride_t = 0, cache_stride_h = 0;
    const int32_t* positions = nullptr;  // [batch] device
    const float* inv_freq = nullptr;
    int freq_group = 1;
    int64_t freq_stride = 0;
};

// cache + b*cache_stride_b + positions[b]*cache_stride_t + h*cache_stride_h <- x[b, h, 0:width]
// (x rows: x_stride_b per batch, x_head_stride per head); no RoPE (values, latents).
struct StoreRowsArgs {
    const void* x = nullptr;
    int64_t x_stride_b = 0, x_head_stride = 0;
    int batch = 0, heads = 0, width = 0;
    void* cache = nullptr;
    int64_t cache_stride_b = 0, cache_stride_t = 0, cache_stride_h = 0;
    const int32_t* positions = nullptr;  // [batch] device
};

// A decode step's writes before attention, in one launch: the queries' RoPE (q), the keys' RoPE
// into the cache (k) and the rows stored without RoPE (rows: values, or the latent). A job with
// no elements (heads or pairs 0) is skipped. All in q.dtype.
const char* launch_rope_and_store(const RopeStoreArgs& q, const RopeStoreArgs& k, const StoreRowsArgs& rows, void* stream);

}  // namespace mlawb::cuda
