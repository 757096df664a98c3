// The stages of a tokenizer.json pipeline around the BPE model, as tokenizers (the Rust
// library) runs them for `encode(text, add_special_tokens=False)` and `decode(ids)`:
//
//   text -> added tokens split out -> normalizer -> pre-tokenizer -> model -> ids
//   ids -> vocabulary strings -> decoder -> text
//
// Supported components (everything else is refused with an Error naming the tokenizer.json
// and the component path, e.g. "normalizer.normalizers[1].type: unsupported normalizer 'NFKC'"):
//   normalizer     NFC, Prepend, Replace (string pattern), Sequence          (Qwen2; Llama-2)
//   pre_tokenizer  ByteLevel (last), Split (string pattern, or the GPT-2 / Llama-3 / Qwen2
//                  regex; every behavior, invert), Metaspace, Digits, Sequence
//   decoder        ByteLevel, Replace (string pattern), ByteFallback, Fuse, Strip, Metaspace,
//                  Sequence; null joins the tokens with spaces as tokenizers does
// Internal to core (tokenizer.cpp and the tests); no public header includes it.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/tokenizer_regex.h"

namespace mlawb::tokenizer_pipeline {

// Where the component being parsed sits, for errors: the file and the JSON path of the
// component ("pre_tokenizer.pretokenizers[0]"); fail() throws mlawb::Error(file, path + key).
struct Where {
    const std::string& file;
    std::string path;

    Where at(const std::string& key) const;            // path + "." + key
    Where index(std::size_t i) const;                  // path + "[i]"
    [[noreturn]] void fail(const std::string& key, const std::string& message) const;
};

// Metaspace's prepend_scheme: where the replacement character is put in front of a piece.
enum class PrependScheme { kAlways, kFirst, kNever };

// How a Split pattern's matches become pieces (tokenizers' SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Span {
    std::size_t begin;
    std::size_t end;
    bool is_match;
};

// Pieces after applying `behavior` to matches and the gaps between them (they tile the text
// in order), exactly as tokenizers' NormalizedString::split; with `invert` the gaps act as
// the matches. Empty pieces are dropped.
std::vector<Span> apply_behavior(std::vector<Span> tiles, SplitBehavior behavior, bool invert);

class Normalizer {
public:
    // `component` is the tokenizer.json "normalizer" value; null means none.
    static Normalizer from_json(const nlohmann::json& component, const Where& where);
    bool is_identity() const { return steps_.empty(); }
    std::string apply(std::string text) const;

private:
    struct Step {
        enum class Kind { kNfc, kPrepend, kReplace } kind;
        std::string pattern;  // Replace: the literal searched for
        std::string content;  // Prepend: the prefix; Replace: the replacement
    };
    void add(const nlohmann::json& component, const Where& where);
    std::vector<Step> steps_;
};

class PreTokenizer {
public:
    // `component` is the tokenizer.json "pre_tokenizer" value; null means the whole
    // normalized text is one word (Llama-2).
    static PreTokenizer from_json(const nlohmann::json& component, const Where& where);

    // Splits one normalized piece of the input into words for the model. `at_start` says the
    // piece begins at offset 0 of the input (Metaspace's prepend_scheme "first"). Words are
    // UTF-8 text, or with byte_level() the raw bytes whose byte-alphabet characters the model
    // looks up.
    void split(std::string_view text, bool at_start, const std::function<void(std::string_view)>& on_word) const;
    bool byte_level() const { return byte_level_; }

private:
    struct Step {
        enum class Kind { kSplit, kMetaspace, kDigits } kind;
        // Split
        bool regex = false;
        tokenizer_regex::KnownRegex known = tokenizer_regex::KnownRegex::kGpt2;
        std::string literal;
        SplitBehavior behavior = SplitBehavior::kIsolated;
        bool invert = false;
        // Metaspace
        std::string replacement;  // one character, UTF-8
        PrependScheme prepend = PrependScheme::kAlways;
        bool metaspace_split = true;
        // Digits
        bool individual = false;
    };
    struct Piece {
        std::string text;
        bool at_start;
    };
    void add(const nlohmann::json& component, const Where& where, bool last);
    void apply(const Step& step, Piece& piece, std::vector<Piece>& out) const;

    std::vector<Step> steps_;
    // A final ByteLevel: words are bytes; optionally a space is prepended to every piece that
    // lacks one and the GPT-2 regex splits it.
    bool byte_level_ = false;
    bool add_prefix_space_ = false;
    bool use_regex_ = false;
};

class Decoder {
public:
    // `component` is the tokenizer.json "decoder" value; null joins tokens with " ".
    static Decoder from_json(const nlohmann::json& component, const Where& where);

    // Vocabulary strings -> text. Where tokenizers would replace ill-formed UTF-8 by U+FFFD
    // (ByteLevel's lossy conversion, ByteFallback's invalid byte runs), the raw bytes are kept
    // instead, so text with invalid bytes round-trips and ids decoded one by one join into the
    // same bytes; on well-formed output the two agree.
    std::string decode(std::vector<std::string> tokens) const;

private:
    struct Step {
        enum class Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace } kind;
        std::string pattern, content;  // Replace; Strip's content; Metaspace's replacement
        std::size_t start = 0, stop = 0;  // Strip: characters removed at most at each end
        PrependScheme prepend = PrependScheme::kAlways;  // Metaspace
    };
    void add(const nlohmann::json& component, const Where& where);
    std::vector<Step> steps_;
    bool join_with_spaces_ = false;  // null decoder
};

}  // namespace mlawb::tokenizer_pipeline
