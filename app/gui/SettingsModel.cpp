#include "app/gui/SettingsModel.h"

#include "analysis/strategies.h"
#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <exception>

namespace mlawb::gui {

namespace {

// Sums of the kept and dropped sigma^2 of two parts, combined as split SVD reports them.
double combinedError(const Truncation& a, const Truncation& b) {
    const double total = a.total() + b.total();
    return total > 0.0 ? std::sqrt((a.dropped + b.dropped) / total) : 0.0;
}

const LayerSpectrum* findLayer(const SpectrumReport& report, int64_t layer) {
    // Reports usually hold every layer in order; fall back to a search for layer subsets.
    const auto index = static_cast<size_t>(layer);
    if (index < report.layers.size() && report.layers[index].layer == layer) return &report.layers[index];
    for (const LayerSpectrum& l : report.layers)
        if (l.layer == layer) return &l;
    return nullptr;
}

}  // namespace

const char* error_source_name(ErrorSource source) {
    switch (source) {
    case ErrorSource::NoSpectrum: return "no spectrum";
    case ErrorSource::NoLatent: return "no latent";
    case ErrorSource::SameMask: return "this mask";
    case ErrorSource::OtherMask: return "other mask";
    }
    return "";
}

void SettingsModel::setConfig(const ModelConfig& config) {
    config_ = config;
    has_config_ = true;
    scores_.reset();
    spectrum_.reset();
}

void SettingsModel::setSpectrum(SpectrumReport report, const MlaSpec& mask_spec) {
    spectrum_ = std::move(report);
    spectrum_mask_ = mask_spec;
}

int64_t SettingsModel::maxDKv(const ModelConfig& config, int64_t kept_pairs, SvdMode svd) {
    const int64_t n_kv = config.n_kv_head, d = config.head_dim;
    if (n_kv < 1 || svd == SvdMode::None) return 0;
    // Mirrors MlaSpec::validate_sizes: rank <= min(rows, hidden) of each factorized matrix.
    const int64_t rows_k_nope = n_kv * (d - 2 * kept_pairs), rows_v = n_kv * d;
    if (svd == SvdMode::Joint) return std::min(rows_k_nope + rows_v, config.hidden) / n_kv;
    if (rows_k_nope == 0) return 0;
    return 2 * std::min(std::min(rows_k_nope, config.hidden) / n_kv, std::min(rows_v, config.hidden) / n_kv);
}

bool SettingsModel::sameMask(const MlaSpec& spec) const {
    const MlaSpec& m = spectrum_mask_;
    if (m.strategy != spec.strategy || m.kept_pairs(config_) != spec.kept_pairs(config_)) return false;
    if (spec.strategy == "uniform" && m.start != spec.start) return false;
    if (spec.strategy == "custom" && m.mask_file != spec.mask_file) return false;
    return true;
}

void SettingsModel::fillErrors(const MlaSpec& spec, SettingsFigures& figures) const {
    if (spec.svd == SvdMode::None) {
        figures.error_source = ErrorSource::NoLatent;
        for (LayerFigures& layer : figures.layers) layer.has_error = true;  // exact: nothing factorized
        return;
    }
    if (!spectrum_) {
        figures.error_source = ErrorSource::NoSpectrum;
        return;
    }
    figures.error_source = sameMask(spec) ? ErrorSource::SameMask : ErrorSource::OtherMask;
    figures.spectrum_mask = spectrum_mask_.to_string();
    const int64_t n_kv = config_.n_kv_head;
    figures.error_rank = spec.svd == SvdMode::Joint ? n_kv * spec.d_kv : n_kv * (spec.d_kv / 2);
    for (LayerFigures& layer : figures.layers) {
        const LayerSpectrum* s = findLayer(*spectrum_, layer.layer);
        if (!s) continue;
        layer.has_error = true;
        layer.approximation_error =
            spec.svd == SvdMode::Joint
                ? truncate_spectrum(s->sigma_joint, figures.error_rank).error()
                : combinedError(truncate_spectrum(s->sigma_k_nope, figures.error_rank),
                                truncate_spectrum(s->sigma_v, figures.error_rank));
    }
}

SettingsFigures SettingsModel::evaluate(const SettingsInput& input) const {
    SettingsFigures figures;
    if (!has_config_) {
        figures.message = "no model loaded";
        return figures;
    }
    const MlaSpec& spec = input.spec;
    figures.pairs_per_head = config_.head_dim / 2;
    try {
        figures.spec_text = spec.to_string();
        const StrategyInfo& strategy = find_strategy(spec.strategy);
        if (strategy.needs_scores && !scores_) {
            figures.needs_scores = true;
            figures.message = "needs 2-norm scores: calibrate in the RoPE heatmap tab";
            return figures;
        }
        // Scores held in memory stand in for scores=FILE, which validate() would otherwise ask for.
        if (strategy.needs_scores) spec.validate_sizes(config_);
        else spec.validate(config_);
        figures.max_d_kv = maxDKv(config_, spec.kept_pairs(config_), spec.svd);
        figures.memory = estimate_memory(config_, spec, input.context_tokens, input.batch);

        StrategyInput selection;
        selection.config = &config_;
        selection.r = spec.r;
        selection.start = spec.start;
        selection.scores = scores_ ? &*scores_ : nullptr;
        selection.mask_file = spec.mask_file;
        const KeptPairs kept = strategy.select(selection);
        figures.layers.resize(static_cast<size_t>(config_.n_layer));
        for (int64_t l = 0; l < config_.n_layer; ++l) {
            LayerFigures& layer = figures.layers[static_cast<size_t>(l)];
            layer.layer = l;
            layer.kept_pairs_head0 = kept.pairs(l, 0);
        }
        fillErrors(spec, figures);
        figures.valid = true;
    } catch (const Error& e) {
        figures.message = e.reason();
        figures.layers.clear();
    } catch (const std::exception& e) {
        figures.message = e.what();
        figures.layers.clear();
    }
    // The slider range is wanted even when the setting is refused (d_kv too large, ...).
    if (figures.max_d_kv == 0 && spec.r <= figures.pairs_per_head)
        figures.max_d_kv = maxDKv(config_, std::max<int64_t>(0, spec.kept_pairs(config_)), spec.svd);
    return figures;
}

}  // namespace mlawb::gui
