// SpectrumPanel: how much of K/V a rank keeps. Computes the spectra of the current model for a
// partial-RoPE mask (strategy + r) and a latent width d_kv in a worker (progress, cancel), and
// shows them in a SpectrumPlot: one layer or all layers overlaid, a marker at rank n_kv x d_kv.
#pragma once

#include "analysis/mla_spec.h"
#include "analysis/rope_scores.h"
#include "analysis/spectrum.h"
#include "app/gui/panels/PlotPanel.h"

#include <QString>

#include <optional>

class QComboBox;
class QLabel;
class QPushButton;
class QSpinBox;

namespace mlawb::gui {

class SpectrumPlot;

class SpectrumPanel : public PlotPanel {
    Q_OBJECT

public:
    explicit SpectrumPanel(QWidget* parent = nullptr);

    // The model to analyse; drops the spectra of the previous one.
    void setModelFolder(const QString& folder);
    // Scores for strategy 2-norm (from the RoPE heatmap panel); may be reset.
    void setRopeScores(const std::optional<mlawb::RopeScores>& scores) { scores_ = scores; }
    // The setting of the mask and the rank: a strategy of the registry, r, d_kv and uniform's start.
    void setSetting(const QString& strategy, int r, int dKv, int start = 0);

    // Starts compute_spectra in the worker; false without a model or while one runs.
    bool startCompute();
    void cancelCompute();
    bool isComputing() const;
    bool hasReport() const { return report_.has_value(); }
    const std::optional<mlawb::SpectrumReport>& report() const { return report_; }
    // The mask the report on show was computed for (strategy, r, start), as SettingsModel takes it.
    const mlawb::MlaSpec& reportMask() const { return report_mask_; }
    SpectrumPlot* plot() const { return plot_; }
    // Index into report().layers, or -1 for all layers overlaid.
    void showLayer(int layerIndex);

    QCustomPlot* exportedPlot() const override;
    PlotTable exportedTable() const override;
    QString exportBaseName() const override { return QStringLiteral("spectrum"); }

Q_SIGNALS:
    void computeFinished(bool ok, const QString& message);

protected:
    void showStatus(const QString& message) override;

private:
    void buildUi();
    void onComputeFinished(bool ok, bool cancelled, const QString& message);
    void showReport(const mlawb::SpectrumReport& report, const mlawb::MlaSpec& mask);

    QString folder_;
    std::optional<mlawb::RopeScores> scores_;
    std::optional<mlawb::SpectrumReport> report_;
    mlawb::MlaSpec report_mask_;

    SpectrumPlot* plot_ = nullptr;
    QComboBox* strategy_ = nullptr;
    QSpinBox* r_ = nullptr;
    QSpinBox* start_ = nullptr;  // uniform's first pair
    QSpinBox* d_kv_ = nullptr;
    QComboBox* layer_ = nullptr;
    QComboBox* overlay_matrix_ = nullptr;
    QPushButton* compute_ = nullptr;
    QLabel* summary_ = nullptr;
};

}  // namespace mlawb::gui
