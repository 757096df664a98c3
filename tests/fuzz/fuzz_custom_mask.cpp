// The custom kept-pair mask JSON (mask=FILE, {"kept_pairs": [layer][kv_head][pairs]}):
// KeptPairs::from_json_text on arbitrary bytes against a model shape taken from the first
// three input bytes. An accepted mask must stay in range and survive to_json_text +
// from_json_text unchanged.
#include "analysis/strategies.h"
#include "fuzz_support.h"

using namespace mlawb;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 3) return 0;
    const int64_t n_layer = 1 + data[0] % 4, n_kv_head = 1 + data[1] % 4, n_pairs = 1 + data[2] % 16;
    const std::string text = fuzz::as_text(data + 3, size - 3);
    fuzz::refuse_only_with_errors([&] {
        const KeptPairs kept = KeptPairs::from_json_text(text, "mask.json", n_layer, n_kv_head, n_pairs);
        FUZZ_CHECK(kept.n_layer == n_layer && kept.n_kv_head == n_kv_head && kept.n_pairs == n_pairs);
        FUZZ_CHECK(static_cast<int64_t>(kept.mask.size()) == n_layer * n_kv_head * n_pairs);
        const KeptPairs back =
            KeptPairs::from_json_text(kept.to_json_text(), "mask.json (written back)", n_layer, n_kv_head, n_pairs);
        FUZZ_CHECK(back.mask == kept.mask);
        for (int64_t l = 0; l < n_layer; ++l)
            for (int64_t g = 0; g < n_kv_head; ++g) FUZZ_CHECK(kept.count(l, g) == int64_t(kept.pairs(l, g).size()));
    });
    return 0;
}
