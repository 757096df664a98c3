// SpectrumPanel: how much of K/V a rank keeps. Computes the spectra of the current model for a
// partial-RoPE mask (strategy + r) and a latent width d_kv in a worker (progress, cancel), and
// shows them in a SpectrumPlot: one layer or all layers overlaid, a marker at rank n_kv x d_kv.
#pragma once

#include "analysis/rope_scores.h"
#include "analysis/spectrum.h"
#include "app/gui/plots/PlotExport.h"

#include <QString>
#include <QWidget>

#include <optional>

class QComboBox;
class QLabel;
class QProgressBar;
class QPushButton;
class QSpinBox;

namespace mlawb::gui {

class BackgroundJob;
class SpectrumPlot;

class SpectrumPanel : public QWidget {
    Q_OBJECT

public:
    explicit SpectrumPanel(QWidget* parent = nullptr);

    // The model to analyse; drops the spectra of the previous one.
    void setModelFolder(const QString& folder);
    // Scores for strategy 2-norm (from the RoPE heatmap panel); may be reset.
    void setRopeScores(const std::optional<mlawb::RopeScores>& scores) { scores_ = scores; }
    // The setting of the mask and the rank: a strategy of the registry, r, and d_kv.
    void setSetting(const QString& strategy, int r, int dKv);

    // Starts compute_spectra in the worker; false without a model or while one runs.
    bool startCompute();
    void cancelCompute();
    bool isComputing() const;
    bool hasReport() const { return report_.has_value(); }
    const std::optional<mlawb::SpectrumReport>& report() const { return report_; }
    SpectrumPlot* plot() const { return plot_; }
    // Index into report().layers, or -1 for all layers overlaid.
    void showLayer(int layerIndex);

    ExportResult exportTo(const QString& path);  // .png, .pdf, .csv; failure reported and returned
    void setShowDialogs(bool show) { show_dialogs_ = show; }
    QString lastError() const { return last_error_; }

Q_SIGNALS:
    void computeFinished(bool ok, const QString& message);
    void errorReported(const QString& message);

private:
    void buildUi();
    void chooseExportFile();
    void onComputeFinished(bool ok, bool cancelled, const QString& message);
    void showReport(const mlawb::SpectrumReport& report);
    void report(const QString& title, const QString& message);

    QString folder_;
    std::optional<mlawb::RopeScores> scores_;
    std::optional<mlawb::SpectrumReport> report_;
    BackgroundJob* job_ = nullptr;
    bool show_dialogs_ = true;
    QString last_error_;

    SpectrumPlot* plot_ = nullptr;
    QComboBox* strategy_ = nullptr;
    QSpinBox* r_ = nullptr;
    QSpinBox* d_kv_ = nullptr;
    QComboBox* layer_ = nullptr;
    QComboBox* overlay_matrix_ = nullptr;
    QPushButton* compute_ = nullptr;
    QPushButton* cancel_ = nullptr;
    QProgressBar* progress_ = nullptr;
    QLabel* summary_ = nullptr;
};

}  // namespace mlawb::gui
