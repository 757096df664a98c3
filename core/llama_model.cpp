#include "core/llama_model.h"

#include "core/checkpoint_layout.h"
#include "core/error.h"
#include "core/mla_attention.h"
#include "core/safetensors.h"

#include <torch/cuda.h>
#include <torch/nn/functional/activation.h>

#include <filesystem>

namespace mlawb {

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
    weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
    if (x.scalar_type() == torch::kBFloat16 || x.scalar_type() == torch::kFloat16) {  // float64 stays float64 (gradient check)
        // transformers: normalize in float32, round to the input dtype, then scale by the weight.
        torch::Tensor xf = x.to(torch::kFloat32);
        torch::Tensor normed = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
        return weight * normed.to(x.scalar_type());
    }
    torch::Tensor variance = x.pow(2).mean(-1, /*keepdim=*/true);
    return weight * (x * torch::rsqrt(variance + eps));
}

MLPImpl::MLPImpl(const ModelConfig& c) {
    using torch::nn::LinearOptions;
    gate_proj = register_module("gate_proj", torch::nn::Linear(LinearOptions(c.hidden, c.ffn).bias(c.mlp_bias)));
    up_proj = register_module("up_proj", torch::nn::Linear(LinearOptions(c.hidden, c.ffn).bias(c.mlp_bias)));
    down_proj = register_module("down_proj", torch::nn::Linear(LinearOptions(c.ffn, c.hidden).bias(c.mlp_bias)));
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x) {
    return down_proj->forward(torch::silu(gate_proj->forward(x)) * up_proj->forward(x));
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& c) {
    input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden, c.rms_eps));
    self_attn = register_module("self_attn", std::make_shared<LlamaAttention>(c));
    post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden, c.rms_eps));
    mlp = register_module("mlp", MLP(c));
}

void DecoderLayerImpl::replace_attention(std::shared_ptr<AttentionBase> attention) {
    self_attn = replace_module("self_attn", std::move(attention));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const RotaryEmbedding& rope, LayerCache& cache) {
    torch::Tensor h = x + self_attn->forward(input_layernorm->forward(x), rope, cache);
    return h + mlp->forward(post_attention_layernorm->forward(h));
}

LlamaBackboneImpl::LlamaBackboneImpl(const ModelConfig& c) {
    embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab, c.hidden));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t l = 0; l < c.n_layer; ++l) layers->push_back(DecoderLayer(c));
    norm = register_module("norm", RMSNorm(c.hidden, c.rms_eps));
}

LlamaForCausalLMImpl::LlamaForCausalLMImpl(const ModelConfig& c) : config_(c), rope_(c) {
    model = register_module("model", LlamaBackbone(c));
    if (c.mla.present) {
        // A folder written by `mlawb convert`: every layer is an MLA attention of the recorded shape.
        for (int64_t l = 0; l < c.n_layer; ++l) {
            MlaLayerShape shape;
            shape.kind = c.mla.svd == "joint" ? MlaKind::Joint : c.mla.svd == "split" ? MlaKind::Split : MlaKind::PartialRopeOnly;
            shape.d_kv = c.mla.d_kv;
            shape.kept_pairs = c.mla.kept_pairs[l];
            layer(l)->replace_attention(std::make_shared<MlaAttention>(c, shape));
        }
    }
    if (!c.tie_word_embeddings)
        lm_head = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(c.hidden, c.vocab).bias(false)));
}

DecoderLayer LlamaForCausalLMImpl::layer(int64_t i) const {
    return DecoderLayer(model->layers->ptr<DecoderLayerImpl>(i));
}

KVCache LlamaForCausalLMImpl::make_cache() const { return make_cache(cache_options_); }

KVCache LlamaForCausalLMImpl::make_cache(const CacheOptions& options) const {
    std::vector<std::unique_ptr<LayerCache>> layers;
    for (int64_t l = 0; l < config_.n_layer; ++l)
        layers.push_back(options.quantized() ? layer(l)->self_attn->make_cache(options) : layer(l)->self_attn->make_cache());
    return KVCache(std::move(layers));
}

torch::Tensor LlamaForCausalLMImpl::forward_hidden(const torch::Tensor& input_ids, KVCache& cache) {
    TORCH_CHECK(input_ids.dim() == 2, "input_ids must be [B, T]");
    torch::Tensor h = model->embed_tokens->forward(input_ids.to(device()));
    for (int64_t l = 0; l < config_.n_layer; ++l) h = layer(l)->forward(h, rope_, cache.layer(l));
    return model->norm->forward(h);
}

const torch::Tensor& LlamaForCausalLMImpl::output_weight() const {
    return config_.tie_word_embeddings ? model->embed_tokens->weight : lm_head->weight;
}

torch::Tensor LlamaForCausalLMImpl::logits(const torch::Tensor& hidden) const {
    return torch::matmul(hidden, output_weight().t());
}

torch::Tensor LlamaForCausalLMImpl::forward(const torch::Tensor& input_ids, KVCache& cache, LogitsFor which) {
    torch::Tensor h = forward_hidden(input_ids, cache);
    if (which == LogitsFor::Last) h = h.narrow(1, h.size(1) - 1, 1);
    // No-op for CPU float32; otherwise float32 logits where the caller's ids live.
    return logits(h).to(input_ids.device(), torch::kFloat32);
}

torch::Device LlamaForCausalLMImpl::device() const { return model->embed_tokens->weight.device(); }
torch::ScalarType LlamaForCausalLMImpl::dtype() const { return model->embed_tokens->weight.scalar_type(); }

void LlamaForCausalLMImpl::place(const Placement& placement) {
    torch::NoGradGuard no_grad;
    to(placement.device, placement.dtype);
}

const char* dtype_name(torch::ScalarType dtype) {
    switch (dtype) {
        case torch::kFloat32: return "f32";
        case torch::kBFloat16: return "bf16";
        case torch::kFloat16: return "f16";
        default: return "other";
    }
}

std::string Placement::to_string() const { return device.str() + " " + dtype_name(dtype); }

Placement parse_placement(const std::string& device, const std::string& dtype) {
    Placement p;
    if (dtype == "f32" || dtype == "float32") p.dtype = torch::kFloat32;
    else if (dtype == "bf16" || dtype == "bfloat16") p.dtype = torch::kBFloat16;
    else if (dtype == "f16" || dtype == "float16") p.dtype = torch::kFloat16;
    else throw Error("", "--dtype", "expected f32, bf16 or f16, got '" + dtype + "'");
    if (device == "cpu") return p;
    if (device.rfind("cuda", 0) != 0)
        throw Error("", "--device", "expected cpu, cuda or cuda:N, got '" + device + "'");
    int64_t index = 0;
    if (device.size() > 4) {
        const std::string n = device.substr(4);
        if (n.size() < 2 || n[0] != ':' || n.find_first_not_of("0123456789", 1) != std::string::npos || n.size() > 5)
            throw Error("", "--device", "expected cpu, cuda or cuda:N, got '" + device + "'");
        index = std::stoll(n.substr(1));
    }
    if (!torch::cuda::is_available())
        throw Error("", "--device", "'" + device + "' asked for, but this build's LibTorch sees no CUDA device");
    const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
    if (index >= count)
        throw Error("", "--device", "'" + device + "': only " + std::to_string(count) + " CUDA device(s)");
    p.device = torch::Device(torch::kCUDA, static_cast<torch::DeviceIndex>(index));
    return p;
}

torch::Tensor to_float_tensor(const TensorView& view) {
    torch::ScalarType type = torch::kFloat32;
    switch (view.dtype) {
        case DType::F32: type = torch::kFloat32; break;
        case DType::F16: type = torch::kFloat16; break;
        case DType::BF16: type = torch::kBFloat16; break;
    }
    // from_blob does not copy; the mapping is read-only and .to()/.clone() only read it.
    torch::Tensor raw = torch::from_blob(const_cast<uint8_t*>(view.data), view.shape, torch::TensorOptions().dtype(type));
    return raw.to(torch::kFloat32).clone();
}

void LlamaForCausalLMImpl::load_weights(const Checkpoint& checkpoint) {
    check_checkpoint_against_config(config_, checkpoint);
    torch::NoGradGuard no_grad;
    for (auto& item : named_parameters(/*recurse=*/true)) {
        const TensorView& stored = checkpoint.get(item.key());
        torch::Tensor& param = item.value();
        if (stored.shape != param.sizes().vec())
            throw Error(stored.file, item.key(),
                        "shape " + shape_string(stored.shape) + " does not match the model (expected " +
                            shape_string(param.sizes().vec()) + ")");
        param.copy_(to_float_tensor(stored));
    }
}

LoadedModel load_model(const std::string& folder) {
    namespace fs = std::filesystem;
    if (!fs::is_directory(folder)) throw Error(folder, "", "not a model folder (no such directory)");
    LoadedModel m;
    m.folder = folder;
    m.config = ModelConfig::from_file(folder + "/config.json");
    const std::string tokenizer_path = folder + "/tokenizer.json";
    if (!fs::exists(tokenizer_path)) throw Error(tokenizer_path, "", "missing: the model folder needs a tokenizer.json");
    m.tokenizer = Tokenizer::from_file(tokenizer_path);
    Checkpoint checkpoint = Checkpoint::open_folder(folder);
    m.model = LlamaForCausalLM(m.config);
    m.model->load_weights(checkpoint);
    m.model->eval();
    for (auto& p : m.model->parameters()) p.set_requires_grad(false);
    return m;
}

LoadedModel load_model(const std::string& folder, const Placement& placement) {
    LoadedModel m = load_model(folder);
    m.model->place(placement);
    return m;
}

}  // namespace mlawb
