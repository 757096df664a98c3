// Minimal checks for the plain-executable tests under tests/gpu (the GPU server has no Qt):
// every failed check prints one line and makes main() return 1.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace mlawb::test {

inline int& failures() {
    static int n = 0;
    return n;
}

inline void fail(const char* file, int line, const std::string& what) {
    std::printf("FAIL %s:%d: %s\n", file, line, what.c_str());
    std::fflush(stdout);
    ++failures();
}

inline int finish(const char* suite) {
    if (failures()) std::printf("%s: %d check(s) failed\n", suite, failures());
    else std::printf("%s: all checks passed\n", suite);
    return failures() ? 1 : 0;
}

}  // namespace mlawb::test

#define MLAWB_CHECK(cond, what)                                                         \
    do {                                                                                \
        if (!(cond)) ::mlawb::test::fail(__FILE__, __LINE__, std::string(#cond) + ": " + (what)); \
    } while (0)
