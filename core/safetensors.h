// safetensors reader (mmap, zero-copy views) and the checkpoint folder that may hold
// one file or several shards listed by model.safetensors.index.json.
//
// Format: u64 little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data area; offsets are relative to the start of the data area.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mlawb {

enum class DType { F32, F16, BF16 };

size_t dtype_size(DType dtype);          // bytes per element
const char* dtype_name(DType dtype);     // "F32", "F16", "BF16" as the format spells them

// A tensor inside a mapped file. `data` stays valid while the owning file is open.
struct TensorView {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    const uint8_t* data = nullptr;  // [nbytes] raw little-endian values
    size_t nbytes = 0;
    std::string file;               // path of the file that holds it (for error messages)

    int64_t numel() const;
};

// The validated header of safetensors bytes held in memory: views point into those bytes.
struct SafetensorsHeader {
    std::vector<TensorView> tensors;               // in file order (by data offset)
    std::map<std::string, std::string> metadata;   // "__metadata__"
};

// Validates `size` bytes of a whole safetensors file (length prefix, JSON header, data area)
// exactly as SafetensorsFile::open does (it calls this on its mapping); `path` names the
// bytes in errors. The fuzzer feeds arbitrary bytes through here. The returned views point
// into `bytes`, which must outlive them.
SafetensorsHeader parse_safetensors(const uint8_t* bytes, size_t size, const std::string& path);

class SafetensorsFile {
public:
    // Maps the file and validates the header; throws mlawb::Error naming the file and field:
    // header length past the end of the file or over 100 MB, header not a JSON object,
    // dtype outside F32/F16/BF16, byte range != shape x dtype size, offsets outside the data
    // area or overlapping. "__metadata__" (string -> string) is allowed.
    static std::unique_ptr<SafetensorsFile> open(const std::string& path);
    ~SafetensorsFile();
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;

    const std::string& path() const { return path_; }
    const std::vector<TensorView>& tensors() const { return tensors_; }  // in file order
    const TensorView* find(const std::string& name) const;               // nullptr if absent
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    size_t file_size() const { return size_; }

private:
    SafetensorsFile() = default;
    std::string path_;
    void* map_ = nullptr;
    size_t size_ = 0;
    std::vector<TensorView> tensors_;
    std::map<std::string, size_t> index_;  // name -> position in tensors_
    std::map<std::string, std::string> metadata_;
};

// All tensors of a Hugging Face checkpoint folder: model.safetensors, or the shards named by
// model.safetensors.index.json ("weight_map": tensor -> shard file). A folder that holds only
// pickle checkpoints (pytorch_model.bin) is refused with a message to convert to safetensors;
// pickle is never read.
class Checkpoint {
public:
    static Checkpoint open_folder(const std::string& folder);
    Checkpoint();
    ~Checkpoint();
    Checkpoint(Checkpoint&&) noexcept;
    Checkpoint& operator=(Checkpoint&&) noexcept;

    const std::string& folder() const { return folder_; }
    const TensorView* find(const std::string& name) const;  // nullptr if absent
    // Throws mlawb::Error("<folder>", name, "missing tensor ...") when absent.
    const TensorView& get(const std::string& name) const;
    std::vector<std::string> names() const;                // sorted
    size_t total_bytes() const;                            // sum of tensor bytes
    size_t file_count() const { return files_.size(); }

private:
    std::string folder_;
    std::vector<std::unique_ptr<SafetensorsFile>> files_;
    std::map<std::string, const TensorView*> by_name_;
};

// Bytes of memory the system can still hand out: MemAvailable from /proc/meminfo, lowered to
// the address-space limit (ulimit -v) when one is set; 0 when neither can be read.
uint64_t available_memory_bytes();
// The resource check before materializing tensors (mapped views cost nothing; copies and dtype
// conversions do): throws Error(file, what, "needs N bytes of memory, only M available") when
// `bytes` exceed available_memory_bytes(). No check when that is 0 (unknown).
void require_memory(uint64_t bytes, const std::string& file, const std::string& what);

// Writes tensors as a safetensors file that SafetensorsFile::open reads back: header padded
// with spaces to a multiple of 8 bytes, tensors in the given order, contiguous.
// Writes to "<path>.tmp" and renames into place, so a failed write leaves no partial file.
struct TensorToWrite {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    const void* data = nullptr;  // numel x dtype_size bytes
};
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace mlawb
