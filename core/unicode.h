// The little Unicode the tokenizer needs, without an external library: UTF-8 decoding and
// encoding, the character classes of the pre-tokenizer regexes (\p{L}, \p{N}, \s) and NFC
// normalization (Qwen2's normalizer). The data come from compact sorted tables generated
// from Python's unicodedata by scripts/gen_unicode_tables.py (see unicode_version()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mlawb::unicode {

constexpr char32_t kReplacementCharacter = 0xFFFD;
constexpr char32_t kMaxCodePoint = 0x10FFFF;

// One step of UTF-8 decoding.
struct DecodedChar {
    char32_t code_point;  // U+FFFD when !valid
    std::size_t length;   // bytes consumed, always >= 1
    bool valid;
};

// Decodes the character starting at text[pos] (pos < text.size()).
// Invalid input never causes UB: an ill-formed sequence yields {U+FFFD, n, false} where n
// is the length of its "maximal subpart" (the longest prefix that could start a well-formed
// sequence, at least 1 byte) -- the W3C/WHATWG practice that Python's
// `bytes.decode(errors="replace")` and Rust's `String::from_utf8_lossy` also follow, so
// decode_utf8 below yields the same replacement characters as they do. Overlong forms,
// surrogates (ED A0..BF) and code points above U+10FFFF are ill-formed.
DecodedChar decode_one(std::string_view text, std::size_t pos);

// The character that ends at text[pos - 1] (0 < pos <= text.size()), for scanning
// backwards; {U+FFFD, 1, false} when no well-formed character ends there.
DecodedChar decode_before(std::string_view text, std::size_t pos);

// Whole-string decoding with the replacement policy of decode_one.
std::u32string decode_utf8(std::string_view text);

// Appends the UTF-8 form of cp; surrogates and values above U+10FFFF are written as U+FFFD.
void append_utf8(std::string& out, char32_t cp);
std::string encode_utf8(std::u32string_view code_points);

// \p{L}: general categories Lu, Ll, Lt, Lm, Lo.
bool is_letter(char32_t cp);
// \p{N}: general categories Nd, Nl, No (also what Rust's char::is_numeric accepts).
bool is_number(char32_t cp);
// \s as Oniguruma and Rust's regex read it in Unicode mode: the White_Space property
// (TAB..CR, space, NEL, NBSP, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F,
// U+3000). This is also Rust's char::is_whitespace.
bool is_whitespace(char32_t cp);

// GPT-2's bytes_to_unicode (openai/gpt-2 encoder.py; tokenizers' ByteLevel uses the same
// table): bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for the code point of the same
// value, the other 68 bytes map in order to U+0100..U+0143 ("Ġ" = U+0120 is the space),
// so byte-level vocabulary tokens hold no raw spaces or control characters.
char32_t byte_to_gpt2_char(uint8_t byte);
// The byte a character of that alphabet stands for; -1 for characters outside it.
int gpt2_char_to_byte(char32_t cp);

// Canonical_Combining_Class (0 for starters and for code points outside Unicode).
uint8_t combining_class(char32_t cp);

// Normalization Form C (Unicode Standard Annex #15): canonical decomposition, canonical
// ordering of combining marks, then canonical composition (composition exclusions honoured,
// Hangul syllables composed algorithmically). Ill-formed UTF-8 bytes are kept as they are and
// act as starters that never compose, so text with invalid bytes still round-trips around
// them. Text whose code points are all below U+0300 is returned unchanged without work.
std::string nfc(std::string_view text);

// The Unicode version the tables were generated from, e.g. "14.0.0".
const char* unicode_version();

}  // namespace mlawb::unicode
