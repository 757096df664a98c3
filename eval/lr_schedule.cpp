#include "eval/lr_schedule.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace mlawb {

int64_t LrSchedule::decay_steps() const {
    if (decay_fraction <= 0) return 0;
    const int64_t d = static_cast<int64_t>(std::llround(decay_fraction * static_cast<double>(total_steps)));
    return std::clamp<int64_t>(d, 1, std::max<int64_t>(total_steps, 1));
}

void LrSchedule::validate() const {
    if (total_steps < 1) throw Error("", "--steps", "must be at least 1");
    if (!(peak > 0) || !std::isfinite(peak)) throw Error("", "--lr", "must be a positive number");
    if (warmup_steps < 0) throw Error("", "--warmup", "must not be negative");
    if (!(decay_fraction >= 0 && decay_fraction <= 1)) throw Error("", "--decay-frac", "must be between 0 and 1");
    if (warmup_steps + decay_steps() > total_steps)
        throw Error("", "--warmup",
                    std::to_string(warmup_steps) + " warmup steps plus " + std::to_string(decay_steps()) +
                        " decay steps exceed the " + std::to_string(total_steps) + " steps of the run");
}

double learning_rate(const LrSchedule& s, int64_t step) {
    if (step < s.warmup_steps) return s.peak * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
    const int64_t d = s.decay_steps();
    const int64_t decay_start = s.total_steps - d;
    if (d == 0 || step < decay_start) return s.peak;
    const double progress = std::min(1.0, static_cast<double>(step - decay_start) / static_cast<double>(d));
    return s.peak * (1.0 - std::sqrt(progress));
}

}  // namespace mlawb
