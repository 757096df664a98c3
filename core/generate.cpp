#include "core/generate.h"

#include "core/error.h"
#include "core/llama_model.h"

#include <chrono>

namespace mlawb {

GenerateResult greedy_generate(LlamaForCausalLMImpl& model, const std::vector<int64_t>& prompt,
                               const GenerateOptions& options, KVCache* external_cache) {
    if (prompt.empty()) throw Error("", "prompt", "empty prompt: greedy decoding needs at least one token");
    torch::NoGradGuard no_grad;
    KVCache local = external_cache ? KVCache({}) : model.make_cache();
    KVCache& cache = external_cache ? *external_cache : local;
    cache.clear();

    using clock = std::chrono::steady_clock;
    GenerateResult result;
    result.prompt_tokens = static_cast<int64_t>(prompt.size());
    const auto t0 = clock::now();
    // Ids on the model's device, so logits and the argmax stay there (one id comes back per step).
    const torch::Device device = model.device();
    torch::Tensor input = torch::tensor(prompt, torch::kInt64).unsqueeze(0).to(device);  // [1, T]
    torch::Tensor logits = model.forward(input, cache, LogitsFor::Last);                 // [1, 1, vocab] float32
    const auto t1 = clock::now();
    result.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();

    for (int64_t step = 0; step < options.max_new_tokens; ++step) {
        const int64_t next = logits.reshape({-1}).argmax().item<int64_t>();
        result.ids.push_back(next);
        if (options.stop_at_eos && model.config().is_eos(next)) {
            result.stopped_at_eos = true;
            break;
        }
        if (step + 1 == options.max_new_tokens) break;
        if (options.cancelled && options.cancelled()) throw Cancelled();
        logits = model.forward(torch::full({1, 1}, next, torch::TensorOptions().dtype(torch::kInt64).device(device)), cache,
                               LogitsFor::Last);
    }
    result.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
    result.cache_bytes = cache.bytes();
    return result;
}

}  // namespace mlawb
