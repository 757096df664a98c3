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

__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
    const int bytes = valid ? 16 : 0;  // 0: nothing is read, the 16 bytes are zero-filled
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
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

// mbarrier and bulk-copy primitives (sm_90): K tile rows arrive by cp.async.bulk (the TMA
// engine), which counts its bytes on the stage's barrier, so the copies take no load/store-unit
// issue slots from the threads' ldmatrix and shared-memory traffic.
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

// Shared-memory layout of decode_mma (in bytes from the dynamic base), rows padded by 16 bytes
// so that the 8 rows an ldmatrix reads fall in different banks.
struct MmaSmem {
    int row;        // elements per padded row of Q and K (dv + 8)
    int p_row;      // elements per padded row of P (16 + 8)
    size_t q, k, kr, s, qr, pm, m, l, alpha, bar, total;
};

// q_in_smem false: the queries' a part lives in registers (decode_mma with DW 256), no sQ.
// kr_row > 0: the block's rope keys (kr_row elements a token: its KV heads' r parts side by side)
// are staged beside each K tile, so the softmax step reads them from shared memory instead of
// waiting on a global load between two barriers every tile.
// The stages' `full` mbarriers at the end.
__host__ __device__ inline MmaSmem mma_smem(int bm, int dv, int dr, int warps, int stages, int elem, bool q_in_smem,
                                            int kr_row) {
    MmaSmem s;
    s.row = dv + 8;
    s.p_row = kMmaTokens + 8;
    size_t at = 0;
    s.q = at;
    if (q_in_smem) at += static_cast<size_t>(bm) * s.row * elem;
    s.k = at;
    at += static_cast<size_t>(stages) * kMmaTokens * s.row * elem;
    s.kr = at;
    at += static_cast<size_t>(stages) * kMmaTokens * kr_row * elem;
    s.s = at;
    at += static_cast<size_t>(warps) * bm * kMmaTokens * 4;
    s.qr = at;
    at += static_cast<size_t>(bm) * (dr > 0 ? dr : 1) * 4;
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

// The K tile rows come by cp.async.bulk (one copy a row, so the padded layout stays), issued by
// warp 0 and counted on the stage's mbarrier; every stage is filled up front and the stage of
// tile i - 1 is refilled once all warps are past tile i's first barrier. The rope keys come by
// cp.async (one group a tile). With cp.async for the K tiles too (version 3 of
// scripts/gpu/NOTES.md) the 4096 copies a tile queued in front of the ldmatrix of the same
// threads and loads stopped overlapping the arithmetic: 262 against 208 us a layer at 8 x 8k.
template <typename T, int MT, int DW, int STAGES>
__global__ void __launch_bounds__(256, (MT * DW <= 128) ? 2 : 1)
    decode_mma(const DecodeAttentionParams p, int n_splits, int kr_row, float* __restrict__ ws_acc,
               float* __restrict__ ws_ml, int skip) {
    constexpr int BM = 16 * MT;
    constexpr int NT = kMmaTokens;
    // With 256 latent columns per warp (L = 2048) the queries' A fragments stay in registers
    // (64 per thread): the 66 KB of sQ go to a third K stage instead.
    constexpr bool QREG = DW >= 256;
    extern __shared__ __align__(16) unsigned char smem[];
    const int warps = blockDim.x / 32;
    const int dv = p.value_dim, dr = p.key_r_dim;
    const MmaSmem L = mma_smem(BM, dv, dr, warps, STAGES, sizeof(T), !QREG, kr_row);
    T* sQ = reinterpret_cast<T*>(smem + L.q);  // unused when QREG
    T* sK = reinterpret_cast<T*>(smem + L.k);
    T* sKr = reinterpret_cast<T*>(smem + L.kr);  // [STAGES][16 tokens][kr_row], when kr_row > 0
    float* sS = reinterpret_cast<float*>(smem + L.s);
    float* sQr = reinterpret_cast<float*>(smem + L.qr);
    T* sP = reinterpret_cast<T*>(smem + L.pm);
    float* sM = reinterpret_cast<float*>(smem + L.m);
    float* sL = reinterpret_cast<float*>(smem + L.l);
    float* sAlpha = reinterpret_cast<float*>(smem + L.alpha);
    uint64_t* full_bar = reinterpret_cast<uint64_t*>(smem + L.bar);  // [STAGES] the tile's rows landed

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nthreads = blockDim.x;
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
    const int chunks_per_row = dv / 8;  // 16-byte chunks per key-a row
    const int g_lo = h0 / group;        // the block's first KV head (staged rope keys start there)
    const int kr_chunks = kr_row > 0 ? ((h0 + nh - 1) / group - g_lo + 1) * (dr / 8) : 0;
    const int r_chunks_head = dr / 8;  // 16-byte chunks of one KV head's rope keys
    auto load_rope = [&](int tile, int stage) {
        const int t0 = t_begin + tile * NT;
        // Rope keys staged head-major, [KV head][token][dr]: the softmax step's 16 lanes of one
        // head read 16 consecutive tokens without bank conflicts.
        T* rdst = sKr + static_cast<size_t>(stage) * NT * kr_row;
        for (int idx = tid; idx < NT * kr_chunks; idx += nthreads) {
            const int g = idx / (NT * r_chunks_head), rem = idx % (NT * r_chunks_head);
            const int r = rem / r_chunks_head, cc = rem % r_chunks_head;
            const int t = t0 + r;
            const bool valid = t < t_end;
            const T* src = valid ? krb + (g_lo + g) * p.kr_stride_h + static_cast<int64_t>(t) * p.kr_stride_t + cc * 8
                                 : krb;
            cp_async16(rdst + (g * NT + r) * dr + cc * 8, src, valid);
        }
    };
    // Warp 0: lane 0 announces the tile's bytes, lanes 0..15 copy a row each. Rows past
    // the range repeat the last visible row (finite values whose P is 0): every tile moves the
    // same bytes.
    auto issue_bulk_rows = [&](int tile, int stage) {
        if (warp != 0) return;
        if (lane == 0) mbar_arrive_expect_tx(&full_bar[stage], NT * dv * sizeof(T));
        __syncwarp();
        if (lane < NT) {
            const int t = min(t_begin + tile * NT + lane, t_end - 1);
            bulk_copy(sK + (static_cast<size_t>(stage) * NT + lane) * L.row, kbase + static_cast<int64_t>(t) * p.ka_stride_t,
                      dv * sizeof(T), &full_bar[stage]);
        }
    };
    const int n_tiles = (t_end - t_begin + NT - 1) / NT;
    if (tid == 0)
        for (int s = 0; s < STAGES; ++s) mbar_init(&full_bar[s], 1);  // warp 0's arrive.expect_tx
    __syncthreads();  // initialised before any thread waits or any copy signals
#pragma unroll
    for (int s = 0; s < STAGES; ++s) {  // group s: the rope keys of tile s
        if (s < n_tiles) {
            issue_bulk_rows(s, s);
            load_rope(s, s);
        }
        cp_async_commit();
    }

    // Queries: the a part (bf16/f16) for the tensor cores, the r part in float32.
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
        for (int idx = tid; idx < BM * chunks_per_row; idx += nthreads) {
            const int r = idx / chunks_per_row, c = idx % chunks_per_row;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (r < nh) v = load16(qb + static_cast<int64_t>(h0 + r) * p.q_stride_h + c * 8);
            *reinterpret_cast<uint4*>(sQ + r * L.row + c * 8) = v;
        }
    }
    for (int idx = tid; idx < BM * dr; idx += nthreads) {
        const int r = idx / dr, c = idx % dr;
        sQr[idx] = r < nh ? Elem<T>::load(qb[static_cast<int64_t>(h0 + r) * p.q_stride_h + dv + c]) : 0.f;
    }
    if (tid < BM) {
        sM[tid] = -INFINITY;
        sL[tid] = 0.f;
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
        // The rope keys of tile - 1 + STAGES into the stage of tile - 1 (its softmax step, their
        // only reader, ended before tile - 1's last barrier). Group g holds tile g.
        if (tile >= 1) {
            if (tile - 1 + STAGES < n_tiles) load_rope(tile - 1 + STAGES, (tile - 1) % STAGES);
            cp_async_commit();
        }
        if (!(skip & 8) || tile < STAGES) mbar_wait(&full_bar[tile % STAGES], (tile / STAGES) & 1);  // rows landed
        const T* K = sK + static_cast<size_t>(tile % STAGES) * NT * L.row;
        const int t0 = t_begin + tile * NT;

        // S partial over this warp's columns: [BM heads] x [16 tokens].
        float sacc[MT][2][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int n = 0; n < 2; ++n)
#pragma unroll
                for (int c = 0; c < 4; ++c) sacc[mt][n][c] = 0.f;
        if (!(skip & 1))
#pragma unroll(QREG ? DW / 16 : 4)
        for (int kk = 0; kk < DW / 16; ++kk) {
            const int k0 = col0 + kk * 16;
            uint32_t bf[4];
            ldmatrix_x4(bf, K + ((lane >> 4) * 8 + (lane & 7)) * L.row + k0 + ((lane >> 3) & 1) * 8);
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                if constexpr (QREG) {
                    mma16816<T>(sacc[mt][0], qf[mt][kk], bf[0], bf[1]);
                    mma16816<T>(sacc[mt][1], qf[mt][kk], bf[2], bf[3]);
                } else {
                    uint32_t af[4];
                    ldmatrix_x4(af, sQ + (mt * 16 + (lane & 15)) * L.row + k0 + (lane >> 4) * 8);
                    mma16816<T>(sacc[mt][0], af, bf[0], bf[1]);
                    mma16816<T>(sacc[mt][1], af, bf[2], bf[3]);
                }
            }
        }
        float* Sw = sS + warp * BM * NT;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int n = 0; n < 2; ++n) {
                const int row = mt * 16 + (lane >> 2), col = n * 8 + (lane & 3) * 2;
                *reinterpret_cast<float2*>(Sw + row * NT + col) = make_float2(sacc[mt][n][0], sacc[mt][n][1]);
                *reinterpret_cast<float2*>(Sw + (row + 8) * NT + col) = make_float2(sacc[mt][n][2], sacc[mt][n][3]);
            }
        cp_async_wait<STAGES - 1>();  // this thread's rope copies of the tile
        if (!(skip & 16)) __syncthreads();
        // Every warp is past tile - 1 (its P.V included): refill that stage.
        if (!(skip & 8) && tile >= 1 && tile - 1 + STAGES < n_tiles)
            issue_bulk_rows(tile - 1 + STAGES, (tile - 1) % STAGES);

        // Sum over warps, add the r part, online softmax per head (16 lanes per head row).
        for (int e = tid; e < ((skip & 2) ? 0 : BM * NT); e += nthreads) {
            const int row = e / NT, col = e % NT;
            const int t = t0 + col;
            const bool valid = t < t_end && row < nh;
            float s = 0.f;
#pragma unroll 8
            for (int w = 0; w < warps; ++w) s += sS[(w * BM + row) * NT + col];
            if (valid && dr > 0) {
                const int g = (h0 + row) / group;
                const T* kr = kr_row > 0 ? sKr + static_cast<size_t>(tile % STAGES) * NT * kr_row + ((g - g_lo) * NT + col) * dr
                                         : krb + g * p.kr_stride_h + static_cast<int64_t>(t) * p.kr_stride_t;
                const float* qr = sQr + row * dr;
                float part[4] = {0.f, 0.f, 0.f, 0.f};  // four short chains: this step is latency-bound
                for (int c = 0; c < dr; c += 8) {
                    float kf[8];  // staged: a shared-memory load (ld.global.nc must not see it)
                    unpack<T>(kr_row > 0 ? *reinterpret_cast<const uint4*>(kr + c) : load16(kr + c), kf);
#pragma unroll
                    for (int j = 0; j < 8; ++j) part[j & 3] = fmaf(qr[c + j], kf[j], part[j & 3]);
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
            sP[row * L.p_row + col] = Elem<T>::store(pr);
            if (col == 0) {
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
    cp_async_wait<0>();

    // Partials: o against the block's running max, plus m and l per head.
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int row = mt * 16 + (lane >> 2) + half * 8;
            if (row < nh) {
                float* dst = ws_acc + (slot0 + static_cast<int64_t>(row) * n_splits) * dv;
#pragma unroll
                for (int n = 0; n < DW / 8; ++n) {
                    const int col = col0 + n * 8 + (lane & 3) * 2;
                    *reinterpret_cast<float2*>(dst + col) = make_float2(o[mt][n][2 * half], o[mt][n][2 * half + 1]);
                }
            }
        }
    if (tid < nh) {
        ws_ml[(slot0 + static_cast<int64_t>(tid) * n_splits) * 2] = sM[tid];
        ws_ml[(slot0 + static_cast<int64_t>(tid) * n_splits) * 2 + 1] = sL[tid];
    }
}
