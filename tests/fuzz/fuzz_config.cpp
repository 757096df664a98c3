// config.json: ModelConfig::from_json_text on arbitrary bytes, then what `mlawb info
// --config-only` derives from an accepted config without weights (group size, KV elements per
// token, the expected tensors and their element counts).
#include "core/checkpoint_layout.h"
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
        // What `mlawb info --config-only` computes from it (UBSan checks the arithmetic); the
        // tensor list repeats per layer, so a few layers cover it.
        FUZZ_CHECK(c.kv_elements_per_token() > 0);
        if (c.n_layer <= 4)
            for (const ExpectedTensor& t : expected_tensors(c)) FUZZ_CHECK(numel_of(t.shape) > 0);
    });
    return 0;
}
