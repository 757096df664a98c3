// The pre-tokenizer regexes of the tokenizer.json files we load, matched by hand-written
// scanners instead of a regex engine: GPT-2's (ByteLevel's built-in split, SmolLM), Llama-3's
// and Qwen2's (Split pre-tokenizers). Each scanner reproduces what Oniguruma, the engine
// tokenizers uses, finds for that exact pattern: leftmost-first alternation, greedy
// quantifiers with backtracking. A pattern that is not one of these is refused by the caller,
// never approximated.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

namespace mlawb::tokenizer_regex {

enum class KnownRegex {
    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    kGpt2,
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    kLlama3,
    // As Llama-3's with \p{N} (one digit per match) in place of \p{N}{1,3}.
    kQwen2,
};

// The scanner for a pattern as written in tokenizer.json (after JSON unescaping); nullopt
// when it is none of the above.
std::optional<KnownRegex> known_regex(std::string_view pattern);
// The pattern text of a known regex (for messages and tests).
const char* pattern_text(KnownRegex regex);

// End (byte offset) of the match that starts at `pos` (pos < text.size()). All three
// patterns match every character, so matches tile the text with no gaps and no empty match.
// Ill-formed UTF-8 bytes count as one character each that is neither letter, number nor
// space (the class of the U+FFFD tokenizers would see after a lossy conversion).
std::size_t match_at(KnownRegex regex, std::string_view text, std::size_t pos);

// Every match in order, as [begin, end) byte offsets; they tile the text.
struct Span {
    std::size_t begin;
    std::size_t end;
};
std::vector<Span> find_all(KnownRegex regex, std::string_view text);

}  // namespace mlawb::tokenizer_regex
