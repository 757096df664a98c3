// The tensors a Llama-family checkpoint must hold for a given ModelConfig, named as Hugging
// Face names them, with their shapes. The loader checks the checkpoint against this list
// and the model summary counts parameters from it (so `--config-only` works without weights).
#pragma once

#include "core/config.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mlawb {

struct ExpectedTensor {
    std::string name;             // e.g. "model.layers.3.self_attn.k_proj.weight"
    std::vector<int64_t> shape;   // nn.Linear orientation: [out, in]
    int64_t layer = -1;           // decoder layer index, -1 for embeddings / final norm / head
};

// Every tensor the checkpoint must provide. With tied embeddings, lm_head.weight is not
// listed (it is model.embed_tokens.weight).
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& config);

int64_t numel_of(const std::vector<int64_t>& shape);

}  // namespace mlawb

namespace mlawb {
class Checkpoint;
std::string shape_string(const std::vector<int64_t>& shape);  // "[4096, 256]"
// Checks that every expected tensor is present with the expected shape; throws
// mlawb::Error(<file holding it or the folder>, <tensor name>, <what is wrong>).
void check_checkpoint_against_config(const ModelConfig& config, const Checkpoint& checkpoint);
}  // namespace mlawb
