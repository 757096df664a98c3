#include "eval/sequence_matcher.h"

#include "eval/text_normalize.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

namespace mlawb {

SequenceMatcher::SequenceMatcher(std::u32string a, std::u32string b, bool autojunk) : a_(std::move(a)), b_(std::move(b)) {
    for (size_t j = 0; j < b_.size(); ++j) b2j_[b_[j]].push_back(j);
    // difflib's autojunk heuristic: in a b of 200 or more elements, an element seen more than
    // len(b) // 100 + 1 times is "popular" and dropped from the index (but not marked junk).
    if (autojunk && b_.size() >= 200) {
        const size_t threshold = b_.size() / 100 + 1;
        for (const auto& [element, positions] : b2j_)
            if (positions.size() > threshold) popular_.insert(element);
        for (char32_t element : popular_) b2j_.erase(element);
    }
}

SequenceMatcher::Match SequenceMatcher::find_longest_match(size_t alo, size_t ahi, size_t blo, size_t bhi) const {
    Match best{alo, blo, 0};
    // run_before[j + 1] = length of the match ending at a[i - 1], b[j] (difflib's j2len for the
    // previous row); run_now is the row being built. Only touched entries are reset.
    std::vector<size_t> run_before(b_.size() + 1, 0), run_now(b_.size() + 1, 0);
    std::vector<size_t> touched_before, touched_now;
    for (size_t i = alo; i < ahi; ++i) {
        auto found = b2j_.find(a_[i]);
        if (found != b2j_.end()) {
            for (size_t j : found->second) {
                if (j < blo) continue;
                if (j >= bhi) break;
                const size_t k = run_before[j] + 1;
                run_now[j + 1] = k;
                touched_now.push_back(j + 1);
                if (k > best.size) best = Match{i + 1 - k, j + 1 - k, k};
            }
        }
        for (size_t index : touched_before) run_before[index] = 0;
        std::swap(run_before, run_now);
        std::swap(touched_before, touched_now);
        touched_now.clear();
    }
    // No element is junk (isjunk=None), so difflib's extension over non-junk neighbours is the
    // one that applies; it also crosses popular elements, which are not junk.
    while (best.a > alo && best.b > blo && a_[best.a - 1] == b_[best.b - 1]) {
        --best.a;
        --best.b;
        ++best.size;
    }
    while (best.a + best.size < ahi && best.b + best.size < bhi && a_[best.a + best.size] == b_[best.b + best.size])
        ++best.size;
    return best;
}

std::vector<SequenceMatcher::Match> SequenceMatcher::matching_blocks() const {
    struct Range {
        size_t alo, ahi, blo, bhi;
    };
    std::vector<Range> pending{{0, a_.size(), 0, b_.size()}};
    std::vector<Match> blocks;
    while (!pending.empty()) {
        const Range r = pending.back();
        pending.pop_back();
        const Match m = find_longest_match(r.alo, r.ahi, r.blo, r.bhi);
        if (m.size == 0) continue;
        blocks.push_back(m);
        if (r.alo < m.a && r.blo < m.b) pending.push_back({r.alo, m.a, r.blo, m.b});
        if (m.a + m.size < r.ahi && m.b + m.size < r.bhi) pending.push_back({m.a + m.size, r.ahi, m.b + m.size, r.bhi});
    }
    std::sort(blocks.begin(), blocks.end(),
              [](const Match& x, const Match& y) { return std::tie(x.a, x.b, x.size) < std::tie(y.a, y.b, y.size); });
    std::vector<Match> merged;
    Match run{0, 0, 0};
    for (const Match& m : blocks) {
        if (run.a + run.size == m.a && run.b + run.size == m.b) {
            run.size += m.size;
        } else {
            if (run.size) merged.push_back(run);
            run = m;
        }
    }
    if (run.size) merged.push_back(run);
    merged.push_back(Match{a_.size(), b_.size(), 0});
    return merged;
}

double SequenceMatcher::ratio() const {
    size_t matched = 0;
    for (const Match& m : matching_blocks()) matched += m.size;
    const size_t length = a_.size() + b_.size();
    return length ? 2.0 * static_cast<double>(matched) / static_cast<double>(length) : 1.0;
}

int fuzz_ratio(const std::string& s1, const std::string& s2) {
    // fuzzywuzzy's decorators, outermost first: check_for_equivalence, then check_empty_string.
    if (s1 == s2) return 100;
    if (s1.empty() || s2.empty()) return 0;
    const SequenceMatcher matcher(pytext::decode_utf8(s1), pytext::decode_utf8(s2));
    // utils.intr: int(round(x)); Python rounds ties to even, as nearbyint does by default.
    return static_cast<int>(std::nearbyint(100.0 * matcher.ratio()));
}

}  // namespace mlawb
