// Perplexity of a token stream, by the fixtures' protocol: non-overlapping windows of
// `window` tokens (the last one may be shorter), each window run from an empty cache, its
// first token not scored; perplexity = exp(total NLL / tokens scored).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace mlawb {

class LlamaForCausalLMImpl;

struct PerplexityOptions {
    int64_t window = 2048;
    int64_t max_windows = -1;                                      // -1: the whole stream
    std::function<void(int64_t windows_done, int64_t windows_total, int64_t tokens_done)> progress;
    std::function<bool()> cancelled;                               // polled between windows
};

struct PerplexityResult {
    double perplexity = 0;
    double total_nll = 0;          // nats, summed over scored tokens
    int64_t tokens_scored = 0;
    int64_t tokens_total = 0;      // tokens in the windows that were run
    int64_t windows = 0;
    int64_t window = 0;
    double seconds = 0;
};

PerplexityResult compute_perplexity(LlamaForCausalLMImpl& model, const std::vector<int64_t>& ids,
                                    const PerplexityOptions& options);

}  // namespace mlawb
