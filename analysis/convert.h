// MHA/GQA -> MLA conversion of a loaded model, in memory (MHA2MLA sec. 3):
// partial RoPE (the kept pairs of each KV head keep RoPE, exactly: W_k_rope = those rows of
// W_k) plus a low-rank factorization of the rest of K and of V:
//   joint: SVD of [W_k,nope ; W_v] (stacked on the output axis, un-repeated GQA heads) at rank
//          n_kv d_kv; W_down = V^T part [n_kv d_kv, hidden], W_up = U Sigma split into
//          W_up_k [n_kv (d-2r), n_kv d_kv] and W_up_v [n_kv d, n_kv d_kv] (Sigma wholly in the ups);
//   split: separate SVDs of W_k,nope and W_v at rank n_kv d_kv / 2 each;
//   none:  partial RoPE only.
// Biases (Qwen2): none on the down-projection; the K-nope bias moves to W_up_k, the V bias to
// W_up_v, the kept-row bias to W_k_rope. SVDs run in float64.
#pragma once

#include "analysis/mla_spec.h"
#include "analysis/strategies.h"

#include <functional>

namespace mlawb {

class LlamaForCausalLMImpl;

struct ConvertOptions {
    std::function<void(int64_t layers_done, int64_t layers_total)> progress;
    std::function<bool()> cancelled;  // polled between layers
};

// Replaces every layer's attention by an MlaAttention built from its weights. Refuses a model
// that is already converted.
void convert_to_mla(LlamaForCausalLMImpl& model, const MlaSpec& spec, const KeptPairs& kept,
                    const ConvertOptions& options = {});

}  // namespace mlawb
