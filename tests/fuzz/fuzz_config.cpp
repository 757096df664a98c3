// config.json: ModelConfig::from_json_text on arbitrary bytes, then what `mlawb info
// --config-only` derives from an accepted config without weights (group size, KV elements).
#include "core/config.h"
#include "fuzz_support.h"

using namespace mlawb;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::refuse_only_with_errors([&] {
        const ModelConfig c = ModelConfig::from_json_text(fuzz::as_text(data, size), "config.json");
        // What the parser promises every later stage.
        FUZZ_CHECK(c.n_layer > 0 && c.n_head > 0 && c.n_kv_head > 0 && c.head_dim > 0);
        FUZZ_CHECK(c.hidden > 0 && c.ffn > 0 && c.vocab > 0);
        FUZZ_CHECK(c.n_head % c.n_kv_head == 0);
        FUZZ_CHECK(c.rope_theta > 0 && c.rope_scaling.factor > 0);
        FUZZ_CHECK(c.group_size() >= 1);
        (void)c.is_eos(c.bos_token_id);
    });
    return 0;
}
