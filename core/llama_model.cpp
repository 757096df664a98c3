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
    for (int64_t l = 0; l < config_.n_layer; ++l) {
        // Pipeline by layer: the hidden state follows the layer (a no-op on one device).
        const torch::Device where = layer_device(l);
        if (h.device() != where) h = h.to(where);
        h = layer(l)->forward(h, rope_, cache.layer(l));
    }
    const torch::Device norm_device = model->norm->weight.device();
    if (h.device() != norm_device) h = h.to(norm_device);
    return model->norm->forward(h);
}

const torch::Tensor& LlamaForCausalLMImpl::output_weight() const {
    return config_.tie_word_embeddings ? model->embed_tokens->weight : lm_head->weight;
}

torch::Tensor LlamaForCausalLMImpl::logits(const torch::Tensor& hidden) const {
    const torch::Tensor& w = output_weight();
    // A tied output weight stays with the embedding (first stage): the hidden state goes there.
    return torch::matmul(hidden.device() == w.device() ? hidden : hidden.to(w.device()), w.t());
}

torch::Tensor LlamaForCausalLMImpl::forward(const torch::Tensor& input_ids, KVCache& cache, LogitsFor which) {
    torch::Tensor h = forward_hidden(input_ids, cache);
    if (which == LogitsFor::Last) h = h.narrow(1, h.size(1) - 1, 1);
    // No-op for CPU float32; otherwise float32 logits where the caller's ids live.
    return logits(h).to(input_ids.device(), torch::kFloat32);
}

torch::Device LlamaForCausalLMImpl::device() const { return model->embed_tokens->weight.device(); }
torch::ScalarType LlamaForCausalLMImpl::dtype() const { return model->embed_tokens->weight.scalar_type(); }
torch::Device LlamaForCausalLMImpl::layer_device(int64_t i) const { return layer(i)->input_layernorm->weight.device(); }
torch::Device LlamaForCausalLMImpl::output_device() const { return output_weight().device(); }

Placement LlamaForCausalLMImpl::placement() const {
    if (placement_.pipelined()) return placement_;
    return Placement{device(), dtype()};  // what the weights say (also before any place())
}

void LlamaForCausalLMImpl::place(const Placement& placement) {
    torch::NoGradGuard no_grad;
    const Placement where = placement.resolved(config_.n_layer);
    const std::vector<torch::Device> devices = where.layer_devices(config_.n_layer);
    // Module by module, so each layer goes straight to its own device and the CPU copy it leaves
    // is freed before the next moves: no device ever holds more than its share.
    model->embed_tokens->to(where.first_device(), where.dtype);
    for (int64_t l = 0; l < config_.n_layer; ++l) layer(l)->to(devices[static_cast<size_t>(l)], where.dtype);
    model->norm->to(where.last_device(), where.dtype);
    if (!lm_head.is_empty()) lm_head->to(where.last_device(), where.dtype);
    placement_ = where;
}

const char* dtype_name(torch::ScalarType dtype) {
    switch (dtype) {
        case torch::kFloat32: return "f32";
        case torch::kBFloat16: return "bf16";
        case torch::kFloat16: return "f16";
        default: return "other";
    }
}

std::vector<torch::Device> Placement::stage_devices() const {
    return stages.empty() ? std::vector<torch::Device>{device} : stages;
}
torch::Device Placement::first_device() const { return stages.empty() ? device : stages.front(); }
torch::Device Placement::last_device() const { return stages.empty() ? device : stages.back(); }

Placement Placement::resolved(int64_t n_layer) const {
    Placement p = *this;
    const int64_t n = static_cast<int64_t>(stage_devices().size());
    if (!split.empty()) {
        if (static_cast<int64_t>(split.size()) != n)
            throw Error("", "--layer-split",
                        std::to_string(split.size()) + " layer count(s) for " + std::to_string(n) + " device(s) in --device");
        int64_t sum = 0;
        for (int64_t c : split) {
            if (c < 1) throw Error("", "--layer-split", "every device needs at least one layer, got " + std::to_string(c));
            sum += c;
        }
        if (sum != n_layer)
            throw Error("", "--layer-split",
                        "the counts sum to " + std::to_string(sum) + ", but the model has " + std::to_string(n_layer) +
                            " layers");
        return p;
    }
    if (n > 1 && n > n_layer)
        throw Error("", "--device",
                    std::to_string(n) + " devices for a model of " + std::to_string(n_layer) +
                        " layers: at most one device per layer");
    p.split.clear();
    for (int64_t s = 0; s < n; ++s) p.split.push_back(n_layer / n + (s < n_layer % n ? 1 : 0));
    return p;
}

std::vector<torch::Device> Placement::layer_devices(int64_t n_layer) const {
    const Placement p = resolved(n_layer);
    const std::vector<torch::Device> devices = p.stage_devices();
    std::vector<torch::Device> out;
    for (size_t s = 0; s < devices.size(); ++s)
        for (int64_t i = 0; i < p.split[s]; ++i) out.push_back(devices[s]);
    return out;
}

std::string Placement::to_string() const {
    if (!pipelined()) return device.str() + " " + dtype_name(dtype);
    std::string out;
    if (split.size() == stages.size()) {
        int64_t first = 0;
        for (size_t s = 0; s < stages.size(); ++s) {
            const int64_t last = first + split[s] - 1;
            out += stages[s].str() + "[" + std::to_string(first) + (last > first ? "-" + std::to_string(last) : "") + "] ";
            first = last + 1;
        }
    } else {
        for (size_t s = 0; s < stages.size(); ++s) out += (s ? "," : "") + stages[s].str();
        out += " ";
    }
    return out + dtype_name(dtype);
}

namespace {

torch::Device parse_one_device(const std::string& device, const std::string& whole) {
    const std::string named = device == whole ? "'" + device + "'" : "'" + device + "' in '" + whole + "'";
    if (device == "cpu") return torch::Device(torch::kCPU);
    if (device.rfind("cuda", 0) != 0) throw Error("", "--device", "expected cpu, cuda or cuda:N, got " + named);
    int64_t index = 0;
    if (device.size() > 4) {
        const std::string n = device.substr(4);
        if (n.size() < 2 || n[0] != ':' || n.find_first_not_of("0123456789", 1) != std::string::npos || n.size() > 5)
            throw Error("", "--device", "expected cpu, cuda or cuda:N, got " + named);
        index = std::stoll(n.substr(1));
    }
    if (!torch::cuda::is_available())
        throw Error("", "--device", named + " asked for, but this build's LibTorch sees no CUDA device");
    const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
    if (index >= count) throw Error("", "--device", named + ": only " + std::to_string(count) + " CUDA device(s)");
    return torch::Device(torch::kCUDA, static_cast<torch::DeviceIndex>(index));
}

// "a,b,c" -> {"a", "b", "c"}, empty items kept (so "a,,b" can be refused).
std::vector<std::string> split_commas(const std::string& text) {
    std::vector<std::string> out;
    size_t start = 0;
    while (true) {
        const size_t comma = text.find(',', start);
        out.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (comma == std::string::npos) return out;
        start = comma + 1;
    }
}

}  // namespace

Placement parse_placement(const std::string& device, const std::string& dtype, const std::string& layer_split) {
    Placement p;
    if (dtype == "f32" || dtype == "float32") p.dtype = torch::kFloat32;
    else if (dtype == "bf16" || dtype == "bfloat16") p.dtype = torch::kBFloat16;
    else if (dtype == "f16" || dtype == "float16") p.dtype = torch::kFloat16;
    else throw Error("", "--dtype", "expected f32, bf16 or f16, got '" + dtype + "'");
    const std::vector<std::string> items = split_commas(device);
    for (const std::string& item : items)
        if (item.empty())
            throw Error("", "--device",
                        "empty device in '" + device + "': expected cpu, cuda or cuda:N, or a comma list of them (cuda:0,cuda:1)");
    for (const std::string& item : items) p.stages.push_back(parse_one_device(item, device));
    p.device = p.stages.front();
    if (p.stages.size() == 1) p.stages.clear();  // one device: the plain placement
    if (!layer_split.empty()) {
        for (const std::string& item : split_commas(layer_split)) {
            const bool digits = !item.empty() && item.size() <= 9 && item.find_first_not_of("0123456789") == std::string::npos;
            if (!digits || std::stoll(item) < 1)
                throw Error("", "--layer-split",
                            "expected a comma list of positive layer counts, one per device (e.g. 12,20), got '" +
                                layer_split + "'");
            p.split.push_back(std::stoll(item));
        }
        const size_t n = p.stage_devices().size();
        if (p.split.size() != n)
            throw Error("", "--layer-split",
                        std::to_string(p.split.size()) + " layer count(s) for " + std::to_string(n) +
                            " device(s) in --device '" + device + "'");
    }
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
