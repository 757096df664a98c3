// Shared by the libFuzzer targets (issue 12). The rule every target checks: outside input may
// end only in mlawb::Error (a one-line message naming the file and the field). Any other
// exception escapes LLVMFuzzerTestOneInput and aborts; ASan/UBSan report memory errors and
// undefined behaviour; FUZZ_CHECK aborts on a broken property (a round trip, a bound).
#pragma once

#include "core/error.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace mlawb::fuzz {

[[noreturn]] inline void fail(const char* condition, const char* file, int line) {
    std::fprintf(stderr, "fuzz property failed: %s (%s:%d)\n", condition, file, line);
    std::abort();
}

// Runs `body`; an mlawb::Error is the expected refusal of bad input and must say why.
template <class Body>
void refuse_only_with_errors(Body&& body) {
    try {
        body();
    } catch (const Error& e) {
        if (e.reason().empty()) fail("mlawb::Error with an empty reason", __FILE__, __LINE__);
    }
}

inline std::string as_text(const uint8_t* data, size_t size) {
    return std::string(reinterpret_cast<const char*>(data), size);
}

// The folder holding the fixtures (../shared beside the checkout), overridable for runs
// elsewhere with MLAWB_SHARED_DIR in the environment.
inline std::string shared_dir() {
    const char* from_env = std::getenv("MLAWB_SHARED_DIR");
    return from_env != nullptr ? from_env : MLAWB_SHARED_DIR;
}

}  // namespace mlawb::fuzz

#define FUZZ_CHECK(condition) \
    ((condition) ? (void)0 : ::mlawb::fuzz::fail(#condition, __FILE__, __LINE__))
