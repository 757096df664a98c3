// KV caches. A model's cache is one LayerCache per decoder layer; each attention kind
// (standard MHA/GQA, later MLA) brings its own LayerCache holding exactly what it needs.
// Tensors grow in blocks so decoding does not copy the whole cache every token; bytes()
// counts the tokens held (what the memory model predicts), allocated_bytes() the capacity.
#pragma once

#include <torch/types.h>

#include <memory>
#include <vector>

namespace mlawb {

class LayerCache {
public:
    virtual ~LayerCache() = default;
    virtual int64_t length() const = 0;          // tokens held
    virtual int64_t bytes() const = 0;           // bytes of the cached values for those tokens
    virtual int64_t allocated_bytes() const = 0; // bytes reserved (>= bytes())
    virtual void clear() = 0;
};

// How a cache stores its values: bits = 16 keeps the compute dtype (float32 here); 8, 4 or 2
// quantize per token in groups of `group` values, the most recent `residual` tokens kept
// unquantized (core/kv_quant.h describes the layout and the flush rule).
struct CacheOptions {
    int bits = 16;
    int64_t group = 64;
    int64_t residual = 128;
    bool quantized() const { return bits < 16; }
};

class QuantizedSequence;

// A growable [B, heads, T, width] buffer along T (dim 2).
class GrowableSequence {
public:
    // Appends x [B, heads, t, width]; returns a view of everything held [B, heads, T, width].
    torch::Tensor append(const torch::Tensor& x);
    torch::Tensor view() const;                  // [B, heads, T, width]; undefined when empty
    int64_t length() const { return length_; }
    int64_t bytes() const;
    int64_t allocated_bytes() const;
    void clear();

private:
    torch::Tensor storage_;  // [B, heads, capacity, width]
    int64_t length_ = 0;
};

// One cached tensor [B, heads, T, width]: a GrowableSequence at bits = 16, else a
// QuantizedSequence. Same interface as GrowableSequence.
class CachedSequence {
public:
    explicit CachedSequence(const CacheOptions& options = {});
    ~CachedSequence();
    CachedSequence(CachedSequence&&) noexcept;
    CachedSequence& operator=(CachedSequence&&) noexcept;

    torch::Tensor append(const torch::Tensor& x);  // x [B, heads, t, width] -> [B, heads, T, width]
    void push(const torch::Tensor& x);             // append without building the view
    torch::Tensor view() const;
    // Tokens [start, start + count): [B, heads, count, width]; a quantized cache dequantizes only those.
    torch::Tensor range(int64_t start, int64_t count) const;
    int64_t length() const;
    int64_t bytes() const;
    int64_t allocated_bytes() const;
    void clear();
    bool quantized() const { return quantized_ != nullptr; }

private:
    GrowableSequence plain_;
    std::unique_ptr<QuantizedSequence> quantized_;  // null at 16 bits
};

// Standard attention cache: K after RoPE and V, un-repeated KV heads.
class StandardLayerCache : public LayerCache {
public:
    explicit StandardLayerCache(const CacheOptions& options = {}) : keys(options), values(options) {}
    CachedSequence keys;    // [B, n_kv, T, head_dim]
    CachedSequence values;  // [B, n_kv, T, head_dim]

    int64_t length() const override { return keys.length(); }
    int64_t bytes() const override { return keys.bytes() + values.bytes(); }
    int64_t allocated_bytes() const override { return keys.allocated_bytes() + values.allocated_bytes(); }
    void clear() override {
        keys.clear();
        values.clear();
    }
};

// The whole model's cache for one batch of sequences advancing together.
class KVCache {
public:
    explicit KVCache(std::vector<std::unique_ptr<LayerCache>> layers) : layers_(std::move(layers)) {}
    LayerCache& layer(size_t i) { return *layers_.at(i); }
    size_t layer_count() const { return layers_.size(); }
    int64_t length() const { return layers_.empty() ? 0 : layers_[0]->length(); }
    int64_t bytes() const;
    int64_t allocated_bytes() const;
    void clear();

private:
    std::vector<std::unique_ptr<LayerCache>> layers_;
};

}  // namespace mlawb
