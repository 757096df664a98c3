#include "core/unicode.h"

#include <algorithm>
#include <array>
#include <iterator>
#include <utility>

namespace mlawb::unicode {

namespace {

struct CodePointRange {
    char32_t first;
    char32_t last;  // inclusive
};
struct CombiningClassRange {
    char32_t first;
    char32_t last;  // inclusive
    uint8_t combining_class;
};
struct CanonicalDecomposition {
    char32_t code_point;
    char32_t first;
    char32_t second;  // 0 for a singleton mapping
};
struct CanonicalComposition {
    char32_t first;
    char32_t second;
    char32_t composite;
};

#include "core/unicode_tables.inc"

template <std::size_t N>
bool in_ranges(const CodePointRange (&table)[N], char32_t cp) {
    // First range whose last >= cp; cp is inside iff that range also starts at or before it.
    const CodePointRange* end = table + N;
    const CodePointRange* it = std::lower_bound(
        table, end, cp, [](const CodePointRange& range, char32_t value) { return range.last < value; });
    return it != end && it->first <= cp;
}

// Hangul syllables (Unicode 3.12, "Conjoining Jamo Behavior"): S = SBase + (L * VCount + V) * TCount + T.
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

// Appends the full canonical decomposition of cp (mappings applied recursively).
void decompose(char32_t cp, std::u32string& out) {
    if (cp >= kSBase && cp < kSBase + kSCount) {
        const char32_t s = cp - kSBase;
        out.push_back(kLBase + s / kNCount);
        out.push_back(kVBase + (s % kNCount) / kTCount);
        if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
        return;
    }
    const auto* end = std::end(kCanonicalDecompositions);
    const auto* it = std::lower_bound(std::begin(kCanonicalDecompositions), end, cp,
                                      [](const CanonicalDecomposition& d, char32_t v) { return d.code_point < v; });
    if (it == end || it->code_point != cp) {
        out.push_back(cp);
        return;
    }
    decompose(it->first, out);
    if (it->second != 0) decompose(it->second, out);
}

// The primary composite of the pair, or 0 when they do not compose.
char32_t compose_pair(char32_t first, char32_t second) {
    if (first >= kLBase && first < kLBase + kLCount && second >= kVBase && second < kVBase + kVCount)
        return kSBase + ((first - kLBase) * kVCount + (second - kVBase)) * kTCount;
    if (first >= kSBase && first < kSBase + kSCount && (first - kSBase) % kTCount == 0 && second > kTBase &&
        second < kTBase + kTCount)
        return first + (second - kTBase);
    const auto* end = std::end(kCanonicalCompositions);
    const auto* it = std::lower_bound(std::begin(kCanonicalCompositions), end, std::make_pair(first, second),
                                      [](const CanonicalComposition& c, const std::pair<char32_t, char32_t>& v) {
                                          return c.first != v.first ? c.first < v.first : c.second < v.second;
                                      });
    return it != end && it->first == first && it->second == second ? it->composite : 0;
}

// NFC of a run of well-formed code points, appended to out as UTF-8.
void nfc_run(const std::u32string& run, std::string& out) {
    std::u32string chars;
    chars.reserve(run.size() + 8);
    for (char32_t cp : run) decompose(cp, chars);
    // Canonical ordering: within each maximal run of non-starters, a stable sort by combining
    // class (the runs are a few marks long, so insertion sort).
    for (std::size_t i = 1; i < chars.size(); ++i) {
        const uint8_t cc = combining_class(chars[i]);
        if (cc == 0) continue;
        for (std::size_t j = i; j > 0; --j) {
            const uint8_t before = combining_class(chars[j - 1]);
            if (before == 0 || before <= cc) break;
            std::swap(chars[j - 1], chars[j]);
        }
    }
    // Canonical composition: each character composes with the last starter unless blocked,
    // i.e. unless a character between them has a class of 0 or >= its own.
    std::u32string composed;
    composed.reserve(chars.size());
    std::size_t starter = std::u32string::npos;
    int last_class = -1;  // class of the last character kept after the starter; 0 = the starter itself
    for (char32_t cp : chars) {
        const int cc = combining_class(cp);
        if (starter != std::u32string::npos && (last_class < cc || last_class == 0)) {
            if (const char32_t composite = compose_pair(composed[starter], cp)) {
                composed[starter] = composite;
                continue;
            }
        }
        if (cc == 0) starter = composed.size();
        last_class = cc;
        composed.push_back(cp);
    }
    for (char32_t cp : composed) append_utf8(out, cp);
}

bool is_continuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

constexpr char32_t kFirstShiftedChar = 0x100;  // where GPT-2 puts the unprintable bytes
constexpr char32_t kGpt2AlphabetEnd = 0x144;

struct Gpt2Alphabet {
    std::array<char32_t, 256> byte_to_char{};
    std::array<int16_t, kGpt2AlphabetEnd> char_to_byte{};  // -1 outside the alphabet
};

const Gpt2Alphabet& gpt2_alphabet() {
    static const Gpt2Alphabet alphabet = [] {
        Gpt2Alphabet a;
        a.char_to_byte.fill(-1);
        char32_t next_shifted = kFirstShiftedChar;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
            const char32_t c = printable ? char32_t(b) : next_shifted++;
            a.byte_to_char[b] = c;
            a.char_to_byte[c] = int16_t(b);
        }
        return a;
    }();
    return alphabet;
}

}  // namespace

DecodedChar decode_one(std::string_view text, std::size_t pos) {
    const std::size_t remaining = text.size() - pos;
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[pos + i]); };
    const unsigned char lead = byte(0);
    if (lead < 0x80) return {lead, 1, true};

    // Table 3-7 of the Unicode standard (well-formed UTF-8 byte sequences): the lead byte
    // fixes the length and the allowed range of the *second* byte, which is what excludes
    // overlong forms (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and values past
    // U+10FFFF (F4 90..BF); later bytes are plain continuation bytes 80..BF.
    std::size_t length = 0;
    unsigned char second_min = 0x80, second_max = 0xBF;
    char32_t cp = 0;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
        cp = lead & 0x1F;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        cp = lead & 0x0F;
        if (lead == 0xE0) second_min = 0xA0;
        if (lead == 0xED) second_max = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        cp = lead & 0x07;
        if (lead == 0xF0) second_min = 0x90;
        if (lead == 0xF4) second_max = 0x8F;
    } else {
        // 80..BF (stray continuation), C0, C1 (always overlong), F5..FF (never used).
        return {kReplacementCharacter, 1, false};
    }

    // Consume as long as the bytes could still complete a well-formed sequence; on the
    // first byte that cannot, the bytes consumed so far form the maximal subpart.
    for (std::size_t i = 1; i < length; ++i) {
        if (i >= remaining) return {kReplacementCharacter, i, false};
        const unsigned char next = byte(i);
        const bool allowed = i == 1 ? (next >= second_min && next <= second_max) : is_continuation(next);
        if (!allowed) return {kReplacementCharacter, i, false};
        cp = (cp << 6) | (next & 0x3F);
    }
    return {cp, length, true};
}

DecodedChar decode_before(std::string_view text, std::size_t pos) {
    for (std::size_t length = 1; length <= 4 && length <= pos; ++length) {
        const DecodedChar c = decode_one(text, pos - length);
        if (c.valid && c.length == length) return c;
    }
    return {kReplacementCharacter, 1, false};
}

std::u32string decode_utf8(std::string_view text) {
    std::u32string out;
    out.reserve(text.size());
    for (std::size_t pos = 0; pos < text.size();) {
        const DecodedChar c = decode_one(text, pos);
        out.push_back(c.code_point);
        pos += c.length;
    }
    return out;
}

void append_utf8(std::string& out, char32_t cp) {
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > kMaxCodePoint) cp = kReplacementCharacter;
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

std::string encode_utf8(std::u32string_view code_points) {
    std::string out;
    out.reserve(code_points.size());
    for (char32_t cp : code_points) append_utf8(out, cp);
    return out;
}

bool is_letter(char32_t cp) {
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z');
    return in_ranges(kLetterRanges, cp);
}

bool is_number(char32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return in_ranges(kNumberRanges, cp);
}

bool is_whitespace(char32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    return in_ranges(kWhiteSpaceRanges, cp);
}

char32_t byte_to_gpt2_char(uint8_t byte) { return gpt2_alphabet().byte_to_char[byte]; }

int gpt2_char_to_byte(char32_t cp) { return cp < kGpt2AlphabetEnd ? gpt2_alphabet().char_to_byte[cp] : -1; }

uint8_t combining_class(char32_t cp) {
    if (cp < 0x300) return 0;
    const auto* end = std::end(kCombiningClassRanges);
    const auto* it = std::lower_bound(std::begin(kCombiningClassRanges), end, cp,
                                      [](const CombiningClassRange& r, char32_t v) { return r.last < v; });
    return it != end && it->first <= cp ? it->combining_class : 0;
}

std::string nfc(std::string_view text) {
    // U+0300 is the first code point that decomposes, composes or has a non-zero class
    // (UTF-8 lead byte 0xCC); below it every string is already NFC.
    if (std::none_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) >= 0xCC; }))
        return std::string(text);
    std::string out;
    out.reserve(text.size());
    std::u32string run;
    for (std::size_t pos = 0; pos < text.size();) {
        const DecodedChar c = decode_one(text, pos);
        if (c.valid) {
            run.push_back(c.code_point);
        } else {
            nfc_run(run, out);
            run.clear();
            out.append(text.substr(pos, c.length));
        }
        pos += c.length;
    }
    nfc_run(run, out);
    return out;
}

const char* unicode_version() { return kTablesUnicodeVersion; }

}  // namespace mlawb::unicode
