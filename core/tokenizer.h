// Hugging Face tokenizer.json: byte-level BPE (GPT-2 pre-tokenizer regex, merges, added and
// special tokens), the pipeline SmolLM and our fixture models use. Unknown pipeline
// components are refused with an error naming the component.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mlawb {

class Tokenizer {
public:
    // Throws mlawb::Error naming the file and the field at fault.
    static Tokenizer from_file(const std::string& path);
    Tokenizer();
    ~Tokenizer();
    Tokenizer(Tokenizer&&) noexcept;
    Tokenizer& operator=(Tokenizer&&) noexcept;

    // Text -> ids, exactly as tokenizers' `encode(text, add_special_tokens=False)`
    // for the pipelines we support (added tokens inside the text are matched first).
    std::vector<int32_t> encode(const std::string& text) const;
    // Ids -> text (byte-level decoder); special tokens are kept in the text.
    std::string decode(const std::vector<int32_t>& ids) const;
    // Decode without special added tokens (tokenizers' skip_special_tokens=True).
    std::string decode_skip_special(const std::vector<int32_t>& ids) const;
    bool is_special(int32_t id) const;  // an added token flagged "special"

    int32_t vocab_size() const;                                  // model vocab + added tokens
    std::optional<int32_t> token_to_id(const std::string& token) const;
    std::string id_to_token(int32_t id) const;                   // "" when out of range

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace mlawb
