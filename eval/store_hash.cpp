// SHA-256 (FIPS 180-4) and the checkpoint content hash the results store keys models by.
#include "eval/store.h"

#include "core/error.h"

#include <array>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace mlawb {

namespace {

class Sha256 {
public:
    void update(const void* data, size_t size) {
        const auto* bytes = static_cast<const uint8_t*>(data);
        length_bytes_ += size;
        while (size > 0) {
            const size_t take = std::min(size, block_.size() - used_);
            std::copy(bytes, bytes + take, block_.begin() + used_);
            used_ += take;
            bytes += take;
            size -= take;
            if (used_ == block_.size()) {
                compress(block_.data());
                used_ = 0;
            }
        }
    }
    void update(const std::string& text) { update(text.data(), text.size()); }

    std::string hex_digest() {
        // Padding: 0x80, zeros to 56 mod 64, then the message length in bits, big-endian.
        const uint64_t bits = length_bytes_ * 8;
        const uint8_t one = 0x80, zero = 0;
        update(&one, 1);
        while (used_ != 56) update(&zero, 1);
        uint8_t length[8];
        for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
        update(length, 8);
        static const char* digits = "0123456789abcdef";
        std::string out;
        for (uint32_t word : state_)
            for (int shift = 28; shift >= 0; shift -= 4) out += digits[(word >> shift) & 0xf];
        return out;
    }

private:
    static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

    void compress(const uint8_t* chunk) {
        static const uint32_t k[64] = {
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
            0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
            0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
            0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
            0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
            0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
            0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
            0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
        uint32_t w[64];
        for (int i = 0; i < 16; ++i)
            w[i] = uint32_t(chunk[4 * i]) << 24 | uint32_t(chunk[4 * i + 1]) << 16 | uint32_t(chunk[4 * i + 2]) << 8 |
                   uint32_t(chunk[4 * i + 3]);
        for (int i = 16; i < 64; ++i) {
            const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3];
        uint32_t e = state_[4], f = state_[5], g = state_[6], h = state_[7];
        for (int i = 0; i < 64; ++i) {
            const uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
            const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        state_[0] += a, state_[1] += b, state_[2] += c, state_[3] += d;
        state_[4] += e, state_[5] += f, state_[6] += g, state_[7] += h;
    }

    std::array<uint32_t, 8> state_ = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    std::array<uint8_t, 64> block_{};
    size_t used_ = 0;
    uint64_t length_bytes_ = 0;
};

// Sampled data blocks per weight file, and their size: 32 x 64 KiB = 2 MiB read per file
// whatever the checkpoint's size.
constexpr uint64_t kSampleBlocks = 32;
constexpr uint64_t kSampleBlockBytes = 64 * 1024;

// Safetensors headers are bounded as SafetensorsFile bounds them.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

std::string read_whole(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path.string(), "", "cannot open for the model content hash");
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// Each part enters the hash as "<name>\n<byte count>\n<bytes>", so parts cannot run together.
void hash_part(Sha256& sha, const std::string& name, const std::string& bytes) {
    sha.update(name + "\n" + std::to_string(bytes.size()) + "\n");
    sha.update(bytes);
}

void hash_weight_file(Sha256& sha, const std::filesystem::path& path) {
    const std::string file = path.string();
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(file, "", "cannot open weight file for the model content hash");
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(path, ec);
    if (ec) throw Error(file, "", "cannot read its size: " + ec.message());
    uint8_t length_bytes[8];
    if (size < 8 || !in.read(reinterpret_cast<char*>(length_bytes), 8))
        throw Error(file, "header", "file shorter than the 8-byte safetensors header length");
    uint64_t header_length = 0;
    for (int i = 7; i >= 0; --i) header_length = header_length << 8 | length_bytes[i];  // little-endian
    if (header_length > kMaxHeaderBytes || header_length > size - 8)
        throw Error(file, "header", "header length " + std::to_string(header_length) + " past the end of the file");
    std::string header(header_length, '\0');
    in.read(header.data(), static_cast<std::streamsize>(header_length));

    sha.update(path.filename().string() + "\nsize " + std::to_string(size) + "\n");
    hash_part(sha, "header", header);

    const uint64_t data_begin = 8 + header_length;
    const uint64_t data_bytes = size - data_begin;
    std::string block;
    auto hash_range = [&](uint64_t offset, uint64_t count) {
        block.resize(count);
        in.seekg(static_cast<std::streamoff>(data_begin + offset));
        if (!in.read(block.data(), static_cast<std::streamsize>(count)))
            throw Error(file, "", "read failed at byte " + std::to_string(data_begin + offset));
        hash_part(sha, "data@" + std::to_string(offset), block);
    };
    if (data_bytes <= kSampleBlocks * kSampleBlockBytes) {
        if (data_bytes > 0) hash_range(0, data_bytes);
        return;
    }
    // Evenly spaced from the first byte to the last: block 0 starts the data, the last ends it.
    const uint64_t stride = (data_bytes - kSampleBlockBytes) / (kSampleBlocks - 1);
    for (uint64_t i = 0; i < kSampleBlocks; ++i) {
        const uint64_t offset = i + 1 == kSampleBlocks ? data_bytes - kSampleBlockBytes : i * stride;
        hash_range(offset, kSampleBlockBytes);
    }
}

}  // namespace

std::string sha256_hex(const std::string& bytes) {
    Sha256 sha;
    sha.update(bytes);
    return sha.hex_digest();
}

std::string model_content_hash(const std::string& folder) {
    namespace fs = std::filesystem;
    const fs::path root(folder);
    if (!fs::exists(root / "config.json")) throw Error(folder, "config.json", "missing: not a model folder");

    Sha256 sha;
    sha.update(std::string("mlawb-model-hash-v1\n"));  // versions the recipe below
    for (const char* name : {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                             "special_tokens_map.json"})
        if (fs::exists(root / name)) hash_part(sha, name, read_whole(root / name));

    std::vector<std::string> weight_files;
    if (fs::exists(root / "model.safetensors.index.json")) {
        nlohmann::json index;
        try {
            index = nlohmann::json::parse(read_whole(root / "model.safetensors.index.json"));
        } catch (const nlohmann::json::exception& e) {
            throw Error((root / "model.safetensors.index.json").string(), "", std::string("not JSON: ") + e.what());
        }
        if (!index.contains("weight_map") || !index["weight_map"].is_object())
            throw Error((root / "model.safetensors.index.json").string(), "weight_map", "missing or not an object");
        std::set<std::string> shards;
        for (const auto& [tensor, shard] : index["weight_map"].items()) {
            if (!shard.is_string())
                throw Error((root / "model.safetensors.index.json").string(), "weight_map." + tensor, "not a file name");
            shards.insert(shard.get<std::string>());
        }
        weight_files.assign(shards.begin(), shards.end());  // sorted
    } else if (fs::exists(root / "model.safetensors")) {
        weight_files.push_back("model.safetensors");
    } else {
        throw Error(folder, "model.safetensors", "missing (and no model.safetensors.index.json)");
    }
    for (const auto& name : weight_files) hash_weight_file(sha, root / name);
    return sha.hex_digest();
}

}  // namespace mlawb
