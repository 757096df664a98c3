#include "core/tokenizer_regex.h"

#include <cstdint>

#include "core/unicode.h"

namespace mlawb::tokenizer_regex {

namespace {

constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

enum class CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };

struct Char {
    CharClass cls;
    std::size_t length;  // bytes
    char32_t cp;         // U+FFFD for an ill-formed byte
};

// The character at text[pos]; past the end: an "other" character of length 0, which no
// class test below accepts as letter, number or space.
Char char_at(std::string_view text, std::size_t pos) {
    if (pos >= text.size()) return {CharClass::kOther, 0, 0};
    const unicode::DecodedChar c = unicode::decode_one(text, pos);
    CharClass cls = CharClass::kOther;
    if (c.valid) {
        if (unicode::is_letter(c.code_point)) cls = CharClass::kLetter;
        else if (unicode::is_number(c.code_point)) cls = CharClass::kNumber;
        else if (unicode::is_whitespace(c.code_point)) cls = CharClass::kSpace;
    }
    return {cls, c.length, c.valid ? c.code_point : unicode::kReplacementCharacter};
}

// End of the run of characters of class `cls` from pos; *last_start (when given) gets the
// start of the run's last character.
std::size_t run_end(std::string_view text, std::size_t pos, CharClass cls, std::size_t* last_start = nullptr) {
    while (pos < text.size()) {
        const Char c = char_at(text, pos);
        if (c.cls != cls) break;
        if (last_start) *last_start = pos;
        pos += c.length;
    }
    return pos;
}

bool is_cr_lf(char32_t cp) { return cp == '\r' || cp == '\n'; }

// \s+(?!\S) then \s+ at a whitespace character: the whole run at the end of the text, or
// all but its last character before a non-space (which may then join the word after it, the
// reason GPT-2 tokens start with "Ġ"); a single space before a non-space is the plain \s+.
std::size_t whitespace_tail(std::string_view text, std::size_t pos) {
    std::size_t last_start = pos;
    const std::size_t end = run_end(text, pos, CharClass::kSpace, &last_start);
    return (end < text.size() && last_start > pos) ? last_start : end;
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
std::size_t match_gpt2(std::string_view text, std::size_t pos) {
    const std::size_t n = text.size();
    const auto byte = [&](std::size_t i) -> unsigned char { return i < n ? static_cast<unsigned char>(text[i]) : 0; };
    if (byte(pos) == '\'') {  // the contractions, case-sensitive as in the pattern
        const unsigned char a = byte(pos + 1), b = byte(pos + 2);
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return pos + 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return pos + 3;
    }
    // " ?X+" for X in letters, numbers, other: one literal U+0020 may lead the run; if the
    // next character cannot start a run, the space falls to the \s branches.
    const std::size_t first = (byte(pos) == ' ' && pos + 1 < n) ? pos + 1 : pos;
    const CharClass cls = char_at(text, first).cls;
    if (cls != CharClass::kSpace) return run_end(text, first, cls);
    return whitespace_tail(text, pos);
}

// ASCII case folding plus U+017F LATIN SMALL LETTER LONG S, which Unicode case folding maps
// to 's' (no other non-ASCII character folds to one of s, t, r, e, v, m, l, d).
char32_t fold(char32_t cp) {
    if (cp >= 'A' && cp <= 'Z') return cp + ('a' - 'A');
    if (cp == 0x17F) return 's';
    return cp;
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
//  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
std::size_t match_llama3(std::string_view text, std::size_t pos, int max_digits) {
    const Char c0 = char_at(text, pos);
    const std::size_t after0 = pos + c0.length;
    // 1. Contractions, case-insensitive.
    if (c0.cp == '\'') {
        const Char c1 = char_at(text, after0);
        const char32_t f1 = fold(c1.cp);
        if (f1 == 's' || f1 == 't' || f1 == 'm' || f1 == 'd') return after0 + c1.length;
        if (f1 == 'r' || f1 == 'v' || f1 == 'l') {
            const Char c2 = char_at(text, after0 + c1.length);
            if (fold(c2.cp) == (f1 == 'l' ? U'l' : U'e')) return after0 + c1.length + c2.length;
        }
    }
    // 2. [^\r\n\p{L}\p{N}]?\p{L}+: letters, led by at most one character that is neither a
    // letter, a number nor CR/LF (a space, a tab, punctuation); the optional lead is tried first.
    if (c0.cls == CharClass::kLetter) return run_end(text, pos, CharClass::kLetter);
    if (c0.cls != CharClass::kNumber && !is_cr_lf(c0.cp) && char_at(text, after0).cls == CharClass::kLetter)
        return run_end(text, after0, CharClass::kLetter);
    // 3. \p{N}{1,max_digits}.
    if (c0.cls == CharClass::kNumber) {
        std::size_t end = pos;
        for (int i = 0; i < max_digits; ++i) {
            const Char c = char_at(text, end);
            if (c.cls != CharClass::kNumber) break;
            end += c.length;
        }
        return end;
    }
    // 4.  ?[^\s\p{L}\p{N}]+[\r\n]*: punctuation and symbols, led by at most one U+0020 and
    // followed by any line breaks.
    std::size_t first = pos;
    if (c0.cp == ' ' && char_at(text, after0).cls == CharClass::kOther && after0 < text.size()) first = after0;
    if (char_at(text, first).cls == CharClass::kOther) {
        std::size_t end = run_end(text, first, CharClass::kOther);
        while (end < text.size() && is_cr_lf(static_cast<unsigned char>(text[end]))) ++end;
        return end;
    }
    // What is left starts with whitespace.
    // 5. \s*[\r\n]+: \s* backtracks to the last CR/LF of the whitespace run, which [\r\n]+
    // then takes (the characters after it in the run are not CR/LF).
    std::size_t last_break = std::string_view::npos;
    for (std::size_t p = pos; p < text.size();) {
        const Char c = char_at(text, p);
        if (c.cls != CharClass::kSpace) break;
        if (is_cr_lf(c.cp)) last_break = p;
        p += c.length;
    }
    if (last_break != std::string_view::npos) return last_break + 1;
    // 6. and 7. \s+(?!\S)|\s+.
    return whitespace_tail(text, pos);
}

}  // namespace

std::optional<KnownRegex> known_regex(std::string_view pattern) {
    for (KnownRegex regex : {KnownRegex::kGpt2, KnownRegex::kLlama3, KnownRegex::kQwen2})
        if (pattern == pattern_text(regex)) return regex;
    return std::nullopt;
}

const char* pattern_text(KnownRegex regex) {
    switch (regex) {
        case KnownRegex::kGpt2: return kGpt2Pattern;
        case KnownRegex::kLlama3: return kLlama3Pattern;
        case KnownRegex::kQwen2: return kQwen2Pattern;
    }
    return "";
}

std::size_t match_at(KnownRegex regex, std::string_view text, std::size_t pos) {
    switch (regex) {
        case KnownRegex::kGpt2: return match_gpt2(text, pos);
        case KnownRegex::kLlama3: return match_llama3(text, pos, 3);
        case KnownRegex::kQwen2: return match_llama3(text, pos, 1);
    }
    return text.size();
}

std::vector<Span> find_all(KnownRegex regex, std::string_view text) {
    std::vector<Span> spans;
    for (std::size_t pos = 0; pos < text.size();) {
        const std::size_t end = match_at(regex, text, pos);
        spans.push_back({pos, end});
        pos = end;
    }
    return spans;
}

}  // namespace mlawb::tokenizer_regex
