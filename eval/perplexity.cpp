#include "eval/perplexity.h"

#include "core/error.h"
#include "core/llama_model.h"

#include <chrono>
#include <cmath>

namespace mlawb {

PerplexityResult compute_perplexity(LlamaForCausalLMImpl& model, const std::vector<int64_t>& ids,
                                    const PerplexityOptions& options) {
    if (options.window < 2) throw Error("", "--window", "must be at least 2 tokens");
    torch::NoGradGuard no_grad;
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t n = static_cast<int64_t>(ids.size());
    int64_t windows_total = (n + options.window - 1) / options.window;
    if (options.max_windows >= 0) windows_total = std::min(windows_total, options.max_windows);

    PerplexityResult r;
    r.window = options.window;
    const torch::Tensor all = torch::tensor(ids, torch::kInt64);
    for (int64_t w = 0; w < windows_total; ++w) {
        if (options.cancelled && options.cancelled()) throw Cancelled();
        const int64_t begin = w * options.window;
        const int64_t len = std::min(options.window, n - begin);
        r.tokens_total += len;
        r.windows += 1;
        if (len >= 2) {
            torch::Tensor input = all.narrow(0, begin, len).unsqueeze(0);          // [1, T]
            KVCache cache = model.make_cache();
            torch::Tensor logits = model.forward(input, cache, LogitsFor::All)[0];  // [T, vocab]
            torch::Tensor logp = torch::log_softmax(logits.narrow(0, 0, len - 1), -1);
            torch::Tensor targets = all.narrow(0, begin + 1, len - 1).unsqueeze(1);
            torch::Tensor nll = -logp.gather(1, targets);                          // [T-1, 1]
            r.total_nll += nll.to(torch::kFloat64).sum().item<double>();
            r.tokens_scored += len - 1;
        }
        if (options.progress) options.progress(w + 1, windows_total, r.tokens_total);
    }
    if (r.tokens_scored == 0) throw Error("", "text", "too short to score: needs at least 2 tokens");
    r.perplexity = std::exp(r.total_nll / static_cast<double>(r.tokens_scored));
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

}  // namespace mlawb
