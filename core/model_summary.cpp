#include "core/model_summary.h"

#include "core/checkpoint_layout.h"
#include "core/error.h"
#include "core/safetensors.h"

#include <map>

namespace mlawb {

namespace {

void fill_from_layout(ModelSummary& s) {
    const ModelConfig& c = s.config;
    s.layers.assign(c.n_layer, LayerSummary{});
    s.parameter_count = 0;
    for (int64_t l = 0; l < c.n_layer; ++l) {
        LayerSummary& ls = s.layers[l];
        ls.index = l;
        ls.q_heads = c.n_head;
        ls.kv_heads = c.n_kv_head;
        ls.head_dim = c.head_dim;
        ls.kv_elements_per_token = c.kv_elements_per_token_layer();
    }
    for (const ExpectedTensor& t : expected_tensors(c)) {
        const int64_t n = numel_of(t.shape);
        s.parameter_count += n;
        if (t.layer < 0) continue;
        LayerSummary& ls = s.layers[t.layer];
        if (t.name.find(".self_attn.") != std::string::npos) ls.attention_params += n;
        else if (t.name.find(".mlp.") != std::string::npos) ls.mlp_params += n;
        else ls.norm_params += n;
    }
}

}  // namespace

int ModelSummary::stored_bytes_per_element() const {
    const std::string& d = weights_dtype.empty() ? config.stored_dtype : weights_dtype;
    if (d == "F32" || d == "float32") return 4;
    return 2;  // BF16 / F16 / bfloat16 / float16 and the usual default
}

ModelSummary ModelSummary::from_folder(const std::string& folder) {
    ModelSummary s;
    s.folder = folder;
    s.config = ModelConfig::from_file(folder + "/config.json");
    Checkpoint checkpoint = Checkpoint::open_folder(folder);
    check_checkpoint_against_config(s.config, checkpoint);
    fill_from_layout(s);
    std::map<std::string, int64_t> dtype_counts;
    for (const std::string& name : checkpoint.names()) dtype_counts[dtype_name(checkpoint.get(name).dtype)] += 1;
    if (dtype_counts.size() == 1) {
        s.weights_dtype = dtype_counts.begin()->first;
    } else {
        s.weights_dtype = "mixed:";
        for (const auto& [d, n] : dtype_counts) s.weights_dtype += " " + d + "x" + std::to_string(n);
    }
    s.weight_bytes = checkpoint.total_bytes();
    s.weight_files = static_cast<int64_t>(checkpoint.file_count());
    return s;
}

ModelSummary ModelSummary::from_config_file(const std::string& config_path) {
    ModelSummary s;
    s.config = ModelConfig::from_file(config_path);
    s.config_only = true;
    fill_from_layout(s);
    return s;
}

}  // namespace mlawb
