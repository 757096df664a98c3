// Writes a converted (MLA) model as a Hugging Face-style folder that load_model opens as an
// MLA model: model.safetensors (float32, walked from named_parameters()), config.json (the
// original fields plus an "mla" block: svd, strategy, r, kept pairs per layer and KV head,
// d_kv, spec, calibration provenance) and the tokenizer files. Everything is written into a
// temporary folder beside the target and renamed into place at the end, so an interrupted
// export leaves no half folder.
#pragma once

#include "analysis/mla_spec.h"
#include "analysis/strategies.h"

#include <string>

namespace mlawb {

class LlamaForCausalLMImpl;
struct CalibrationProvenance;

struct ExportRequest {
    std::string source_folder;  // the original model folder (config.json and tokenizer files)
    std::string out_folder;     // must not exist yet
    MlaSpec spec;
    KeptPairs kept;
    const CalibrationProvenance* calibration = nullptr;  // when 2-norm scores were used
};

// `model` must be converted already (convert_to_mla). Throws mlawb::Error naming the path.
void export_mla_model(LlamaForCausalLMImpl& model, const ExportRequest& request);

}  // namespace mlawb
