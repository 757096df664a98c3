// safetensors: the length prefix, the JSON header and the tensor table, through
// parse_safetensors (the code SafetensorsFile::open runs on its mapping). Every accepted
// tensor must lie inside the input (each byte is read, so ASan checks the bounds) and what is
// accepted must survive write_safetensors + SafetensorsFile::open unchanged.
#include "core/safetensors.h"
#include "fuzz_support.h"

#include <cstring>
#include <unistd.h>

using namespace mlawb;

namespace {

// A per-process scratch file on tmpfs (libFuzzer may run several jobs at once).
const std::string& scratch_path() {
    static const std::string path = "/dev/shm/mlawb-fuzz-safetensors-" + std::to_string(::getpid()) + ".safetensors";
    return path;
}

void check_round_trip(const SafetensorsHeader& parsed) {
    std::vector<TensorToWrite> tensors;
    for (const TensorView& t : parsed.tensors) tensors.push_back({t.name, t.dtype, t.shape, t.data});
    try {
        write_safetensors(scratch_path(), tensors, parsed.metadata);
    } catch (const Error&) {
        return;  // names the writer refuses (e.g. "") are fine to refuse
    }
    std::unique_ptr<SafetensorsFile> reread;
    try {
        reread = SafetensorsFile::open(scratch_path());
    } catch (const Error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        FUZZ_CHECK(!"the reader refuses what the writer wrote");
    }
    FUZZ_CHECK(reread->tensors().size() == parsed.tensors.size());
    FUZZ_CHECK(reread->metadata() == parsed.metadata);
    for (const TensorView& t : parsed.tensors) {
        const TensorView* back = reread->find(t.name);
        FUZZ_CHECK(back != nullptr);
        FUZZ_CHECK(back->dtype == t.dtype && back->shape == t.shape && back->nbytes == t.nbytes);
        FUZZ_CHECK(t.nbytes == 0 || std::memcmp(back->data, t.data, t.nbytes) == 0);
    }
    ::unlink(scratch_path().c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::refuse_only_with_errors([&] {
        const SafetensorsHeader header = parse_safetensors(data, size, "fuzz.safetensors");
        unsigned checksum = 0;
        for (const TensorView& t : header.tensors) {
            FUZZ_CHECK(t.data >= data && t.nbytes <= size && static_cast<size_t>(t.data - data) <= size - t.nbytes);
            FUZZ_CHECK(static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype) == t.nbytes);
            for (size_t i = 0; i < t.nbytes; ++i) checksum += t.data[i];
        }
        if (checksum == 0xFFFFFFFFu) std::fputc('\0', stderr);  // keeps the reads from being optimized out
        check_round_trip(header);
    });
    return 0;
}
