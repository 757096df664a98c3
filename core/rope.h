// Rotary position embeddings in the Hugging Face rotate-half layout: dimension i of a head
// pairs with i + d/2; pair k (dims k and k + d/2) turns at inv_freq[k], k = 0 the highest
// frequency. Scaling (linear, llama3) is applied to inv_freq as transformers does.
#pragma once

#include "core/config.h"

#include <torch/types.h>

namespace mlawb {

// inv_freq[k] = theta^(-2k/d), rescaled per config.rope_scaling. [head_dim/2] float32, computed
// in float32 the way transformers computes it, so angles agree bit for bit where possible.
torch::Tensor rope_inv_freq(const ModelConfig& config);

// cos/sin tables for a run of positions.
struct RopeTables {
    torch::Tensor cos;  // [T, head_dim] float32 (the two halves repeat the [T, head_dim/2] angles)
    torch::Tensor sin;  // [T, head_dim]
};

class RotaryEmbedding {
public:
    explicit RotaryEmbedding(const ModelConfig& config);
    // Tables for positions start .. start + length - 1.
    RopeTables tables(int64_t start, int64_t length) const;
    const torch::Tensor& inv_freq() const { return inv_freq_; }  // [head_dim/2]

private:
    torch::Tensor inv_freq_;
};

// x * cos + rotate_half(x) * sin, x [B, H, T, head_dim], tables for the T positions.
torch::Tensor apply_rope(const torch::Tensor& x, const RopeTables& tables);

}  // namespace mlawb
