// Tokenizer::encode on arbitrary bytes with real tokenizers: the fixture's byte-level BPE
// (../shared/fixtures) and the architecture references' pipelines (tests/data/arch: SentencePiece-style
// llama2 with byte fallback, llama3's split regex, mistral's Metaspace, qwen2's NFC). The first
// input byte picks the tokenizer. Ids must be in range; the byte-level fixture must decode
// every valid UTF-8 text back to itself (byte-level BPE is lossless and it has no normalizer).
#include "core/tokenizer.h"
#include "fuzz_support.h"

#include <memory>
#include <vector>

using namespace mlawb;

namespace {

struct Loaded {
    Tokenizer tokenizer;
    bool lossless = false;  // decode(encode(x)) == x for valid UTF-8 x
};

const std::vector<std::unique_ptr<Loaded>>& tokenizers() {
    static const std::vector<std::unique_ptr<Loaded>> all = [] {
        std::vector<std::unique_ptr<Loaded>> out;
        auto add = [&](const std::string& path, bool lossless) {
            auto loaded = std::make_unique<Loaded>();
            loaded->tokenizer = Tokenizer::from_file(path);  // a missing fixture aborts the run: no silent skip
            loaded->lossless = lossless;
            out.push_back(std::move(loaded));
        };
        add(fuzz::shared_dir() + "/fixtures/models/wb-tiny-gqa/tokenizer.json", true);
        for (const char* arch : {"llama2", "llama3", "mistral", "qwen2", "smollm"})
            add(std::string(MLAWB_SOURCE_DIR) + "/tests/data/arch/" + arch + "/tokenizer.json", false);
        return out;
    }();
    return all;
}

// Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF), as Python's str.
bool valid_utf8(const std::string& s) {
    for (size_t i = 0; i < s.size();) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        size_t n = 0;
        uint32_t cp = 0;
        if (c < 0x80) {
            ++i;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n >= s.size()) return false;  // continuation bytes s[i+1..i+n] must exist
        for (size_t k = 1; k <= n; ++k) {
            const unsigned char cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        static const uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
        if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += n + 1;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const auto& all = tokenizers();
    const Loaded& pick = *all[data[0] % all.size()];
    const std::string text = fuzz::as_text(data + 1, size - 1);
    fuzz::refuse_only_with_errors([&] {
        const std::vector<int32_t> ids = pick.tokenizer.encode(text);
        for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < pick.tokenizer.vocab_size());
        const std::string back = pick.tokenizer.decode(ids);
        (void)pick.tokenizer.decode_skip_special(ids);
        if (pick.lossless && valid_utf8(text)) FUZZ_CHECK(back == text);
    });
    return 0;
}
