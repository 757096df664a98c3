#include "app/cli/progress.h"

#include <cstdio>
#include <iomanip>
#include <ostream>
#include <unistd.h>

namespace mlawb::cli {

ProgressLine::ProgressLine(std::ostream& err, std::string label)
    : err_(err), label_(std::move(label)), tty_(isatty(STDERR_FILENO) == 1), start_(std::chrono::steady_clock::now()) {}

void ProgressLine::update(int64_t done, int64_t total, int64_t rate_count, const char* rate_label) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double fraction = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
    const int decile = static_cast<int>(fraction * 10);
    if (!tty_ && decile == last_decile_) return;
    last_decile_ = decile;
    const double rate = elapsed > 0 ? static_cast<double>(rate_count) / elapsed : 0.0;
    const double eta = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0.0;
    constexpr int width = 30;
    const int filled = static_cast<int>(fraction * width);
    err_ << (tty_ ? "\r" : "") << label_ << " [" << std::string(filled, '#') << std::string(width - filled, '.') << "] "
         << done << "/" << total << "  " << std::fixed << std::setprecision(0) << rate << " " << rate_label << "  ETA "
         << std::setprecision(1) << eta << " s" << (tty_ ? "" : "\n") << std::flush;
    drawn_ = true;
}

void ProgressLine::finish() {
    if (tty_ && drawn_) err_ << "\n" << std::flush;
}

}  // namespace mlawb::cli
