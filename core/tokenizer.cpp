// Byte-level BPE from a Hugging Face tokenizer.json, reproducing tokenizers' (the Rust
// library's) `encode(text, add_special_tokens=False)` for the pipeline GPT-2, SmolLM and
// our fixture models use: added tokens -> ByteLevel pre-tokenizer (GPT-2 regex, bytes
// mapped to printable characters) -> BPE merges. Everything else is refused by name.
#include "core/tokenizer.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <mutex>
#include <queue>
#include <shared_mutex>
#include <sstream>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/unicode.h"

namespace mlawb {

namespace {

using nlohmann::json;

// Vocabulary token -> the raw bytes it stands for; nullopt when a character lies outside
// the byte alphabet (byte-level BPE can never produce such a token).
std::optional<std::string> token_bytes(const std::string& token) {
    std::string bytes;
    for (std::size_t pos = 0; pos < token.size();) {
        const unicode::DecodedChar c = unicode::decode_one(token, pos);
        const int byte = c.valid ? unicode::gpt2_char_to_byte(c.code_point) : -1;
        if (byte < 0) return std::nullopt;
        bytes.push_back(char(byte));
        pos += c.length;
    }
    return bytes;
}

// ---- Character classes of the GPT-2 regex ----------------------------------------------

enum class CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };

// Invalid UTF-8 bytes are kept as bytes (so they round-trip) and classed like the U+FFFD
// that tokenizers would see after a lossy conversion: neither letter, number nor space.
CharClass classify(const unicode::DecodedChar& c) {
    if (!c.valid) return CharClass::kOther;
    if (unicode::is_letter(c.code_point)) return CharClass::kLetter;
    if (unicode::is_number(c.code_point)) return CharClass::kNumber;
    if (unicode::is_whitespace(c.code_point)) return CharClass::kSpace;
    return CharClass::kOther;
}

// The class of the character at text[pos] and its length in bytes.
std::pair<CharClass, std::size_t> scan_char(std::string_view text, std::size_t pos) {
    const unicode::DecodedChar c = unicode::decode_one(text, pos);
    return {classify(c), c.length};
}

// Splits `text` exactly as the regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// does under tokenizers' ByteLevel pre-tokenizer (leftmost-first alternation, greedy
// quantifiers with backtracking), written as a single forward scan that hands each word
// to on_word and keeps no per-character state, so memory does not grow with the text.
template <typename OnWord>
void split_gpt2(std::string_view text, OnWord&& on_word) {
    const std::size_t n = text.size();
    // A byte equals an ASCII character only where that character is: lead bytes and
    // invalid bytes are >= 0x80.
    const auto byte = [&](std::size_t pos) -> unsigned char {
        return pos < n ? static_cast<unsigned char>(text[pos]) : 0;
    };
    // End of the run of characters of class `cls` from pos; *last_start gets the start
    // of the run's last character.
    const auto run_end = [&](std::size_t pos, CharClass cls, std::size_t* last_start) {
        while (pos < n) {
            const auto [char_class, length] = scan_char(text, pos);
            if (char_class != cls) break;
            *last_start = pos;
            pos += length;
        }
        return pos;
    };

    for (std::size_t pos = 0; pos < n;) {
        std::size_t end = 0, last_start = pos;
        if (byte(pos) == '\'') {  // the contractions, case-sensitive as in the regex
            const unsigned char a = byte(pos + 1), b = byte(pos + 2);
            if (a == 's' || a == 't' || a == 'm' || a == 'd') end = pos + 2;
            else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) end = pos + 3;
        }
        if (end == 0) {
            // " ?X+" for X in letters, numbers, other: one literal U+0020 may lead the run;
            // if the next character cannot start a run, the space falls to the \s branches.
            const std::size_t first = (byte(pos) == ' ' && pos + 1 < n) ? pos + 1 : pos;
            const CharClass cls = scan_char(text, first).first;
            if (cls != CharClass::kSpace) {
                end = run_end(first, cls, &last_start);
            } else {
                // \s+(?!\S): the whole run at the end of the text, or all but its last
                // character before a non-space (which may then join the word after it,
                // the reason GPT-2 tokens start with "Ġ"); a single space before a
                // non-space falls through to the plain \s+ branch.
                const std::size_t space_end = run_end(pos, CharClass::kSpace, &last_start);
                end = (space_end < n && last_start > pos) ? last_start : space_end;
            }
        }
        on_word(text.substr(pos, end - pos));
        pos = end;
    }
}

// The Digits pre-tokenizer: numeric characters (Rust's char::is_numeric, i.e. \p{N}) are
// split off one by one (individual_digits) or as runs, everything else stays together.
void split_digits(std::string_view text, bool individual, std::vector<std::string_view>& pieces) {
    std::size_t piece_start = 0;
    bool piece_numeric = false;
    for (std::size_t pos = 0; pos < text.size();) {
        const unicode::DecodedChar c = unicode::decode_one(text, pos);
        const bool numeric = c.valid && unicode::is_number(c.code_point);
        if (pos > piece_start && (numeric != piece_numeric || (numeric && individual))) {
            pieces.push_back(text.substr(piece_start, pos - piece_start));
            piece_start = pos;
        }
        piece_numeric = numeric;
        pos += c.length;
    }
    if (piece_start < text.size()) pieces.push_back(text.substr(piece_start));
}

// ---- Added tokens -----------------------------------------------------------------------

struct AddedToken {
    int32_t id = 0;
    std::string content;
    bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = true;
};

// A piece of the input: either plain text for the model, or one added token.
struct Segment {
    std::string_view text;
    int32_t added_id;  // -1 for plain text
};

// Rust's char::is_alphanumeric, which single_word uses, approximated by \p{L} or \p{N}
// (Alphabetic also counts some combining marks; that never matters for our fixtures).
bool is_word_char(const unicode::DecodedChar& c) {
    return c.valid && (unicode::is_letter(c.code_point) || unicode::is_number(c.code_point));
}
bool is_space_char(const unicode::DecodedChar& c) { return c.valid && unicode::is_whitespace(c.code_point); }

// Finds added tokens in text as tokenizers' AddedVocabulary does: an Aho-Corasick search
// with MatchKind::LeftmostLongest (at the leftmost position where any token matches, the
// longest one wins), then the single_word / lstrip / rstrip rules of `find_matches`.
class AddedTokenMatcher {
public:
    void add(const AddedToken& token) {
        auto& bucket = by_first_byte_[static_cast<unsigned char>(token.content[0])];
        bucket.push_back(token);
        std::stable_sort(bucket.begin(), bucket.end(), [](const AddedToken& a, const AddedToken& b) {
            return a.content.size() > b.content.size();
        });
        empty_ = false;
    }

    void split(std::string_view sentence, std::vector<Segment>& out) const {
        if (empty_) {
            out.push_back({sentence, -1});
            return;
        }
        std::size_t start_offset = 0;  // end of the previous split
        for (std::size_t pos = 0; pos < sentence.size();) {
            const AddedToken* token = longest_at(sentence, pos);
            if (!token) {
                ++pos;
                continue;
            }
            std::size_t start = pos, stop = pos + token->content.size();
            pos = stop;  // the search resumes after the match even when it is discarded
            if (token->single_word) {
                const bool word_before = start > 0 && is_word_char(unicode::decode_before(sentence, start));
                const bool word_after = stop < sentence.size() && is_word_char(unicode::decode_one(sentence, stop));
                if (word_before || word_after) continue;
            }
            if (token->lstrip) {  // absorb the whitespace before it, back to the previous split
                while (start > start_offset) {
                    const unicode::DecodedChar c = unicode::decode_before(sentence, start);
                    if (!is_space_char(c) || start - c.length < start_offset) break;
                    start -= c.length;
                }
            }
            if (token->rstrip) {  // absorb the whitespace after it
                while (stop < sentence.size()) {
                    const unicode::DecodedChar c = unicode::decode_one(sentence, stop);
                    if (!is_space_char(c)) break;
                    stop += c.length;
                }
                // tokenizers would let a token starting inside that whitespace overlap
                // this one; we resume after it instead (only possible with tokens that
                // begin with whitespace).
                pos = stop;
            }
            if (start_offset < start) out.push_back({sentence.substr(start_offset, start - start_offset), -1});
            out.push_back({sentence.substr(start, stop - start), token->id});
            start_offset = stop;
        }
        if (start_offset < sentence.size()) out.push_back({sentence.substr(start_offset), -1});
    }

private:
    const AddedToken* longest_at(std::string_view text, std::size_t pos) const {
        for (const AddedToken& token : by_first_byte_[static_cast<unsigned char>(text[pos])])
            if (text.compare(pos, token.content.size(), token.content) == 0) return &token;
        return nullptr;
    }

    std::array<std::vector<AddedToken>, 256> by_first_byte_;  // each longest first
    bool empty_ = true;
};

// ---- JSON helpers -----------------------------------------------------------------------

std::string describe_type(const json& component) {
    if (component.is_null()) return "null";
    if (!component.is_object()) return "of JSON type " + std::string(component.type_name());
    const auto it = component.find("type");
    if (it == component.end() || !it->is_string()) return "without a \"type\"";
    return "'" + it->get<std::string>() + "'";
}

bool has_type(const json& component, const char* type) {
    return component.is_object() && component.value("type", std::string()) == type;
}

const json& member_or_null(const json& object, const char* key) {
    static const json null_value;
    const auto it = object.find(key);
    return it == object.end() ? null_value : *it;
}

constexpr std::size_t kMaxCachedWordBytes = 256;  // tokenizers' BPE cache: words < 256 bytes
constexpr std::size_t kMaxCacheEntries = 1 << 18;
constexpr int32_t kMaxTokenId = 1 << 28;  // keeps a corrupt id from sizing a huge table

}  // namespace

struct Tokenizer::Impl {
    std::string path;

    // Model (BPE).
    std::unordered_map<std::string, int32_t> vocab;  // token (byte alphabet) -> id
    std::array<int32_t, 256> byte_to_id{};           // initial symbols; -1 if missing
    struct MergeRule {
        int32_t rank;
        int32_t result;
    };
    std::unordered_map<uint64_t, MergeRule> merges;  // (left id << 32 | right id)
    std::unordered_map<std::string, int32_t> bytes_to_id;  // only for ignore_merges
    bool ignore_merges = false;
    std::optional<int32_t> unk_id;
    bool fuse_unk = false;

    // Added tokens.
    std::vector<AddedToken> added;
    std::unordered_map<std::string, int32_t> added_by_content;
    AddedTokenMatcher raw_matcher, normalized_matcher;

    // Pre-tokenizer.
    bool add_prefix_space = false;
    bool use_regex = true;
    enum class Digits { kNone, kIndividual, kContiguous } digits = Digits::kNone;

    // id -> token string and id -> decoded bytes (added tokens' content as is); ids that
    // name no token hold "" in both, so decode skips them as tokenizers does.
    std::vector<std::string> id_token, id_bytes;
    int32_t size = 0;

    Impl() { byte_to_id.fill(-1); }

    mutable std::shared_mutex cache_mutex;
    mutable std::unordered_map<std::string, std::vector<int32_t>> cache;  // word bytes -> ids

    void load(const json& root);
    void load_model(const json& model);
    void load_pre_tokenizer(const json& pre_tokenizer);
    void encode_plain(std::string_view text, std::vector<int32_t>& ids) const;
    void encode_word(std::string_view word, std::vector<int32_t>& ids) const;
    void bpe(std::string_view word, std::vector<int32_t>& ids) const;

    [[noreturn]] void fail(const std::string& field, const std::string& message) const {
        throw Error(path, field, message);
    }
    void require_type(const json& component, const char* field, const std::string& what,
                      std::initializer_list<const char*> supported, bool null_ok) const {
        if (component.is_null() && null_ok) return;
        for (const char* type : supported)
            if (has_type(component, type)) return;
        std::string list = null_ok ? "null" : "";
        for (const char* type : supported) list += (list.empty() ? "" : ", ") + std::string(type);
        fail(field, "unsupported " + what + " " + describe_type(component) + "; supported: " + list);
    }
};

void Tokenizer::Impl::load(const json& root) {
    if (!root.is_object()) fail("", "expected a JSON object at the top level");
    const json& truncation = member_or_null(root, "truncation");
    const json& padding = member_or_null(root, "padding");
    // Both would change what encode() returns (cut or padded ids); we reproduce neither.
    if (!truncation.is_null()) fail("truncation", "unsupported truncation settings; supported: null");
    if (!padding.is_null()) fail("padding", "unsupported padding settings; supported: null");
    require_type(member_or_null(root, "normalizer"), "normalizer.type", "normalizer", {}, true);
    load_pre_tokenizer(member_or_null(root, "pre_tokenizer"));
    require_type(member_or_null(root, "post_processor"), "post_processor.type", "post_processor",
                 {"ByteLevel"}, true);  // ByteLevel's post-processing only trims offsets
    require_type(member_or_null(root, "decoder"), "decoder.type", "decoder", {"ByteLevel"}, false);
    if (!root.contains("model")) fail("model", "missing");
    load_model(root.at("model"));

    const json& added_tokens = member_or_null(root, "added_tokens");
    if (!added_tokens.is_null() && !added_tokens.is_array()) fail("added_tokens", "expected an array");
    for (std::size_t i = 0; i < added_tokens.size(); ++i) {
        const std::string field = "added_tokens[" + std::to_string(i) + "]";
        const json& entry = added_tokens[i];
        if (!entry.is_object() || !entry.contains("id") || !entry.contains("content") ||
            !entry.at("id").is_number_integer() || !entry.at("content").is_string())
            fail(field, "expected an object with an integer \"id\" and a string \"content\"");
        const int64_t id = entry.at("id").get<int64_t>();
        if (id < 0 || id >= kMaxTokenId) fail(field + ".id", "id " + std::to_string(id) + " out of range");
        const AddedToken token{int32_t(id), entry.at("content").get<std::string>(), entry.value("special", false),
                               entry.value("lstrip", false), entry.value("rstrip", false),
                               entry.value("single_word", false), entry.value("normalized", true)};
        // tokenizers skips empty contents and keeps the first token for a repeated content.
        if (token.content.empty() || added_by_content.count(token.content)) continue;
        added_by_content.emplace(token.content, token.id);
        added.push_back(token);
    }
    // AddedVocabulary matches the tokens with normalized=false on the raw text first, then
    // those with normalized=true on the (normalized) remaining pieces; with no normalizer
    // both passes see the same text, but the order still decides overlaps.
    for (const AddedToken& token : added) (token.normalized ? normalized_matcher : raw_matcher).add(token);

    int32_t max_id = -1;
    for (const auto& [token, id] : vocab) max_id = std::max(max_id, id);
    for (const AddedToken& token : added) max_id = std::max(max_id, token.id);
    size = max_id + 1;
    id_token.assign(size_t(size), std::string());
    id_bytes.assign(size_t(size), std::string());
    for (const auto& [token, id] : vocab) {
        id_token[id] = token;
        // tokenizers' ByteLevel decoder keeps a token's UTF-8 as is when a character of
        // it lies outside the byte alphabet.
        id_bytes[id] = token_bytes(token).value_or(token);
    }
    for (const AddedToken& token : added) {  // added tokens take precedence, as in tokenizers
        id_token[token.id] = token.content;
        id_bytes[token.id] = token.content;
    }
}

void Tokenizer::Impl::load_pre_tokenizer(const json& pre_tokenizer) {
    const char* supported = "ByteLevel, Sequence of [ByteLevel] or [Digits, ByteLevel]";
    json byte_level;
    if (has_type(pre_tokenizer, "ByteLevel")) {
        byte_level = pre_tokenizer;
    } else if (has_type(pre_tokenizer, "Sequence")) {
        // SmolLM-style [Digits, ByteLevel]: digits are split off before the regex runs.
        const json& steps = member_or_null(pre_tokenizer, "pretokenizers");
        if (!steps.is_array() || steps.empty())
            fail("pre_tokenizer.pretokenizers", std::string("expected a non-empty array; supported: ") + supported);
        for (std::size_t i = 0; i < steps.size(); ++i) {
            const bool last = i + 1 == steps.size();
            const bool ok = last ? has_type(steps[i], "ByteLevel") : has_type(steps[i], "Digits") && i == 0;
            if (!ok)
                fail("pre_tokenizer.pretokenizers[" + std::to_string(i) + "].type",
                     "unsupported pre_tokenizer " + describe_type(steps[i]) +
                         " as step " + std::to_string(i) + " of a Sequence; supported: " + supported);
            if (!last) digits = steps[i].value("individual_digits", false) ? Digits::kIndividual : Digits::kContiguous;
        }
        byte_level = steps.back();
    } else {
        fail("pre_tokenizer.type", "unsupported pre_tokenizer " + describe_type(pre_tokenizer) +
                                       "; supported: " + supported);
    }
    // ByteLevel's defaults in tokenizers: add_prefix_space = true, use_regex = true.
    add_prefix_space = byte_level.value("add_prefix_space", true);
    use_regex = byte_level.value("use_regex", true);
}

void Tokenizer::Impl::load_model(const json& model) {
    if (!model.is_object()) fail("model", "expected an object");
    // Files from old tokenizers versions may omit model.type; vocab + merges means BPE.
    if (model.contains("type") || !model.contains("merges"))
        require_type(model, "model.type", "model", {"BPE"}, false);
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        const json& value = member_or_null(model, key);
        if (!value.is_null() && value != "")
            fail(std::string("model.") + key,
                 "unsupported " + std::string(key) + " " + value.dump() + "; supported: null");
    }
    const json& dropout = member_or_null(model, "dropout");
    if (!dropout.is_null() && !(dropout.is_number() && dropout.get<double>() == 0.0))
        fail("model.dropout", "unsupported BPE dropout " + dropout.dump() + "; supported: null");
    if (model.value("byte_fallback", false))
        fail("model.byte_fallback", "unsupported byte_fallback true; supported: false");
    ignore_merges = model.value("ignore_merges", false);
    fuse_unk = model.value("fuse_unk", false);

    const json& vocab_json = member_or_null(model, "vocab");
    if (!vocab_json.is_object()) fail("model.vocab", "expected an object mapping tokens to ids");
    for (const auto& [token, id_json] : vocab_json.items()) {
        const int64_t id = id_json.is_number_integer() ? id_json.get<int64_t>() : -1;
        if (id < 0 || id >= kMaxTokenId)
            fail("model.vocab", "token '" + token + "' has an invalid id " + id_json.dump());
        vocab.emplace(token, int32_t(id));
        if (ignore_merges) {
            if (auto bytes = token_bytes(token)) bytes_to_id.emplace(*bytes, int32_t(id));
        }
    }
    const json& unk = member_or_null(model, "unk_token");
    if (unk.is_string()) {
        const auto it = vocab.find(unk.get<std::string>());
        if (it != vocab.end()) unk_id = it->second;
    }
    for (int b = 0; b < 256; ++b) {
        std::string symbol;
        unicode::append_utf8(symbol, unicode::byte_to_gpt2_char(uint8_t(b)));
        const auto it = vocab.find(symbol);
        byte_to_id[b] = it == vocab.end() ? -1 : it->second;
    }

    const json& merges_json = member_or_null(model, "merges");
    if (!merges_json.is_null() && !merges_json.is_array()) fail("model.merges", "expected an array");
    merges.reserve(merges_json.size());
    for (std::size_t rank = 0; rank < merges_json.size(); ++rank) {
        const std::string field = "model.merges[" + std::to_string(rank) + "]";
        const json& merge = merges_json[rank];
        std::string left, right;
        if (merge.is_string()) {  // legacy "left right"
            const std::string line = merge.get<std::string>();
            const std::size_t space = line.find(' ');
            if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
                fail(field, "expected \"left right\", got " + merge.dump());
            left = line.substr(0, space);
            right = line.substr(space + 1);
        } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
            left = merge[0].get<std::string>();
            right = merge[1].get<std::string>();
        } else {
            fail(field, "expected \"left right\" or [\"left\", \"right\"], got " + merge.dump());
        }
        for (const std::string& token : {left, right, left + right})
            if (!vocab.count(token)) fail(field, "merge names token '" + token + "' that is not in model.vocab");
        const uint64_t key = (uint64_t(uint32_t(vocab.at(left))) << 32) | uint32_t(vocab.at(right));
        merges[key] = {int32_t(rank), vocab.at(left + right)};  // a repeated pair keeps its last rank
    }
}

// Rank-based BPE as tokenizers' Word::merge_all: a min-heap of candidate merges ordered by
// (rank, position) over a linked list of symbols; stale heap entries are skipped. This is
// O(n log n) per word, so a 10k-character run without spaces stays cheap.
void Tokenizer::Impl::bpe(std::string_view word, std::vector<int32_t>& ids) const {
    struct Symbol {
        int32_t id;
        int32_t prev, next;  // -1 at the ends
        bool alive;
    };
    std::vector<Symbol> symbols;
    symbols.reserve(word.size());
    for (unsigned char byte : word) {
        int32_t id = byte_to_id[byte];
        if (id < 0) {
            // A byte missing from the vocabulary: unk_token if set (fused with a preceding
            // unk when fuse_unk), otherwise dropped, as tokenizers does.
            if (!unk_id) continue;
            if (fuse_unk && !symbols.empty() && symbols.back().id == *unk_id) continue;
            id = *unk_id;
        }
        const int32_t index = int32_t(symbols.size());
        symbols.push_back({id, index - 1, -1, true});
        if (index > 0) symbols[index - 1].next = index;
    }

    struct Candidate {
        int32_t rank, pos, result;
        bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
    const auto rule_for = [&](int32_t left, int32_t right) -> const MergeRule* {
        const auto it = merges.find((uint64_t(uint32_t(left)) << 32) | uint32_t(right));
        return it == merges.end() ? nullptr : &it->second;
    };
    const auto push_pair = [&](int32_t pos) {
        const int32_t next = symbols[pos].next;
        if (next < 0) return;
        if (const MergeRule* rule = rule_for(symbols[pos].id, symbols[next].id))
            queue.push({rule->rank, pos, rule->result});
    };
    for (int32_t i = 0; i + 1 < int32_t(symbols.size()); ++i) push_pair(i);

    while (!queue.empty()) {
        const Candidate top = queue.top();
        queue.pop();
        Symbol& left = symbols[top.pos];
        if (!left.alive || left.next < 0) continue;
        const MergeRule* rule = rule_for(left.id, symbols[left.next].id);
        if (!rule || rule->rank != top.rank || rule->result != top.result) continue;  // stale
        Symbol& right = symbols[left.next];
        right.alive = false;
        left.id = top.result;
        left.next = right.next;
        if (right.next >= 0) symbols[right.next].prev = top.pos;
        if (left.prev >= 0) push_pair(left.prev);
        push_pair(top.pos);
    }
    for (int32_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
}

void Tokenizer::Impl::encode_word(std::string_view word, std::vector<int32_t>& ids) const {
    if (ignore_merges) {  // tokenizers: a word that is itself a token skips the merges
        const auto it = bytes_to_id.find(std::string(word));
        if (it != bytes_to_id.end()) {
            ids.push_back(it->second);
            return;
        }
    }
    if (word.size() >= kMaxCachedWordBytes) {
        bpe(word, ids);
        return;
    }
    std::string key(word);
    {
        std::shared_lock<std::shared_mutex> lock(cache_mutex);
        const auto it = cache.find(key);
        if (it != cache.end()) {
            ids.insert(ids.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    const std::size_t first = ids.size();
    bpe(word, ids);
    std::unique_lock<std::shared_mutex> lock(cache_mutex);
    if (cache.size() < kMaxCacheEntries)
        cache.emplace(std::move(key), std::vector<int32_t>(ids.begin() + std::ptrdiff_t(first), ids.end()));
}

void Tokenizer::Impl::encode_plain(std::string_view text, std::vector<int32_t>& ids) const {
    std::vector<std::string_view> pieces;
    if (digits == Digits::kNone) pieces.push_back(text);
    else split_digits(text, digits == Digits::kIndividual, pieces);
    std::string prefixed;
    for (std::string_view piece : pieces) {
        if (piece.empty()) continue;
        // ByteLevel's add_prefix_space prepends a space to every piece that lacks one.
        if (add_prefix_space && piece.front() != ' ') {
            prefixed = " ";
            prefixed.append(piece);
            piece = prefixed;
        }
        if (use_regex) split_gpt2(piece, [&](std::string_view word) { encode_word(word, ids); });
        else encode_word(piece, ids);
    }
}

Tokenizer Tokenizer::from_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path, "", "cannot open the tokenizer file");
    std::ostringstream buffer;
    buffer << in.rdbuf();
    json root;
    try {
        root = json::parse(buffer.str());
    } catch (const json::exception& e) {
        throw Error(path, "", std::string("malformed JSON: ") + e.what());
    }
    Tokenizer tokenizer;
    tokenizer.impl_->path = path;
    try {
        tokenizer.impl_->load(root);
    } catch (const json::exception& e) {  // a field of an unexpected JSON type
        throw Error(path, "", std::string("unexpected JSON value: ") + e.what());
    }
    return tokenizer;
}

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::vector<int32_t> Tokenizer::encode(const std::string& text) const {
    std::vector<int32_t> ids;
    if (!impl_ || text.empty()) return ids;
    std::vector<Segment> raw_split, segments;
    impl_->raw_matcher.split(text, raw_split);
    for (const Segment& segment : raw_split) {
        if (segment.added_id >= 0) segments.push_back(segment);
        else impl_->normalized_matcher.split(segment.text, segments);
    }
    ids.reserve(text.size() / 3);
    for (const Segment& segment : segments) {
        if (segment.added_id >= 0) ids.push_back(segment.added_id);
        else impl_->encode_plain(segment.text, ids);
    }
    return ids;
}

// Returns raw bytes rather than tokenizers' from_utf8_lossy string, so text with invalid
// UTF-8 round-trips and a caller may decode ids one by one and join the bytes.
std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
    std::string text;
    if (!impl_) return text;
    for (int32_t id : ids)
        if (id >= 0 && id < impl_->size) text += impl_->id_bytes[id];
    return text;
}

bool Tokenizer::is_special(int32_t id) const {
    if (!impl_) return false;
    for (const AddedToken& token : impl_->added)
        if (token.id == id) return token.special;
    return false;
}

std::string Tokenizer::decode_skip_special(const std::vector<int32_t>& ids) const {
    std::vector<int32_t> kept;
    for (int32_t id : ids)
        if (!is_special(id)) kept.push_back(id);
    return decode(kept);
}

int32_t Tokenizer::vocab_size() const { return impl_ ? impl_->size : 0; }

std::optional<int32_t> Tokenizer::token_to_id(const std::string& token) const {
    if (!impl_) return std::nullopt;
    if (const auto it = impl_->added_by_content.find(token); it != impl_->added_by_content.end()) return it->second;
    if (const auto it = impl_->vocab.find(token); it != impl_->vocab.end()) return it->second;
    return std::nullopt;
}

std::string Tokenizer::id_to_token(int32_t id) const {
    if (!impl_ || id < 0 || id >= impl_->size) return std::string();
    return impl_->id_token[id];
}

}  // namespace mlawb
