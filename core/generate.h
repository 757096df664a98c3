// Greedy decoding with the KV cache: one prefill of the prompt, then one token per step.
#pragma once

#include "core/kv_cache.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace mlawb {

class LlamaForCausalLMImpl;

struct GenerateOptions {
    int64_t max_new_tokens = 64;
    bool stop_at_eos = true;                     // stop after emitting an eos id of the config
    std::function<bool()> cancelled;             // polled between steps; may be empty
};

struct GenerateResult {
    std::vector<int64_t> ids;      // generated ids (the eos that stopped it included, as transformers returns it)
    bool stopped_at_eos = false;
    int64_t prompt_tokens = 0;
    double prefill_seconds = 0;
    double decode_seconds = 0;     // all steps after the first token
    int64_t cache_bytes = 0;       // KV cache bytes at the end
};

// Greedy (argmax) continuation of `prompt` for batch 1. `cache` may be given to inspect it
// afterwards; it must be empty (or is cleared).
GenerateResult greedy_generate(LlamaForCausalLMImpl& model, const std::vector<int64_t>& prompt,
                               const GenerateOptions& options, KVCache* cache = nullptr);

}  // namespace mlawb
