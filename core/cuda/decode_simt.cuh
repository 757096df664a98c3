// CUDA-core decode-attention partial kernel (decode_simt).
// Included by core/cuda/decode_attention.cu inside its unnamed namespace (the kernels are
// instantiated there, beside the plan that picks them).
#pragma once

// ---------------------------------------------------------------------------------------------
// CUDA-core partial kernel.
//
// Lane `li` of a LANES-thread group holds elements (c LANES + li) VEC .. +VEC-1 of a row for
// c < KCH (keys) and c < VCH (values). Grid: x = KV head x head chunk, y = split, z = sequence.

template <typename T, int LANES, int KCH, int VCH, int G, int UNROLL>
__global__ void __launch_bounds__(kSimtThreads) decode_simt(const DecodeAttentionParams p, int n_splits,
                                                            int chunks_per_kv, void* __restrict__ ws_acc_raw,
                                                            float* __restrict__ ws_ml) {
    T* __restrict__ ws_acc = static_cast<T*>(ws_acc_raw);  // partials normalized by their l (decode_combine)
    constexpr int VEC = Elem<T>::kVec;
    constexpr int GROUPS = 32 / LANES;  // key rows per warp pass
    constexpr int DV_MAX = LANES * VCH * VEC;
    __shared__ float s_acc[kSimtWarps][DV_MAX];
    __shared__ float s_m[kSimtWarps][G];
    __shared__ float s_l[kSimtWarps][G];

    const int b = blockIdx.z, split = blockIdx.y;
    const int group = p.q_heads / p.kv_heads;
    const int g = blockIdx.x / chunks_per_kv;
    const int h0 = g * group + (blockIdx.x % chunks_per_kv) * G;
    const int nh = min(G, g * group + group - h0);  // query heads of this block
    const int dk = p.key_a_dim + p.key_r_dim, dv = p.value_dim;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int li = lane % LANES, sub = lane / LANES;

    int t_begin, t_end;
    split_range(p, b, split, n_splits, t_begin, t_end);
    const int64_t slot0 = (static_cast<int64_t>(b) * p.q_heads + h0) * n_splits + split;
    if (t_begin >= t_end) {
        mark_empty_split(ws_ml, slot0, n_splits, nh, tid);
        return;
    }

    const T* qb = static_cast<const T*>(p.q) + b * p.q_stride_b;
    const T* ka = static_cast<const T*>(p.key_a) + b * p.ka_stride_b + g * p.ka_stride_h;
    const T* kr = p.key_r ? static_cast<const T*>(p.key_r) + b * p.kr_stride_b + g * p.kr_stride_h : nullptr;
    const T* vb = static_cast<const T*>(p.value) + b * p.v_stride_b + g * p.v_stride_h;

    // Queries, pre-scaled so that exp2(q.k) is exp(scale q.k).
    const float qscale = p.scale * kLog2e;
    float q[G][KCH][VEC];
#pragma unroll
    for (int i = 0; i < G; ++i)
#pragma unroll
        for (int c = 0; c < KCH; ++c) {
            const int e = (c * LANES + li) * VEC;
            float f[VEC];
            if (i < nh && e < dk) {
                unpack<T>(load16(qb + (h0 + i) * p.q_stride_h + e), f);
            } else {
#pragma unroll
                for (int j = 0; j < VEC; ++j) f[j] = 0.f;
            }
#pragma unroll
            for (int j = 0; j < VEC; ++j) q[i][c][j] = f[j] * qscale;
        }

    float m[G], l[G], acc[G][VCH * VEC];
#pragma unroll
    for (int i = 0; i < G; ++i) {
        m[i] = -INFINITY;
        l[i] = 0.f;
#pragma unroll
        for (int j = 0; j < VCH * VEC; ++j) acc[i][j] = 0.f;
    }

    constexpr int STEP = kSimtWarps * GROUPS * UNROLL;
    for (int base = t_begin; base < t_end; base += STEP) {
        uint4 kv[UNROLL][KCH], vv[UNROLL][VCH];
        bool valid[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            const int t = base + (u * kSimtWarps + warp) * GROUPS + sub;
            valid[u] = t < t_end;
#pragma unroll
            for (int c = 0; c < KCH; ++c) {
                const int e = (c * LANES + li) * VEC;
                kv[u][c] = make_uint4(0, 0, 0, 0);
                if (valid[u]) {
                    if (e < p.key_a_dim) kv[u][c] = load16(ka + t * p.ka_stride_t + e);
                    else if (e < dk) kv[u][c] = load16(kr + t * p.kr_stride_t + (e - p.key_a_dim));
                }
            }
#pragma unroll
            for (int c = 0; c < VCH; ++c) {
                const int e = (c * LANES + li) * VEC;
                vv[u][c] = make_uint4(0, 0, 0, 0);
                if (valid[u] && e < dv) vv[u][c] = load16(vb + t * p.v_stride_t + e);
            }
        }
        float s[UNROLL][G];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            float kf[KCH][VEC];
#pragma unroll
            for (int c = 0; c < KCH; ++c) unpack<T>(kv[u][c], kf[c]);
#pragma unroll
            for (int i = 0; i < G; ++i) {
                float dot = 0.f;
#pragma unroll
                for (int c = 0; c < KCH; ++c)
#pragma unroll
                    for (int j = 0; j < VEC; ++j) dot = fmaf(q[i][c][j], kf[c][j], dot);
#pragma unroll
                for (int off = LANES / 2; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
                s[u][i] = valid[u] ? dot : -INFINITY;
            }
        }
        // Online softmax, once per UNROLL rows.
#pragma unroll
        for (int i = 0; i < G; ++i) {
            float mx = s[0][i];
#pragma unroll
            for (int u = 1; u < UNROLL; ++u) mx = fmaxf(mx, s[u][i]);
            const float m_new = fmaxf(m[i], mx);
            if (m_new == -INFINITY) {
#pragma unroll
                for (int u = 0; u < UNROLL; ++u) s[u][i] = 0.f;
                continue;
            }
            const float alpha = exp2f(m[i] - m_new);  // m[i] = -inf gives 0
            l[i] *= alpha;
#pragma unroll
            for (int j = 0; j < VCH * VEC; ++j) acc[i][j] *= alpha;
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                s[u][i] = valid[u] ? exp2f(s[u][i] - m_new) : 0.f;  // now the weight p
                l[i] += s[u][i];
            }
            m[i] = m_new;
        }
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            float vf[VCH * VEC];
#pragma unroll
            for (int c = 0; c < VCH; ++c) unpack<T>(vv[u][c], vf + c * VEC);
#pragma unroll
            for (int i = 0; i < G; ++i)
#pragma unroll
                for (int j = 0; j < VCH * VEC; ++j) acc[i][j] = fmaf(s[u][i], vf[j], acc[i][j]);
        }
    }

    // Merge the row groups of the warp (butterfly: every lane ends with the warp's state).
#pragma unroll
    for (int off = LANES; off < 32; off <<= 1) {
#pragma unroll
        for (int i = 0; i < G; ++i) {
            const float m_o = __shfl_xor_sync(0xffffffffu, m[i], off);
            const float l_o = __shfl_xor_sync(0xffffffffu, l[i], off);
            float m_n, fa, fb;
            merge_factors(m[i], m_o, m_n, fa, fb);
            l[i] = l[i] * fa + l_o * fb;
#pragma unroll
            for (int j = 0; j < VCH * VEC; ++j) {
                const float a_o = __shfl_xor_sync(0xffffffffu, acc[i][j], off);
                acc[i][j] = acc[i][j] * fa + a_o * fb;
            }
            m[i] = m_n;
        }
    }

    // Merge the warps through shared memory, one query head at a time.
#pragma unroll
    for (int i = 0; i < G; ++i) {
        if (lane < LANES) {
#pragma unroll
            for (int c = 0; c < VCH; ++c)
#pragma unroll
                for (int j = 0; j < VEC; ++j) {
                    const int e = (c * LANES + li) * VEC + j;
                    if (e < dv) s_acc[warp][e] = acc[i][c * VEC + j];
                }
            if (lane == 0) {
                s_m[warp][i] = m[i];
                s_l[warp][i] = l[i];
            }
        }
        __syncthreads();
        if (i < nh) {
            float mw = -INFINITY;
#pragma unroll
            for (int w = 0; w < kSimtWarps; ++w) mw = fmaxf(mw, s_m[w][i]);
            float f[kSimtWarps];
            float lsum = 0.f;
#pragma unroll
            for (int w = 0; w < kSimtWarps; ++w) {
                f[w] = s_m[w][i] == -INFINITY ? 0.f : exp2f(s_m[w][i] - mw);
                lsum += s_l[w][i] * f[w];
            }
            const int64_t slot = slot0 + static_cast<int64_t>(i) * n_splits;
            const float inv_l = lsum > 0.f ? 1.f / lsum : 0.f;
            for (int e = tid; e < dv; e += kSimtThreads) {
                float a = 0.f;
#pragma unroll
                for (int w = 0; w < kSimtWarps; ++w) a += s_acc[w][e] * f[w];
                ws_acc[slot * dv + e] = Elem<T>::store(a * inv_l);
            }
            if (tid == 0) {
                ws_ml[slot * 2] = mw;
                ws_ml[slot * 2 + 1] = lsum;
            }
        }
        __syncthreads();
    }
}
