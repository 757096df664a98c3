#include "core/checkpoint_layout.h"

namespace mlawb {

int64_t numel_of(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
    std::vector<ExpectedTensor> out;
    const int64_t q_out = c.n_head * c.head_dim;
    const int64_t kv_out = c.n_kv_head * c.head_dim;
    out.push_back({"model.embed_tokens.weight", {c.vocab, c.hidden}, -1});
    for (int64_t l = 0; l < c.n_layer; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        auto add = [&](const std::string& name, std::vector<int64_t> shape) { out.push_back({p + name, std::move(shape), l}); };
        add("input_layernorm.weight", {c.hidden});
        add("self_attn.q_proj.weight", {q_out, c.hidden});
        if (c.qkv_bias) add("self_attn.q_proj.bias", {q_out});
        if (!c.mla.present) {
            add("self_attn.k_proj.weight", {kv_out, c.hidden});
            add("self_attn.v_proj.weight", {kv_out, c.hidden});
            if (c.qkv_bias) {
                add("self_attn.k_proj.bias", {kv_out});
                add("self_attn.v_proj.bias", {kv_out});
            }
        } else {
            // Converted (MHA2MLA) layer: see core/mla_attention.h for the shapes.
            const int64_t rope_out = c.n_kv_head * 2 * c.mla.r;
            const int64_t nope_out = c.n_kv_head * (c.head_dim - 2 * c.mla.r);
            add("self_attn.k_rope_proj.weight", {rope_out, c.hidden});
            if (c.qkv_bias) add("self_attn.k_rope_proj.bias", {rope_out});
            if (c.mla.svd == "none") {
                add("self_attn.k_nope_proj.weight", {nope_out, c.hidden});
                add("self_attn.v_proj.weight", {kv_out, c.hidden});
            } else {
                const int64_t latent = c.n_kv_head * c.mla.d_kv;
                const int64_t up_in = c.mla.svd == "joint" ? latent : latent / 2;
                add("self_attn.kv_down_proj.weight", {latent, c.hidden});
                add("self_attn.k_up_proj.weight", {nope_out, up_in});
                add("self_attn.v_up_proj.weight", {kv_out, up_in});
            }
            if (c.qkv_bias) {
                add(c.mla.svd == "none" ? "self_attn.k_nope_proj.bias" : "self_attn.k_up_proj.bias", {nope_out});
                add(c.mla.svd == "none" ? "self_attn.v_proj.bias" : "self_attn.v_up_proj.bias", {kv_out});
            }
        }
        add("self_attn.o_proj.weight", {c.hidden, q_out});
        if (c.o_bias) add("self_attn.o_proj.bias", {c.hidden});
        add("post_attention_layernorm.weight", {c.hidden});
        add("mlp.gate_proj.weight", {c.ffn, c.hidden});
        add("mlp.up_proj.weight", {c.ffn, c.hidden});
        add("mlp.down_proj.weight", {c.hidden, c.ffn});
        if (c.mlp_bias) {
            add("mlp.gate_proj.bias", {c.ffn});
            add("mlp.up_proj.bias", {c.ffn});
            add("mlp.down_proj.bias", {c.hidden});
        }
    }
    out.push_back({"model.norm.weight", {c.hidden}, -1});
    if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab, c.hidden}, -1});
    return out;
}

}  // namespace mlawb

#include "core/error.h"
#include "core/safetensors.h"

namespace mlawb {

std::string shape_string(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

void check_checkpoint_against_config(const ModelConfig& config, const Checkpoint& checkpoint) {
    for (const ExpectedTensor& want : expected_tensors(config)) {
        const TensorView* have = checkpoint.find(want.name);
        if (!have)
            throw Error(checkpoint.folder(), want.name,
                        "missing tensor (config.json describes " + std::to_string(config.n_layer) + " layers of a '" +
                            config.model_type + "' model that needs it)");
        if (have->shape != want.shape)
            throw Error(have->file, want.name,
                        "shape " + shape_string(have->shape) + " does not match config.json (expected " +
                            shape_string(want.shape) + ")");
    }
}

}  // namespace mlawb
