// Training data for recovery fine-tuning: text files and prompt/completion JSONL turned into
// one token stream, tokenized once and cached, and random windows drawn from it.
//
// Stream layout (what the fixture models were trained on, ../shared/fixtures/README.md):
//   plain text (any extension but .jsonl): the file's text as it is, followed by one eos.
//     Its documents are already separated by blank lines, and documents (manual pages) hold
//     blank lines of their own, so an eos per blank line would teach the model to end a
//     document at every paragraph (held-out text keeps its paragraphs);
//   .jsonl: one object a line with string fields "prompt" and "completion"; the text
//     prompt + completion is tokenized as one string (so the boundary merges as in one
//     document) and followed by eos. Blank lines are skipped; anything else that is not such
//     an object is an error naming the file and line.
// Files are concatenated in the order given. A window is seq_len + 1 consecutive tokens of the
// stream starting anywhere (inputs = the first seq_len, targets = the last seq_len), so
// windows cross document boundaries at eos, as packed pre-training does.
//
// Cache: one file per input file, named by SHA-256 of (format version, the file's bytes'
// SHA-256, the tokenizer.json's SHA-256, eos id); holds "MLAWBTK1", u64 count, count x int32
// little-endian ids. Written to a temporary name and renamed; an unreadable or short cache
// file is ignored and rewritten.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace mlawb {

class Tokenizer;

struct TrainDataOptions {
    std::string tokenizer_file;  // the tokenizer.json `tokenizer` was read from (part of the cache key)
    int32_t eos_id = 0;
    std::string cache_dir;       // "" = no cache
    std::function<void(const std::string& file, bool from_cache, int64_t tokens)> on_file;  // after each file
};

struct TokenStreamFile {
    std::string path;
    int64_t tokens = 0;     // this file's share of the stream
    bool from_cache = false;
};

struct TokenStream {
    std::vector<int32_t> ids;
    std::vector<TokenStreamFile> files;
};

// One file's tokens (no cache). Throws mlawb::Error(path, "", ...) when unreadable, and for a
// malformed JSONL line Error("<path>:<line>", field, reason).
std::vector<int32_t> tokenize_training_file(const std::string& path, const Tokenizer& tokenizer, int32_t eos_id);

// All files, in order, through the cache. Throws when `paths` is empty or a file is unreadable.
TokenStream load_token_stream(const std::vector<std::string>& paths, const Tokenizer& tokenizer,
                              const TrainDataOptions& options);

// The default cache folder: $MLAWB_CACHE_DIR, else $XDG_CACHE_HOME/mlawb/tokens, else
// ~/.cache/mlawb/tokens, else "" (no cache).
std::string default_token_cache_dir();

// Draws window start offsets uniformly from [0, stream_tokens - window] with a seeded
// mt19937_64; its whole state (engine and windows drawn) round-trips through state()/set_state()
// so a resumed run draws the windows an uninterrupted run would have drawn.
class WindowSampler {
public:
    // window = seq_len + 1 tokens. Throws Error("", "--seq-len", ...) when the stream is shorter.
    WindowSampler(int64_t stream_tokens, int64_t window, uint64_t seed);
    int64_t next();                          // a start offset
    int64_t drawn() const { return drawn_; }
    int64_t window() const { return window_; }
    std::string state() const;               // text: "<drawn> <engine state>"
    void set_state(const std::string& text); // throws Error("", "sampler_state", ...) if malformed

private:
    int64_t stream_tokens_, window_, drawn_ = 0;
    std::mt19937_64 engine_;
};

// `batch` windows drawn from `sampler`, as int64 ids [batch, window] (row-major in `out`).
std::vector<int64_t> draw_windows(const std::vector<int32_t>& stream, WindowSampler& sampler, int64_t batch);

}  // namespace mlawb
