// tokenizer.json: Tokenizer::from_file on arbitrary bytes (written to a tmpfs file, as the
// reader only takes a path), then a few encodes and decodes with whatever it accepted.
#include "core/tokenizer.h"
#include "fuzz_support.h"

#include <fstream>
#include <unistd.h>

using namespace mlawb;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::string path = "/dev/shm/mlawb-fuzz-tokenizer-" + std::to_string(::getpid()) + ".json";
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    fuzz::refuse_only_with_errors([&] {
        const Tokenizer tokenizer = Tokenizer::from_file(path);
        const int32_t vocab = tokenizer.vocab_size();
        FUZZ_CHECK(vocab >= 0);
        for (const char* text : {"", "Hello world", " the  quick\nbrown fox's 1234 caf\xc3\xa9 \xe2\x96\x81x",
                                 "<|endoftext|><s></s>", "\xff\xfe invalid \xc3"}) {
            const std::vector<int32_t> ids = tokenizer.encode(text);
            for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < vocab);
            (void)tokenizer.decode(ids);
            (void)tokenizer.decode_skip_special(ids);
        }
        for (int32_t id : {-1, 0, 1, vocab - 1, vocab}) {
            (void)tokenizer.id_to_token(id);
            (void)tokenizer.is_special(id);
        }
        (void)tokenizer.token_to_id("hello");
        (void)tokenizer.decode({-5, 0, vocab, vocab + 7});
    });
    ::unlink(path.c_str());
    return 0;
}
