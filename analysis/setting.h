// An MlaSpec resolved against one model: the kept-pair mask, with 2-norm scores read from
// scores=FILE or calibrated on the fly from calib=FILE (through the callback, so this header
// and the memory model stay free of LibTorch).
#pragma once

#include "analysis/mla_spec.h"
#include "analysis/rope_scores.h"
#include "analysis/strategies.h"

#include <functional>
#include <optional>

namespace mlawb {

struct ModelConfig;

struct ResolvedSetting {
    MlaSpec spec;
    KeptPairs kept;                    // [L][n_kv][d/2]
    std::optional<RopeScores> scores;  // when the strategy used them
};

// `calibrate` is called only when the strategy needs scores and the spec names calib=FILE
// (it receives that file); it may be empty when no calibration is possible (then such specs
// are refused with the reason).
ResolvedSetting resolve_setting(const MlaSpec& spec, const ModelConfig& config,
                                const std::function<RopeScores(const std::string& calib_file)>& calibrate);

}  // namespace mlawb
