// KV-cache quantization (KIVI / HF QuantizedCache style): per-token, group-wise, asymmetric.
//
// Rows. Each cached token contributes one row: its values of every head, flattened
// [heads * width] (so a part's groups run along the token's values exactly as the memory
// model counts them). A row is cut into groups of `group` values; the last group is shorter
// when `group` does not divide the row (supported here; MlaSpec refuses such settings so the
// memory model stays simple, except a row narrower than a group, which is one group).
// Per group: zero = min (fp16, rounded down), scale = (max - zero) / (2^bits - 1) (fp16,
// rounded up), code = round((x - zero) / scale) in [0, 2^bits - 1]; x' = code * scale + zero,
// so |x - x'| <= scale / 2 (up to float32 rounding). Codes of 4 and 2 bits are packed 2 and 4
// per byte (lowest bits first); a row takes ceil(row * bits / 8) bytes.
//
// QuantizedSequence has the role of GrowableSequence ([B, heads, T, width] along T). New
// tokens enter a residual window kept at the compute dtype; whenever the window holds more
// than `residual` tokens, its oldest tokens are quantized in whole blocks of `residual` tokens
// (residual = 0: every token is quantized at once). So after N tokens the window holds
// W(N) = ((N - 1) mod residual) + 1 tokens (0 when N = 0 or residual = 0) and the quantized
// store N - W(N), whatever the prefill / decode split. Differences from HF's QuantizedCache
// (transformers cache_utils): HF quantizes the whole prompt at prefill and, when its residual
// reaches residual_length during decode, re-quantizes the dequantized store plus the window
// (its window holds 0..residual-1 tokens); here every token is quantized once, and append()
// returns what the store holds (dequantized), so even a one-pass perplexity sees the error.
#pragma once

#include "core/kv_cache.h"

#include <torch/types.h>

namespace mlawb {

// Quantized rows: codes [N, packed_row_bytes] uint8, scales and zeros [N, groups] float16.
struct QuantizedRows {
    torch::Tensor codes;
    torch::Tensor scales;
    torch::Tensor zeros;
};

int64_t packed_row_bytes(int64_t row_width, int bits);          // ceil(row_width * bits / 8)
int64_t groups_per_row(int64_t row_width, int64_t group);       // ceil(row_width / group)
// Tokens kept unquantized after `tokens` tokens were appended (W(N) above).
int64_t residual_window_tokens(int64_t tokens, int64_t residual);

// Throws mlawb::Error naming the bad field: bits not in {2, 4, 8}, group < 1, residual < 0.
void check_quantized_options(const CacheOptions& options);

// x [N, row_width] (any float dtype) -> quantized rows. bits in {2, 4, 8}.
QuantizedRows quantize_rows(const torch::Tensor& x, int bits, int64_t group);
// Inverse of quantize_rows -> [N, row_width] float32.
torch::Tensor dequantize_rows(const QuantizedRows& q, int64_t row_width, int bits, int64_t group);

class QuantizedSequence {
public:
    explicit QuantizedSequence(const CacheOptions& options);
    // Appends x [B, heads, t, width]; returns everything held [B, heads, T, width] in x's dtype
    // (quantized tokens dequantized, window tokens as given).
    torch::Tensor append(const torch::Tensor& x);
    void push(const torch::Tensor& x);  // append without building the dequantized view
    torch::Tensor view() const;  // [B, heads, T, width]; undefined when empty
    // Tokens [start, start + count) dequantized: [B, heads, count, width] in the compute dtype.
    // Unpacks only those tokens, so a reader can walk the cache in blocks.
    torch::Tensor range(int64_t start, int64_t count) const;
    int64_t length() const { return quantized_tokens_ + window_tokens(); }
    int64_t quantized_tokens() const { return quantized_tokens_; }
    int64_t window_tokens() const { return window_.defined() ? window_.size(2) : 0; }
    // Bytes held: packed codes + fp16 scales + fp16 zeros + the window at its dtype.
    int64_t bytes() const;
    int64_t allocated_bytes() const;
    void clear();

private:
    void flush_oldest(const torch::Tensor& tokens);  // tokens [B, heads, f, width] -> quantized store

    CacheOptions options_;
    int64_t batch_ = 0, heads_ = 0, width_ = 0;
    torch::ScalarType dtype_ = torch::kFloat32;
    torch::TensorOptions window_options_;  // device of the appended values
    GrowableSequence codes_;   // [B, 1, Tq, packed_row_bytes(heads * width)] uint8
    GrowableSequence scales_;  // [B, 1, Tq, groups] float16
    GrowableSequence zeros_;   // [B, 1, Tq, groups] float16
    torch::Tensor window_;     // [B, heads, W, width] compute dtype; undefined when empty
    int64_t quantized_tokens_ = 0;
};

}  // namespace mlawb
