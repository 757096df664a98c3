// The --mla spec string: MlaSpec::parse on arbitrary bytes; an accepted spec must print a
// canonical text that parses back to the same text, and validate() against a GQA and an MHA
// model must either pass or refuse with an Error (no arithmetic surprises on huge values).
#include "analysis/mla_spec.h"
#include "core/config.h"
#include "fuzz_support.h"

using namespace mlawb;

namespace {

ModelConfig model(int64_t n_head, int64_t n_kv_head) {
    ModelConfig c;
    c.source = "config.json";
    c.model_type = "llama";
    c.n_layer = 2, c.n_head = n_head, c.n_kv_head = n_kv_head, c.head_dim = 16;
    c.hidden = 64, c.ffn = 128, c.vocab = 100, c.max_position = 256;
    return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::refuse_only_with_errors([&] {
        const MlaSpec spec = MlaSpec::parse(fuzz::as_text(data, size));
        const std::string canonical = spec.to_string();
        FUZZ_CHECK(MlaSpec::parse(canonical).to_string() == canonical);
        for (const ModelConfig& c : {model(4, 2), model(4, 4)}) {
            (void)spec.kept_pairs(c);
            fuzz::refuse_only_with_errors([&] { spec.validate(c); });
        }
    });
    return 0;
}
