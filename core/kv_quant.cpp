// Group-wise asymmetric KV quantization and the quantized sequence store (see kv_quant.h).
#include "core/kv_quant.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace mlawb {

namespace {

int64_t codes_per_byte(int bits) { return 8 / bits; }

// One float16 step toward -inf (down = true) or +inf, on the raw bits; h finite.
torch::Tensor half_step(const torch::Tensor& h, bool down) {
    torch::Tensor bits = h.view(torch::kInt16).clone();
    // int16 view: non-negative halves are >= 0 (0x0000..0x7bff), negative ones < 0 (0x8000 = -0).
    torch::Tensor nonneg = bits.ge(0);
    torch::Tensor stepped;
    if (down) {
        // Positive: bits - 1; +0 -> smallest negative subnormal (0x8001); negative: bits + 1.
        stepped = torch::where(nonneg, bits - 1, bits + 1);
        stepped = torch::where(bits.eq(0), torch::full_like(bits, static_cast<int16_t>(-32767)), stepped);
    } else {
        // Non-negative: bits + 1; -0 -> smallest positive subnormal; negative: bits - 1.
        stepped = torch::where(nonneg, bits + 1, bits - 1);
        stepped = torch::where(bits.eq(-32768), torch::ones_like(bits), stepped);
    }
    return stepped.view(torch::kFloat16);
}

// [N, P] packed bytes -> [N, row_width] codes (uint8).
torch::Tensor unpack_codes(const torch::Tensor& packed, int64_t row_width, int bits) {
    if (bits == 8) return packed;
    const int64_t per_byte = codes_per_byte(bits);
    torch::Tensor shifts = torch::arange(0, 8, bits, packed.options().dtype(torch::kUInt8));  // [per_byte]
    torch::Tensor codes = packed.unsqueeze(-1).bitwise_right_shift(shifts).bitwise_and((1 << bits) - 1);
    return codes.reshape({packed.size(0), packed.size(1) * per_byte}).narrow(1, 0, row_width);
}

// [N, row_width] codes (uint8) -> [N, P] packed bytes, lowest bits first.
torch::Tensor pack_codes(const torch::Tensor& codes, int bits) {
    if (bits == 8) return codes;
    const int64_t n = codes.size(0), per_byte = codes_per_byte(bits);
    const int64_t packed = packed_row_bytes(codes.size(1), bits);
    torch::Tensor padded = torch::zeros({n, packed * per_byte}, codes.options().dtype(torch::kUInt8));
    padded.narrow(1, 0, codes.size(1)).copy_(codes);
    torch::Tensor shifts = torch::arange(0, 8, bits, codes.options().dtype(torch::kUInt8));  // [per_byte]
    return padded.view({n, packed, per_byte}).bitwise_left_shift(shifts).sum(-1, false, torch::kUInt8);
}

// x [N, row_width] -> [N, groups * group], the tail padded with copies of each row's last value
// (which leaves every group's min and max unchanged).
torch::Tensor pad_to_groups(const torch::Tensor& x, int64_t group) {
    const int64_t width = x.size(1), pad = groups_per_row(width, group) * group - width;
    if (pad == 0) return x;
    return torch::cat({x, x.narrow(1, width - 1, 1).expand({x.size(0), pad})}, 1);
}

}  // namespace

int64_t packed_row_bytes(int64_t row_width, int bits) { return (row_width * bits + 7) / 8; }
int64_t groups_per_row(int64_t row_width, int64_t group) { return (row_width + group - 1) / group; }
int64_t residual_window_tokens(int64_t tokens, int64_t residual) {
    if (tokens <= 0 || residual <= 0) return 0;
    return (tokens - 1) % residual + 1;
}

void check_quantized_options(const CacheOptions& o) {
    if (o.bits != 2 && o.bits != 4 && o.bits != 8)
        throw Error("", "kv_bits", "quantized cache needs 8, 4 or 2 bits (16 = unquantized; got " + std::to_string(o.bits) + ")");
    if (o.group < 1) throw Error("", "kv_group", "must be at least 1 (got " + std::to_string(o.group) + ")");
    if (o.residual < 0) throw Error("", "residual", "must be at least 0 (got " + std::to_string(o.residual) + ")");
}

QuantizedRows quantize_rows(const torch::Tensor& x, int bits, int64_t group) {
    check_quantized_options({bits, group, 0});
    TORCH_CHECK(x.dim() == 2 && x.size(1) > 0, "quantize_rows expects [N, row_width]");
    const int64_t n = x.size(0), width = x.size(1), groups = groups_per_row(width, group);
    const double levels = static_cast<double>((1 << bits) - 1);
    torch::Tensor g = pad_to_groups(x.to(torch::kFloat32), group).view({n, groups, group});
    torch::Tensor lo = std::get<0>(g.min(-1)), hi = std::get<0>(g.max(-1));  // [N, groups]
    // Zero points and scales are stored in float16: a group whose minimum or range lies beyond
    // float16's largest finite value (65504, less one step for the rounding away from the data)
    // would get an infinite scale or zero, and NaN activations would poison the whole group.
    // Refuse rather than cache garbage.
    const double lo_abs = lo.abs().max().item<double>(), range = (hi - lo).max().item<double>();
    if (!std::isfinite(lo_abs) || !std::isfinite(range) || lo_abs > 65472.0 || range / levels > 65472.0)
        throw Error("", "kv_bits",
                    "cannot quantize the KV cache: a group holds values of magnitude " + std::to_string(lo_abs) +
                        " and range " + std::to_string(range) +
                        " beyond the float16 scale/zero-point range (65504) or non-finite; use kv_bits=16");
    // zero: fp16 at or below the minimum; scale: fp16 at or above (max - zero) / levels.
    torch::Tensor zero = lo.to(torch::kFloat16);
    zero = torch::where(zero.to(torch::kFloat32).gt(lo), half_step(zero, /*down=*/true), zero);
    const torch::Tensor zero_f = zero.to(torch::kFloat32);
    torch::Tensor needed = (hi - zero_f) / levels;
    torch::Tensor scale = needed.to(torch::kFloat16);
    scale = torch::where(scale.to(torch::kFloat32).lt(needed), half_step(scale, /*down=*/false), scale);
    const torch::Tensor scale_f = scale.to(torch::kFloat32);
    torch::Tensor inverse = torch::where(scale_f.gt(0), 1.0 / scale_f, torch::zeros_like(scale_f));
    torch::Tensor codes = ((g - zero_f.unsqueeze(-1)) * inverse.unsqueeze(-1)).round().clamp(0, levels);
    codes = codes.view({n, groups * group}).narrow(1, 0, width).to(torch::kUInt8);
    return {pack_codes(codes, bits).contiguous(), scale, zero};
}

torch::Tensor dequantize_rows(const QuantizedRows& q, int64_t row_width, int bits, int64_t group) {
    const int64_t n = q.codes.size(0), groups = groups_per_row(row_width, group);
    torch::Tensor codes = unpack_codes(q.codes, row_width, bits).to(torch::kFloat32);  // [N, row_width]
    torch::Tensor padded = torch::zeros({n, groups * group}, codes.options().dtype(torch::kFloat32));
    padded.narrow(1, 0, row_width).copy_(codes);
    torch::Tensor g = padded.view({n, groups, group});
    torch::Tensor values = g * q.scales.to(torch::kFloat32).unsqueeze(-1) + q.zeros.to(torch::kFloat32).unsqueeze(-1);
    return values.view({n, groups * group}).narrow(1, 0, row_width);
}

QuantizedSequence::QuantizedSequence(const CacheOptions& options) : options_(options) { check_quantized_options(options); }

void QuantizedSequence::flush_oldest(const torch::Tensor& tokens) {
    const int64_t b = tokens.size(0), f = tokens.size(2), row = heads_ * width_;
    if (row == 0) {  // an empty part (k_rope with r = 0): nothing to store
        quantized_tokens_ += f;
        return;
    }
    torch::Tensor rows = tokens.permute({0, 2, 1, 3}).reshape({b * f, row});  // [B f, heads width]
    QuantizedRows q = quantize_rows(rows, options_.bits, options_.group);
    codes_.append(q.codes.view({b, 1, f, q.codes.size(1)}));
    scales_.append(q.scales.view({b, 1, f, q.scales.size(1)}));
    zeros_.append(q.zeros.view({b, 1, f, q.zeros.size(1)}));
    quantized_tokens_ += f;
}

torch::Tensor QuantizedSequence::append(const torch::Tensor& x) {
    push(x);
    return view();
}

void QuantizedSequence::push(const torch::Tensor& x) {
    TORCH_CHECK(x.dim() == 4, "cache append expects [B, heads, t, width]");
    if (length() == 0) {
        batch_ = x.size(0);
        heads_ = x.size(1);
        width_ = x.size(3);
        dtype_ = x.scalar_type();
        window_options_ = x.options();
    }
    torch::Tensor held = window_.defined() ? torch::cat({window_, x}, 2) : x;  // [B, heads, W + t, width]
    const int64_t w = held.size(2);
    const int64_t residual = options_.residual;
    // Keep W(N) tokens: flush whole blocks of `residual` from the oldest (all of them when residual = 0).
    const int64_t flush = residual == 0 ? w : (w > residual ? (w - 1) / residual * residual : 0);
    if (flush > 0) flush_oldest(held.narrow(2, 0, flush));
    window_ = flush == w ? torch::Tensor() : held.narrow(2, flush, w - flush).contiguous();
}

torch::Tensor QuantizedSequence::view() const { return length() == 0 ? torch::Tensor() : range(0, length()); }

torch::Tensor QuantizedSequence::range(int64_t start, int64_t count) const {
    TORCH_CHECK(start >= 0 && count >= 1 && start + count <= length(), "cache range [", start, ", ", start + count,
                ") outside the ", length(), " tokens held");
    const int64_t tq = quantized_tokens_, end = start + count;
    std::vector<torch::Tensor> pieces;
    if (start < tq) {  // tokens [start, min(end, tq)) from the quantized store
        const int64_t n = std::min(end, tq) - start;
        if (heads_ * width_ == 0) {
            pieces.push_back(torch::empty({batch_, heads_, n, width_}, window_options_.dtype(dtype_)));
        } else {
            // Only these tokens' codes are unpacked: absorbed MLA decode reads the cache block by block.
            torch::Tensor codes = codes_.view().narrow(2, start, n), scales = scales_.view().narrow(2, start, n),
                          zeros = zeros_.view().narrow(2, start, n);  // [B, 1, n, *]
            const int64_t b = codes.size(0);
            QuantizedRows q{codes.reshape({b * n, codes.size(3)}), scales.reshape({b * n, scales.size(3)}),
                            zeros.reshape({b * n, zeros.size(3)})};
            torch::Tensor rows = dequantize_rows(q, heads_ * width_, options_.bits, options_.group);  // [B n, heads width]
            pieces.push_back(rows.reshape({b, n, heads_, width_}).permute({0, 2, 1, 3}).to(dtype_));
        }
    }
    if (end > tq) {  // tokens from the unquantized window
        const int64_t from = std::max(start, tq) - tq;
        pieces.push_back(window_.narrow(2, from, end - tq - from));
    }
    return pieces.size() == 1 ? pieces[0] : torch::cat(pieces, 2);
}

int64_t QuantizedSequence::bytes() const {
    const int64_t window = window_.defined() ? window_.numel() * window_.element_size() : 0;
    return codes_.bytes() + scales_.bytes() + zeros_.bytes() + window;
}

int64_t QuantizedSequence::allocated_bytes() const {
    const int64_t window = window_.defined() ? window_.numel() * window_.element_size() : 0;
    return codes_.allocated_bytes() + scales_.allocated_bytes() + zeros_.allocated_bytes() + window;
}

void QuantizedSequence::clear() {
    codes_.clear();
    scales_.clear();
    zeros_.clear();
    window_ = torch::Tensor();
    quantized_tokens_ = 0;
}

}  // namespace mlawb
