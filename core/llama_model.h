// The Llama-family causal LM (Llama 2/3, Mistral, Qwen2, SmolLM) as LibTorch modules named as
// the checkpoint names its tensors, so `named_parameters()` walks "model.layers.N.self_attn.
// q_proj.weight" ... and loading/exporting is a walk over it. Weights load as float32 on the CPU
// (bf16/f16 upcast), where conversion to MLA runs; place() then moves them to a device and dtype
// (f32/bf16/f16), or splits the layers across devices (pipeline by layer), and caches,
// activations and RoPE tables follow the weights of their layer. Norms, softmax and
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
#include <vector>

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

// Where a model runs: a device (cpu, cuda, cuda:N) and the dtype of weights and cache, or a
// pipeline by layer: the decoder layers split into contiguous ranges, one per device of `stages`
// (the embedding on the first, the final norm and an untied lm_head on the last; a tied output
// weight stays with the embedding). The hidden state moves at range boundaries; each layer's KV
// cache lives where its layer does. Placement{device, dtype} is one device, as before.
struct Placement {
    Placement() = default;
    explicit Placement(torch::Device device_, torch::ScalarType dtype_ = torch::kFloat32) : device(device_), dtype(dtype_) {}

    torch::Device device = torch::Device(torch::kCPU);  // the one device, or the first stage's
    torch::ScalarType dtype = torch::kFloat32;
    std::vector<torch::Device> stages;  // >= 2 devices in layer order for a pipeline; empty: `device` alone
    std::vector<int64_t> split;         // decoder layers per stage (--layer-split); empty: balanced

    bool pipelined() const { return stages.size() > 1; }
    std::vector<torch::Device> stage_devices() const;  // stages, or {device}
    torch::Device first_device() const;                // the embedding's
    torch::Device last_device() const;                 // the final norm's and lm_head's
    // This placement with `split` filled for a model of n_layer decoder layers: the given counts,
    // else contiguous balanced ranges (the first n_layer % stages stages take one layer more).
    // Throws mlawb::Error naming --layer-split (counts that do not sum to n_layer) or --device
    // (more devices than layers).
    Placement resolved(int64_t n_layer) const;
    // The device of every decoder layer (resolves first).
    std::vector<torch::Device> layer_devices(int64_t n_layer) const;
    // "cuda:0 bf16"; a resolved pipeline "cuda:0[0-15] cuda:1[16-31] bf16", unresolved "cuda:0,cuda:1 bf16".
    std::string to_string() const;
};

// Parses `device` (cpu | cuda | cuda:N, or a comma list of those: one pipeline stage each, e.g.
// "cuda:0,cuda:1"), `dtype` (f32 | bf16 | f16, or float32 / bfloat16 / float16) and `layer_split`
// (empty, or one positive layer count per device, e.g. "12,20"); throws mlawb::Error("",
// "--device" / "--dtype" / "--layer-split", ...) naming what is wrong, also when CUDA is asked
// for and this LibTorch has no CUDA device. Whether the counts sum to the model's layers is
// checked when placed (Placement::resolved).
Placement parse_placement(const std::string& device, const std::string& dtype, const std::string& layer_split = "");
const char* dtype_name(torch::ScalarType dtype);  // "f32", "bf16", "f16"

class LlamaForCausalLMImpl : public torch::nn::Module {
public:
    explicit LlamaForCausalLMImpl(const ModelConfig& config);

    // input_ids [B, T] int64 following what `cache` holds -> logits [B, T or 1, vocab] float32 on
    // input_ids' device (ids on the CPU give CPU logits whatever device the model runs on).
    torch::Tensor forward(const torch::Tensor& input_ids, KVCache& cache, LogitsFor which = LogitsFor::All);
    // Hidden states after the final norm [B, T, hidden] on the final norm's device (the last
    // stage of a pipeline) in the model's dtype (logits = hidden @ lm_head^T); input_ids may be
    // on any device.
    torch::Tensor forward_hidden(const torch::Tensor& input_ids, KVCache& cache);
    // On the output weight's device (hidden moves there first), model's dtype.
    torch::Tensor logits(const torch::Tensor& hidden) const;

    // Moves every parameter to its device in `dtype`, layer by layer (a pipeline never holds the
    // whole model on its first device). Conversion to MLA must run before (CPU f32).
    void place(const Placement& placement);
    torch::Device device() const;       // the embedding's: where input ids go
    torch::ScalarType dtype() const;    // the weights' dtype
    torch::Device layer_device(int64_t i) const;  // where decoder layer i (and its cache) is
    torch::Device output_device() const;          // where logits() computes (the output weight's)
    // Where the model is: the last place()'s (resolved) placement; one device when not pipelined.
    Placement placement() const;
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
    Placement placement_;  // set by place()
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
