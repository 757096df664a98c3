#include "eval/text_normalize.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <locale.h>
#include <string_view>
#include <wctype.h>

namespace mlawb::pytext {

namespace {

// glibc's C.UTF-8 locale (built into glibc >= 2.35) carries the full Unicode ctype tables;
// it is opened once and used through the *_l functions, so the process locale is untouched.
locale_t unicode_ctype() {
    static const locale_t locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
    if (!locale)
        throw Error("", "C.UTF-8", "glibc's C.UTF-8 locale is unavailable; non-ASCII text cannot be classified");
    return locale;
}

bool is_ascii(char32_t c) { return c < 0x80; }

bool is_ascii_alnum(char32_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool is_cased(char32_t c) {
    if (is_ascii(c)) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    return iswupper_l(static_cast<wint_t>(c), unicode_ctype()) || iswlower_l(static_cast<wint_t>(c), unicode_ctype());
}

char32_t lower_simple(char32_t c) {
    if (is_ascii(c)) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    return static_cast<char32_t>(towlower_l(static_cast<wint_t>(c), unicode_ctype()));
}

// string.punctuation: !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~
bool is_python_punctuation(char32_t c) {
    static constexpr std::string_view punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    return is_ascii(c) && punctuation.find(static_cast<char>(c)) != std::string_view::npos;
}

bool starts_with_at(const std::u32string& text, size_t pos, const std::u32string& word) {
    return text.compare(pos, word.size(), word) == 0;
}

// Unicode 14.0 category Nd (Python 3.11's unicodedata), as inclusive ranges.
constexpr std::pair<char32_t, char32_t> kDecimalDigitRanges[] = {
    {0x30, 0x39},       {0x660, 0x669},     {0x6F0, 0x6F9},     {0x7C0, 0x7C9},     {0x966, 0x96F},
    {0x9E6, 0x9EF},     {0xA66, 0xA6F},     {0xAE6, 0xAEF},     {0xB66, 0xB6F},     {0xBE6, 0xBEF},
    {0xC66, 0xC6F},     {0xCE6, 0xCEF},     {0xD66, 0xD6F},     {0xDE6, 0xDEF},     {0xE50, 0xE59},
    {0xED0, 0xED9},     {0xF20, 0xF29},     {0x1040, 0x1049},   {0x1090, 0x1099},   {0x17E0, 0x17E9},
    {0x1810, 0x1819},   {0x1946, 0x194F},   {0x19D0, 0x19D9},   {0x1A80, 0x1A89},   {0x1A90, 0x1A99},
    {0x1B50, 0x1B59},   {0x1BB0, 0x1BB9},   {0x1C40, 0x1C49},   {0x1C50, 0x1C59},   {0xA620, 0xA629},
    {0xA8D0, 0xA8D9},   {0xA900, 0xA909},   {0xA9D0, 0xA9D9},   {0xA9F0, 0xA9F9},   {0xAA50, 0xAA59},
    {0xABF0, 0xABF9},   {0xFF10, 0xFF19},   {0x104A0, 0x104A9}, {0x10D30, 0x10D39}, {0x11066, 0x1106F},
    {0x110F0, 0x110F9}, {0x11136, 0x1113F}, {0x111D0, 0x111D9}, {0x112F0, 0x112F9}, {0x11450, 0x11459},
    {0x114D0, 0x114D9}, {0x11650, 0x11659}, {0x116C0, 0x116C9}, {0x11730, 0x11739}, {0x118E0, 0x118E9},
    {0x11950, 0x11959}, {0x11C50, 0x11C59}, {0x11D50, 0x11D59}, {0x11DA0, 0x11DA9}, {0x16A60, 0x16A69},
    {0x16AC0, 0x16AC9}, {0x16B50, 0x16B59}, {0x1D7CE, 0x1D7FF}, {0x1E140, 0x1E149}, {0x1E2F0, 0x1E2F9},
    {0x1E950, 0x1E959}, {0x1FBF0, 0x1FBF9},
};

}  // namespace

std::u32string decode_utf8(const std::string& text) {
    std::u32string out;
    out.reserve(text.size());
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    const size_t n = text.size();
    for (size_t i = 0; i < n;) {
        const unsigned char lead = s[i];
        size_t extra = lead < 0x80 ? 0 : (lead >> 5) == 0x6 ? 1 : (lead >> 4) == 0xE ? 2 : (lead >> 3) == 0x1E ? 3 : 4;
        char32_t c = extra == 0 ? lead : extra == 1 ? (lead & 0x1F) : extra == 2 ? (lead & 0x0F) : (lead & 0x07);
        bool valid = extra < 4 && i + extra < n;
        for (size_t k = 1; valid && k <= extra; ++k) {
            if ((s[i + k] & 0xC0) != 0x80) valid = false;
            else c = (c << 6) | (s[i + k] & 0x3F);
        }
        if (!valid) {
            out.push_back(0xFFFD);
            ++i;
            continue;
        }
        out.push_back(c);
        i += extra + 1;
    }
    return out;
}

std::string encode_utf8(const std::u32string& text) {
    std::string out;
    out.reserve(text.size());
    for (char32_t c : text) {
        if (c < 0x80) {
            out.push_back(static_cast<char>(c));
        } else if (c < 0x800) {
            out.push_back(static_cast<char>(0xC0 | (c >> 6)));
            out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
        } else if (c < 0x10000) {
            out.push_back(static_cast<char>(0xE0 | (c >> 12)));
            out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
        } else {
            out.push_back(static_cast<char>(0xF0 | (c >> 18)));
            out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
        }
    }
    return out;
}

bool is_whitespace(char32_t c) {
    switch (c) {
        case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D:
        case 0x1C: case 0x1D: case 0x1E: case 0x1F: case 0x20:
        case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
        case 0x202F: case 0x205F: case 0x3000:
            return true;
        default:
            return c >= 0x2000 && c <= 0x200A;
    }
}

bool is_decimal_digit(char32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    for (const auto& [first, last] : kDecimalDigitRanges)
        if (c >= first && c <= last) return true;
    return false;
}

bool is_word_char(char32_t c) {
    if (is_ascii(c)) return is_ascii_alnum(c) || c == '_';
    return iswalnum_l(static_cast<wint_t>(c), unicode_ctype()) != 0;
}

std::vector<std::u32string> split_whitespace(const std::u32string& text) {
    std::vector<std::u32string> words;
    size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && is_whitespace(text[i])) ++i;
        const size_t start = i;
        while (i < text.size() && !is_whitespace(text[i])) ++i;
        if (i > start) words.push_back(text.substr(start, i - start));
    }
    return words;
}

std::vector<std::u32string> split_on(const std::u32string& text, char32_t separator) {
    std::vector<std::u32string> pieces;
    size_t start = 0;
    for (size_t i = 0; i <= text.size(); ++i) {
        if (i == text.size() || text[i] == separator) {
            pieces.push_back(text.substr(start, i - start));
            start = i + 1;
        }
    }
    return pieces;
}

std::u32string lower(const std::u32string& text) {
    std::u32string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        const char32_t c = text[i];
        if (c == 0x130) {  // LATIN CAPITAL LETTER I WITH DOT ABOVE: full mapping is two code points
            out.push_back(U'i');
            out.push_back(0x307);
        } else if (c == 0x3A3) {  // GREEK CAPITAL SIGMA: final form at the end of a word
            const bool after_cased = i > 0 && is_cased(text[i - 1]);
            const bool before_cased = i + 1 < text.size() && is_cased(text[i + 1]);
            out.push_back(after_cased && !before_cased ? 0x3C2 : 0x3C3);
        } else {
            out.push_back(lower_simple(c));
        }
    }
    return out;
}

std::vector<std::u32string> digit_runs(const std::u32string& text) {
    std::vector<std::u32string> runs;
    size_t i = 0;
    while (i < text.size()) {
        if (!is_decimal_digit(text[i])) {
            ++i;
            continue;
        }
        const size_t start = i;
        while (i < text.size() && is_decimal_digit(text[i])) ++i;
        runs.push_back(text.substr(start, i - start));
    }
    return runs;
}

std::u32string first_number_after(const std::u32string& text, const std::u32string& prefix) {
    // The regex engine tries each start position in turn; the first one where the prefix is
    // followed by at least one digit is the first match.
    for (size_t pos = text.find(prefix); pos != std::u32string::npos; pos = text.find(prefix, pos + 1)) {
        size_t end = pos + prefix.size();
        while (end < text.size() && is_decimal_digit(text[end])) ++end;
        if (end > pos + prefix.size()) return text.substr(pos + prefix.size(), end - pos - prefix.size());
    }
    return {};
}

std::u32string normalize_answer(const std::string& text) {
    std::u32string lowered = lower(decode_utf8(text));
    std::u32string no_punctuation;
    no_punctuation.reserve(lowered.size());
    for (char32_t c : lowered)
        if (!is_python_punctuation(c)) no_punctuation.push_back(c);

    // re.sub(r"\b(a|an|the)\b", " ", text): the alternatives are tried in order at each word
    // boundary, and the boundaries are those of the text before substitution.
    const std::u32string& t = no_punctuation;
    auto is_word_at = [&](size_t i) { return i < t.size() && is_word_char(t[i]); };
    auto boundary_at = [&](size_t i) { return (i > 0 && is_word_char(t[i - 1])) != is_word_at(i); };
    static const std::u32string articles[] = {U"a", U"an", U"the"};
    std::u32string no_articles;
    no_articles.reserve(t.size());
    for (size_t i = 0; i < t.size();) {
        bool replaced = false;
        if (boundary_at(i)) {
            for (const std::u32string& article : articles) {
                if (starts_with_at(t, i, article) && boundary_at(i + article.size())) {
                    no_articles.push_back(U' ');
                    i += article.size();
                    replaced = true;
                    break;
                }
            }
        }
        if (!replaced) no_articles.push_back(t[i++]);
    }

    std::u32string joined;
    for (const std::u32string& word : split_whitespace(no_articles)) {
        if (!joined.empty()) joined.push_back(U' ');
        joined += word;
    }
    return joined;
}

std::string first_line(const std::string& text) {
    const size_t start = text.find_first_not_of('\n');
    if (start == std::string::npos) return "";
    const size_t end = text.find('\n', start);
    return text.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

double round_half_even(double x, int ndigits) {
    if (!std::isfinite(x)) return x;
    // glibc's printf converts the exact binary value and rounds ties to even, as Python's
    // round() does through its correctly rounded dtoa; strtod returns the nearest double.
    char buffer[512];
    std::snprintf(buffer, sizeof buffer, "%.*f", ndigits, x);
    return std::strtod(buffer, nullptr);
}

}  // namespace mlawb::pytext
