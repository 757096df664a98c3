// Learning-rate schedule of recovery fine-tuning: warmup-stable-decay (WSD), as MHA2MLA's
// continued pre-training uses it (linear warmup, constant, then "1-sqrt" cooldown to 0 over
// the last fraction of the steps; Hägele et al. 2024, arXiv 2405.18392).
//
// Step s = 0 .. total-1 is the s-th optimizer update. With W warmup steps and D decay steps
// (D = round(decay_fraction * total), at least 1 when decay_fraction > 0):
//   s <  W            lr = peak * (s + 1) / W          (the first update is not wasted at 0)
//   W <= s < total-D  lr = peak
//   s >= total - D    lr = peak * (1 - sqrt((s - (total - D)) / D))
// so the decay starts at the peak and would reach 0 at s = total, one step past the end.
#pragma once

#include <cstdint>

namespace mlawb {

struct LrSchedule {
    double peak = 1e-4;           // learning rate of the stable phase
    int64_t warmup_steps = 0;     // W
    int64_t total_steps = 0;      // optimizer updates in the whole run
    double decay_fraction = 0.1;  // share of total_steps in the 1-sqrt cooldown

    int64_t decay_steps() const;  // D
    // Throws mlawb::Error("", "--warmup" | "--decay-frac" | "--steps" | "--lr", reason) for
    // negative values, a decay fraction outside [0, 1] or warmup + decay longer than the run.
    void validate() const;
};

// The learning rate of update `step` (0-based). Pure: no state, any step in [0, total).
double learning_rate(const LrSchedule& schedule, int64_t step);

}  // namespace mlawb
