// SettingsModel: the live figures of the Settings panel for one MLA setting, computed from plain
// structs only (ModelConfig, optional RopeScores, optional precomputed SpectrumReport), so the
// panel stays a thin view and tests and benchmarks can check the numbers without widgets.
//
// Approximation error. The joint matrix [W_k,nope; W_v] depends on the kept-pair mask (W_k,nope
// drops the rows of kept pairs), so a spectrum is valid only for the mask it was computed with.
// The singular values do not depend on d_kv: any rank's error follows from them by Eckart-Young
// (analysis/spectrum.h), which is what makes a d_kv slider move cheap. When the strategy, r or
// start differ from the spectrum's mask, the figures are still shown but marked as coming from
// the other mask (ErrorSource::OtherMask); recomputing a spectrum needs the weights and runs in
// the Spectrum tab's worker, not here.
#pragma once

#include "analysis/memory_model.h"
#include "analysis/mla_spec.h"
#include "analysis/rope_scores.h"
#include "analysis/spectrum.h"
#include "core/config.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mlawb::gui {

// What the user set: the spec plus the cache shape the totals are taken at.
struct SettingsInput {
    MlaSpec spec;
    int64_t context_tokens = 4096;  // tokens per sequence
    int64_t batch = 1;              // sequences
};

// Where the per-layer approximation errors come from.
enum class ErrorSource {
    NoSpectrum,  // no spectrum loaded: errors unknown
    NoLatent,    // svd=none: nothing is factorized, error 0 by construction
    SameMask,    // spectrum computed for this setting's mask: exact for any d_kv
    OtherMask,   // spectrum computed for another mask (strategy / r / start differ): indicative only
};

struct LayerFigures {
    int64_t layer = 0;
    std::vector<int64_t> kept_pairs_head0;  // pairs keeping RoPE in KV head 0, ascending
    bool has_error = false;                 // false when no spectrum covers this layer
    double approximation_error = 0.0;       // ||W - W_rank||_F / ||W||_F of the factorized matrix
};

struct SettingsFigures {
    bool valid = false;
    bool needs_scores = false;  // a 2-norm strategy and no scores loaded
    std::string message;        // why the setting is refused (valid == false)
    std::string spec_text;      // MlaSpec::to_string(), the canonical setting
    int64_t pairs_per_head = 0;  // head_dim / 2
    int64_t max_d_kv = 0;        // largest d_kv validation accepts for this r and svd (0: no latent)
    MemoryEstimate memory;
    std::vector<LayerFigures> layers;
    ErrorSource error_source = ErrorSource::NoSpectrum;
    int64_t error_rank = 0;        // joint: n_kv d_kv; split: n_kv d_kv/2 per part
    std::string spectrum_mask;     // canonical text of the mask the spectrum was computed for
};

class SettingsModel {
public:
    // A new model: forgets scores and spectrum, which belong to the previous one.
    void setConfig(const ModelConfig& config);
    bool hasConfig() const { return has_config_; }
    const ModelConfig& config() const { return config_; }

    void setScores(std::optional<RopeScores> scores) { scores_ = std::move(scores); }
    bool hasScores() const { return scores_.has_value(); }
    const std::optional<RopeScores>& scores() const { return scores_; }

    // `mask_spec` names the mask the spectra were computed with (strategy, r, start, scores).
    void setSpectrum(SpectrumReport report, const MlaSpec& mask_spec);
    void clearSpectrum() { spectrum_.reset(); }
    bool hasSpectrum() const { return spectrum_.has_value(); }

    // Never throws: an invalid setting comes back with valid == false and the reason.
    SettingsFigures evaluate(const SettingsInput& input) const;

    // Largest d_kv MlaSpec::validate_sizes accepts with `kept_pairs` pairs per head and `svd`.
    static int64_t maxDKv(const ModelConfig& config, int64_t kept_pairs, SvdMode svd);

private:
    bool sameMask(const MlaSpec& spec) const;
    void fillErrors(const MlaSpec& spec, SettingsFigures& figures) const;

    bool has_config_ = false;
    ModelConfig config_;
    std::optional<RopeScores> scores_;
    std::optional<SpectrumReport> spectrum_;
    MlaSpec spectrum_mask_;  // valid while spectrum_ is set
};

const char* error_source_name(ErrorSource source);

}  // namespace mlawb::gui
