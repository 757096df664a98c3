// The Llama-family causal LM (Llama 2/3, Mistral, Qwen2, SmolLM) as LibTorch modules named as
// the checkpoint names its tensors, so `named_parameters()` walks "model.layers.N.self_attn.
// q_proj.weight" ... and loading/exporting is a walk over it. Weights load as float32 on the CPU
// (bf16/f16 upcast), where conversion to MLA runs; place() then moves them to a device and dtype
// (f32/bf16/f16), and caches, activations and RoPE tables follow the weights. Norms, softmax and
// logits are computed in float32 whatever the dtype (as transformers does).
#pragma once

#include "core/attention.h"
#include "core/config.h"
#include "core/kv_cache.h"
#include "core/rope.h"
#include "core/tokenizer.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <string>

namespace mlawb {

class Checkpoint;

struct RMSNormImpl : torch::nn::Module {
    RMSNormImpl(int64_t dim, double eps);
    torch::Tensor forward(const torch::Tensor& x);  // x * rsqrt(mean(x^2) + eps) * weight
    torch::Tensor weight;                           // [dim]
    double eps;
};
TORCH_MODULE(RMSNorm);

struct MLPImpl : torch::nn::Module {
    explicit MLPImpl(const ModelConfig& config);
    torch::Tensor forward(const torch::Tensor& x);  // down(silu(gate(x)) * up(x))
    torch::nn::Linear gate_proj{nullptr};           // [ffn, hidden]
    torch::nn::Linear up_proj{nullptr};             // [ffn, hidden]
    torch::nn::Linear down_proj{nullptr};           // [hidden, ffn]
};
TORCH_MODULE(MLP);

struct DecoderLayerImpl : torch::nn::Module {
    explicit DecoderLayerImpl(const ModelConfig& config);
    torch::Tensor forward(const torch::Tensor& x, const RotaryEmbedding& rope, LayerCache& cache);
    RMSNorm input_layernorm{nullptr};
    std::shared_ptr<AttentionBase> self_attn;  // standard attention, or MLA after conversion
    RMSNorm post_attention_layernorm{nullptr};
    MLP mlp{nullptr};

    // Swaps the attention module (keeping the name "self_attn" for parameter paths).
    void replace_attention(std::shared_ptr<AttentionBase> attention);
};
TORCH_MODULE(DecoderLayer);

struct LlamaBackboneImpl : torch::nn::Module {
    explicit LlamaBackboneImpl(const ModelConfig& config);
    torch::nn::Embedding embed_tokens{nullptr};  // [vocab, hidden]
    torch::nn::ModuleList layers{nullptr};       // n_layer x DecoderLayer
    RMSNorm norm{nullptr};
};
TORCH_MODULE(LlamaBackbone);

// Which positions get logits: generation needs only the last, perplexity needs all.
enum class LogitsFor { All, Last };

// Where a model runs: a device (cpu, cuda, cuda:N) and the dtype of weights and cache.
struct Placement {
    torch::Device device = torch::Device(torch::kCPU);
    torch::ScalarType dtype = torch::kFloat32;
    std::string to_string() const;  // "cuda:0 bf16"
};

// Parses `device` (cpu | cuda | cuda:N) and `dtype` (f32 | bf16 | f16, or float32 / bfloat16 /
// float16); throws mlawb::Error("", "--device" or "--dtype", ...) naming what is wrong, also when
// CUDA is asked for and this LibTorch has no CUDA device.
Placement parse_placement(const std::string& device, const std::string& dtype);
const char* dtype_name(torch::ScalarType dtype);  // "f32", "bf16", "f16"

class LlamaForCausalLMImpl : public torch::nn::Module {
public:
    explicit LlamaForCausalLMImpl(const ModelConfig& config);

    // input_ids [B, T] int64 following what `cache` holds -> logits [B, T or 1, vocab] float32 on
    // input_ids' device (ids on the CPU give CPU logits whatever device the model runs on).
    torch::Tensor forward(const torch::Tensor& input_ids, KVCache& cache, LogitsFor which = LogitsFor::All);
    // Hidden states after the final norm [B, T, hidden] on the model's device and dtype
    // (logits = hidden @ lm_head^T); input_ids may be on any device.
    torch::Tensor forward_hidden(const torch::Tensor& input_ids, KVCache& cache);
    torch::Tensor logits(const torch::Tensor& hidden) const;  // model's device and dtype

    // Moves every parameter to `device` in `dtype`. Conversion to MLA must run before (CPU f32).
    void place(const Placement& placement);
    torch::Device device() const;       // where the weights are
    torch::ScalarType dtype() const;    // their dtype
    // The weight the logits come from ([vocab, hidden]: lm_head, or embed_tokens when tied).
    const torch::Tensor& output_weight() const;

    // A cache as cache_options() says (float32 values unless set_cache_options quantizes them).
    KVCache make_cache() const;
    KVCache make_cache(const CacheOptions& options) const;
    void set_cache_options(const CacheOptions& options) { cache_options_ = options; }
    const CacheOptions& cache_options() const { return cache_options_; }
    DecoderLayer layer(int64_t i) const;
    const ModelConfig& config() const { return config_; }
    const RotaryEmbedding& rope() const { return rope_; }

    // Copies every parameter from the checkpoint (upcast to float32), checking names and shapes;
    // throws mlawb::Error naming the file and tensor.
    void load_weights(const Checkpoint& checkpoint);

    LlamaBackbone model{nullptr};
    torch::nn::Linear lm_head{nullptr};  // [vocab, hidden]; not registered when tied (uses embed_tokens)

private:
    ModelConfig config_;
    RotaryEmbedding rope_;
    CacheOptions cache_options_;
};
TORCH_MODULE(LlamaForCausalLM);

// A model folder opened for inference: config, tokenizer and weights.
struct LoadedModel {
    std::string folder;
    ModelConfig config;
    Tokenizer tokenizer;
    LlamaForCausalLM model{nullptr};
};

// Opens config.json, tokenizer.json and the safetensors weights of a Hugging Face folder.
// Throws mlawb::Error naming the file and field or tensor at fault.
LoadedModel load_model(const std::string& folder);
// The same, then places the weights (load_model(folder) then model->place(placement)).
LoadedModel load_model(const std::string& folder, const Placement& placement);

// Converts a stored tensor (F32/F16/BF16, any shape) to a float32 torch tensor (a copy).
torch::Tensor to_float_tensor(const struct TensorView& view);

}  // namespace mlawb
