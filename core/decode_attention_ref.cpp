#include "core/decode_attention_ref.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace mlawb {

float bf16_bits_to_float(uint16_t bits) {
    const uint32_t w = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &w, 4);
    return f;
}

uint16_t float_to_bf16_bits(float value) {
    uint32_t w;
    std::memcpy(&w, &value, 4);
    if (std::isnan(value)) return 0x7fc0;
    w += 0x7fff + ((w >> 16) & 1);  // round to nearest even
    return static_cast<uint16_t>(w >> 16);
}

float f16_bits_to_float(uint16_t bits) {
    const int sign = bits >> 15, exponent = (bits >> 10) & 0x1f, mantissa = bits & 0x3ff;
    float magnitude;
    if (exponent == 0) magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // subnormal
    else if (exponent == 31) magnitude = mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
    else magnitude = std::ldexp(static_cast<float>(mantissa | 0x400), exponent - 25);
    return sign ? -magnitude : magnitude;
}

uint16_t float_to_f16_bits(float value) {
    const uint16_t sign = std::signbit(value) ? 0x8000 : 0;
    const float a = std::fabs(value);
    if (std::isnan(value)) return 0x7e00;
    if (a >= 65520.0f) return sign | 0x7c00;  // rounds to infinity
    if (a < std::ldexp(1.0f, -14)) {          // subnormal: units of 2^-24
        const float units = std::nearbyint(a * std::ldexp(1.0f, 24));
        return sign | static_cast<uint16_t>(units);
    }
    int e;
    const float m = std::frexp(a, &e);  // a = m 2^e, m in [0.5, 1)
    float scaled = std::nearbyint(m * 2048.0f);  // 11 significant bits, round to nearest even
    if (scaled >= 2048.0f) {
        scaled /= 2;
        e += 1;
    }
    const int exponent = e + 14;  // bias 15, significand 1.x = m * 2
    if (exponent >= 31) return sign | 0x7c00;
    return sign | static_cast<uint16_t>(exponent << 10) | static_cast<uint16_t>(static_cast<int>(scaled) - 1024);
}

namespace {

double element(const void* base, cuda::DType dtype, int64_t index) {
    switch (dtype) {
        case cuda::DType::F32: return static_cast<const float*>(base)[index];
        case cuda::DType::F16: return f16_bits_to_float(static_cast<const uint16_t*>(base)[index]);
        case cuda::DType::BF16: return bf16_bits_to_float(static_cast<const uint16_t*>(base)[index]);
    }
    return 0.0;
}

void check(const cuda::DecodeAttentionParams& p) {
    auto fail = [](const std::string& why) { throw Error("", "decode_attention", why); };
    if (p.batch <= 0 || p.q_heads <= 0 || p.kv_heads <= 0 || p.q_heads % p.kv_heads)
        fail("batch and heads must be positive, q_heads a multiple of kv_heads");
    if (!p.q || !p.key_a || !p.value || !p.lengths) fail("null input pointer");
    if (p.key_r_dim > 0 && !p.key_r) fail("key_r is null but key_r_dim > 0");
    if (p.key_a_dim <= 0 || p.value_dim <= 0 || p.key_r_dim < 0) fail("key and value widths must be positive");
    for (int b = 0; b < p.batch; ++b)
        if (p.lengths[b] < 0 || p.lengths[b] > p.max_length)
            fail("length " + std::to_string(p.lengths[b]) + " of sequence " + std::to_string(b) +
                 " outside 0.." + std::to_string(p.max_length));
}

}  // namespace

std::vector<double> decode_attention_reference(const cuda::DecodeAttentionParams& p) {
    check(p);
    const int group = p.q_heads / p.kv_heads;
    const int da = p.key_a_dim, dr = p.key_r_dim, dv = p.value_dim;
    std::vector<double> out(static_cast<size_t>(p.batch) * p.q_heads * dv, 0.0);
    std::vector<double> scores;
    for (int b = 0; b < p.batch; ++b) {
        const int len = p.lengths[b];
        const int start = (p.window > 0 && len > p.window) ? len - p.window : 0;
        for (int h = 0; h < p.q_heads; ++h) {
            const int g = h / group;
            const int64_t q0 = b * p.q_stride_b + h * p.q_stride_h;
            scores.assign(len - start, 0.0);
            double mx = -std::numeric_limits<double>::infinity();
            for (int t = start; t < len; ++t) {
                double s = 0.0;
                const int64_t a0 = b * p.ka_stride_b + g * p.ka_stride_h + t * p.ka_stride_t;
                for (int e = 0; e < da; ++e) s += element(p.q, p.dtype, q0 + e) * element(p.key_a, p.dtype, a0 + e);
                const int64_t r0 = b * p.kr_stride_b + g * p.kr_stride_h + t * p.kr_stride_t;
                for (int e = 0; e < dr; ++e)
                    s += element(p.q, p.dtype, q0 + da + e) * element(p.key_r, p.dtype, r0 + e);
                s *= p.scale;
                scores[t - start] = s;
                mx = std::max(mx, s);
            }
            double sum = 0.0;
            for (double& s : scores) {
                s = std::exp(s - mx);
                sum += s;
            }
            double* o = out.data() + (static_cast<size_t>(b) * p.q_heads + h) * dv;
            for (int t = start; t < len; ++t) {
                const double w = scores[t - start] / sum;
                const int64_t v0 = b * p.v_stride_b + g * p.v_stride_h + t * p.v_stride_t;
                for (int e = 0; e < dv; ++e) o[e] += w * element(p.value, p.dtype, v0 + e);
            }
        }
    }
    return out;
}

void decode_attention_reference_into(const cuda::DecodeAttentionParams& p) {
    if (!p.out) throw Error("", "decode_attention", "null output pointer");
    const std::vector<double> r = decode_attention_reference(p);
    const int dv = p.value_dim;
    for (int b = 0; b < p.batch; ++b)
        for (int h = 0; h < p.q_heads; ++h)
            for (int e = 0; e < dv; ++e) {
                const float v = static_cast<float>(r[(static_cast<size_t>(b) * p.q_heads + h) * dv + e]);
                const int64_t i = b * p.out_stride_b + h * p.out_stride_h + e;
                switch (p.dtype) {
                    case cuda::DType::F32: static_cast<float*>(p.out)[i] = v; break;
                    case cuda::DType::F16: static_cast<uint16_t*>(p.out)[i] = float_to_f16_bits(v); break;
                    case cuda::DType::BF16: static_cast<uint16_t*>(p.out)[i] = float_to_bf16_bits(v); break;
                }
            }
}

}  // namespace mlawb
