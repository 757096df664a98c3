// The Settings and Eval tabs' setting, resolved and applied off the GUI thread. Plain C++ (no
// widgets, no LibTorch in this header), so tests call it directly.
//
// A 2-norm setting in the GUI usually names no scores=FILE: its scores are the ones the RoPE
// heatmap tab calibrated or loaded, held in memory. resolve_gui_setting uses those; a spec that
// names scores=FILE or calib=FILE resolves exactly as on the command line (resolve_setting).
#pragma once

#include "analysis/mla_spec.h"
#include "analysis/rope_scores.h"
#include "analysis/setting.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace mlawb {
struct ModelConfig;
}

namespace mlawb::gui {

// Throws mlawb::Error: an invalid setting, or a 2-norm setting with neither scores=/calib= nor
// `scores` (the message says to calibrate on the RoPE heatmap tab), or scores of another shape.
ResolvedSetting resolve_gui_setting(const MlaSpec& spec, const ModelConfig& config,
                                    const std::optional<RopeScores>& scores);

struct ConvertRequest {
    std::string model_folder;            // the original checkpoint
    std::string out_folder;              // must not exist yet
    std::string spec;                    // --mla text
    std::optional<RopeScores> scores;    // in-memory 2-norm scores (see above)
};

struct ConvertResult {
    std::string out_folder;
    std::string spec;                    // canonical
    int64_t kv_elements_per_token_layer = 0, original_kv_elements_per_token_layer = 0;
};

// Loads the model, converts it (progress per layer, cancel polled between layers) and writes the
// MLA folder (analysis/export.h: written beside and renamed, so a failure leaves no half
// folder). Throws mlawb::Error or mlawb::Cancelled. The original model (strategy=full, svd=none)
// is refused: there is nothing to convert.
ConvertResult convert_and_save(const ConvertRequest& request,
                               const std::function<void(int64_t done, int64_t total)>& progress,
                               const std::function<bool()>& cancelled);

}  // namespace mlawb::gui
