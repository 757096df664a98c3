#include "core/batched_decode_impl.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace mlawb {

// ---------------------------------------------------------------------------------------------
// Construction.

BatchedDecoder::BatchedDecoder(const LlamaForCausalLMImpl& model, const BatchedDecodeOptions& options)
    : impl_(std::make_unique<Impl>()) {
    Impl& m = *impl_;
    const ModelConfig& c = model.config();
    torch::NoGradGuard no_grad;
    // One fused step per token on one device: a model whose layers are split across devices
    // (--device a,b, a pipeline by layer) is refused rather than copied whole onto its first device.
    bool split = model.placement().pipelined() || model.output_device() != model.device();
    for (int64_t l = 0; l < c.n_layer; ++l) split = split || model.layer_device(l) != model.device();
    if (split)
        throw Error("", "--device",
                    "the fused batched decode runs on one device; this model's layers are split across devices (" +
                        model.placement().to_string() + "): give --device a single device");
    m.opt = options;
    m.device = model.device();
    m.dtype = model.dtype();
    m.s = shape_of(c);
    auto prep = [&](const torch::Tensor& t) {
        return t.defined() ? t.detach().to(m.device, m.dtype).contiguous() : torch::Tensor();
    };
    for (int64_t l = 0; l < c.n_layer; ++l) {
        DecoderLayer layer = model.layer(l);
        LayerWeights w;
        w.in_norm = prep(layer->input_layernorm->weight);
        w.post_norm = prep(layer->post_attention_layernorm->weight);
        if (auto a = std::dynamic_pointer_cast<LlamaAttention>(layer->self_attn)) {
            if (l > 0 && m.s.mla) throw Error(c.source, "mla", "mixed standard and MLA layers");
            w.w_in = prep(torch::cat({a->q_proj->weight, a->k_proj->weight, a->v_proj->weight}, 0));
            if (a->q_proj->bias.defined())
                w.b_in = prep(torch::cat({a->q_proj->bias, a->k_proj->bias, a->v_proj->bias}, 0));
            w.w_o = prep(a->o_proj->weight);
            w.b_o = prep(a->o_proj->bias);
        } else if (auto a = std::dynamic_pointer_cast<MlaAttention>(layer->self_attn)) {
            const MlaLayerShape& shape = a->shape();
            if (shape.kind != MlaKind::Joint)
                throw Error(c.source, "mla.svd",
                            "batched decode runs the original attention and MLA with joint SVD (absorbed); this "
                            "model's MLA is " + std::string(shape.kind == MlaKind::Split ? "split" : "none"));
            if (l == 0) {
                m.s.mla = true;
                m.s.r = a->rope_dims() / 2;
                m.s.latent = a->latent_width();
            } else if (!m.s.mla || a->rope_dims() / 2 != m.s.r || a->latent_width() != m.s.latent) {
                throw Error(c.source, "mla", "every layer must have the same MLA shape for batched decode");
            }
            const int64_t d = m.s.d, group = m.s.group;
            // q rows regrouped per head as [kept firsts, kept seconds, not kept] (dim_order of its KV head).
            torch::Tensor order = a->dim_order().to(torch::kCPU);  // [n_kv, d]
            std::vector<int64_t> rows;
            rows.reserve(m.s.n_head * d);
            for (int64_t h = 0; h < m.s.n_head; ++h)
                for (int64_t j = 0; j < d; ++j) rows.push_back(h * d + order[h / group][j].item<int64_t>());
            torch::Tensor index = torch::tensor(rows, torch::kInt64).to(a->q_proj->weight.device());
            torch::Tensor wq = a->q_proj->weight.index_select(0, index);
            w.w_in = prep(torch::cat({wq, a->k_rope_proj->weight, a->kv_down_proj->weight}, 0));
            if (a->q_proj->bias.defined()) {
                torch::Tensor zeros = torch::zeros({m.s.latent}, a->q_proj->bias.options());
                w.b_in = prep(torch::cat({a->q_proj->bias.index_select(0, index), a->k_rope_proj->bias, zeros}, 0));
            }
            w.w_uk = prep(a->k_up_proj->weight.view({m.s.n_kv, m.s.nope(), m.s.latent}));
            w.w_uv = prep(a->v_up_proj->weight.view({m.s.n_kv, d, m.s.latent}));
            if (a->v_up_proj->bias.defined()) w.b_uv = prep(a->v_up_proj->bias.view({m.s.n_kv, d}));
            std::vector<int64_t> kept;
            for (const auto& pairs : shape.kept_pairs) kept.insert(kept.end(), pairs.begin(), pairs.end());
            w.kept_inv_freq = rope_inv_freq(c)
                                  .index_select(0, torch::tensor(kept, torch::kInt64))
                                  .view({m.s.n_kv, m.s.r})
                                  .to(m.device)
                                  .contiguous();
            w.w_o = prep(a->o_proj->weight);
            w.b_o = prep(a->o_proj->bias);
        } else {
            throw Error(c.source, "attention", "batched decode: unknown attention kind in layer " + std::to_string(l));
        }
        w.w_gu = prep(torch::cat({layer->mlp->gate_proj->weight, layer->mlp->up_proj->weight}, 0));
        if (layer->mlp->gate_proj->bias.defined())
            w.b_gu = prep(torch::cat({layer->mlp->gate_proj->bias, layer->mlp->up_proj->bias}, 0));
        w.w_down = prep(layer->mlp->down_proj->weight);
        w.b_down = prep(layer->mlp->down_proj->bias);
        m.layers.push_back(std::move(w));
    }
    m.embed = prep(model.model->embed_tokens->weight);
    m.lm_head = c.tie_word_embeddings ? m.embed : prep(model.output_weight());
    m.final_norm = prep(model.model->norm->weight);
    m.inv_freq = model.rope().inv_freq().to(m.device, torch::kFloat32).contiguous();
    m.allocate();
}

BatchedDecoder::BatchedDecoder(const ModelConfig& c, const RandomMlaShape* mla, torch::Device device,
                               torch::ScalarType dtype, const BatchedDecodeOptions& options, uint64_t seed)
    : impl_(std::make_unique<Impl>()) {
    Impl& m = *impl_;
    torch::NoGradGuard no_grad;
    m.opt = options;
    m.device = device;
    m.dtype = dtype;
    m.s = shape_of(c);
    if (mla) {
        if (mla->r < 0 || 2 * mla->r > c.head_dim || mla->d_kv <= 0)
            throw Error("", "mla", "random MLA shape needs 0 <= 2r <= head_dim and d_kv > 0");
        m.s.mla = true;
        m.s.r = mla->r;
        m.s.latent = c.n_kv_head * mla->d_kv;
    }
    torch::manual_seed(seed);
    const torch::TensorOptions o = m.options();
    auto normal = [&](std::vector<int64_t> shape, double mean, double std) {
        return torch::empty(shape, o).normal_(mean, std);
    };
    auto bias = [&](bool present, int64_t n) { return present ? normal({n}, 0.0, 0.02) : torch::Tensor(); };
    const Shape& s = m.s;
    std::mt19937 rng(static_cast<uint32_t>(seed));
    const torch::Tensor all_freq = rope_inv_freq(c);
    for (int64_t l = 0; l < s.n_layer; ++l) {
        LayerWeights w;
        w.in_norm = normal({s.hidden}, 1.0, 0.02);
        w.post_norm = normal({s.hidden}, 1.0, 0.02);
        w.w_in = normal({s.n_in(), s.hidden}, 0.0, 0.02);
        w.b_in = bias(c.qkv_bias, s.n_in());
        if (s.mla) {
            w.w_uk = normal({s.n_kv, s.nope(), s.latent}, 0.0, 0.02);
            w.w_uv = normal({s.n_kv, s.d, s.latent}, 0.0, 0.02);
            std::vector<int64_t> kept;
            for (int64_t g = 0; g < s.n_kv; ++g) {
                std::vector<int64_t> pairs(s.d / 2);
                for (int64_t k = 0; k < s.d / 2; ++k) pairs[k] = k;
                std::shuffle(pairs.begin(), pairs.end(), rng);
                pairs.resize(s.r);
                std::sort(pairs.begin(), pairs.end());
                kept.insert(kept.end(), pairs.begin(), pairs.end());
            }
            w.kept_inv_freq =
                all_freq.index_select(0, torch::tensor(kept, torch::kInt64)).view({s.n_kv, s.r}).to(device).contiguous();
        }
        w.w_o = normal({s.hidden, s.n_head * s.d}, 0.0, 0.02);
        w.b_o = bias(c.o_bias, s.hidden);
        w.w_gu = normal({2 * s.ffn, s.hidden}, 0.0, 0.02);
        w.b_gu = bias(c.mlp_bias, 2 * s.ffn);
        w.w_down = normal({s.hidden, s.ffn}, 0.0, 0.02);
        w.b_down = bias(c.mlp_bias, s.hidden);
        m.layers.push_back(std::move(w));
    }
    m.embed = normal({s.vocab, s.hidden}, 0.0, 0.02);
    m.lm_head = c.tie_word_embeddings ? m.embed : normal({s.vocab, s.hidden}, 0.0, 0.02);
    m.final_norm = normal({s.hidden}, 1.0, 0.02);
    m.inv_freq = all_freq.to(device).contiguous();
    m.allocate();
}

BatchedDecoder::~BatchedDecoder() = default;

void BatchedDecoder::Impl::allocate() {
    if (opt.batch <= 0 || opt.max_length <= 0) throw Error("", "batch", "batch and max_length must be positive");
    if (dtype != torch::kFloat32 && dtype != torch::kBFloat16 && dtype != torch::kFloat16)
        throw Error("", "--dtype", "batched decode runs f32, bf16 or f16");
    if (device.is_cuda()) {
#ifdef MLAWB_CUDA
        use_kernels = true;
#else
        throw Error("", "--device", "batched decode on CUDA needs a build with -DMLAWB_CUDA=ON");
#endif
    } else if (!device.is_cpu()) {
        throw Error("", "--device", "batched decode runs on cpu or cuda, not " + device.str());
    }
    const int64_t B = opt.batch, T = opt.max_length;
    const torch::TensorOptions o = options();
    for (LayerWeights& w : layers) {
        if (s.mla) {
            w.latent_cache = torch::zeros({B, T, s.latent_row()}, o);
        } else {
            w.k_cache = torch::zeros({B, s.n_kv, T, s.d}, o);
            w.v_cache = torch::zeros({B, s.n_kv, T, s.d}, o);
        }
    }
    host_lengths.assign(B, 0);
    const torch::TensorOptions ints = torch::TensorOptions().dtype(torch::kInt32).device(device);
    tokens = torch::zeros({B}, torch::TensorOptions().dtype(torch::kInt64).device(device));
    positions = torch::zeros({B}, ints);
    lens = torch::ones({B}, ints);
    q_buf = torch::zeros({B, s.n_head, s.q_width()}, o);
    out_buf = torch::zeros({B, s.n_head, s.v_width()}, o);
    logits = torch::zeros({B, s.vocab}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
    if (opt.kernel < 0 || opt.kernel > 2) throw Error("", "kernel", "0 (auto), 1 (simt) or 2 (tensor core)");
    kernel = static_cast<cuda::DecodeKernel>(opt.kernel);
#ifdef MLAWB_CUDA
    if (use_kernels) {
        const cuda::DecodeAttentionParams p = attention_params(layers.at(0), lens.data_ptr<int32_t>());
        if (const char* why = cuda::decode_attention_unsupported(p, kernel))
            throw Error("", "decode_attention", std::string("no kernel for this shape: ") + why);
        workspace = torch::empty({static_cast<int64_t>(cuda::decode_attention_workspace_bytes(p, kernel))},
                                 torch::TensorOptions().dtype(torch::kUInt8).device(device));
    }
#endif
}

// ---------------------------------------------------------------------------------------------
// Public interface.

void BatchedDecoder::load_sequence(int64_t b, KVCache& cache) {
    Impl& m = *impl_;
    if (b < 0 || b >= m.opt.batch) throw Error("", "batch", "sequence " + std::to_string(b) + " out of range");
    if (cache.layer_count() != m.layers.size()) throw Error("", "cache", "layer count differs from the decoder's");
    torch::NoGradGuard no_grad;
    const int64_t T = cache.length();
    if (T > m.opt.max_length - 1)
        throw Error("", "max_length", "prompt of " + std::to_string(T) + " tokens leaves no room to decode");
    for (size_t l = 0; l < m.layers.size(); ++l) {
        LayerWeights& w = m.layers[l];
        if (m.s.mla) {
            auto* lc = dynamic_cast<MlaLayerCache*>(&cache.layer(l));
            if (!lc || lc->latent.quantized() || lc->k_rope.quantized() || lc->latent.length() != T)
                throw Error("", "cache", "expected an unquantized MLA cache with a latent");
            if (T == 0) continue;
            torch::Tensor rows = w.latent_cache[b].narrow(0, 0, T);                        // [T, L + G 2r]
            rows.narrow(1, 0, m.s.latent).copy_(lc->latent.view()[0][0]);                  // [T, L]
            if (m.s.r > 0)
                rows.narrow(1, m.s.latent, m.s.n_kv * m.s.rope_w())
                    .copy_(lc->k_rope.view()[0].permute({1, 0, 2}).reshape({T, m.s.n_kv * m.s.rope_w()}));
        } else {
            auto* lc = dynamic_cast<StandardLayerCache*>(&cache.layer(l));
            if (!lc || lc->keys.quantized() || lc->values.quantized())
                throw Error("", "cache", "expected an unquantized standard cache");
            if (T == 0) continue;
            w.k_cache[b].narrow(1, 0, T).copy_(lc->keys.view()[0]);
            w.v_cache[b].narrow(1, 0, T).copy_(lc->values.view()[0]);
        }
    }
    m.host_lengths[b] = T;
    m.sync_positions();
}

void BatchedDecoder::fill_random(const std::vector<int64_t>& lengths, uint64_t seed) {
    Impl& m = *impl_;
    if (static_cast<int64_t>(lengths.size()) != m.opt.batch) throw Error("", "lengths", "one length per sequence");
    for (int64_t n : lengths)
        if (n < 0 || n > m.opt.max_length - 1) throw Error("", "lengths", "length outside 0 .. max_length - 1");
    torch::NoGradGuard no_grad;
    torch::manual_seed(seed);
    for (LayerWeights& w : m.layers) {
        if (m.s.mla) w.latent_cache.uniform_(-1, 1);
        else {
            w.k_cache.uniform_(-1, 1);
            w.v_cache.uniform_(-1, 1);
        }
    }
    m.host_lengths = lengths;
    m.sync_positions();
}

torch::Tensor BatchedDecoder::step(const torch::Tensor& tokens) {
    Impl& m = *impl_;
    if (tokens.dim() != 1 || tokens.size(0) != m.opt.batch)
        throw Error("", "tokens", "expected one token per sequence ([" + std::to_string(m.opt.batch) + "])");
    for (int64_t b = 0; b < m.opt.batch; ++b)
        if (m.host_lengths[b] >= m.opt.max_length)
            throw Error("", "max_length", "sequence " + std::to_string(b) + " is full (" +
                                              std::to_string(m.opt.max_length) + " tokens)");
    torch::NoGradGuard no_grad;
    m.tokens.copy_(tokens.to(torch::kInt64));
    if (!m.use_kernels) {
        m.sync_positions();
        m.run_step();
    } else {
#ifdef MLAWB_CUDA
        c10::cuda::CUDAGuard guard(m.device);
        if (m.opt.cuda_graph) {
            if (!m.graph) m.capture();
            m.graph->replay();
        } else {
            m.run_step();
        }
        m.positions.add_(1);
        m.lens.add_(1);
#endif
    }
    for (int64_t& n : m.host_lengths) ++n;
    return m.logits;
}

const std::vector<int64_t>& BatchedDecoder::lengths() const { return impl_->host_lengths; }
int64_t BatchedDecoder::batch() const { return impl_->opt.batch; }
int64_t BatchedDecoder::max_length() const { return impl_->opt.max_length; }
bool BatchedDecoder::mla() const { return impl_->s.mla; }
torch::Device BatchedDecoder::device() const { return impl_->device; }
torch::ScalarType BatchedDecoder::dtype() const { return impl_->dtype; }

int64_t BatchedDecoder::cache_bytes_per_token() const {
    const Shape& s = impl_->s;
    const int64_t per_layer = s.mla ? s.latent_row() : 2 * s.n_kv * s.d;
    return s.n_layer * per_layer * static_cast<int64_t>(c10::elementSize(impl_->dtype));
}

int64_t BatchedDecoder::cache_bytes_allocated() const {
    return cache_bytes_per_token() * impl_->opt.batch * impl_->opt.max_length;
}

int64_t BatchedDecoder::weight_bytes_per_step() const {
    const Impl& m = *impl_;
    auto bytes = [](const torch::Tensor& t) { return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0; };
    int64_t total = 0;
    for (const LayerWeights& w : m.layers)
        for (const torch::Tensor* t : {&w.in_norm, &w.post_norm, &w.w_in, &w.b_in, &w.w_uk, &w.w_uv, &w.b_uv, &w.w_o,
                                       &w.b_o, &w.w_gu, &w.b_gu, &w.w_down, &w.b_down})
            total += bytes(*t);
    total += bytes(m.final_norm) + bytes(m.lm_head);
    total += m.opt.batch * m.s.hidden * static_cast<int64_t>(c10::elementSize(m.dtype));  // embedding rows
    return total;
}

std::string BatchedDecoder::attention_backend() const {
    const Impl& m = *impl_;
    if (!m.use_kernels) return "reference (cpu)";
#ifdef MLAWB_CUDA
    const cuda::DecodeAttentionParams p = m.attention_params(m.layers.at(0), m.lens.data_ptr<int32_t>());
    switch (cuda::decode_attention_resolve(p, m.kernel)) {
        case cuda::DecodeKernel::Simt: return "simt";
        case cuda::DecodeKernel::TensorCore: return "tensor-core";
        default: break;
    }
#endif
    return "none";
}

bool BatchedDecoder::graph_captured() const {
#ifdef MLAWB_CUDA
    return impl_->graph != nullptr;
#else
    return false;
#endif
}

}  // namespace mlawb
