// What `mlawb info` prints and the GUI's Model panel shows: plain data, no LibTorch.
#pragma once

#include "core/config.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mlawb {

struct LayerSummary {
    int64_t index = 0;
    int64_t attention_params = 0;       // q/k/v/o weights and biases
    int64_t mlp_params = 0;             // gate/up/down
    int64_t norm_params = 0;            // the two RMSNorm weights
    int64_t q_heads = 0, kv_heads = 0, head_dim = 0;
    int64_t kv_elements_per_token = 0;  // K plus V of this layer, one sequence
};

struct ModelSummary {
    std::string folder;                 // checkpoint folder ("" for --config-only)
    ModelConfig config;
    bool config_only = false;           // no weights were read
    int64_t parameter_count = 0;        // unique parameters (tied embeddings counted once)
    std::string weights_dtype;          // dtype of the stored tensors ("BF16", "mixed: ...")
    uint64_t weight_bytes = 0;          // bytes of stored tensors
    int64_t weight_files = 0;           // 1, or the number of shards
    std::vector<LayerSummary> layers;

    // Original model's KV cache per token (all layers, one sequence, K plus V).
    int64_t kv_elements_per_token() const { return config.kv_elements_per_token(); }
    int64_t kv_bytes_per_token(int bytes_per_element) const { return kv_elements_per_token() * bytes_per_element; }
    int stored_bytes_per_element() const;  // from weights_dtype / torch_dtype (2 for bf16/f16, 4 for f32)

    // Reads config.json and the checkpoint's tensor table (not the weights' values) and checks
    // every expected tensor is present with the shape the config implies.
    // Throws mlawb::Error naming the file and key/tensor at fault.
    static ModelSummary from_folder(const std::string& folder);
    // From a config.json alone (`--config-only`): parameter count from the config.
    static ModelSummary from_config_file(const std::string& config_path);
};

}  // namespace mlawb
