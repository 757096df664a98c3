// The 2-norm scores JSON (`mlawb rope-scores --out`, scores=FILE): RopeScores::from_json_text
// on arbitrary bytes. What it accepts must be usable as the strategies use it (top_pairs,
// combine for both variants) and must survive to_json_text + from_json_text unchanged.
#include "analysis/rope_scores.h"
#include "fuzz_support.h"

using namespace mlawb;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::refuse_only_with_errors([&] {
        RopeScores s = RopeScores::from_json_text(fuzz::as_text(data, size), "scores.json");
        const int64_t cells = s.n_layer * s.n_kv_head * s.n_pairs;
        FUZZ_CHECK(static_cast<int64_t>(s.scores.size()) == cells);
        FUZZ_CHECK(static_cast<int64_t>(s.k_norms.size()) == cells);
        FUZZ_CHECK(static_cast<int64_t>(s.q_norms.size()) == s.n_layer * s.n_head * s.n_pairs);

        const RopeScores back = RopeScores::from_json_text(s.to_json_text(), "scores.json (written back)");
        FUZZ_CHECK(back.variant == s.variant && back.scores == s.scores && back.q_norms == s.q_norms &&
                   back.k_norms == s.k_norms);
        FUZZ_CHECK(back.provenance.model == s.provenance.model && back.provenance.text_file == s.provenance.text_file &&
                   back.provenance.windows == s.provenance.windows && back.provenance.seq_len == s.provenance.seq_len &&
                   back.provenance.tokens == s.provenance.tokens);

        for (int64_t l = 0; l < s.n_layer; ++l)
            for (int64_t g = 0; g < s.n_kv_head; ++g) {
                const std::vector<int64_t> top = s.top_pairs(l, g, 1 + (l + g) % s.n_pairs);
                for (int64_t k : top) FUZZ_CHECK(k >= 0 && k < s.n_pairs);
            }
        for (const std::string& variant : RopeScores::variant_names()) {
            s.combine(variant);
            FUZZ_CHECK(static_cast<int64_t>(s.scores.size()) == cells);
        }
    });
    return 0;
}
