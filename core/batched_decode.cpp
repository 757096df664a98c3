#include "core/batched_decode.h"

#include "core/attention.h"
#include "core/cuda/decode_attention.h"
#include "core/decode_attention_ref.h"
#include "core/error.h"
#include "core/kv_cache.h"
#include "core/llama_model.h"
#include "core/mla_attention.h"
#include "core/rope.h"

#include <torch/cuda.h>

#ifdef MLAWB_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <algorithm>
#include <cmath>
#include <random>

namespace mlawb {

namespace {

// Per layer: fused weights in the decode dtype, and the layer's cache.
struct LayerWeights {
    torch::Tensor in_norm, post_norm;  // [hidden]
    torch::Tensor w_in, b_in;          // [n_in, hidden]: q | k | v, or MLA q ([rope | nope] per head) | k_rope | c_kv
    torch::Tensor w_uk;                // MLA [n_kv, d - 2r, L]
    torch::Tensor w_uv, b_uv;          // MLA [n_kv, d, L], [n_kv, d] (or undefined)
    torch::Tensor w_o, b_o;            // [hidden, n_head d]
    torch::Tensor w_gu, b_gu;          // [2 ffn, hidden]: gate | up
    torch::Tensor w_down, b_down;      // [hidden, ffn]
    torch::Tensor kept_inv_freq;       // MLA [n_kv, r] float32: inv_freq of each KV head's kept pairs
    torch::Tensor k_cache, v_cache;    // standard [B, n_kv, T, d]
    torch::Tensor latent_cache;        // MLA [B, T, L + n_kv 2r]
};

struct Shape {
    bool mla = false;
    int64_t n_layer = 0, hidden = 0, ffn = 0, vocab = 0, n_head = 0, n_kv = 0, d = 0, group = 1;
    int64_t r = 0, latent = 0;  // MLA: kept pairs per KV head, latent width L
    int64_t window = 0;
    double eps = 1e-6;
    bool tied = false;
    int64_t rope_w() const { return 2 * r; }
    int64_t nope() const { return d - 2 * r; }
    int64_t n_in() const { return mla ? n_head * d + n_kv * 2 * r + latent : (n_head + 2 * n_kv) * d; }
    int64_t latent_row() const { return latent + n_kv * 2 * r; }
    int64_t q_width() const { return mla ? latent + 2 * r : d; }  // per head, what attention reads
    int64_t v_width() const { return mla ? latent : d; }
};

Shape shape_of(const ModelConfig& c) {
    Shape s;
    s.n_layer = c.n_layer;
    s.hidden = c.hidden;
    s.ffn = c.ffn;
    s.vocab = c.vocab;
    s.n_head = c.n_head;
    s.n_kv = c.n_kv_head;
    s.d = c.head_dim;
    s.group = c.n_head / c.n_kv_head;
    s.window = c.sliding_window;
    s.eps = c.rms_eps;
    s.tied = c.tie_word_embeddings;
    return s;
}

cuda::DType kernel_dtype(torch::ScalarType t) {
    switch (t) {
        case torch::kFloat32: return cuda::DType::F32;
        case torch::kFloat16: return cuda::DType::F16;
        case torch::kBFloat16: return cuda::DType::BF16;
        default: throw Error("", "--dtype", "batched decode runs f32, bf16 or f16");
    }
}

torch::Tensor rotate_half(const torch::Tensor& x) {
    const int64_t half = x.size(-1) / 2;
    return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
    return b.defined() ? torch::addmm(b, x, w.t()) : torch::mm(x, w.t());
}

// x + a W^T (+ b): one matrix product whose epilogue adds the residual.
torch::Tensor residual(const torch::Tensor& x, const torch::Tensor& a, const torch::Tensor& w, const torch::Tensor& b) {
    torch::Tensor out = torch::addmm(x, a, w.t());
    if (b.defined()) out.add_(b);
    return out;
}

void* at_offset(const torch::Tensor& t, int64_t elements) {
    return static_cast<char*>(t.data_ptr()) + elements * static_cast<int64_t>(t.element_size());
}

}  // namespace

struct BatchedDecoder::Impl {
    Shape s;
    BatchedDecodeOptions opt;
    torch::Device device{torch::kCPU};
    torch::ScalarType dtype = torch::kFloat32;
    std::vector<LayerWeights> layers;
    torch::Tensor embed, final_norm, lm_head;  // lm_head is embed when tied
    torch::Tensor inv_freq;                    // [d/2] float32 (standard RoPE)

    std::vector<int64_t> host_lengths;  // tokens held per sequence
    torch::Tensor tokens;               // [B] int64: the tokens of this step
    torch::Tensor positions;            // [B] int32: where they go (the lengths before the step)
    torch::Tensor lens;                 // [B] int32: keys each sequence sees this step (positions + 1)
    torch::Tensor q_buf;                // [B, n_head, q_width]: attention queries
    torch::Tensor out_buf;              // [B, n_head, v_width]: attention outputs
    torch::Tensor logits;               // [B, vocab] float32
    torch::Tensor workspace;            // kernel partials (uint8)
    bool use_kernels = false;           // CUDA device (MLAWB_CUDA): fused kernels + decode-attention kernel
    cuda::DecodeKernel kernel = cuda::DecodeKernel::Auto;
#ifdef MLAWB_CUDA
    std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif

    torch::TensorOptions options() const { return torch::TensorOptions().dtype(dtype).device(device); }
    void allocate();
    cuda::DecodeAttentionParams attention_params(const LayerWeights& w, const int32_t* lengths) const;
    torch::Tensor rms(const torch::Tensor& x, const torch::Tensor& weight) const;
    torch::Tensor silu_mul(const torch::Tensor& gu) const;
    void attend(const LayerWeights& w);
    torch::Tensor standard_attention(const LayerWeights& w, const torch::Tensor& proj);
    torch::Tensor mla_attention(const LayerWeights& w, const torch::Tensor& proj);
    void run_step();
    void sync_positions();
    void capture();
};

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
// One step.

cuda::DecodeAttentionParams BatchedDecoder::Impl::attention_params(const LayerWeights& w, const int32_t* lengths) const {
    cuda::DecodeAttentionParams p;
    p.dtype = kernel_dtype(dtype);
    p.batch = static_cast<int>(opt.batch);
    p.q_heads = static_cast<int>(s.n_head);
    p.kv_heads = static_cast<int>(s.n_kv);
    p.q = q_buf.data_ptr();
    p.q_stride_b = q_buf.stride(0);
    p.q_stride_h = q_buf.stride(1);
    if (s.mla) {
        const torch::Tensor& lat = w.latent_cache;
        p.key_a = lat.data_ptr();
        p.ka_stride_b = lat.stride(0);
        p.ka_stride_h = 0;  // one latent for all heads
        p.ka_stride_t = lat.stride(1);
        p.key_a_dim = static_cast<int>(s.latent);
        p.key_r_dim = static_cast<int>(s.rope_w());
        p.key_r = s.r > 0 ? at_offset(lat, s.latent) : nullptr;
        p.kr_stride_b = lat.stride(0);
        p.kr_stride_h = s.rope_w();
        p.kr_stride_t = lat.stride(1);
        p.value = p.key_a;
        p.v_stride_b = p.ka_stride_b;
        p.v_stride_h = 0;
        p.v_stride_t = p.ka_stride_t;
        p.value_dim = static_cast<int>(s.latent);
    } else {
        p.key_a = w.k_cache.data_ptr();
        p.ka_stride_b = w.k_cache.stride(0);
        p.ka_stride_h = w.k_cache.stride(1);
        p.ka_stride_t = w.k_cache.stride(2);
        p.key_a_dim = static_cast<int>(s.d);
        p.value = w.v_cache.data_ptr();
        p.v_stride_b = w.v_cache.stride(0);
        p.v_stride_h = w.v_cache.stride(1);
        p.v_stride_t = w.v_cache.stride(2);
        p.value_dim = static_cast<int>(s.d);
    }
    p.lengths = lengths;
    p.max_length = static_cast<int>(opt.max_length);
    p.window = static_cast<int>(s.window);
    p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.d)));  // the original head_dim
    p.out = out_buf.data_ptr();
    p.out_stride_b = out_buf.stride(0);
    p.out_stride_h = out_buf.stride(1);
    return p;
}

torch::Tensor BatchedDecoder::Impl::rms(const torch::Tensor& x, const torch::Tensor& weight) const {
#ifdef MLAWB_CUDA
    if (use_kernels) {
        torch::Tensor out = torch::empty_like(x);
        if (const char* e = cuda::launch_rms_norm(kernel_dtype(dtype), x.data_ptr(), weight.data_ptr(), out.data_ptr(),
                                                  static_cast<int>(x.size(0)), static_cast<int>(x.size(1)),
                                                  static_cast<float>(s.eps), at::cuda::getCurrentCUDAStream().stream()))
            throw Error("", "rms_norm", e);
        return out;
    }
#endif
    // As RMSNormImpl: float32 statistics, rounded to the dtype before the weight.
    if (x.scalar_type() == torch::kFloat32) return weight * (x * torch::rsqrt(x.pow(2).mean(-1, true) + s.eps));
    torch::Tensor xf = x.to(torch::kFloat32);
    return weight * (xf * torch::rsqrt(xf.pow(2).mean(-1, true) + s.eps)).to(x.scalar_type());
}

torch::Tensor BatchedDecoder::Impl::silu_mul(const torch::Tensor& gu) const {
#ifdef MLAWB_CUDA
    if (use_kernels) {
        torch::Tensor out = torch::empty({gu.size(0), s.ffn}, gu.options());
        if (const char* e = cuda::launch_silu_mul(kernel_dtype(dtype), gu.data_ptr(), out.data_ptr(),
                                                  static_cast<int>(gu.size(0)), static_cast<int>(s.ffn),
                                                  at::cuda::getCurrentCUDAStream().stream()))
            throw Error("", "silu_mul", e);
        return out;
    }
#endif
    return torch::silu(gu.narrow(1, 0, s.ffn)) * gu.narrow(1, s.ffn, s.ffn);
}

// out_buf <- attention of q_buf over the layer's cache (lens keys per sequence).
void BatchedDecoder::Impl::attend(const LayerWeights& w) {
#ifdef MLAWB_CUDA
    if (use_kernels) {
        const cuda::DecodeAttentionParams p = attention_params(w, lens.data_ptr<int32_t>());
        if (const char* e = cuda::launch_decode_attention(p, kernel, workspace.data_ptr(),
                                                          static_cast<size_t>(workspace.numel()),
                                                          at::cuda::getCurrentCUDAStream().stream()))
            throw Error("", "decode_attention", e);
        return;
    }
#endif
    std::vector<int32_t> host_lens(host_lengths.begin(), host_lengths.end());
    for (int32_t& n : host_lens) n += 1;
    decode_attention_reference_into(attention_params(w, host_lens.data()));
}

torch::Tensor BatchedDecoder::Impl::standard_attention(const LayerWeights& w, const torch::Tensor& proj) {
    const int64_t B = opt.batch, H = s.n_head, G = s.n_kv, d = s.d;
#ifdef MLAWB_CUDA
    if (use_kernels) {
        void* stream = at::cuda::getCurrentCUDAStream().stream();
        cuda::RopeStoreArgs q;
        q.dtype = kernel_dtype(dtype);
        q.batch = static_cast<int>(B);
        q.heads = static_cast<int>(H);
        q.pairs = static_cast<int>(d / 2);
        q.x = proj.data_ptr();
        q.x_stride_b = proj.stride(0);
        q.head_stride = d;
        q.offset = 0;
        q.out = q_buf.data_ptr();
        q.out_stride_b = q_buf.stride(0);
        q.out_head_stride = q_buf.stride(1);
        q.positions = positions.data_ptr<int32_t>();
        q.inv_freq = inv_freq.data_ptr<float>();
        cuda::RopeStoreArgs k = q;
        k.heads = static_cast<int>(G);
        k.offset = H * d;
        k.out = nullptr;
        k.cache = w.k_cache.data_ptr();
        k.cache_stride_b = w.k_cache.stride(0);
        k.cache_stride_h = w.k_cache.stride(1);
        k.cache_stride_t = w.k_cache.stride(2);
        const char* e = cuda::launch_rope_store(q, stream);
        if (!e) e = cuda::launch_rope_store(k, stream);
        if (!e)
            e = cuda::launch_store_rows(kernel_dtype(dtype), at_offset(proj, (H + G) * d), proj.stride(0), d,
                                        static_cast<int>(B), static_cast<int>(G), static_cast<int>(d),
                                        w.v_cache.data_ptr(), w.v_cache.stride(0), w.v_cache.stride(2),
                                        w.v_cache.stride(1), positions.data_ptr<int32_t>(), stream);
        if (e) throw Error("", "decode step", e);
        attend(w);
        return out_buf.view({B, H * d});
    }
#endif
    torch::Tensor q = proj.narrow(1, 0, H * d).view({B, H, d});
    torch::Tensor k = proj.narrow(1, H * d, G * d).view({B, G, d});
    torch::Tensor v = proj.narrow(1, (H + G) * d, G * d).view({B, G, d});
    // As RotaryEmbedding::tables: float32 angles position * inv_freq, both halves.
    torch::Tensor angles = positions.to(torch::kFloat32).unsqueeze(1) * inv_freq.unsqueeze(0);  // [B, d/2]
    torch::Tensor emb = torch::cat({angles, angles}, 1);
    torch::Tensor cos = emb.cos().to(dtype).unsqueeze(1), sin = emb.sin().to(dtype).unsqueeze(1);  // [B, 1, d]
    q_buf.copy_(q * cos + rotate_half(q) * sin);
    k = k * cos + rotate_half(k) * sin;
    for (int64_t b = 0; b < B; ++b) {
        w.k_cache[b].select(1, host_lengths[b]).copy_(k[b]);
        w.v_cache[b].select(1, host_lengths[b]).copy_(v[b]);
    }
    attend(w);
    return out_buf.view({B, H * d});
}

torch::Tensor BatchedDecoder::Impl::mla_attention(const LayerWeights& w, const torch::Tensor& proj) {
    const int64_t B = opt.batch, H = s.n_head, G = s.n_kv, group = s.group, d = s.d;
    const int64_t L = s.latent, rw = s.rope_w(), nope = s.nope();
    const int64_t k_off = H * d, c_off = H * d + G * rw;
    torch::Tensor q = proj.narrow(1, 0, H * d).view({B, H, d});  // per head [rope 2r | nope]
    bool stored = false;
#ifdef MLAWB_CUDA
    if (use_kernels) {
        void* stream = at::cuda::getCurrentCUDAStream().stream();
        cuda::RopeStoreArgs qa;
        qa.dtype = kernel_dtype(dtype);
        qa.batch = static_cast<int>(B);
        qa.heads = static_cast<int>(H);
        qa.pairs = static_cast<int>(s.r);
        qa.x = proj.data_ptr();
        qa.x_stride_b = proj.stride(0);
        qa.head_stride = d;
        qa.offset = 0;
        qa.out = at_offset(q_buf, L);  // q_buf[b, h, L : L + 2r]
        qa.out_stride_b = q_buf.stride(0);
        qa.out_head_stride = q_buf.stride(1);
        qa.positions = positions.data_ptr<int32_t>();
        qa.inv_freq = w.kept_inv_freq.data_ptr<float>();
        qa.freq_group = static_cast<int>(group);
        qa.freq_stride = s.r;
        cuda::RopeStoreArgs ka = qa;
        ka.heads = static_cast<int>(G);
        ka.head_stride = rw;
        ka.offset = k_off;
        ka.out = nullptr;
        ka.cache = at_offset(w.latent_cache, L);
        ka.cache_stride_b = w.latent_cache.stride(0);
        ka.cache_stride_t = w.latent_cache.stride(1);
        ka.cache_stride_h = rw;
        ka.freq_group = 1;
        const char* e = cuda::launch_rope_store(qa, stream);
        if (!e) e = cuda::launch_rope_store(ka, stream);
        if (!e)
            e = cuda::launch_store_rows(kernel_dtype(dtype), at_offset(proj, c_off), proj.stride(0), 0, static_cast<int>(B),
                                        1, static_cast<int>(L), w.latent_cache.data_ptr(), w.latent_cache.stride(0),
                                        w.latent_cache.stride(1), 0, positions.data_ptr<int32_t>(), stream);
        if (e) throw Error("", "decode step", e);
        stored = true;
    }
#endif
    if (!stored) {
        torch::Tensor q_rope = q.narrow(2, 0, rw);
        torch::Tensor k_rope = proj.narrow(1, k_off, G * rw).view({B, G, rw});
        if (s.r > 0) {
            // As MlaAttention::rotate_compact: float32 angles position * kept inv_freq of the KV head.
            torch::Tensor angles = positions.to(torch::kFloat32).view({B, 1, 1}) * w.kept_inv_freq.unsqueeze(0);  // [B, G, r]
            torch::Tensor emb = torch::cat({angles, angles}, -1);
            torch::Tensor cos = emb.cos().to(dtype), sin = emb.sin().to(dtype);  // [B, G, 2r]
            k_rope = k_rope * cos + rotate_half(k_rope) * sin;
            torch::Tensor cos_q = cos.repeat_interleave(group, 1), sin_q = sin.repeat_interleave(group, 1);
            q_rope = q_rope * cos_q + rotate_half(q_rope) * sin_q;
        }
        q_buf.narrow(2, L, rw).copy_(q_rope);
        torch::Tensor c_kv = proj.narrow(1, c_off, L);
        for (int64_t b = 0; b < B; ++b) {
            torch::Tensor row = w.latent_cache[b][host_lengths[b]];
            row.narrow(0, 0, L).copy_(c_kv[b]);
            row.narrow(0, L, G * rw).copy_(k_rope[b].reshape({G * rw}));
        }
    }
    // Absorbed query: q_lat[b, h] = W_uk,g^T q_nope[b, h], one batched product over KV heads.
    torch::Tensor q_nope = q.narrow(2, rw, nope).reshape({B, G, group, nope}).permute({1, 0, 2, 3}).reshape({G, B * group, nope});
    torch::Tensor q_lat = torch::bmm(q_nope, w.w_uk);  // [G, B group, L]
    q_buf.view({B, G, group, L + rw}).narrow(3, 0, L).copy_(q_lat.view({G, B, group, L}).permute({1, 0, 2, 3}));
    attend(w);  // out_buf [B, H, L]: attention-weighted latent per head
    torch::Tensor lat = out_buf.view({B, G, group, L}).permute({1, 0, 2, 3}).reshape({G, B * group, L});
    torch::Tensor o = torch::bmm(lat, w.w_uv.transpose(1, 2)).view({G, B, group, d}).permute({1, 0, 2, 3});  // [B, G, group, d]
    if (w.b_uv.defined()) o = o + w.b_uv.view({1, G, 1, d});
    return o.reshape({B, H * d});
}

void BatchedDecoder::Impl::run_step() {
    torch::Tensor x = embed.index_select(0, tokens);  // [B, hidden]
    for (const LayerWeights& w : layers) {
        torch::Tensor h = rms(x, w.in_norm);
        torch::Tensor proj = linear(h, w.w_in, w.b_in);  // [B, n_in]
        torch::Tensor a = s.mla ? mla_attention(w, proj) : standard_attention(w, proj);
        x = residual(x, a, w.w_o, w.b_o);
        h = rms(x, w.post_norm);
        x = residual(x, silu_mul(linear(h, w.w_gu, w.b_gu)), w.w_down, w.b_down);
    }
    logits.copy_(torch::mm(rms(x, final_norm), lm_head.t()));
}

void BatchedDecoder::Impl::sync_positions() {
    std::vector<int32_t> pos(host_lengths.begin(), host_lengths.end());
    positions.copy_(torch::tensor(pos, torch::kInt32));
    lens.copy_(positions + 1);
}

void BatchedDecoder::Impl::capture() {
#ifdef MLAWB_CUDA
    torch::cuda::synchronize();
    c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, device.index());
    {
        c10::cuda::CUDAStreamGuard guard(side);
        // A warm-up on the capture stream creates the cuBLAS handle and workspace there; it
        // writes this step's cache rows, which the replay writes again.
        run_step();
        side.synchronize();
        graph = std::make_unique<at::cuda::CUDAGraph>();
        graph->capture_begin();
        run_step();
        graph->capture_end();
    }
    torch::cuda::synchronize();
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
