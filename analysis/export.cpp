#include "analysis/export.h"

#include "analysis/rope_scores.h"
#include "core/error.h"
#include "core/json_io.h"
#include "core/llama_model.h"
#include "core/mla_attention.h"
#include "core/safetensors.h"
#include "core/staging.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace mlawb {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

void write_text(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
    out.flush();
    if (!out) throw Error(path.string(), "", "write failed");
}

}  // namespace

void export_mla_model(LlamaForCausalLMImpl& model, const ExportRequest& req) {
    const fs::path out = req.out_folder;
    if (out.empty()) throw Error("", "--out", "an output folder is required");
    if (fs::exists(out)) throw Error(out.string(), "", "already exists; choose a new folder (nothing is overwritten)");
    for (int64_t l = 0; l < model.config().n_layer; ++l)
        if (!std::dynamic_pointer_cast<MlaAttention>(model.layer(l)->self_attn))
            throw Error("", "--mla", "the model is not converted (layer " + std::to_string(l) + ")");

    const fs::path parent = out.parent_path().empty() ? fs::path(".") : out.parent_path();
    if (!fs::is_directory(parent)) throw Error(parent.string(), "", "output parent folder does not exist");
    remove_stale_staging(parent);  // what killed runs left beside this output
    const fs::path staging = staging_path(out, "partial");
    fs::remove_all(staging);
    fs::create_directories(staging);
    try {
        // Weights: every parameter under its checkpoint name, float32.
        std::vector<torch::Tensor> keep_alive;
        std::vector<TensorToWrite> tensors;
        for (const auto& p : model.named_parameters()) {
            torch::Tensor t = p.value().detach().to(torch::kFloat32).contiguous();
            keep_alive.push_back(t);
            tensors.push_back({p.key(), DType::F32, t.sizes().vec(), t.data_ptr()});
        }
        write_safetensors((staging / "model.safetensors").string(), tensors, {{"format", "pt"}, {"mlawb", "mla"}});

        // config.json: the original fields plus the "mla" block.
        json config = read_json_file(req.source_folder + "/config.json");
        json kept = json::array();
        for (int64_t l = 0; l < req.kept.n_layer; ++l) {
            json heads = json::array();
            for (int64_t g = 0; g < req.kept.n_kv_head; ++g) heads.push_back(req.kept.pairs(l, g));
            kept.push_back(heads);
        }
        json mla = {{"svd", svd_mode_name(req.spec.svd)},
                    {"strategy", req.spec.strategy},
                    {"spec", req.spec.to_string()},
                    {"r", req.kept.n_layer > 0 ? req.kept.count(0, 0) : 0},
                    {"d_kv", req.spec.svd == SvdMode::None ? 0 : req.spec.d_kv},
                    {"kept_pairs", kept}};
        if (req.calibration) {
            const CalibrationProvenance& c = *req.calibration;
            mla["calibration"] = {{"model", c.model}, {"text_file", c.text_file}, {"windows", c.windows},
                                  {"seq_len", c.seq_len}, {"tokens", c.tokens}};
        }
        config["mla"] = mla;
        config["torch_dtype"] = "float32";
        if (config.contains("dtype")) config["dtype"] = "float32";
        write_text(staging / "config.json", config.dump(2) + "\n");

        for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"}) {
            const fs::path src = fs::path(req.source_folder) / name;
            if (fs::exists(src)) fs::copy_file(src, staging / name);
        }
        fs::rename(staging, out);
    } catch (...) {
        std::error_code ignored;
        fs::remove_all(staging, ignored);
        throw;
    }
}

}  // namespace mlawb
