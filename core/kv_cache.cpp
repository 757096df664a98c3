#include "core/kv_cache.h"

#include "core/kv_quant.h"

#include <algorithm>

namespace mlawb {

namespace {
// Capacity grows to the next multiple of this many tokens (and at least doubles), so a
// 2048-token decode reallocates a handful of times instead of every step.
constexpr int64_t kGrowBlock = 256;
}  // namespace

torch::Tensor GrowableSequence::append(const torch::Tensor& x) {
    TORCH_CHECK(x.dim() == 4, "cache append expects [B, heads, t, width]");
    const int64_t t = x.size(2);
    const int64_t needed = length_ + t;
    if (!storage_.defined() || needed > storage_.size(2)) {
        int64_t capacity = storage_.defined() ? storage_.size(2) : 0;
        capacity = std::max(needed, capacity * 2);
        capacity = (capacity + kGrowBlock - 1) / kGrowBlock * kGrowBlock;
        torch::Tensor grown = torch::empty({x.size(0), x.size(1), capacity, x.size(3)}, x.options());
        if (length_ > 0) grown.narrow(2, 0, length_).copy_(storage_.narrow(2, 0, length_));
        storage_ = grown;
    }
    storage_.narrow(2, length_, t).copy_(x);
    length_ = needed;
    return view();
}

torch::Tensor GrowableSequence::view() const {
    if (!storage_.defined()) return {};
    return storage_.narrow(2, 0, length_);
}

int64_t GrowableSequence::bytes() const {
    if (!storage_.defined()) return 0;
    return storage_.size(0) * storage_.size(1) * length_ * storage_.size(3) * storage_.element_size();
}

int64_t GrowableSequence::allocated_bytes() const {
    return storage_.defined() ? storage_.numel() * storage_.element_size() : 0;
}

void GrowableSequence::clear() {
    storage_ = torch::Tensor();
    length_ = 0;
}

CachedSequence::CachedSequence(const CacheOptions& options) {
    if (options.quantized()) quantized_ = std::make_unique<QuantizedSequence>(options);
}
CachedSequence::~CachedSequence() = default;
CachedSequence::CachedSequence(CachedSequence&&) noexcept = default;
CachedSequence& CachedSequence::operator=(CachedSequence&&) noexcept = default;

torch::Tensor CachedSequence::append(const torch::Tensor& x) { return quantized_ ? quantized_->append(x) : plain_.append(x); }
torch::Tensor CachedSequence::view() const { return quantized_ ? quantized_->view() : plain_.view(); }
void CachedSequence::push(const torch::Tensor& x) {
    if (quantized_)
        quantized_->push(x);
    else
        plain_.append(x);  // returns a view of the storage: no copy
}
torch::Tensor CachedSequence::range(int64_t start, int64_t count) const {
    return quantized_ ? quantized_->range(start, count) : plain_.view().narrow(2, start, count);
}
int64_t CachedSequence::length() const { return quantized_ ? quantized_->length() : plain_.length(); }
int64_t CachedSequence::bytes() const { return quantized_ ? quantized_->bytes() : plain_.bytes(); }
int64_t CachedSequence::allocated_bytes() const {
    return quantized_ ? quantized_->allocated_bytes() : plain_.allocated_bytes();
}
void CachedSequence::clear() {
    if (quantized_) quantized_->clear();
    plain_.clear();
}

int64_t KVCache::bytes() const {
    int64_t total = 0;
    for (const auto& l : layers_) total += l->bytes();
    return total;
}

int64_t KVCache::allocated_bytes() const {
    int64_t total = 0;
    for (const auto& l : layers_) total += l->allocated_bytes();
    return total;
}

void KVCache::clear() {
    for (auto& l : layers_) l->clear();
}

}  // namespace mlawb
