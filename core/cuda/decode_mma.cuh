// Tensor-core decode-attention partial kernel (decode_mma, absorbed MLA).
// Included by core/cuda/decode_attention.cu inside its unnamed namespace (the kernels are
// instantiated there, beside the plan that picks them).
#pragma once

// ---------------------------------------------------------------------------------------------
// Tensor-core partial kernel (absorbed MLA). Needs value == key_a (same strides), one key-a row
// for all heads of a block (ka_stride_h == 0, or the block's heads within one KV head).

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

// mbarrier and bulk-copy primitives (sm_90): K tile rows and rope keys arrive by cp.async.bulk
// (the TMA engine), which counts its bytes on the stage's barrier, so the copies take no
// load/store-unit issue slots from the threads' ldmatrix and shared-memory traffic.
__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}
// One arrival that also announces `bytes` of bulk copies landing this phase.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
}
// Waits until the phase of parity `parity` has completed.
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
    const uint32_t addr = smem_addr(bar);
    uint32_t done = 0;
    do {
        asm volatile(
            "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
            : "=r"(done)
            : "r"(addr), "r"(parity)
            : "memory");
    } while (!done);
}
// `bytes` (a multiple of 16, both addresses 16-byte aligned) from global to shared memory.
__device__ __forceinline__ void bulk_copy(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                     smem_addr(dst)),
                 "l"(src), "r"(bytes), "r"(smem_addr(bar))
                 : "memory");
}

template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);

template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                        uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two adjacent elements (4-byte aligned) from float.
template <typename T>
__device__ __forceinline__ void store_pair(T* dst, float a, float b);
template <>
__device__ __forceinline__ void store_pair<__nv_bfloat16>(__nv_bfloat16* dst, float a, float b) {
    *reinterpret_cast<__nv_bfloat162*>(dst) = __floats2bfloat162_rn(a, b);
}
template <>
__device__ __forceinline__ void store_pair<__half>(__half* dst, float a, float b) {
    *reinterpret_cast<__half2*>(dst) = __floats2half2_rn(a, b);
}

// Shared-memory layout of decode_mma (in bytes from the dynamic base). Q and K rows are padded by
// 16 bytes so that the 8 rows an ldmatrix reads fall in different banks; staged rope-key rows
// (token-major, one row a token) by 16 bytes so that the softmax step's 16 lanes of one head,
// reading 16 consecutive tokens, do too.
struct MmaSmem {
    int row;        // elements per padded row of Q and K (dv + 8)
    int p_row;      // elements per padded row of P (16 + 8)
    int kr_pitch;   // elements per padded staged rope-key row (kr_row + 8; 0 when not staged)
    size_t q, k, kr, s, qr, pm, m, l, alpha, bar, total;
};

// q_in_smem false: the queries' a part lives in registers (decode_mma with DW 256), no sQ.
// kr_row > 0: the block's rope keys (kr_row elements a token: its KV heads' r parts side by side)
// are staged beside each K tile, so the softmax step reads them from shared memory instead of
// waiting on a global load between two barriers every tile.
// The queries' r parts (sQr) stay in the element type: 16 rows x 16 bytes less, which the
// L = 2048 layout needs to fit 227 KB. The stages' `full` mbarriers at the end.
__host__ __device__ inline MmaSmem mma_smem(int bm, int dv, int dr, int warps, int stages, int elem, bool q_in_smem,
                                            int kr_row) {
    MmaSmem s;
    s.row = dv + 8;
    s.p_row = kMmaTokens + 8;
    s.kr_pitch = kr_row > 0 ? kr_row + 8 : 0;
    size_t at = 0;
    s.q = at;
    if (q_in_smem) at += static_cast<size_t>(bm) * s.row * elem;
    s.k = at;
    at += static_cast<size_t>(stages) * kMmaTokens * s.row * elem;
    s.kr = at;
    at += static_cast<size_t>(stages) * kMmaTokens * s.kr_pitch * elem;
    s.s = at;
    at += static_cast<size_t>(warps) * bm * kMmaTokens * 4;
    s.qr = at;
    at += static_cast<size_t>(bm) * (dr > 0 ? dr : 8) * elem;
    s.pm = at;
    at += static_cast<size_t>(bm) * s.p_row * elem;
    at = (at + 15) / 16 * 16;
    s.m = at;
    at += bm * 4;
    s.l = at;
    at += bm * 4;
    s.alpha = at;
    at += bm * 4;
    at = (at + 7) / 8 * 8;
    s.bar = at;
    at += static_cast<size_t>(stages) * sizeof(uint64_t);
    s.total = (at + 15) / 16 * 16;
    return s;
}

// Column of element (row, col) in a warp's S partial [BM][16]: the upper 8 columns swapped for
// rows 2, 3 (mod 4), so that the float2 stores of an mma fragment (rows g..g+3 of a half-warp)
// hit 32 distinct banks instead of two rows a bank (the 2.7-way conflicts of version 4).
__device__ __forceinline__ int s_swizzle(int row, int col) { return col ^ (((row >> 1) & 1) << 3); }

// Everything a tile needs arrives by cp.async.bulk (the TMA engine), counted on the stage's
// `full` mbarrier: one copy a K row (so the padded layout stays) and one a token for the rope
// keys (one a token and KV head when the block's KV heads do not lie side by side in the row).
// Every stage is filled up front and the stage of tile i - 1 is refilled once all warps are past
// tile i's first barrier. With per-thread cp.async the 4096 copies a tile queued in front of the
// same threads' ldmatrix and loads stopped overlapping the arithmetic (version 3 of
// scripts/gpu/NOTES.md); version 5 moves the rope keys to the bulk copies too, which also takes
// their index arithmetic (two divisions a copy) and a wait out of every tile. WARPS is fixed at
// compile time so that the softmax step's element loop and every per-thread index are constants
// hoisted out of the tile loop.
template <typename T, int MT, int DW, int STAGES, int WARPS>
__global__ void __launch_bounds__(WARPS * 32, (MT * DW <= 128) ? 2 : 1)
    decode_mma(const DecodeAttentionParams p, int n_splits, int kr_row, void* __restrict__ ws_acc_raw,
               float* __restrict__ ws_ml, int skip) {
    constexpr int BM = 16 * MT;
    constexpr int NT = kMmaTokens;
    constexpr int THREADS = WARPS * 32;
    constexpr int EPT = BM * NT / THREADS;  // softmax-step elements a thread
    static_assert(BM * NT % THREADS == 0 && THREADS % NT == 0, "softmax step: whole rows a warp");
    // With 256 latent columns per warp (L = 2048) the queries' A fragments stay in registers
    // (64 per thread): the 66 KB of sQ go to a third K stage instead.
    constexpr bool QREG = DW >= 256;
    extern __shared__ __align__(16) unsigned char smem[];
    const int dv = p.value_dim, dr = p.key_r_dim;
    const MmaSmem L = mma_smem(BM, dv, dr, WARPS, STAGES, sizeof(T), !QREG, kr_row);
    T* sQ = reinterpret_cast<T*>(smem + L.q);  // unused when QREG
    T* sK = reinterpret_cast<T*>(smem + L.k);
    T* sKr = reinterpret_cast<T*>(smem + L.kr);  // [STAGES][16 tokens][kr_pitch], when kr_row > 0
    float* sS = reinterpret_cast<float*>(smem + L.s);  // [WARPS][BM][16] swizzled
    T* sQr = reinterpret_cast<T*>(smem + L.qr);        // [BM][dr]
    T* sP = reinterpret_cast<T*>(smem + L.pm);
    float* sM = reinterpret_cast<float*>(smem + L.m);
    float* sL = reinterpret_cast<float*>(smem + L.l);
    float* sAlpha = reinterpret_cast<float*>(smem + L.alpha);
    uint64_t* full_bar = reinterpret_cast<uint64_t*>(smem + L.bar);  // [STAGES] the tile's rows landed

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int b = blockIdx.z, split = blockIdx.y;
    const int h0 = blockIdx.x * BM;
    const int group = p.q_heads / p.kv_heads;
    const int nh = min(BM, p.q_heads - h0);
    const int g_a = h0 / group;  // the key-a row's head (all heads share it, or one KV head)

    int t_begin, t_end;
    split_range(p, b, split, n_splits, t_begin, t_end);
    const int64_t slot0 = (static_cast<int64_t>(b) * p.q_heads + h0) * n_splits + split;
    if (t_begin >= t_end) {
        mark_empty_split(ws_ml, slot0, n_splits, nh, tid);
        return;
    }

    const T* kbase = static_cast<const T*>(p.key_a) + b * p.ka_stride_b + g_a * p.ka_stride_h;
    const T* krb = dr > 0 ? static_cast<const T*>(p.key_r) + b * p.kr_stride_b : nullptr;
    const int g_lo = h0 / group;                          // the block's first KV head
    const int span = (h0 + nh - 1) / group - g_lo + 1;   // its KV heads
    const bool stage_rope = kr_row > 0 && dr > 0;
    const bool rope_side_by_side = span == 1 || p.kr_stride_h == dr;
    const uint32_t tile_bytes = NT * (dv + (stage_rope ? span * dr : 0)) * sizeof(T);
    // A tile's copies: NT K rows, then the rope keys of the same NT tokens (one copy a token, or
    // one a token and KV head). Rows past the range repeat the last visible row (finite values
    // whose P is 0): every tile moves the same bytes. The copies are spread over the warps (copy c
    // to lane c / WARPS of warp c % WARPS): a bulk copy takes uniform operands, so a warp issues
    // its lanes' copies one after another, and 32 of them in warp 0 alone held every other warp
    // at the barrier after the softmax step (a third of the stall samples of version 5's first
    // profile). Thread 0 announces the bytes; a copy may complete before that (the tx-count may
    // go below zero) but the phase cannot, as it also waits for thread 0's arrival.
    const int rope_copies = stage_rope ? NT * (rope_side_by_side ? 1 : span) : 0;
    auto issue_tile = [&](int tile, int stage) {
        if (tid == 0) mbar_arrive_expect_tx(&full_bar[stage], tile_bytes);
        for (int c = warp + WARPS * lane; c < NT + rope_copies; c += THREADS) {
            if (c < NT) {
                const int t = min(t_begin + tile * NT + c, t_end - 1);
                bulk_copy(sK + (static_cast<size_t>(stage) * NT + c) * L.row,
                          kbase + static_cast<int64_t>(t) * p.ka_stride_t, dv * sizeof(T), &full_bar[stage]);
            } else {
                const int rc = c - NT;
                const int r = rope_side_by_side ? rc : rc / span, j = rope_side_by_side ? 0 : rc % span;
                const int t = min(t_begin + tile * NT + r, t_end - 1);
                T* dst = sKr + (static_cast<size_t>(stage) * NT + r) * L.kr_pitch + j * dr;
                const T* src = krb + (g_lo + j) * p.kr_stride_h + static_cast<int64_t>(t) * p.kr_stride_t;
                bulk_copy(dst, src, (rope_side_by_side ? span : 1) * dr * sizeof(T), &full_bar[stage]);
            }
        }
    };
    const int n_tiles = (t_end - t_begin + NT - 1) / NT;
    if (tid == 0)
        for (int s = 0; s < STAGES; ++s) mbar_init(&full_bar[s], 1);  // thread 0's arrive.expect_tx
    __syncthreads();  // initialised before any thread waits or any copy signals
#pragma unroll
    for (int s = 0; s < STAGES; ++s)
        if (s < n_tiles) issue_tile(s, s);

    // Queries: the a part (bf16/f16) for the tensor cores, the r part for the softmax step.
    const T* qb = static_cast<const T*>(p.q) + b * p.q_stride_b;
    const int col0 = warp * DW;
    uint32_t qf[QREG ? MT : 1][QREG ? DW / 16 : 1][4];
    if constexpr (QREG) {
        // A fragments straight from global memory: a0 (row l/4, k 2(l%4)..+1), a1 row+8, a2 k+8, a3 both.
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int kk = 0; kk < DW / 16; ++kk)
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    const int row = mt * 16 + (lane >> 2) + (j & 1) * 8;
                    const int col = col0 + kk * 16 + (lane & 3) * 2 + (j >> 1) * 8;
                    qf[mt][kk][j] = row < nh ? *reinterpret_cast<const uint32_t*>(
                                                   qb + static_cast<int64_t>(h0 + row) * p.q_stride_h + col)
                                             : 0u;
                }
    } else {
        const int chunks_per_row = dv / 8;  // 16-byte chunks per row
        for (int idx = tid; idx < BM * chunks_per_row; idx += THREADS) {
            const int r = idx / chunks_per_row, c = idx % chunks_per_row;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (r < nh) v = load16(qb + static_cast<int64_t>(h0 + r) * p.q_stride_h + c * 8);
            *reinterpret_cast<uint4*>(sQ + r * L.row + c * 8) = v;
        }
    }
    for (int idx = tid; idx < BM * dr; idx += THREADS) {
        const int r = idx / dr, c = idx % dr;
        sQr[idx] = r < nh ? qb[static_cast<int64_t>(h0 + r) * p.q_stride_h + dv + c] : Elem<T>::store(0.f);
    }
    if (tid < BM) {
        sM[tid] = -INFINITY;
        sL[tid] = 0.f;
    }
    // The softmax step's elements of this thread, fixed for the whole loop: token s_col of the
    // tile, head rows s_row0 + i * THREADS / 16, and where their KV head's rope keys sit.
    const int s_col = tid % NT, s_row0 = tid / NT;
    int kr_at[EPT];  // staged: offset in a stage's rope rows; global: the KV head
#pragma unroll
    for (int i = 0; i < EPT; ++i) {
        const int g = (h0 + s_row0 + i * (THREADS / NT)) / group;
        kr_at[i] = stage_rope ? s_col * L.kr_pitch + (g - g_lo) * dr : g;
    }
    __syncthreads();  // sQ (read by the first Q.K^T), sQr, sM and sL written

    float o[MT][DW / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int n = 0; n < DW / 8; ++n)
#pragma unroll
            for (int c = 0; c < 4; ++c) o[mt][n][c] = 0.f;

    const float qscale = p.scale * kLog2e;

    for (int tile = 0; tile < n_tiles; ++tile) {
        const int stage = tile % STAGES;
        if (!(skip & 8) || tile < STAGES) mbar_wait(&full_bar[stage], (tile / STAGES) & 1);  // rows landed
        const T* K = sK + static_cast<size_t>(stage) * NT * L.row;
        const int t0 = t_begin + tile * NT;

        // S partial over this warp's columns: [BM heads] x [16 tokens]. With the queries in
        // registers the 16 k steps alternate between two accumulator sets, so that four chains
        // of dependent mma.sync (not two) share the tensor core's latency; summed at the end.
        constexpr int KSETS = QREG ? 2 : 1;
        float sacc[KSETS][MT][2][4];
#pragma unroll
        for (int ks = 0; ks < KSETS; ++ks)
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int n = 0; n < 2; ++n)
#pragma unroll
                    for (int c = 0; c < 4; ++c) sacc[ks][mt][n][c] = 0.f;
        if (!(skip & 1))
#pragma unroll(QREG ? DW / 16 : 4)
        for (int kk = 0; kk < DW / 16; ++kk) {
            const int k0 = col0 + kk * 16;
            uint32_t bf[4];
            ldmatrix_x4(bf, K + ((lane >> 4) * 8 + (lane & 7)) * L.row + k0 + ((lane >> 3) & 1) * 8);
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                if constexpr (QREG) {
                    mma16816<T>(sacc[kk % KSETS][mt][0], qf[mt][kk], bf[0], bf[1]);
                    mma16816<T>(sacc[kk % KSETS][mt][1], qf[mt][kk], bf[2], bf[3]);
                } else {
                    uint32_t af[4];
                    ldmatrix_x4(af, sQ + (mt * 16 + (lane & 15)) * L.row + k0 + (lane >> 4) * 8);
                    mma16816<T>(sacc[0][mt][0], af, bf[0], bf[1]);
                    mma16816<T>(sacc[0][mt][1], af, bf[2], bf[3]);
                }
            }
        }
#pragma unroll
        for (int ks = 1; ks < KSETS; ++ks)
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int n = 0; n < 2; ++n)
#pragma unroll
                    for (int c = 0; c < 4; ++c) sacc[0][mt][n][c] += sacc[ks][mt][n][c];
        float* Sw = sS + warp * BM * NT;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int n = 0; n < 2; ++n) {
                const int row = mt * 16 + (lane >> 2), col = s_swizzle(row, n * 8 + (lane & 3) * 2);
                *reinterpret_cast<float2*>(Sw + row * NT + col) = make_float2(sacc[0][mt][n][0], sacc[0][mt][n][1]);
                *reinterpret_cast<float2*>(Sw + (row + 8) * NT + col) = make_float2(sacc[0][mt][n][2], sacc[0][mt][n][3]);
            }
        if (!(skip & 16)) __syncthreads();
        // Every warp is past tile - 1 (its P.V and softmax step included): refill that stage.
        if (!(skip & 8) && tile >= 1 && tile - 1 + STAGES < n_tiles) issue_tile(tile - 1 + STAGES, (tile - 1) % STAGES);

        // Sum over warps, add the r part, online softmax per head (16 lanes per head row).
        const T* kr_stage = sKr + static_cast<size_t>(stage) * NT * L.kr_pitch;
        const int t = t0 + s_col;
#pragma unroll
        for (int i = 0; i < ((skip & 2) ? 0 : EPT); ++i) {
            const int row = s_row0 + i * (THREADS / NT);
            const bool valid = t < t_end && row < nh;
            const int scol = s_swizzle(row, s_col);
            float s_even = 0.f, s_odd = 0.f;  // two chains: this step is latency-bound
#pragma unroll
            for (int w = 0; w < WARPS; w += 2) {
                s_even += sS[(w * BM + row) * NT + scol];
                if (w + 1 < WARPS) s_odd += sS[((w + 1) * BM + row) * NT + scol];
            }
            float s = s_even + s_odd;
            if (valid && dr > 0) {
                const T* qr = sQr + row * dr;
                float part[4] = {0.f, 0.f, 0.f, 0.f};  // four short chains
                auto dot8 = [&](const uint4& kv, int c) {
                    float kf[8], qv[8];
                    unpack<T>(kv, kf);
                    unpack<T>(*reinterpret_cast<const uint4*>(qr + c), qv);
#pragma unroll
                    for (int j = 0; j < 8; ++j) part[j & 3] = fmaf(qv[j], kf[j], part[j & 3]);
                };
                if (stage_rope) {
                    const T* kr = kr_stage + kr_at[i];
                    for (int c = 0; c < dr; c += 8) dot8(*reinterpret_cast<const uint4*>(kr + c), c);
                } else {
                    const T* kr = krb + kr_at[i] * p.kr_stride_h + static_cast<int64_t>(t) * p.kr_stride_t;
                    for (int c = 0; c < dr; c += 8) dot8(load16(kr + c), c);
                }
                s += (part[0] + part[1]) + (part[2] + part[3]);
            }
            s = valid ? s * qscale : -INFINITY;
            float mx = s;
#pragma unroll
            for (int off = NT / 2; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            const float m_old = sM[row];
            const float m_new = fmaxf(m_old, mx);
            const float pr = (s == -INFINITY) ? 0.f : exp2f(s - m_new);
            float sum = pr;
#pragma unroll
            for (int off = NT / 2; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
            __syncwarp();
            sP[row * L.p_row + s_col] = Elem<T>::store(pr);
            if (s_col == 0) {
                const float alpha = m_new == -INFINITY ? 1.f : exp2f(m_old - m_new);
                sM[row] = m_new;
                sL[row] = sL[row] * alpha + sum;
                sAlpha[row] = alpha;
            }
        }
        if (!(skip & 16)) __syncthreads();

        // O = O * alpha + P V over this warp's value columns. Once the running max settles most
        // tiles leave every alpha at 1: the warp then skips its DW / 2 multiplies a thread.
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
            const float a_lo = sAlpha[mt * 16 + (lane >> 2)], a_hi = sAlpha[mt * 16 + (lane >> 2) + 8];
            if (__all_sync(0xffffffffu, a_lo == 1.f && a_hi == 1.f)) continue;
#pragma unroll
            for (int n = 0; n < DW / 8; ++n) {
                o[mt][n][0] *= a_lo;
                o[mt][n][1] *= a_lo;
                o[mt][n][2] *= a_hi;
                o[mt][n][3] *= a_hi;
            }
        }
        uint32_t pf[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) ldmatrix_x4(pf[mt], sP + (mt * 16 + (lane & 15)) * L.p_row + (lane >> 4) * 8);
        if (!(skip & 4))
#pragma unroll
        for (int np = 0; np < DW / 16; ++np) {
            const int n0 = col0 + np * 16;
            uint32_t vf[4];
            ldmatrix_x4_trans(vf, K + (((lane >> 3) & 1) * 8 + (lane & 7)) * L.row + n0 + (lane >> 4) * 8);
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                mma16816<T>(o[mt][2 * np], pf[mt], vf[0], vf[1]);
                mma16816<T>(o[mt][2 * np + 1], pf[mt], vf[2], vf[3]);
            }
        }
    }

    // Partials: o / l in the element type (half the bytes of float32 to write here and to read in
    // decode_combine, which weighs each split by its l), plus m and l per head. sL is final: every
    // thread is past the last tile's second barrier.
    T* __restrict__ ws_acc = static_cast<T*>(ws_acc_raw);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int row = mt * 16 + (lane >> 2) + half * 8;
            if (row < nh) {
                const float l = sL[row], inv_l = l > 0.f ? 1.f / l : 0.f;
                T* dst = ws_acc + (slot0 + static_cast<int64_t>(row) * n_splits) * dv;
#pragma unroll
                for (int n = 0; n < DW / 8; ++n) {
                    const int col = col0 + n * 8 + (lane & 3) * 2;
                    store_pair<T>(dst + col, o[mt][n][2 * half] * inv_l, o[mt][n][2 * half + 1] * inv_l);
                }
            }
        }
    if (tid < nh) {
        ws_ml[(slot0 + static_cast<int64_t>(tid) * n_splits) * 2] = sM[tid];
        ws_ml[(slot0 + static_cast<int64_t>(tid) * n_splits) * 2 + 1] = sL[tid];
    }
}
