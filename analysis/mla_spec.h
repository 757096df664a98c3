// The MLA setting every command takes: --mla "strategy=2-norm,r=4,d_kv=16,svd=joint".
// Units (MHA2MLA): pair k = dims (k, k + d/2) in the rotate-half layout, k = 0 the highest
// frequency; r = kept RoPE pairs per head; d_kv = latent width per KV head (the cached latent
// is n_kv x d_kv wide); split SVD uses d_kv/2 per side.
#pragma once

#include <cstdint>
#include <string>

namespace mlawb {

struct ModelConfig;

enum class SvdMode { None, Joint, Split };
const char* svd_mode_name(SvdMode mode);

struct MlaSpec {
    std::string strategy = "full";  // a name in the strategy registry (analysis/strategies.h)
    int64_t r = -1;                 // kept pairs per head; -1: all pairs (strategy full)
    int64_t d_kv = -1;              // latent width per KV head; -1: no low-rank (svd=none)
    SvdMode svd = SvdMode::None;
    int64_t start = 0;              // first pair of `uniform`
    std::string scores_file;        // scores=FILE (from `mlawb rope-scores --out`)
    std::string calib_file;         // calib=FILE: calibrate 2-norm scores on the fly
    std::string mask_file;          // mask=FILE: kept pairs for strategy `custom`
    std::string variant = "product";  // 2-norm score variant: product | sum
    int kv_bits = 16;               // cache bits per value: 16 (unquantized), 8, 4, 2
    int64_t kv_group = 64;          // values per quantization group (scale + zero point each)
    int64_t residual = 128;         // most recent tokens kept unquantized

    // Parses "key=value,key=value". Throws mlawb::Error("", "--mla", ...) naming the key and
    // the valid values for unknown keys, bad numbers and bad enum values, and refusing
    // combinations wrong for any model (svd=split without d_kv, ...). d_kv without an svd key
    // means svd=joint (the MHA2MLA default); svd=none with d_kv is refused.
    static MlaSpec parse(const std::string& text);
    // Canonical text (keys in a fixed order, defaults omitted) for storage and comparison.
    std::string to_string() const;
    // Refuses settings impossible for this model, with the reason: r > head_dim/2, d_kv larger
    // than the joint matrix allows, 2-norm without scores or calibration text, split with odd
    // d_kv, ... Throws mlawb::Error("", "--mla", ...).
    void validate(const ModelConfig& config) const;
    // The part of validate() the memory model needs: the strategy name, r, d_kv, svd and the
    // cache keys against the model's sizes, but not the strategy's inputs (scores, mask files).
    void validate_sizes(const ModelConfig& config) const;

    bool is_original() const { return strategy == "full" && svd == SvdMode::None; }
    // Kept pairs per head for a model (r, or head_dim/2 for `full`; -1 for `custom` without r).
    int64_t kept_pairs(const ModelConfig& config) const;
};

}  // namespace mlawb
