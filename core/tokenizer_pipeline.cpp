#include "core/tokenizer_pipeline.h"

#include <algorithm>
#include <optional>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/unicode.h"

namespace mlawb::tokenizer_pipeline {

using nlohmann::json;

// ---- Errors and JSON helpers ------------------------------------------------------------

Where Where::at(const std::string& key) const { return {file, path.empty() ? key : path + "." + key}; }
Where Where::index(std::size_t i) const { return {file, path + "[" + std::to_string(i) + "]"}; }
void Where::fail(const std::string& key, const std::string& message) const {
    throw Error(file, key.empty() ? path : at(key).path, message);
}

namespace {

std::string type_of(const json& component) {
    if (!component.is_object()) return "";
    const auto it = component.find("type");
    return it != component.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string describe_type(const json& component) {
    if (component.is_null()) return "null";
    if (!component.is_object()) return "of JSON type " + std::string(component.type_name());
    const std::string type = type_of(component);
    return type.empty() ? "without a \"type\"" : "'" + type + "'";
}

[[noreturn]] void unsupported(const json& component, const Where& where, const std::string& what,
                              const std::string& supported) {
    where.fail("type", "unsupported " + what + " " + describe_type(component) + "; supported: " + supported);
}

const json& member(const json& object, const char* key) {
    static const json null_value;
    const auto it = object.find(key);
    return it == object.end() ? null_value : *it;
}

bool boolean(const json& object, const char* key, bool fallback, const Where& where) {
    const json& value = member(object, key);
    if (value.is_null()) return fallback;
    if (!value.is_boolean()) where.fail(key, "expected true or false, got " + value.dump());
    return value.get<bool>();
}

std::string string(const json& object, const char* key, const Where& where) {
    const json& value = member(object, key);
    if (!value.is_string()) where.fail(key, "expected a string, got " + value.dump());
    return value.get<std::string>();
}

// The array a Sequence holds under `key`.
const json& sequence_items(const json& component, const char* key, const Where& where) {
    const json& items = member(component, key);
    if (!items.is_array()) where.fail(key, "expected an array");
    return items;
}

// A tokenizers Pattern: {"String": s} or {"Regex": r}. Returns the literal of a String
// pattern; a Regex pattern is returned through *regex (nullptr: refused, naming it).
std::string literal_pattern(const json& component, const Where& where, std::string* regex = nullptr) {
    const json& pattern = member(component, "pattern");
    if (pattern.is_object() && pattern.size() == 1) {
        if (pattern.contains("String") && pattern["String"].is_string()) {
            const std::string literal = pattern["String"].get<std::string>();
            if (literal.empty()) where.fail("pattern.String", "an empty pattern is not supported");
            return literal;
        }
        if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
            if (!regex)
                where.fail("pattern.Regex",
                           "unsupported regex pattern " + pattern["Regex"].dump() + "; supported: String patterns");
            *regex = pattern["Regex"].get<std::string>();
            return std::string();
        }
    }
    where.fail("pattern", "expected {\"String\": ...} or {\"Regex\": ...}, got " + pattern.dump());
}

// One character of UTF-8 (Metaspace's replacement, Strip's content are Rust chars).
std::string one_char(const json& component, const char* key, const Where& where) {
    const std::string text = string(component, key, where);
    const unicode::DecodedChar c = text.empty() ? unicode::DecodedChar{0, 0, false} : unicode::decode_one(text, 0);
    if (!c.valid || c.length != text.size()) where.fail(key, "expected a single character, got " + json(text).dump());
    return text;
}

PrependScheme parse_prepend_scheme(const json& component, const Where& where) {
    // Older files carry add_prefix_space instead; tokenizers reads false as "never" and
    // otherwise takes prepend_scheme, defaulting to "always".
    if (!boolean(component, "add_prefix_space", true, where)) return PrependScheme::kNever;
    const json& scheme = member(component, "prepend_scheme");
    if (scheme.is_null()) return PrependScheme::kAlways;
    if (scheme == "always") return PrependScheme::kAlways;
    if (scheme == "first") return PrependScheme::kFirst;
    if (scheme == "never") return PrependScheme::kNever;
    where.fail("prepend_scheme", "unsupported prepend_scheme " + scheme.dump() + "; supported: always, first, never");
}

void replace_all(std::string& text, const std::string& pattern, const std::string& content) {
    if (text.find(pattern) == std::string::npos) return;
    std::string out;
    out.reserve(text.size() + text.size() / 4);
    std::size_t pos = 0;
    for (std::size_t hit; (hit = text.find(pattern, pos)) != std::string::npos; pos = hit + pattern.size()) {
        out.append(text, pos, hit - pos);
        out += content;
    }
    out.append(text, pos, std::string::npos);
    text.swap(out);
}

// Tiles for a literal pattern: every non-overlapping occurrence, leftmost first, and the gaps.
std::vector<Span> literal_tiles(std::string_view text, std::string_view literal) {
    std::vector<Span> tiles;
    std::size_t pos = 0;
    for (std::size_t hit; (hit = text.find(literal, pos)) != std::string_view::npos; pos = hit + literal.size()) {
        if (hit > pos) tiles.push_back({pos, hit, false});
        tiles.push_back({hit, hit + literal.size(), true});
    }
    if (pos < text.size()) tiles.push_back({pos, text.size(), false});
    return tiles;
}

// Tiles where each character that `is_match` accepts is a match of its own.
template <typename Predicate>
std::vector<Span> char_tiles(std::string_view text, Predicate&& is_match) {
    std::vector<Span> tiles;
    std::size_t gap = 0;
    for (std::size_t pos = 0; pos < text.size();) {
        const unicode::DecodedChar c = unicode::decode_one(text, pos);
        if (is_match(c)) {
            if (gap < pos) tiles.push_back({gap, pos, false});
            tiles.push_back({pos, pos + c.length, true});
            gap = pos + c.length;
        }
        pos += c.length;
    }
    if (gap < text.size()) tiles.push_back({gap, text.size(), false});
    return tiles;
}

}  // namespace

std::vector<Span> apply_behavior(std::vector<Span> tiles, SplitBehavior behavior, bool invert) {
    if (invert)
        for (Span& tile : tiles) tile.is_match = !tile.is_match;
    std::vector<Span> out;
    out.reserve(tiles.size());
    switch (behavior) {
        case SplitBehavior::kIsolated:
            out = tiles;
            break;
        case SplitBehavior::kRemoved:
            for (const Span& tile : tiles)
                if (!tile.is_match) out.push_back(tile);
            break;
        case SplitBehavior::kMergedWithPrevious: {
            // A match joins the piece before it, unless that piece ended in a match too.
            bool previous_match = false;
            for (const Span& tile : tiles) {
                if (tile.is_match && !previous_match && !out.empty()) out.back().end = tile.end;
                else out.push_back(tile);
                previous_match = tile.is_match;
            }
            break;
        }
        case SplitBehavior::kMergedWithNext: {
            // The mirror image: walk backwards, a match joins the piece after it.
            bool previous_match = false;
            for (auto it = tiles.rbegin(); it != tiles.rend(); ++it) {
                if (it->is_match && !previous_match && !out.empty()) out.back().begin = it->begin;
                else out.push_back(*it);
                previous_match = it->is_match;
            }
            std::reverse(out.begin(), out.end());
            break;
        }
        case SplitBehavior::kContiguous: {
            // Runs of matches (and runs of gaps) become one piece each.
            bool previous_match = false;
            for (const Span& tile : tiles) {
                if (tile.is_match == previous_match && !out.empty()) out.back().end = tile.end;
                else out.push_back(tile);
                previous_match = tile.is_match;
            }
            break;
        }
    }
    out.erase(std::remove_if(out.begin(), out.end(), [](const Span& s) { return s.end <= s.begin; }), out.end());
    return out;
}

// ---- Normalizer -------------------------------------------------------------------------

Normalizer Normalizer::from_json(const json& component, const Where& where) {
    Normalizer normalizer;
    if (!component.is_null()) normalizer.add(component, where);
    return normalizer;
}

void Normalizer::add(const json& component, const Where& where) {
    const std::string type = type_of(component);
    if (type == "Sequence") {
        const json& items = sequence_items(component, "normalizers", where);
        for (std::size_t i = 0; i < items.size(); ++i) add(items[i], where.at("normalizers").index(i));
    } else if (type == "NFC") {
        steps_.push_back({Step::Kind::kNfc, "", ""});
    } else if (type == "Prepend") {
        steps_.push_back({Step::Kind::kPrepend, "", string(component, "prepend", where)});
    } else if (type == "Replace") {
        steps_.push_back({Step::Kind::kReplace, literal_pattern(component, where), string(component, "content", where)});
    } else {
        unsupported(component, where, "normalizer", "NFC, Prepend, Replace (String pattern), Sequence");
    }
}

std::string Normalizer::apply(std::string text) const {
    for (const Step& step : steps_) {
        switch (step.kind) {
            case Step::Kind::kNfc: text = unicode::nfc(text); break;
            case Step::Kind::kPrepend:
                if (!text.empty()) text.insert(0, step.content);
                break;
            case Step::Kind::kReplace: replace_all(text, step.pattern, step.content); break;
        }
    }
    return text;
}

// ---- Pre-tokenizer ----------------------------------------------------------------------

PreTokenizer PreTokenizer::from_json(const json& component, const Where& where) {
    PreTokenizer pre_tokenizer;
    if (component.is_null()) return pre_tokenizer;
    if (type_of(component) == "Sequence") {
        const json& items = sequence_items(component, "pretokenizers", where);
        for (std::size_t i = 0; i < items.size(); ++i)
            pre_tokenizer.add(items[i], where.at("pretokenizers").index(i), i + 1 == items.size());
    } else {
        pre_tokenizer.add(component, where, true);
    }
    return pre_tokenizer;
}

void PreTokenizer::add(const json& component, const Where& where, bool last) {
    const std::string type = type_of(component);
    Step step{};
    if (type == "ByteLevel") {
        // After ByteLevel the text is in the byte alphabet; a later step would split that
        // alphabet rather than the text, which no file we know does.
        if (!last) where.fail("type", "unsupported 'ByteLevel' before another pre-tokenizer; ByteLevel must come last");
        byte_level_ = true;
        // tokenizers' defaults: add_prefix_space true, use_regex true.
        add_prefix_space_ = boolean(component, "add_prefix_space", true, where);
        use_regex_ = boolean(component, "use_regex", true, where);
        return;
    }
    if (type == "Split") {
        step.kind = Step::Kind::kSplit;
        std::string regex;
        step.literal = literal_pattern(component, where, &regex);
        if (step.literal.empty()) {
            const std::optional<tokenizer_regex::KnownRegex> known = tokenizer_regex::known_regex(regex);
            if (!known)
                where.fail("pattern.Regex", "unsupported Split regex " + json(regex).dump() +
                                                "; supported: the GPT-2, Llama-3 and Qwen2 pre-tokenizer regexes");
            step.regex = true;
            step.known = *known;
        }
        const json& behavior = member(component, "behavior");
        if (behavior == "Isolated") step.behavior = SplitBehavior::kIsolated;
        else if (behavior == "Removed") step.behavior = SplitBehavior::kRemoved;
        else if (behavior == "MergedWithPrevious") step.behavior = SplitBehavior::kMergedWithPrevious;
        else if (behavior == "MergedWithNext") step.behavior = SplitBehavior::kMergedWithNext;
        else if (behavior == "Contiguous") step.behavior = SplitBehavior::kContiguous;
        else
            where.fail("behavior", "unsupported behavior " + behavior.dump() +
                                       "; supported: Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous");
        step.invert = boolean(component, "invert", false, where);
    } else if (type == "Metaspace") {
        step.kind = Step::Kind::kMetaspace;
        step.replacement = one_char(component, "replacement", where);
        step.prepend = parse_prepend_scheme(component, where);
        step.metaspace_split = boolean(component, "split", true, where);
    } else if (type == "Digits") {
        step.kind = Step::Kind::kDigits;
        step.individual = boolean(component, "individual_digits", false, where);
    } else {
        unsupported(component, where, "pre_tokenizer", "ByteLevel, Split, Metaspace, Digits, Sequence");
    }
    steps_.push_back(std::move(step));
}

void PreTokenizer::apply(const Step& step, Piece& piece, std::vector<Piece>& out) const {
    std::vector<Span> tiles;
    SplitBehavior behavior = step.behavior;
    switch (step.kind) {
        case Step::Kind::kSplit:
            if (step.regex) {
                for (const tokenizer_regex::Span& m : tokenizer_regex::find_all(step.known, piece.text))
                    tiles.push_back({m.begin, m.end, true});
            } else {
                tiles = literal_tiles(piece.text, step.literal);
            }
            tiles = apply_behavior(std::move(tiles), behavior, step.invert);
            break;
        case Step::Kind::kMetaspace: {
            // Spaces become the replacement; it is prepended unless the piece starts with it
            // ("first": only to the piece at the start of the input).
            replace_all(piece.text, " ", step.replacement);
            const bool starts = piece.text.compare(0, step.replacement.size(), step.replacement) == 0;
            if (!starts && (step.prepend == PrependScheme::kAlways || (step.prepend == PrependScheme::kFirst && piece.at_start)))
                piece.text.insert(0, step.replacement);
            if (!step.metaspace_split) {
                out.push_back(std::move(piece));
                return;
            }
            tiles = apply_behavior(literal_tiles(piece.text, step.replacement), SplitBehavior::kMergedWithNext, false);
            break;
        }
        case Step::Kind::kDigits:
            // char::is_numeric (\p{N}) characters split off one by one, or as runs.
            tiles = char_tiles(piece.text, [](const unicode::DecodedChar& c) {
                return c.valid && unicode::is_number(c.code_point);
            });
            tiles = apply_behavior(std::move(tiles), step.individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous,
                                   false);
            break;
    }
    for (const Span& span : tiles)
        out.push_back({piece.text.substr(span.begin, span.end - span.begin), piece.at_start && span.begin == 0});
}

void PreTokenizer::split(std::string_view text, bool at_start,
                         const std::function<void(std::string_view)>& on_word) const {
    if (text.empty()) return;
    std::vector<Piece> pieces{{std::string(text), at_start}}, next;
    for (const Step& step : steps_) {
        next.clear();
        for (Piece& piece : pieces) apply(step, piece, next);
        pieces.swap(next);
    }
    std::string prefixed;
    for (const Piece& piece : pieces) {
        std::string_view word = piece.text;
        if (word.empty()) continue;
        if (byte_level_ && add_prefix_space_ && word.front() != ' ') {
            prefixed = " ";
            prefixed.append(word);
            word = prefixed;
        }
        if (byte_level_ && use_regex_) {
            for (std::size_t pos = 0; pos < word.size();) {
                const std::size_t end = tokenizer_regex::match_at(tokenizer_regex::KnownRegex::kGpt2, word, pos);
                on_word(word.substr(pos, end - pos));
                pos = end;
            }
        } else {
            on_word(word);
        }
    }
}

// ---- Decoder ----------------------------------------------------------------------------

Decoder Decoder::from_json(const json& component, const Where& where) {
    Decoder decoder;
    if (component.is_null()) decoder.join_with_spaces_ = true;
    else decoder.add(component, where);
    return decoder;
}

void Decoder::add(const json& component, const Where& where) {
    const std::string type = type_of(component);
    Step step{};
    if (type == "Sequence") {
        const json& items = sequence_items(component, "decoders", where);
        for (std::size_t i = 0; i < items.size(); ++i) add(items[i], where.at("decoders").index(i));
        return;
    }
    if (type == "ByteLevel") {
        step.kind = Step::Kind::kByteLevel;
    } else if (type == "Replace") {
        step.kind = Step::Kind::kReplace;
        step.pattern = literal_pattern(component, where);
        step.content = string(component, "content", where);
    } else if (type == "ByteFallback") {
        step.kind = Step::Kind::kByteFallback;
    } else if (type == "Fuse") {
        step.kind = Step::Kind::kFuse;
    } else if (type == "Strip") {
        step.kind = Step::Kind::kStrip;
        step.content = one_char(component, "content", where);
        const auto count = [&](const char* key) {
            const json& value = member(component, key);
            if (!value.is_number_unsigned()) where.fail(key, "expected a non-negative integer, got " + value.dump());
            return value.get<std::size_t>();
        };
        step.start = count("start");
        step.stop = count("stop");
    } else if (type == "Metaspace") {
        step.kind = Step::Kind::kMetaspace;
        step.content = one_char(component, "replacement", where);
        step.prepend = parse_prepend_scheme(component, where);
    } else {
        unsupported(component, where, "decoder",
                    "ByteLevel, Replace (String pattern), ByteFallback, Fuse, Strip, Metaspace, Sequence, null");
    }
    steps_.push_back(std::move(step));
}

namespace {

// "<0xHH>" -> the byte, as tokenizers' ByteFallback reads it (u8::from_str_radix, which also
// takes a leading '+').
std::optional<uint8_t> byte_token(const std::string& token) {
    if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return std::nullopt;
    const auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    if (token[3] == '+') {
        const int low = hex(token[4]);
        return low < 0 ? std::nullopt : std::optional<uint8_t>(uint8_t(low));
    }
    const int high = hex(token[3]), low = hex(token[4]);
    if (high < 0 || low < 0) return std::nullopt;
    return uint8_t(high * 16 + low);
}

// The bytes a byte-level token stands for, or the token itself when a character lies
// outside the byte alphabet (tokenizers' ByteLevel decoder does the same).
std::string byte_level_bytes(const std::string& token) {
    std::string bytes;
    for (std::size_t pos = 0; pos < token.size();) {
        const unicode::DecodedChar c = unicode::decode_one(token, pos);
        const int byte = c.valid ? unicode::gpt2_char_to_byte(c.code_point) : -1;
        if (byte < 0) return token;
        bytes.push_back(char(byte));
        pos += c.length;
    }
    return bytes;
}

// Up to `count` copies of the character `content` removed from the front (or back) of token.
void strip(std::string& token, const std::string& content, std::size_t start, std::size_t stop) {
    std::size_t front = 0;
    for (std::size_t i = 0; i < start && token.compare(front, content.size(), content) == 0; ++i)
        front += content.size();
    std::size_t back = token.size();
    for (std::size_t i = 0; i < stop && back >= front + content.size() &&
                            token.compare(back - content.size(), content.size(), content) == 0;
         ++i)
        back -= content.size();
    token = token.substr(front, back - front);
}

}  // namespace

std::string Decoder::decode(std::vector<std::string> tokens) const {
    if (join_with_spaces_) {
        std::string text;
        for (std::size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
        return text;
    }
    for (const Step& step : steps_) {
        switch (step.kind) {
            case Step::Kind::kByteLevel: {
                std::string bytes;
                for (const std::string& token : tokens) bytes += byte_level_bytes(token);
                tokens.assign(1, std::move(bytes));
                break;
            }
            case Step::Kind::kReplace:
                for (std::string& token : tokens) replace_all(token, step.pattern, step.content);
                break;
            case Step::Kind::kByteFallback: {
                // Runs of <0xHH> tokens become the bytes they name.
                std::vector<std::string> out;
                std::string run;
                bool in_run = false;
                for (std::string& token : tokens) {
                    if (const std::optional<uint8_t> byte = byte_token(token)) {
                        run.push_back(char(*byte));
                        in_run = true;
                        continue;
                    }
                    if (in_run) out.push_back(std::move(run));
                    run.clear();
                    in_run = false;
                    out.push_back(std::move(token));
                }
                if (in_run) out.push_back(std::move(run));
                tokens.swap(out);
                break;
            }
            case Step::Kind::kFuse: {
                std::string fused;
                for (const std::string& token : tokens) fused += token;
                tokens.assign(1, std::move(fused));
                break;
            }
            case Step::Kind::kStrip:
                for (std::string& token : tokens) strip(token, step.content, step.start, step.stop);
                break;
            case Step::Kind::kMetaspace:
                // The replacement becomes a space; in the first token (the one a prepended
                // replacement would sit in) every replacement is dropped instead.
                for (std::size_t i = 0; i < tokens.size(); ++i)
                    replace_all(tokens[i], step.content,
                                i == 0 && step.prepend != PrependScheme::kNever ? std::string() : std::string(" "));
                break;
        }
    }
    std::string text;
    for (const std::string& token : tokens) text += token;
    return text;
}

}  // namespace mlawb::tokenizer_pipeline
