// A progress line on stderr: redrawn in place on a terminal, a line per 10% otherwise
// (so logs of batch jobs stay short).
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace mlawb::cli {

class ProgressLine {
public:
    ProgressLine(std::ostream& err, std::string label);
    // done of total units; `rate_label` e.g. "tok/s" with `rate_count` units processed so far.
    void update(int64_t done, int64_t total, int64_t rate_count, const char* rate_label);
    void finish();

private:
    std::ostream& err_;
    std::string label_;
    bool tty_;
    int last_decile_ = -1;
    bool drawn_ = false;
    std::chrono::steady_clock::time_point start_;
};

}  // namespace mlawb::cli
