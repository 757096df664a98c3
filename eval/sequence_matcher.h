// Python's difflib.SequenceMatcher over code points, with isjunk=None and autojunk=True: the
// ratio that fuzzywuzzy's fuzz.ratio computes when python-Levenshtein is absent, which is how
// LongBench's requirements install it (code_sim_score). A port of the algorithm, not of the
// text: the longest matching block (earliest in a, then earliest in b), recursively on both
// sides, with b's "popular" elements removed from the index when len(b) >= 200.
#pragma once

#include <cstddef>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace mlawb {

class SequenceMatcher {
public:
    struct Match {
        size_t a = 0, b = 0, size = 0;  // a[a, a+size) == b[b, b+size)
        bool operator==(const Match& o) const { return a == o.a && b == o.b && size == o.size; }
    };

    SequenceMatcher(std::u32string a, std::u32string b, bool autojunk = true);

    // find_longest_match(alo, ahi, blo, bhi): the longest block of a[alo, ahi) equal to a block
    // of b[blo, bhi), earliest in a, then earliest in b; popular elements never start a block
    // but a found block is extended over equal neighbours (popular ones included).
    Match find_longest_match(size_t alo, size_t ahi, size_t blo, size_t bhi) const;
    // get_matching_blocks(): ascending, adjacent blocks merged, ending with (len(a), len(b), 0).
    std::vector<Match> matching_blocks() const;
    // ratio() = 2 * matched / (len(a) + len(b)); 1.0 when both are empty.
    double ratio() const;
    // Elements of b occurring more than len(b) / 100 + 1 times (only when len(b) >= 200).
    const std::unordered_set<char32_t>& popular() const { return popular_; }

private:
    std::u32string a_, b_;
    std::unordered_map<char32_t, std::vector<size_t>> b2j_;  // element -> ascending positions in b (not popular ones)
    std::unordered_set<char32_t> popular_;
};

// fuzzywuzzy's fuzz.ratio(s1, s2) on UTF-8 strings: 100 when equal, 0 when either is empty,
// else int(round(100 * SequenceMatcher(None, s1, s2).ratio())) with ties rounded to even.
int fuzz_ratio(const std::string& s1, const std::string& s2);

}  // namespace mlawb
