#include "core/rope.h"

#include <cmath>

namespace mlawb {

torch::Tensor rope_inv_freq(const ModelConfig& c) {
    const int64_t d = c.head_dim;
    // transformers: 1 / base ** (arange(0, d, 2).float() / d), all in float32.
    torch::Tensor exponent = torch::arange(0, d, 2, torch::kInt64).to(torch::kFloat32) / static_cast<float>(d);
    torch::Tensor base = torch::full({}, static_cast<float>(c.rope_theta), torch::kFloat32);
    torch::Tensor inv_freq = 1.0 / torch::pow(base, exponent);

    const RopeScaling& s = c.rope_scaling;
    switch (s.type) {
        case RopeScaling::Type::Default:
            break;
        case RopeScaling::Type::Linear:
            inv_freq = inv_freq / static_cast<float>(s.factor);
            break;
        case RopeScaling::Type::Llama3: {
            // Llama 3.1: wavelengths longer than the original context / low_freq_factor are
            // divided by factor, shorter than context / high_freq_factor kept, smooth between.
            const double old_ctx = static_cast<double>(s.original_max_position_embeddings);
            const double low_wavelen = old_ctx / s.low_freq_factor;
            const double high_wavelen = old_ctx / s.high_freq_factor;
            torch::Tensor wavelen = 2 * M_PI / inv_freq;
            torch::Tensor scaled =
                torch::where(wavelen > low_wavelen, inv_freq / static_cast<float>(s.factor), inv_freq);
            torch::Tensor smooth = (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
            torch::Tensor smoothed = (1 - smooth) * scaled / static_cast<float>(s.factor) + smooth * scaled;
            torch::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
            inv_freq = torch::where(medium, smoothed, scaled);
            break;
        }
    }
    return inv_freq.to(torch::kFloat32).contiguous();
}

RotaryEmbedding::RotaryEmbedding(const ModelConfig& config) : inv_freq_(rope_inv_freq(config)) {}

RopeTables RotaryEmbedding::tables(int64_t start, int64_t length) const {
    torch::Tensor positions = torch::arange(start, start + length, torch::kInt64).to(torch::kFloat32);
    torch::Tensor angles = positions.unsqueeze(1) * inv_freq_.unsqueeze(0);  // [T, d/2]
    torch::Tensor emb = torch::cat({angles, angles}, 1);                    // [T, d]
    return {emb.cos(), emb.sin()};
}

torch::Tensor apply_rope(const torch::Tensor& x, const RopeTables& t) {
    const int64_t half = x.size(-1) / 2;
    torch::Tensor x1 = x.narrow(-1, 0, half);
    torch::Tensor x2 = x.narrow(-1, half, half);
    torch::Tensor rotated = torch::cat({-x2, x1}, -1);
    return x * t.cos + rotated * t.sin;
}

}  // namespace mlawb
