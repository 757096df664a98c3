// Setting recommendation for a KV-cache budget (`mlawb recommend MODEL --budget 20%`): which
// MLA settings (strategy x r x d_kv x svd x kv_bits) fit a share of the original cache, and
// which of those the analysis expects to lose least, before anything is evaluated.
//
// Budget: nominal KV bytes per token (all layers, analysis/memory_model.h: values x kv_bits / 8)
// at most budget x the original model's at 16 bits. Nominal, as papers quote it; the real
// figure adds 4 bytes of scale and zero point per quantization group (reported beside it).
//
// Analysis score of a candidate, each factor in [0, 1], 1 = nothing lost:
//   E  spectral energy kept by the low-rank latent: per layer, sum_{i<k} sigma_i^2 / sum sigma^2
//      of [W_k,nope; W_v] at rank k = n_kv d_kv (joint), or of W_k,nope and W_v at n_kv d_kv/2
//      each, pooled (split) (analysis/spectrum.h); mean over layers; 1 without a latent.
//   M  RoPE score mass kept: per layer and KV head, the 2-norm scores (MHA2MLA eq. 5) of the
//      pairs that keep RoPE over the sum over all pairs; mean over layers and heads. Needs
//      calibrated scores; without them M is not known and counts as 1.
//   Q  energy kept by b-bit uniform quantization of a group of values spread over its range:
//      noise power step^2/12 against signal power range^2/12 with step = range / (2^b - 1)
//      gives Q = 1 - 1 / (2^b - 1)^2 (0.889 at 2 bits, 0.996 at 4, 1 at 16).
//   analysis = E x M x Q.
// The score only orders candidates of one cache family (kv_bits x svd), where the factors
// trade against each other (r against d_kv); families are compared by a quick perplexity.
#pragma once

#include "analysis/mla_spec.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mlawb {

struct ModelConfig;
struct KeptPairs;
struct RopeScores;
struct LayerSpectrum;

// What the recommendation enumerates. Empty r / d_kv lists: the defaults below.
struct CandidateAxes {
    std::vector<std::string> strategies = {"full", "high", "low", "uniform", "2-norm"};
    std::vector<int64_t> r;     // default: 1, 2, 4, ... < head_dim/2 (full: head_dim/2)
    std::vector<int64_t> d_kv;  // default: 4, 6, 8, 12, 16, 24, 32, 48, ... up to 2 head_dim
    std::vector<SvdMode> svd = {SvdMode::Joint, SvdMode::Split, SvdMode::None};
    std::vector<int> kv_bits = {16, 8, 4, 2};
};

struct Candidate {
    MlaSpec spec;
    std::string text;               // canonical spec
    double nominal_bytes = 0;       // KV bytes per token, all layers (the budget's measure)
    double real_bytes = 0;          // with scales and zero points
    double share = 0;               // nominal_bytes / original bytes at 16 bits
    double energy = 1;              // E
    std::optional<double> rope_mass;  // M (absent without scores)
    double quant_fidelity = 1;      // Q
    double analysis = 0;            // E x M x Q
    std::string family() const;     // "kv_bits=4,svd=joint"
};

// Parses "20%" or "0.2" (a share in (0, 1]); throws Error("", "--budget", ...).
double parse_budget(const std::string& text);

// Every combination of the axes that is valid for the model (MlaSpec::validate_sizes) and
// within budget (share of the original bytes). 2-norm candidates are listed only when
// `scores_file` is not empty (their spec names it: scores=FILE). Canonical specs, distinct,
// ordered by text.
std::vector<Candidate> enumerate_candidates(const ModelConfig& config, double budget_share, const CandidateAxes& axes,
                                            const std::string& scores_file);

double quantization_fidelity(int kv_bits);  // Q above
// M above for one mask; scores and mask must have the same shape (throws Error otherwise).
double rope_mass_kept(const RopeScores& scores, const KeptPairs& kept);
// E above from per-layer spectra computed without a latent (their sigma_* vectors).
double spectral_energy_kept(const std::vector<LayerSpectrum>& layers, SvdMode svd, int64_t d_kv, int64_t n_kv_head);

// The shortlist for the quick perplexity: the best `per_family` candidates by analysis score
// within each family (ties: more bytes first, then text), families in the order of their best
// score. Indices into `candidates`.
std::vector<size_t> shortlist(const std::vector<Candidate>& candidates, int64_t per_family);

// A point of an accuracy (higher is better) against memory (lower is better) plot.
struct ParetoPoint {
    double bytes = 0;
    double value = 0;
};
// Indices of the points no other point dominates (bytes <= and value >=, one of them strictly),
// by bytes ascending; equal points are all kept.
std::vector<size_t> pareto_front(const std::vector<ParetoPoint>& points);
// How far p sits below a front: max(0, best front value at bytes <= p.bytes - p.value);
// 0 for a point on or above it. A point cheaper than the whole front has gap 0.
double front_gap(const ParetoPoint& p, const std::vector<ParetoPoint>& front);

}  // namespace mlawb
