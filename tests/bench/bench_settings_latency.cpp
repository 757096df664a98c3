// Settings-panel latency: time from a d_kv slider move to the panel's labels and per-layer table
// showing the new figures (events processed, so layout and paint of the shown panel included),
// on wb-tiny and on a 7B-shaped config with a precomputed synthetic spectrum of the right sizes
// (random singular values; the values do not change the work). Goal: under 100 ms per move.
//   QT_QPA_PLATFORM=offscreen bench_settings_latency [moves]
#include "analysis/mla_spec.h"
#include "analysis/spectrum.h"
#include "app/gui/panels/SettingsPanel.h"
#include "core/config.h"

#include <QApplication>
#include <QElapsedTimer>
#include <QSlider>
#include <QSpinBox>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace {

// Random singular values, descending, for the matrices compute_spectra gives with r kept pairs.
mlawb::SpectrumReport randomSpectrum(const mlawb::ModelConfig& c, int64_t r, std::mt19937& rng) {
    std::uniform_real_distribution<double> uniform(0.0, 10.0);
    const auto values = [&](int64_t n) {
        std::vector<double> sigma(static_cast<size_t>(n));
        for (double& s : sigma) s = uniform(rng);
        std::sort(sigma.begin(), sigma.end(), std::greater<>());
        return sigma;
    };
    const int64_t rows_nope = c.n_kv_head * (c.head_dim - 2 * r), rows_v = c.n_kv_head * c.head_dim;
    mlawb::SpectrumReport report;
    report.n_kv_head = c.n_kv_head;
    report.head_dim = c.head_dim;
    report.hidden = c.hidden;
    for (int64_t l = 0; l < c.n_layer; ++l) {
        mlawb::LayerSpectrum layer;
        layer.layer = l;
        layer.sigma_k = values(std::min(rows_v, c.hidden));
        layer.sigma_k_nope = values(std::min(rows_nope, c.hidden));
        layer.sigma_v = values(std::min(rows_v, c.hidden));
        layer.sigma_joint = values(std::min(rows_nope + rows_v, c.hidden));
        report.layers.push_back(layer);
    }
    return report;
}

struct Latency {
    double median_ms = 0, max_ms = 0;
    int64_t max_d_kv = 0, sigma_per_layer = 0;
};

Latency measure(const mlawb::ModelConfig& config, int moves) {
    std::mt19937 rng(7);
    const int64_t r = 4;
    mlawb::SpectrumReport spectrum = randomSpectrum(config, r, rng);
    const int64_t sigma_per_layer = static_cast<int64_t>(spectrum.layers.front().sigma_joint.size());
    mlawb::gui::SettingsPanel panel;
    panel.resize(1280, 760);
    panel.setModelConfig(config);
    panel.setStrategy(QStringLiteral("high"));
    panel.setSvdMode(mlawb::SvdMode::Joint);
    panel.rSpin()->setValue(static_cast<int>(r));
    panel.setSpectrum(std::move(spectrum), mlawb::MlaSpec::parse("strategy=high,r=4"));
    panel.show();
    QApplication::processEvents();

    QSlider* slider = panel.dKvSlider();
    const int top = slider->maximum();
    std::vector<double> ms;
    for (int i = 0; i < moves; ++i) {
        int value = 1 + (i * 7) % top;  // jumps across the range, as a drag or a click on the groove
        if (value == slider->value()) value = value % top + 1;
        const int before = panel.updateCount();
        QElapsedTimer timer;
        timer.start();
        slider->setValue(value);
        // Until the labels carry the new figures and the queued paint events have run.
        do QApplication::processEvents(); while (panel.updateCount() == before);
        ms.push_back(static_cast<double>(timer.nsecsElapsed()) / 1e6);
        if (panel.dKvSpin()->value() != value || panel.figures().memory.elements_per_token_layer == 0) {
            std::fprintf(stderr, "move %d: panel did not take d_kv=%d\n", i, value);
            std::exit(1);
        }
    }
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    Latency out;
    out.median_ms = sorted[sorted.size() / 2];
    out.max_ms = sorted.back();
    out.max_d_kv = top;
    out.sigma_per_layer = sigma_per_layer;
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    if (!qEnvironmentVariableIsSet("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
    QApplication app(argc, argv);
    const int moves = argc > 1 ? std::max(1, std::atoi(argv[1])) : 100;
    const std::string source = MLAWB_SOURCE_DIR;
    const struct {
        const char* name;
        std::string config;
    } models[] = {
        {"wb-tiny-mha", source + "/resources/models/wb-tiny-mha/config.json"},
        {"llama-2-7b shape", source + "/tests/data/configs/llama-2-7b.json"},
    };
    std::printf("Settings panel: d_kv slider move -> labels and per-layer table updated (%d moves, strategy=high r=4 "
                "joint, precomputed spectrum)\n\n",
                moves);
    std::printf("%-18s %7s %9s %14s %11s %9s %6s\n", "model", "layers", "d_kv max", "sigma/layer", "median ms",
                "max ms", "goal");
    bool all_met = true;
    for (const auto& m : models) {
        const mlawb::ModelConfig config = mlawb::ModelConfig::from_file(m.config);
        const Latency l = measure(config, moves);
        const bool met = l.max_ms < 100.0;
        all_met = all_met && met;
        std::printf("%-18s %7lld %9lld %14lld %11.3f %9.3f %6s\n", m.name, static_cast<long long>(config.n_layer),
                    static_cast<long long>(l.max_d_kv), static_cast<long long>(l.sigma_per_layer), l.median_ms, l.max_ms,
                    met ? "<100" : "MISS");
    }
    return all_met ? 0 : 2;
}
