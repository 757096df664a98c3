// Python-compatible text primitives for the LongBench metrics. The official metrics are Python
// code over `str`, i.e. over Unicode code points: lengths, whitespace splitting, lowercasing,
// `\d` and `\b` follow Python 3's Unicode rules, not bytes and not the C locale. Each function
// names the Python expression it reproduces.
#pragma once

#include <string>
#include <vector>

namespace mlawb::pytext {

// UTF-8 <-> code points. Invalid UTF-8 bytes decode to U+FFFD (input from nlohmann::json is
// already valid UTF-8).
std::u32string decode_utf8(const std::string& text);
std::string encode_utf8(const std::u32string& text);

// Characters that str.split() (no argument) splits on: Py_UNICODE_ISSPACE.
bool is_whitespace(char32_t c);
// `\d` of Python's re for str patterns: Unicode general category Nd (Unicode 14.0 table).
bool is_decimal_digit(char32_t c);
// `\w` of Python's re for str patterns (letters, digits, numerics, '_'). ASCII is exact; beyond
// ASCII it asks glibc's C.UTF-8 classification, which differs from Python only for combining
// marks, some numeric symbols (superscripts, fractions) and a few other symbols.
bool is_word_char(char32_t c);

// str.split(): runs of whitespace separate words; no empty words.
std::vector<std::u32string> split_whitespace(const std::u32string& text);
// str.split(sep) with a one-character separator: keeps empty pieces ("a..b" -> a, "", b).
std::vector<std::u32string> split_on(const std::u32string& text, char32_t separator);
// str.lower(): simple lowercase mappings (glibc C.UTF-8 tables, which agree with Python 3.11
// for every code point but one), U+0130 -> "i" + U+0307 as SpecialCasing says, and the
// final-sigma rule (a capital sigma after a cased letter and not before one becomes U+03C2).
std::u32string lower(const std::u32string& text);
// re.findall(r"\d+", text).
std::vector<std::u32string> digit_runs(const std::u32string& text);
// re.findall(prefix + r"(\d+)", text)[0] when there is a match; empty otherwise.
std::u32string first_number_after(const std::u32string& text, const std::u32string& prefix);

// LongBench's normalize_answer (from SQuAD): lower(), drop every character of Python's
// string.punctuation (the 32 ASCII punctuation marks), replace the words a/an/the (regex
// \b(a|an|the)\b) by a space, then " ".join(text.split()). Returns code points.
std::u32string normalize_answer(const std::string& text);

// LongBench's post-processing for trec, triviaqa, samsum and lsht:
// prediction.lstrip('\n').split('\n')[0].
std::string first_line(const std::string& text);

// Python's round(x, ndigits) for floats: the decimal nearest to the exact binary value, ties to
// even (0.125 -> 0.12), returned as the nearest double.
double round_half_even(double x, int ndigits);

}  // namespace mlawb::pytext
