// 2-norm RoPE contribution scores (MHA2MLA sec. 3.1): per layer l, query head h, pair k,
// Qn[l,h,k] = mean over calibration tokens of ||(q[k], q[k+d/2])||_2, Kn[l,g,k] likewise per KV
// head g, and S[l,g,k] = sum over the query heads h of g's group of Qn[l,h,k] * Kn[l,g,k]
// (variant "product", default) or of Qn + Kn (variant "sum"). RoPE rotates within a pair, so
// norms taken before or after RoPE are equal. Plain data: no LibTorch in this header.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mlawb {

struct CalibrationProvenance {
    std::string model;        // folder
    std::string text_file;    // calibration text
    int64_t windows = 0;      // windows actually used
    int64_t seq_len = 0;      // tokens per window
    int64_t tokens = 0;       // tokens run through the model
};

struct RopeScores {
    int64_t n_layer = 0, n_head = 0, n_kv_head = 0, n_pairs = 0;  // n_pairs = head_dim / 2
    std::string variant = "product";
    std::vector<double> scores;   // [n_layer][n_kv_head][n_pairs]
    std::vector<double> q_norms;  // [n_layer][n_head][n_pairs]
    std::vector<double> k_norms;  // [n_layer][n_kv_head][n_pairs]
    CalibrationProvenance provenance;

    double score(int64_t l, int64_t g, int64_t k) const { return scores[(l * n_kv_head + g) * n_pairs + k]; }
    double q_norm(int64_t l, int64_t h, int64_t k) const { return q_norms[(l * n_head + h) * n_pairs + k]; }
    double k_norm(int64_t l, int64_t g, int64_t k) const { return k_norms[(l * n_kv_head + g) * n_pairs + k]; }

    // Recomputes `scores` from q_norms and k_norms for `variant`, over the group G(g) of the
    // query heads h with h / (n_head / n_kv_head) == g (transformers' repeat_kv order):
    //   product: S[l,g,k] = sum_{h in G(g)} Qn[l,h,k] * Kn[l,g,k]
    //   sum:     S[l,g,k] = sum_{h in G(g)} (Qn[l,h,k] + Kn[l,g,k])
    // Throws Error("", "variant", ...) naming the valid values for anything else.
    void combine(const std::string& variant);
    static const std::vector<std::string>& variant_names();  // {"product", "sum"}

    // The r pairs of layer l, KV head g with the highest scores, highest first; ties go to
    // the lower pair index (the higher frequency), as the 2-norm strategy breaks them.
    std::vector<int64_t> top_pairs(int64_t l, int64_t g, int64_t r) const;

    // JSON: {"format": "mlawb-rope-scores", "variant", "n_layer", "n_head", "n_kv_head", "n_pairs",
    //        "calibration": {model, text_file, windows, seq_len, tokens}, "scores": [L][n_kv][P],
    //        "q_norms": [L][n_h][P], "k_norms": [L][n_kv][P]}; doubles round-trip exactly.
    // save() writes a temp file beside `path` and renames it over; calibration is optional on
    // load (hand-made files), everything else is required and checked.
    std::string to_json_text() const;
    static RopeScores from_json_text(const std::string& text, const std::string& source);
    void save(const std::string& path) const;
    static RopeScores load(const std::string& path);  // throws Error naming the file and key
};

struct CalibrationOptions {
    int64_t windows = 16;     // first N non-overlapping windows of the tokenized text
    int64_t seq_len = 2048;   // tokens per window
    std::string variant = "product";
    std::function<void(int64_t windows_done, int64_t windows_total)> progress;
    std::function<bool()> cancelled;  // polled between windows (and layers)
};

}  // namespace mlawb
