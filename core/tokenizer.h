// Hugging Face tokenizer.json with a BPE model, as the Llama-family checkpoints ship it:
// byte-level files (GPT-2, SmolLM, Llama-3, Qwen2: ByteLevel, Split with their regexes, NFC)
// and SentencePiece-style files (Llama-2's Prepend/Replace normalizer, Mistral's Metaspace,
// byte fallback to <0x..> tokens), added and special tokens included. The supported pipeline
// components are listed in core/tokenizer_pipeline.h; any other component is refused with an
// Error naming the file and the component path.
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
    // Ids -> text through the file's decoder, as tokenizers' `decode(ids)`; special tokens are
    // kept in the text, ids naming no token skipped. Ill-formed UTF-8 that tokenizers would
    // replace by U+FFFD is returned as the raw bytes (see tokenizer_pipeline::Decoder).
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
