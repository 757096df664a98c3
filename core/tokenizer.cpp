// BPE tokenizers from a Hugging Face tokenizer.json, reproducing tokenizers' (the Rust
// library's) `encode(text, add_special_tokens=False)` and `decode(ids)`:
//   added tokens split out of the raw text -> normalizer on each remaining piece -> added
//   tokens with normalized=true split out -> pre-tokenizer -> BPE (merges by rank, optional
//   byte fallback, unk, ignore_merges) -> ids.
// Byte-level files (GPT-2, SmolLM, Llama-3, Qwen2) and SentencePiece-style files (Llama-2's
// Prepend/Replace normalizer or Mistral's Metaspace, byte fallback to <0x..> tokens) both
// go through it; the normalizer, pre-tokenizer and decoder stages live in
// core/tokenizer_pipeline. Everything else is refused by name.
#include "core/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <queue>
#include <shared_mutex>
#include <sstream>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_io.h"
#include "core/tokenizer_pipeline.h"
#include "core/unicode.h"

namespace mlawb {

namespace {

using nlohmann::json;
using tokenizer_pipeline::Where;

// Vocabulary token -> the raw bytes it stands for in the GPT-2 byte alphabet; nullopt when
// a character lies outside that alphabet.
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

    // Model (BPE). Its words are UTF-8 text split into characters, or, after a ByteLevel
    // pre-tokenizer, raw bytes each standing for one character of the GPT-2 byte alphabet.
    std::unordered_map<std::string, int32_t> vocab;  // token -> id
    std::array<int32_t, 256> byte_to_id{};           // byte-level initial symbols; -1 if missing
    std::array<int32_t, 256> fallback_id{};          // "<0xHH>" tokens (byte_fallback); -1 if missing
    struct MergeRule {
        int32_t rank;
        int32_t result;
    };
    std::unordered_map<uint64_t, MergeRule> merges;  // (left id << 32 | right id)
    std::unordered_map<std::string, int32_t> bytes_to_id;  // byte-level ignore_merges lookups
    bool ignore_merges = false;
    bool byte_fallback = false;
    std::optional<int32_t> unk_id;
    bool fuse_unk = false;

    // Added tokens.
    std::vector<AddedToken> added;
    std::unordered_map<std::string, int32_t> added_by_content;
    AddedTokenMatcher raw_matcher, normalized_matcher;

    tokenizer_pipeline::Normalizer normalizer;
    tokenizer_pipeline::PreTokenizer pre_tokenizer;
    tokenizer_pipeline::Decoder decoder;

    // id -> token string (added tokens' content); ids that name no token hold "" and
    // decode skips them, as tokenizers does.
    std::vector<std::string> id_token;
    std::vector<bool> id_special;  // added tokens flagged "special"
    int32_t size = 0;

    Impl() {
        byte_to_id.fill(-1);
        fallback_id.fill(-1);
    }

    mutable std::shared_mutex cache_mutex;
    mutable std::unordered_map<std::string, std::vector<int32_t>> cache;  // word -> ids

    void load(const json& root);
    void load_model(const json& model);
    void load_post_processor(const json& processor, const Where& where) const;
    void encode_segment(std::string_view text, bool at_start, std::vector<int32_t>& ids) const;
    void encode_word(std::string_view word, std::vector<int32_t>& ids) const;
    void initial_symbols(std::string_view word, std::vector<int32_t>& ids) const;
    void bpe(std::string_view word, std::vector<int32_t>& ids) const;
    std::string decode(const std::vector<int32_t>& ids, bool skip_special) const;

    [[noreturn]] void fail(const std::string& field, const std::string& message) const {
        throw Error(path, field, message);
    }
};

void Tokenizer::Impl::load(const json& root) {
    if (!root.is_object()) fail("", "expected a JSON object at the top level");
    const json& truncation = member_or_null(root, "truncation");
    const json& padding = member_or_null(root, "padding");
    // Both would change what encode() returns (cut or padded ids); we reproduce neither.
    if (!truncation.is_null()) fail("truncation", "unsupported truncation settings; supported: null");
    if (!padding.is_null()) fail("padding", "unsupported padding settings; supported: null");
    normalizer = tokenizer_pipeline::Normalizer::from_json(member_or_null(root, "normalizer"), Where{path, "normalizer"});
    pre_tokenizer =
        tokenizer_pipeline::PreTokenizer::from_json(member_or_null(root, "pre_tokenizer"), Where{path, "pre_tokenizer"});
    load_post_processor(member_or_null(root, "post_processor"), Where{path, "post_processor"});
    decoder = tokenizer_pipeline::Decoder::from_json(member_or_null(root, "decoder"), Where{path, "decoder"});
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
    // those with normalized=true on the normalized remaining pieces.
    for (const AddedToken& token : added) (token.normalized ? normalized_matcher : raw_matcher).add(token);

    int32_t max_id = -1;
    for (const auto& [token, id] : vocab) max_id = std::max(max_id, id);
    for (const AddedToken& token : added) max_id = std::max(max_id, token.id);
    size = max_id + 1;
    id_token.assign(size_t(size), std::string());
    id_special.assign(size_t(size), false);
    for (const auto& [token, id] : vocab) id_token[id] = token;
    for (const AddedToken& token : added) {  // added tokens take precedence, as in tokenizers
        id_token[token.id] = token.content;
        id_special[token.id] = token.special;
    }
}

// Post-processors only add special tokens (which encode(), like add_special_tokens=False,
// never does) or adjust offsets; the ones real Llama-family files carry are accepted and
// have no effect on the ids.
void Tokenizer::Impl::load_post_processor(const json& processor, const Where& where) const {
    if (processor.is_null() || has_type(processor, "ByteLevel") || has_type(processor, "TemplateProcessing")) return;
    if (has_type(processor, "Sequence")) {
        const json& items = member_or_null(processor, "processors");
        if (!items.is_array()) where.fail("processors", "expected an array");
        for (std::size_t i = 0; i < items.size(); ++i) load_post_processor(items[i], where.at("processors").index(i));
        return;
    }
    where.fail("type", "unsupported post_processor " + describe_type(processor) +
                           "; supported: null, ByteLevel, TemplateProcessing, Sequence");
}

void Tokenizer::Impl::load_model(const json& model) {
    if (!model.is_object()) fail("model", "expected an object");
    // Files from old tokenizers versions may omit model.type; vocab + merges means BPE.
    if (model.contains("type") || !model.contains("merges")) {
        if (!has_type(model, "BPE")) fail("model.type", "unsupported model " + describe_type(model) + "; supported: BPE");
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        const json& value = member_or_null(model, key);
        if (!value.is_null() && value != "")
            fail(std::string("model.") + key,
                 "unsupported " + std::string(key) + " " + value.dump() + "; supported: null");
    }
    const json& dropout = member_or_null(model, "dropout");
    if (!dropout.is_null() && !(dropout.is_number() && dropout.get<double>() == 0.0))
        fail("model.dropout", "unsupported BPE dropout " + dropout.dump() + "; supported: null");
    for (const char* key : {"byte_fallback", "ignore_merges", "fuse_unk"}) {
        const json& value = member_or_null(model, key);
        if (!value.is_null() && !value.is_boolean())
            fail(std::string("model.") + key, "expected true or false, got " + value.dump());
    }
    byte_fallback = model.value("byte_fallback", false);
    ignore_merges = model.value("ignore_merges", false);
    fuse_unk = model.value("fuse_unk", false);

    const json& vocab_json = member_or_null(model, "vocab");
    if (!vocab_json.is_object()) fail("model.vocab", "expected an object mapping tokens to ids");
    for (const auto& [token, id_json] : vocab_json.items()) {
        const int64_t id = id_json.is_number_integer() ? id_json.get<int64_t>() : -1;
        if (id < 0 || id >= kMaxTokenId)
            fail("model.vocab", "token '" + token + "' has an invalid id " + id_json.dump());
        vocab.emplace(token, int32_t(id));
        if (ignore_merges && pre_tokenizer.byte_level()) {
            if (auto bytes = token_bytes(token)) bytes_to_id.emplace(*bytes, int32_t(id));
        }
    }
    const json& unk = member_or_null(model, "unk_token");
    if (!unk.is_null() && !unk.is_string()) fail("model.unk_token", "expected a string or null, got " + unk.dump());
    if (unk.is_string()) {
        const auto it = vocab.find(unk.get<std::string>());
        if (it != vocab.end()) unk_id = it->second;
    }
    for (int b = 0; b < 256; ++b) {
        std::string symbol;
        unicode::append_utf8(symbol, unicode::byte_to_gpt2_char(uint8_t(b)));
        const auto it = vocab.find(symbol);
        byte_to_id[b] = it == vocab.end() ? -1 : it->second;
        // tokenizers looks the fallback up as format!("<{:#04X}>", b), e.g. "<0x0A>".
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        const auto fallback = vocab.find(name);
        fallback_id[b] = fallback == vocab.end() ? -1 : fallback->second;
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

// The word's characters as vocabulary ids, as tokenizers' BPE::merge_word builds its Word:
// a character in the vocabulary is its id; otherwise, with byte_fallback, the <0xHH> tokens
// of its UTF-8 bytes when all exist; otherwise unk_token (consecutive unknowns fused into
// one with fuse_unk), or nothing when there is no unk_token. In byte-level words each byte
// is one character of the byte alphabet; elsewhere an ill-formed byte counts as one
// character (it can only be found through byte fallback).
void Tokenizer::Impl::initial_symbols(std::string_view word, std::vector<int32_t>& ids) const {
    std::optional<int32_t> pending_unk;  // tokenizers adds an unknown only when the next known character comes
    const auto unknown = [&] {
        if (!unk_id) return;
        if (pending_unk && !fuse_unk) ids.push_back(*pending_unk);
        pending_unk = unk_id;
    };
    const auto add_fallback = [&](std::string_view bytes) {
        for (unsigned char b : bytes)
            if (fallback_id[b] < 0) return false;
        for (unsigned char b : bytes) ids.push_back(fallback_id[b]);
        return true;
    };
    const auto known = [&](int32_t id) {
        if (pending_unk) ids.push_back(*pending_unk);
        pending_unk.reset();
        ids.push_back(id);
    };
    std::string symbol;
    for (std::size_t pos = 0; pos < word.size();) {
        int32_t id = -1;
        std::size_t length = 1;
        if (pre_tokenizer.byte_level()) {
            const unsigned char byte = static_cast<unsigned char>(word[pos]);
            id = byte_to_id[byte];
            if (id < 0) {
                symbol.clear();
                unicode::append_utf8(symbol, unicode::byte_to_gpt2_char(byte));
            }
        } else {
            length = unicode::decode_one(word, pos).length;
            symbol.assign(word.substr(pos, length));
            const auto it = vocab.find(symbol);
            if (it != vocab.end()) id = it->second;
        }
        pos += length;
        if (id >= 0) known(id);
        else if (!(byte_fallback && add_fallback(symbol))) unknown();
    }
    if (pending_unk) ids.push_back(*pending_unk);
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
    std::vector<int32_t> initial;
    initial.reserve(word.size());
    initial_symbols(word, initial);
    std::vector<Symbol> symbols;
    symbols.reserve(initial.size());
    for (int32_t id : initial) {
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
        if (pre_tokenizer.byte_level()) {
            const auto it = bytes_to_id.find(std::string(word));
            if (it != bytes_to_id.end()) {
                ids.push_back(it->second);
                return;
            }
        } else if (const auto it = vocab.find(std::string(word)); it != vocab.end()) {
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

// One piece of the input between added tokens: normalized, split around the added tokens
// that match normalized text, pre-tokenized, and each word through the model. `at_start`:
// the piece begins at offset 0 of the input.
void Tokenizer::Impl::encode_segment(std::string_view text, bool at_start, std::vector<int32_t>& ids) const {
    const auto on_word = [&](std::string_view word) { encode_word(word, ids); };
    std::string normalized_text;
    std::string_view normalized = text;
    if (!normalizer.is_identity()) {
        normalized_text = normalizer.apply(std::string(text));
        normalized = normalized_text;
    }
    std::vector<Segment> pieces;
    normalized_matcher.split(normalized, pieces);
    for (const Segment& piece : pieces) {
        if (piece.added_id >= 0) ids.push_back(piece.added_id);
        else pre_tokenizer.split(piece.text, at_start && piece.text.data() == normalized.data(), on_word);
    }
}

std::string Tokenizer::Impl::decode(const std::vector<int32_t>& ids, bool skip_special) const {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
        if (id < 0 || id >= size || id_token[id].empty()) continue;
        if (skip_special && id_special[id]) continue;
        tokens.push_back(id_token[id]);
    }
    return decoder.decode(std::move(tokens));
}

Tokenizer Tokenizer::from_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path, "", "cannot open the tokenizer file");
    std::ostringstream buffer;
    buffer << in.rdbuf();
    // Depth-capped, and every parser exception becomes an Error naming the file.
    const json root = parse_json_text(buffer.str(), path);
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
    std::vector<Segment> segments;
    impl_->raw_matcher.split(text, segments);
    ids.reserve(text.size() / 3);
    for (const Segment& segment : segments) {
        if (segment.added_id >= 0) ids.push_back(segment.added_id);
        else impl_->encode_segment(segment.text, segment.text.data() == text.data(), ids);
    }
    return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
    return impl_ ? impl_->decode(ids, false) : std::string();
}

std::string Tokenizer::decode_skip_special(const std::vector<int32_t>& ids) const {
    return impl_ ? impl_->decode(ids, true) : std::string();
}

bool Tokenizer::is_special(int32_t id) const {
    return impl_ && id >= 0 && id < impl_->size && impl_->id_special[id];
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
