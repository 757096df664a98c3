// ModelConfig: the hyper-parameters of a Hugging Face causal LM, read once from config.json.
// Every other part of the engine asks this struct; nothing else reads config.json.
// Both RoPE styles are folded in here: `rope_theta`/`rope_scaling` at top level (older
// transformers) and `rope_parameters` (newer transformers).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mlawb {

// How the rotary frequencies are rescaled (transformers' `rope_type`).
struct RopeScaling {
    enum class Type { Default, Linear, Llama3 };
    Type type = Type::Default;
    double factor = 1.0;                          // linear, llama3
    double low_freq_factor = 1.0;                 // llama3
    double high_freq_factor = 4.0;                // llama3
    int64_t original_max_position_embeddings = 8192;  // llama3
};

const char* rope_type_name(RopeScaling::Type type);

// The "mla" block `mlawb convert` writes into config.json: the folder holds an MLA model
// (partial RoPE + low-rank K/V, MHA2MLA), and this says how each layer is shaped.
struct MlaConfig {
    bool present = false;
    std::string svd;             // "joint" | "split" | "none"
    std::string strategy;        // how the kept pairs were chosen (provenance)
    std::string spec;            // the canonical --mla spec text it was converted with
    int64_t r = 0;               // kept RoPE pairs per KV head
    int64_t d_kv = 0;            // latent width per KV head (0 for svd none)
    std::vector<std::vector<std::vector<int64_t>>> kept_pairs;  // [n_layer][n_kv_head][r], ascending
    std::string calibration_json;  // calibration provenance as JSON text ("" when none)
};

struct ModelConfig {
    std::string source;          // path of the config.json it came from (for messages)
    std::string model_type;      // "llama", "mistral", "qwen2"
    std::string architecture;    // architectures[0], e.g. "LlamaForCausalLM"
    int64_t n_layer = 0;         // num_hidden_layers
    int64_t n_head = 0;          // num_attention_heads (query heads)
    int64_t n_kv_head = 0;       // num_key_value_heads (== n_head for MHA)
    int64_t head_dim = 0;        // explicit head_dim, else hidden / n_head
    int64_t hidden = 0;          // hidden_size
    int64_t ffn = 0;             // intermediate_size
    int64_t vocab = 0;           // vocab_size
    int64_t max_position = 0;    // max_position_embeddings (the model context)
    double rms_eps = 1e-6;       // rms_norm_eps
    double rope_theta = 10000.0;
    RopeScaling rope_scaling;
    bool tie_word_embeddings = false;
    bool qkv_bias = false;       // q/k/v projections carry a bias (Qwen2; Llama attention_bias)
    bool o_bias = false;         // o_proj carries a bias (Llama attention_bias)
    bool mlp_bias = false;
    int64_t sliding_window = 0;  // 0 = full attention (Mistral may set 4096)
    int64_t bos_token_id = -1;
    std::vector<int64_t> eos_token_ids;
    std::string stored_dtype;    // torch_dtype / dtype as written ("bfloat16", ...)
    MlaConfig mla;               // converted models only

    // Parses config.json; throws mlawb::Error naming the file and the key at fault.
    static ModelConfig from_file(const std::string& path);
    // Parses JSON text; `source` names it in errors.
    static ModelConfig from_json_text(const std::string& text, const std::string& source);

    int64_t group_size() const { return n_head / n_kv_head; }  // query heads per KV head
    bool is_mha() const { return n_head == n_kv_head; }
    bool is_eos(int64_t id) const;

    // KV cache of the model as it runs, one sequence: K plus V (2 n_kv d), or for a converted
    // model with a latent, c_kv plus k_rope (n_kv (2r + d_kv)).
    int64_t kv_elements_per_token_layer() const {
        if (mla.present && mla.svd != "none") return n_kv_head * (2 * mla.r + mla.d_kv);
        return 2 * n_kv_head * head_dim;
    }
    int64_t kv_elements_per_token() const { return n_layer * kv_elements_per_token_layer(); }
};

// The model types the engine runs; used in the "unsupported model_type" error.
const std::vector<std::string>& supported_model_types();

}  // namespace mlawb
