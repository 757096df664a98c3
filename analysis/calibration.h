// Calibration for the 2-norm scores: the text tokenized whole, its first N non-overlapping
// windows of L tokens run through the model, mean pair norms of q and k collected per layer.
#pragma once

#include "analysis/rope_scores.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mlawb {

class LlamaForCausalLMImpl;
struct LoadedModel;

// One calibration window: tokens [begin, begin + length) of the tokenized text.
struct CalibrationWindow {
    int64_t begin = 0;
    int64_t length = 0;
};

// The first `windows` non-overlapping windows of `seq_len` tokens of a text of `n_tokens`.
// When the text holds fewer than windows x seq_len tokens: every whole window it holds, plus
// the remainder as a final shorter window if that has at least 2 tokens. Empty when the text
// has fewer than 2 tokens. Throws Error naming "windows" / "seq_len" when they are < 1 / < 2.
std::vector<CalibrationWindow> calibration_windows(int64_t n_tokens, int64_t windows, int64_t seq_len);

// Runs the windows of `ids` through `model` and returns Qn, Kn and the combined scores.
// Throws Error when the text is shorter than one window of 2 tokens; Cancelled when cancelled.
RopeScores calibrate_rope_scores(LlamaForCausalLMImpl& model, const std::vector<int64_t>& ids,
                                 const CalibrationOptions& options);

// Tokenizes `text_file` with the model's tokenizer and calibrates; fills the provenance.
RopeScores calibrate_rope_scores_from_file(LoadedModel& model, const std::string& text_file,
                                           const CalibrationOptions& options);

}  // namespace mlawb
