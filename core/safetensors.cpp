#include "core/safetensors.h"

#include "core/error.h"
#include "core/json_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace mlawb {

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

// A header above this is refused before parsing: no real checkpoint comes close, and a
// corrupt length must not make us parse (or allocate for) gigabytes of JSON.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // 100 MB, the limit the format's reference reader uses
constexpr size_t kLengthPrefixBytes = 8;           // u64 little-endian header length

// Closes a POSIX file descriptor on every path out of a scope.
struct FileDescriptor {
    int fd = -1;
    explicit FileDescriptor(int value) : fd(value) {}
    ~FileDescriptor() {
        if (fd >= 0) ::close(fd);
    }
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;
};

std::string errno_text() { return std::strerror(errno); }

// Product of `dims` into `out`; false on overflow past int64 (a zero dimension wins).
bool checked_product(const std::vector<int64_t>& dims, int64_t& out) {
    if (std::find(dims.begin(), dims.end(), 0) != dims.end()) {
        out = 0;
        return true;
    }
    int64_t product = 1;
    for (int64_t dim : dims) {
        if (product > std::numeric_limits<int64_t>::max() / dim) return false;
        product *= dim;
    }
    out = product;
    return true;
}

std::string shape_text(const std::vector<int64_t>& shape) {
    std::ostringstream out;
    out << '[';
    for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
    out << ']';
    return out.str();
}

bool parse_dtype(const std::string& text, DType& dtype) {
    for (DType candidate : {DType::F32, DType::F16, DType::BF16}) {
        if (text == dtype_name(candidate)) {
            dtype = candidate;
            return true;
        }
    }
    return false;
}

// A JSON integer that fits int64 (booleans and floats are not integers here).
bool json_to_int64(const Json& value, int64_t& out) {
    if (value.is_number_unsigned()) {
        const uint64_t unsigned_value = value.get<uint64_t>();
        if (unsigned_value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
        out = static_cast<int64_t>(unsigned_value);
        return true;
    }
    if (value.is_number_integer()) {
        out = value.get<int64_t>();
        return true;
    }
    return false;
}

// Reads one tensor entry of the header; offsets stay relative to the data area.
TensorView parse_tensor_entry(const std::string& path, const std::string& name, const Json& entry,
                              uint64_t data_area_bytes, uint64_t& begin, uint64_t& end) {
    if (!entry.is_object())
        throw Error(path, name, std::string("tensor entry is a JSON ") + entry.type_name() +
                                    ", expected an object with dtype, shape and data_offsets");
    for (const char* key : {"dtype", "shape", "data_offsets"})
        if (!entry.contains(key)) throw Error(path, name, std::string("tensor entry lacks \"") + key + "\"");

    TensorView view;
    view.name = name;
    view.file = path;

    const Json& dtype = entry.at("dtype");
    if (!dtype.is_string())
        throw Error(path, name, std::string("\"dtype\" is a JSON ") + dtype.type_name() + ", expected a string");
    if (!parse_dtype(dtype.get<std::string>(), view.dtype))
        throw Error(path, name, "unsupported dtype \"" + dtype.get<std::string>() + "\" of tensor \"" + name +
                                    "\" (supported: F32, F16, BF16)");

    const Json& shape = entry.at("shape");
    if (!shape.is_array())
        throw Error(path, name, std::string("\"shape\" is a JSON ") + shape.type_name() + ", expected an array");
    for (const Json& dim : shape) {
        int64_t value = 0;
        if (!json_to_int64(dim, value))
            throw Error(path, name, "\"shape\" holds " + dim.dump() + ", expected an integer dimension");
        if (value < 0) throw Error(path, name, "negative dimension " + std::to_string(value) + " in \"shape\"");
        view.shape.push_back(value);
    }

    const Json& offsets = entry.at("data_offsets");
    if (!offsets.is_array() || offsets.size() != 2)
        throw Error(path, name, "\"data_offsets\" is " + offsets.dump() + ", expected [begin, end]");
    int64_t signed_begin = 0, signed_end = 0;
    if (!json_to_int64(offsets[0], signed_begin) || !json_to_int64(offsets[1], signed_end) ||
        signed_begin < 0 || signed_end < 0)
        throw Error(path, name, "\"data_offsets\" is " + offsets.dump() + ", expected two non-negative integers");
    begin = static_cast<uint64_t>(signed_begin);
    end = static_cast<uint64_t>(signed_end);
    if (begin > end)
        throw Error(path, name, "\"data_offsets\" begin " + std::to_string(begin) + " is past end " +
                                    std::to_string(end));

    // numel x element size, both checked, so a hostile shape cannot wrap around.
    int64_t numel = 0;
    const int64_t element_bytes = static_cast<int64_t>(dtype_size(view.dtype));
    if (!checked_product(view.shape, numel) || numel > std::numeric_limits<int64_t>::max() / element_bytes)
        throw Error(path, name, "shape " + shape_text(view.shape) + " overflows the byte count");
    const uint64_t expected_bytes = static_cast<uint64_t>(numel * element_bytes);
    if (end - begin != expected_bytes)
        throw Error(path, name, "\"data_offsets\" span " + std::to_string(end - begin) + " bytes but shape " +
                                    shape_text(view.shape) + " x " + dtype_name(view.dtype) + " needs " +
                                    std::to_string(expected_bytes) + " bytes");
    if (end > data_area_bytes)
        throw Error(path, name, "\"data_offsets\" [" + std::to_string(begin) + ", " + std::to_string(end) +
                                    "] fall outside the data area (" + std::to_string(data_area_bytes) +
                                    " bytes; the file may be truncated)");
    view.nbytes = static_cast<size_t>(expected_bytes);
    return view;
}

}  // namespace

size_t dtype_size(DType dtype) {
    switch (dtype) {
        case DType::F32: return 4;
        case DType::F16: return 2;
        case DType::BF16: return 2;
    }
    return 0;
}

const char* dtype_name(DType dtype) {
    switch (dtype) {
        case DType::F32: return "F32";
        case DType::F16: return "F16";
        case DType::BF16: return "BF16";
    }
    return "?";
}

int64_t TensorView::numel() const {
    int64_t product = 1;
    for (int64_t dim : shape) product *= dim;  // validated against overflow when the file was opened
    return product;
}

// ---------------------------------------------------------------------------------------------
// SafetensorsFile

SafetensorsFile::~SafetensorsFile() {
    if (map_ != nullptr) ::munmap(map_, size_);
}

SafetensorsHeader parse_safetensors(const uint8_t* bytes, size_t size, const std::string& path) {
    const uint64_t file_bytes = static_cast<uint64_t>(size);
    if (file_bytes < kLengthPrefixBytes)
        throw Error(path, "header", "file is truncated: " + std::to_string(file_bytes) +
                                        " bytes, shorter than the 8-byte header length");
    uint64_t header_bytes = 0;
    for (size_t i = 0; i < kLengthPrefixBytes; ++i) header_bytes |= static_cast<uint64_t>(bytes[i]) << (8 * i);
    if (header_bytes > kMaxHeaderBytes)
        throw Error(path, "header", "header length " + std::to_string(header_bytes) +
                                        " bytes is over the 100 MB limit");
    if (header_bytes > file_bytes - kLengthPrefixBytes)
        throw Error(path, "header", "header length " + std::to_string(header_bytes) +
                                        " bytes runs past the end of the file (" +
                                        std::to_string(file_bytes - kLengthPrefixBytes) +
                                        " bytes follow the length; the file may be truncated)");

    const char* header_begin = reinterpret_cast<const char*>(bytes + kLengthPrefixBytes);
    // Nesting is capped: error messages below dump parts of the header, and dump recurses.
    const Json header = parse_json_text(std::string_view(header_begin, static_cast<size_t>(header_bytes)), path,
                                        "header", "not valid JSON");
    if (!header.is_object())
        throw Error(path, "header", std::string("header is a JSON ") + header.type_name() +
                                        ", expected an object");

    SafetensorsHeader out;
    const uint64_t data_start = kLengthPrefixBytes + header_bytes;
    const uint64_t data_area_bytes = file_bytes - data_start;
    struct ByteRange {
        uint64_t begin, end;
        size_t tensor;
    };
    std::vector<ByteRange> ranges;
    for (const auto& [key, value] : header.items()) {
        if (key == "__metadata__") {
            if (!value.is_object())
                throw Error(path, "__metadata__", std::string("is a JSON ") + value.type_name() +
                                                      ", expected an object of strings");
            for (const auto& [meta_key, meta_value] : value.items()) {
                if (!meta_value.is_string())
                    throw Error(path, "__metadata__", "value of \"" + meta_key + "\" is a JSON " +
                                                          meta_value.type_name() + ", expected a string");
                out.metadata[meta_key] = meta_value.get<std::string>();
            }
            continue;
        }
        uint64_t begin = 0, end = 0;
        TensorView view = parse_tensor_entry(path, key, value, data_area_bytes, begin, end);
        view.data = bytes + data_start + begin;
        if (view.nbytes > 0) ranges.push_back({begin, end, out.tensors.size()});
        out.tensors.push_back(std::move(view));
    }

    // Sorted by start, a range overlaps an earlier one iff it starts before the furthest end so far.
    std::sort(ranges.begin(), ranges.end(),
              [](const ByteRange& a, const ByteRange& b) { return a.begin < b.begin; });
    const ByteRange* furthest = nullptr;
    for (const ByteRange& range : ranges) {
        if (furthest != nullptr && range.begin < furthest->end) {
            const std::string& first = out.tensors[furthest->tensor].name;
            const std::string& second = out.tensors[range.tensor].name;
            throw Error(path, second, "byte range of tensor \"" + second + "\" overlaps tensor \"" + first + "\"");
        }
        if (furthest == nullptr || range.end > furthest->end) furthest = &range;
    }

    // JSON objects carry no order, so "file order" is the order of the bytes in the data area.
    std::stable_sort(out.tensors.begin(), out.tensors.end(), [](const TensorView& a, const TensorView& b) {
        return a.data != b.data ? a.data < b.data : a.nbytes < b.nbytes;
    });
    return out;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
    // The object owns the mapping from the moment it exists, so any throw below unmaps it.
    std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
    file->path_ = path;

    FileDescriptor descriptor(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (descriptor.fd < 0) throw Error(path, "", "cannot open: " + errno_text());
    struct stat info {};
    if (::fstat(descriptor.fd, &info) != 0) throw Error(path, "", "cannot stat: " + errno_text());
    if (!S_ISREG(info.st_mode)) throw Error(path, "", "not a regular file");
    const uint64_t file_bytes = static_cast<uint64_t>(info.st_size);
    if (file_bytes < kLengthPrefixBytes)
        throw Error(path, "header", "file is truncated: " + std::to_string(file_bytes) +
                                        " bytes, shorter than the 8-byte header length");
    if (file_bytes > static_cast<uint64_t>(std::numeric_limits<size_t>::max()))
        throw Error(path, "", "file of " + std::to_string(file_bytes) + " bytes cannot be mapped");

    void* mapped = ::mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, descriptor.fd, 0);
    if (mapped == MAP_FAILED) throw Error(path, "", "cannot mmap: " + errno_text());
    file->map_ = mapped;
    file->size_ = static_cast<size_t>(file_bytes);

    SafetensorsHeader header = parse_safetensors(static_cast<const uint8_t*>(mapped), file->size_, path);
    file->tensors_ = std::move(header.tensors);
    file->metadata_ = std::move(header.metadata);
    for (size_t i = 0; i < file->tensors_.size(); ++i) file->index_[file->tensors_[i].name] = i;
    return file;
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

// ---------------------------------------------------------------------------------------------
// Checkpoint

Checkpoint::Checkpoint() = default;
Checkpoint::~Checkpoint() = default;
// Views point into the mapped files, which the unique_ptrs keep in place across a move.
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;

namespace {

bool is_pickle_name(const fs::path& file) {
    const std::string extension = file.extension().string();
    return extension == ".bin" || extension == ".pt" || extension == ".pth";
}

// "a, b, c", cut after 20 names so a crowded folder still gives a one-line message.
std::string join_names(const std::vector<std::string>& names) {
    constexpr size_t kMaxListed = 20;
    std::string out;
    for (size_t i = 0; i < names.size() && i < kMaxListed; ++i) out += (i ? ", " : "") + names[i];
    if (names.size() > kMaxListed) out += " and " + std::to_string(names.size() - kMaxListed) + " more";
    return out.empty() ? "nothing" : out;
}

Json read_index_json(const std::string& index_path) {
    std::ifstream stream(index_path, std::ios::binary);
    if (!stream) throw Error(index_path, "", "cannot open: " + errno_text());
    std::ostringstream text;
    text << stream.rdbuf();
    const Json index = parse_json_text(text.str(), index_path, "", "not valid JSON");
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
        throw Error(index_path, "weight_map", "missing or not an object of tensor -> shard file");
    return index;
}

}  // namespace

Checkpoint Checkpoint::open_folder(const std::string& folder) {
    std::error_code error;
    if (!fs::exists(folder, error)) throw Error(folder, "", "checkpoint folder does not exist");
    if (!fs::is_directory(folder, error)) throw Error(folder, "", "checkpoint path is not a folder");

    Checkpoint checkpoint;
    checkpoint.folder_ = folder;
    const fs::path root(folder);
    const std::string index_path = (root / "model.safetensors.index.json").string();

    if (fs::exists(index_path, error)) {
        const Json index = read_index_json(index_path);
        // Each distinct shard is opened once, however many tensors it holds.
        std::map<std::string, SafetensorsFile*> shard_by_name;
        for (const auto& [tensor, shard_json] : index["weight_map"].items()) {
            if (!shard_json.is_string())
                throw Error(index_path, tensor, "shard is a JSON " + std::string(shard_json.type_name()) +
                                                    ", expected a file name");
            const std::string shard = shard_json.get<std::string>();
            // Shards must sit in the folder: the index is data, not a licence to read elsewhere.
            if (shard.empty() || shard == "." || shard == ".." || fs::path(shard).filename().string() != shard)
                throw Error(index_path, tensor, "shard \"" + shard + "\" is not a file name in the folder");
            auto it = shard_by_name.find(shard);
            if (it == shard_by_name.end()) {
                const std::string shard_path = (root / shard).string();
                if (!fs::exists(shard_path, error))
                    throw Error(index_path, tensor, "shard \"" + shard + "\" does not exist in " + folder);
                checkpoint.files_.push_back(SafetensorsFile::open(shard_path));
                it = shard_by_name.emplace(shard, checkpoint.files_.back().get()).first;
            }
            if (it->second->find(tensor) == nullptr)
                throw Error(index_path, tensor, "tensor \"" + tensor +
                                                    "\" listed in weight_map is missing from shard \"" + shard + "\"");
        }
    } else if (fs::exists(root / "model.safetensors", error)) {
        checkpoint.files_.push_back(SafetensorsFile::open((root / "model.safetensors").string()));
    } else {
        std::vector<std::string> safetensors_found, pickles_found, everything;
        for (const fs::directory_entry& entry : fs::directory_iterator(root, error)) {
            const fs::path name = entry.path().filename();
            everything.push_back(name.string());
            if (name.extension() == ".safetensors") safetensors_found.push_back(name.string());
            if (is_pickle_name(name)) pickles_found.push_back(name.string());
        }
        std::sort(safetensors_found.begin(), safetensors_found.end());
        std::sort(pickles_found.begin(), pickles_found.end());
        std::sort(everything.begin(), everything.end());
        if (!safetensors_found.empty())
            throw Error(folder, "", "no model.safetensors or model.safetensors.index.json; found safetensors files " +
                                        join_names(safetensors_found) + " but no index naming their tensors");
        if (!pickles_found.empty())
            throw Error(folder, "", "the checkpoint is a pickle file (" + join_names(pickles_found) +
                                        "), which is never loaded because unpickling can run arbitrary code "
                                        "(unsafe); convert it to safetensors, e.g. with transformers: "
                                        "model.save_pretrained(out_dir, safe_serialization=True)");
        throw Error(folder, "", "no model.safetensors or model.safetensors.index.json; the folder holds " +
                                    join_names(everything));
    }

    // Index every tensor of every file; a name in two shards is ambiguous, so refuse it.
    for (const auto& file : checkpoint.files_) {
        for (const TensorView& view : file->tensors()) {
            auto [it, inserted] = checkpoint.by_name_.emplace(view.name, &view);
            if (!inserted)
                throw Error(folder, view.name, "tensor \"" + view.name + "\" appears in both " + it->second->file +
                                                   " and " + view.file);
        }
    }
    return checkpoint;
}

const TensorView* Checkpoint::find(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
}

const TensorView& Checkpoint::get(const std::string& name) const {
    const TensorView* view = find(name);
    if (view == nullptr)
        throw Error(folder_, name, "missing tensor \"" + name + "\" (the checkpoint holds " +
                                       std::to_string(by_name_.size()) + " tensors)");
    return *view;
}

std::vector<std::string> Checkpoint::names() const {
    std::vector<std::string> out;
    out.reserve(by_name_.size());
    for (const auto& entry : by_name_) out.push_back(entry.first);  // std::map: already sorted
    return out;
}

size_t Checkpoint::total_bytes() const {
    size_t total = 0;
    for (const auto& entry : by_name_) total += entry.second->nbytes;
    return total;
}

// ---------------------------------------------------------------------------------------------
// Memory

uint64_t available_memory_bytes() {
    uint64_t available = 0;
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    uint64_t kib = 0;
    std::string unit;
    while (meminfo >> key >> kib >> unit) {
        if (key == "MemAvailable:") {
            available = kib * 1024;
            break;
        }
    }
    struct rlimit limit {};
    if (::getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
        const uint64_t cap = static_cast<uint64_t>(limit.rlim_cur);
        available = available == 0 ? cap : std::min(available, cap);
    }
    return available;
}

void require_memory(uint64_t bytes, const std::string& file, const std::string& what) {
    const uint64_t available = available_memory_bytes();
    if (available != 0 && bytes > available) {
        auto gib = [](uint64_t n) {
            std::ostringstream out;
            out.precision(3);
            out << static_cast<double>(n) / (1024.0 * 1024.0 * 1024.0) << " GiB";
            return out.str();
        };
        throw Error(file, what, "needs " + std::to_string(bytes) + " bytes (" + gib(bytes) + ") of memory, only " +
                                    std::to_string(available) + " (" + gib(available) + ") available");
    }
}

// ---------------------------------------------------------------------------------------------
// Writer

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
    // ordered_json: the header lists metadata first, then tensors in the order given.
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) {
        nlohmann::ordered_json meta = nlohmann::ordered_json::object();
        for (const auto& [key, value] : metadata) meta[key] = value;
        header["__metadata__"] = std::move(meta);
    }
    std::set<std::string> names_written;
    std::vector<size_t> byte_counts;
    uint64_t offset = 0;  // bytes into the data area
    for (const TensorToWrite& tensor : tensors) {
        if (tensor.name.empty() || tensor.name == "__metadata__")
            throw Error(path, tensor.name, "invalid tensor name");
        if (!names_written.insert(tensor.name).second) throw Error(path, tensor.name, "tensor name written twice");
        for (int64_t dim : tensor.shape)
            if (dim < 0) throw Error(path, tensor.name, "negative dimension " + std::to_string(dim));
        int64_t numel = 0;
        const int64_t element_bytes = static_cast<int64_t>(dtype_size(tensor.dtype));
        if (!checked_product(tensor.shape, numel) || numel > std::numeric_limits<int64_t>::max() / element_bytes)
            throw Error(path, tensor.name, "shape " + shape_text(tensor.shape) + " overflows the byte count");
        if (numel > 0 && tensor.data == nullptr) throw Error(path, tensor.name, "data is null");
        const uint64_t bytes = static_cast<uint64_t>(numel * element_bytes);
        header[tensor.name] = {{"dtype", dtype_name(tensor.dtype)},
                               {"shape", tensor.shape},
                               {"data_offsets", {offset, offset + bytes}}};
        byte_counts.push_back(static_cast<size_t>(bytes));
        offset += bytes;
    }

    std::string header_text;
    try {
        header_text = header.dump();
    } catch (const Json::exception& e) {  // e.g. a name that is not valid UTF-8
        throw Error(path, "header", std::string("cannot encode: ") + e.what());
    }
    // Spaces are valid JSON whitespace; the padding lets readers find 8-byte-aligned data.
    while ((kLengthPrefixBytes + header_text.size()) % 8 != 0) header_text.push_back(' ');

    uint8_t length_prefix[kLengthPrefixBytes];
    for (size_t i = 0; i < kLengthPrefixBytes; ++i)
        length_prefix[i] = static_cast<uint8_t>(static_cast<uint64_t>(header_text.size()) >> (8 * i));

    const std::string temporary_path = path + ".tmp";
    bool written = false;
    {
        FileDescriptor descriptor(::open(temporary_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        if (descriptor.fd < 0) throw Error(path, "", "cannot open " + temporary_path + " for writing: " + errno_text());
        auto write_all = [&](const void* data, size_t bytes) {
            const auto* cursor = static_cast<const uint8_t*>(data);
            while (bytes > 0) {
                const ssize_t done = ::write(descriptor.fd, cursor, bytes);
                if (done < 0 && errno == EINTR) continue;
                if (done <= 0) return false;
                cursor += done;
                bytes -= static_cast<size_t>(done);
            }
            return true;
        };
        written = write_all(length_prefix, sizeof length_prefix) && write_all(header_text.data(), header_text.size());
        for (size_t i = 0; written && i < tensors.size(); ++i)
            written = write_all(tensors[i].data, byte_counts[i]);
        // fsync before rename, so a crash cannot leave an empty file under the final name;
        // close() is checked too, as some file systems report write errors only there.
        written = written && ::fsync(descriptor.fd) == 0;
        const int fd = descriptor.fd;
        descriptor.fd = -1;
        written = (::close(fd) == 0) && written;
        if (!written) {
            const std::string reason = errno_text();
            ::unlink(temporary_path.c_str());
            throw Error(path, "", "cannot write " + temporary_path + ": " + reason);
        }
    }
    if (::rename(temporary_path.c_str(), path.c_str()) != 0) {
        const std::string reason = errno_text();
        ::unlink(temporary_path.c_str());
        throw Error(path, "", "cannot rename " + temporary_path + " into place: " + reason);
    }
    // The rename is durable once the folder is synced (best effort: not every file system allows it).
    const std::string folder = fs::path(path).parent_path().string();
    FileDescriptor directory(::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (directory.fd >= 0) ::fsync(directory.fd);
}

}  // namespace mlawb
