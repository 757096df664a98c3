#include "eval/train_data.h"

#include "core/error.h"
#include "core/json_io.h"
#include "core/tokenizer.h"
#include "eval/store.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace mlawb {

namespace fs = std::filesystem;

namespace {

// Bump when the stream layout changes, so old cache files are not reused.
constexpr const char* kCacheFormat = "mlawb-train-tokens-v1";
constexpr char kCacheMagic[8] = {'M', 'L', 'A', 'W', 'B', 'T', 'K', '1'};

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path, "", "cannot open training data file");
    std::ostringstream s;
    s << in.rdbuf();
    if (in.bad()) throw Error(path, "", "read failed");
    return s.str();
}

bool is_jsonl(const std::string& path) { return fs::path(path).extension() == ".jsonl"; }

std::vector<int32_t> tokenize_text(const std::string& bytes, const Tokenizer& tokenizer, int32_t eos_id) {
    std::vector<int32_t> ids = tokenizer.encode(bytes);
    ids.push_back(eos_id);
    return ids;
}

std::vector<int32_t> tokenize_jsonl(const std::string& path, const std::string& bytes, const Tokenizer& tokenizer,
                                    int32_t eos_id) {
    std::vector<int32_t> ids;
    std::istringstream lines(bytes);
    std::string line;
    int64_t number = 0;
    while (std::getline(lines, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        const std::string where = path + ":" + std::to_string(number);
        nlohmann::json record = parse_json_object_line(line, where);
        for (const char* key : {"prompt", "completion"})
            if (!record.contains(key) || !record[key].is_string())
                throw Error(where, key, "missing or not a string (each line needs \"prompt\" and \"completion\")");
        std::vector<int32_t> doc =
            tokenizer.encode(record["prompt"].get<std::string>() + record["completion"].get<std::string>());
        ids.insert(ids.end(), doc.begin(), doc.end());
        ids.push_back(eos_id);
    }
    if (ids.empty()) throw Error(path, "", "no records (expected one {\"prompt\", \"completion\"} object a line)");
    return ids;
}

bool read_cache(const fs::path& file, std::vector<int32_t>& ids) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return false;
    char magic[8];
    uint64_t count = 0;
    if (!in.read(magic, 8) || std::memcmp(magic, kCacheMagic, 8) != 0) return false;
    if (!in.read(reinterpret_cast<char*>(&count), sizeof(count))) return false;
    std::error_code ec;
    const uintmax_t size = fs::file_size(file, ec);
    if (ec || size != 16 + count * sizeof(int32_t)) return false;
    ids.resize(count);
    return static_cast<bool>(in.read(reinterpret_cast<char*>(ids.data()), static_cast<std::streamsize>(count * 4)));
}

// Best effort: a cache that cannot be written only costs the next run a re-tokenization.
void write_cache(const fs::path& file, const std::vector<int32_t>& ids) {
    std::error_code ec;
    fs::create_directories(file.parent_path(), ec);
    const fs::path tmp = file.string() + ".tmp-" + std::to_string(getpid());
    {
        std::ofstream out(tmp, std::ios::binary);
        if (!out) return;
        const uint64_t count = ids.size();
        out.write(kCacheMagic, 8);
        out.write(reinterpret_cast<const char*>(&count), sizeof(count));
        out.write(reinterpret_cast<const char*>(ids.data()), static_cast<std::streamsize>(count * 4));
        out.flush();
        if (!out) {
            fs::remove(tmp, ec);
            return;
        }
    }
    fs::rename(tmp, file, ec);
    if (ec) fs::remove(tmp, ec);
}

}  // namespace

std::vector<int32_t> tokenize_training_file(const std::string& path, const Tokenizer& tokenizer, int32_t eos_id) {
    const std::string bytes = read_bytes(path);
    if (is_jsonl(path)) return tokenize_jsonl(path, bytes, tokenizer, eos_id);
    if (bytes.empty()) throw Error(path, "", "empty training text file");
    return tokenize_text(bytes, tokenizer, eos_id);
}

TokenStream load_token_stream(const std::vector<std::string>& paths, const Tokenizer& tokenizer,
                              const TrainDataOptions& options) {
    if (paths.empty()) throw Error("", "--data", "at least one training file is required");
    std::string tokenizer_hash;
    if (!options.cache_dir.empty()) {
        if (options.tokenizer_file.empty())
            throw Error("", "tokenizer_file", "the token cache needs the tokenizer.json path (part of its key)");
        tokenizer_hash = sha256_hex(read_bytes(options.tokenizer_file));
    }
    TokenStream stream;
    for (const std::string& path : paths) {
        TokenStreamFile info;
        info.path = path;
        std::vector<int32_t> ids;
        if (options.cache_dir.empty()) {
            ids = tokenize_training_file(path, tokenizer, options.eos_id);
        } else {
            const std::string bytes = read_bytes(path);
            const std::string key = sha256_hex(std::string(kCacheFormat) + "\n" + sha256_hex(bytes) + "\n" + tokenizer_hash +
                                               "\n" + std::to_string(options.eos_id) + "\n" +
                                               (is_jsonl(path) ? "jsonl" : "text"));
            const fs::path cache_file = fs::path(options.cache_dir) / (key + ".tokens");
            if (read_cache(cache_file, ids)) {
                info.from_cache = true;
            } else {
                if (is_jsonl(path)) {
                    ids = tokenize_jsonl(path, bytes, tokenizer, options.eos_id);
                } else {
                    if (bytes.empty()) throw Error(path, "", "empty training text file");
                    ids = tokenize_text(bytes, tokenizer, options.eos_id);
                }
                write_cache(cache_file, ids);
            }
        }
        info.tokens = static_cast<int64_t>(ids.size());
        stream.ids.insert(stream.ids.end(), ids.begin(), ids.end());
        stream.files.push_back(info);
        if (options.on_file) options.on_file(path, info.from_cache, info.tokens);
    }
    return stream;
}

std::string default_token_cache_dir() {
    if (const char* dir = std::getenv("MLAWB_CACHE_DIR"); dir && *dir) return std::string(dir) + "/tokens";
    if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::string(xdg) + "/mlawb/tokens";
    if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.cache/mlawb/tokens";
    return "";
}

WindowSampler::WindowSampler(int64_t stream_tokens, int64_t window, uint64_t seed)
    : stream_tokens_(stream_tokens), window_(window), engine_(seed) {
    if (window < 2) throw Error("", "--seq-len", "must be at least 1");
    if (stream_tokens < window)
        throw Error("", "--seq-len",
                    "the training data holds " + std::to_string(stream_tokens) + " tokens, fewer than one window of " +
                        std::to_string(window) + " (seq_len + 1)");
}

int64_t WindowSampler::next() {
    // Offsets 0 .. stream - window inclusive. Modulo of a 64-bit draw: the bias is below
    // range / 2^64, and unlike std::uniform_int_distribution the mapping is the same everywhere.
    const uint64_t range = static_cast<uint64_t>(stream_tokens_ - window_ + 1);
    ++drawn_;
    return static_cast<int64_t>(engine_() % range);
}

std::string WindowSampler::state() const {
    std::ostringstream s;
    s << drawn_ << ' ' << engine_;
    return s.str();
}

void WindowSampler::set_state(const std::string& text) {
    std::istringstream s(text);
    int64_t drawn = -1;
    std::mt19937_64 engine;
    s >> drawn >> engine;
    if (s.fail() || drawn < 0) throw Error("", "sampler_state", "malformed window sampler state");
    drawn_ = drawn;
    engine_ = engine;
}

std::vector<int64_t> draw_windows(const std::vector<int32_t>& stream, WindowSampler& sampler, int64_t batch) {
    const int64_t w = sampler.window();
    std::vector<int64_t> out(static_cast<size_t>(batch * w));
    for (int64_t b = 0; b < batch; ++b) {
        const int64_t start = sampler.next();
        std::copy(stream.begin() + start, stream.begin() + start + w, out.begin() + b * w);
    }
    return out;
}

}  // namespace mlawb
