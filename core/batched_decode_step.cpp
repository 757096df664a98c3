// One step of the batched decode: RMSNorm, the fused projections, RoPE-and-store into the cache,
// attention (the CUDA kernel or the CPU reference), the MLP, captured once as a CUDA graph on CUDA.
#include "core/batched_decode_impl.h"

#include <algorithm>
#include <cmath>

namespace mlawb {

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
        cuda::StoreRowsArgs v;  // the values, without RoPE
        v.x = at_offset(proj, (H + G) * d);
        v.x_stride_b = proj.stride(0);
        v.x_head_stride = d;
        v.batch = static_cast<int>(B);
        v.heads = static_cast<int>(G);
        v.width = static_cast<int>(d);
        v.cache = w.v_cache.data_ptr();
        v.cache_stride_b = w.v_cache.stride(0);
        v.cache_stride_t = w.v_cache.stride(2);
        v.cache_stride_h = w.v_cache.stride(1);
        v.positions = positions.data_ptr<int32_t>();
        if (const char* e = cuda::launch_rope_and_store(q, k, v, stream)) throw Error("", "decode step", e);
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
        cuda::StoreRowsArgs c;  // the latent c_kv, one row for all heads
        c.x = at_offset(proj, c_off);
        c.x_stride_b = proj.stride(0);
        c.batch = static_cast<int>(B);
        c.heads = 1;
        c.width = static_cast<int>(L);
        c.cache = w.latent_cache.data_ptr();
        c.cache_stride_b = w.latent_cache.stride(0);
        c.cache_stride_t = w.latent_cache.stride(1);
        c.positions = positions.data_ptr<int32_t>();
        if (const char* e = cuda::launch_rope_and_store(qa, ka, c, stream)) throw Error("", "decode step", e);
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
    if (group == 1) {
        // One query head a KV head (every MHA model converted): the batched products read and
        // write the [B, H, .] buffers through [H, B, .] views (row stride H x width, batch stride
        // the width), which the GEMM takes as they are: no permute copy before or after.
        torch::Tensor q_lat = q_buf.narrow(2, 0, L).transpose(0, 1);  // [G, B, L] view of q_buf
        torch::bmm_out(q_lat, q.narrow(2, rw, nope).transpose(0, 1), w.w_uk);
        attend(w);  // out_buf [B, H, L]: attention-weighted latent per head
        torch::Tensor o = torch::empty({B, H * d}, out_buf.options());
        torch::Tensor o_heads = o.view({B, H, d}).transpose(0, 1);  // [G, B, d] view of o
        torch::bmm_out(o_heads, out_buf.transpose(0, 1), w.w_uv.transpose(1, 2));
        if (w.b_uv.defined()) o_heads.add_(w.b_uv.view({G, 1, d}));
        return o;
    }
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

}  // namespace mlawb
