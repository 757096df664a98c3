// RopeHeatmapPanel: which RoPE frequencies matter. Shows the 2-norm scores (or Qn, Kn) of the
// current model as a RopeHeatmap with the pairs of a partial-RoPE strategy outlined; calibrates
// the scores from a text file in a worker (progress, cancel) and caches them per model folder
// under QStandardPaths::CacheLocation, so reopening a model shows them at once.
#pragma once

#include "analysis/rope_scores.h"
#include "analysis/strategies.h"
#include "app/gui/panels/PlotPanel.h"
#include "core/config.h"

#include <QString>

#include <optional>

class QComboBox;
class QLabel;
class QPushButton;
class QSpinBox;

namespace mlawb::gui {

class RopeHeatmap;

class RopeHeatmapPanel : public PlotPanel {
    Q_OBJECT

public:
    explicit RopeHeatmapPanel(QWidget* parent = nullptr);

    // The model whose scores are shown: reads its config.json and, when cached, its scores.
    // Returns false (and reports the error) when config.json cannot be read.
    bool setModelFolder(const QString& folder);
    // Shows `scores` (shapes checked against the model) and caches them for the model.
    void setScores(const mlawb::RopeScores& scores);
    bool hasScores() const { return scores_.has_value(); }
    const std::optional<mlawb::RopeScores>& scores() const { return scores_; }

    // Starts calibrating on `textFile` with the spin boxes' windows and sequence length;
    // false when no model is set or a calibration already runs.
    bool startCalibration(const QString& textFile);
    void cancelCalibration();
    bool isCalibrating() const;
    void setCalibrationWindows(int windows, int seqLen);

    // The outlined setting: a strategy of the registry ("high", "low", "uniform", "2-norm"), r,
    // and uniform's first pair `start` (ignored by the others).
    void setStrategy(const QString& name, int r, int start = 0);
    const mlawb::KeptPairs& keptPairs() const { return kept_; }
    RopeHeatmap* heatmap() const { return heatmap_; }

    QCustomPlot* exportedPlot() const override;
    PlotTable exportedTable() const override;
    QString exportBaseName() const override { return QStringLiteral("rope-heatmap"); }

    // Where the scores of `folder` are cached.
    static QString cacheFileFor(const QString& folder);
    // The fixtures' fine-tuning text when present, else the bundled demo text.
    static QString defaultCalibrationText();

Q_SIGNALS:
    void scoresChanged();
    void calibrationFinished(bool ok, const QString& message);

protected:
    void showStatus(const QString& message) override;

private:
    void buildUi();
    void chooseCalibrationText();
    void updateKeptPairs();
    void updateView();
    void onCalibrationFinished(bool ok, bool cancelled, const QString& message);

    QString folder_;
    std::optional<mlawb::ModelConfig> config_;
    std::optional<mlawb::RopeScores> scores_;
    mlawb::KeptPairs kept_;

    RopeHeatmap* heatmap_ = nullptr;
    QComboBox* quantity_ = nullptr;
    QSpinBox* head_ = nullptr;
    QComboBox* strategy_ = nullptr;
    QSpinBox* r_ = nullptr;
    QSpinBox* start_ = nullptr;  // uniform's first pair
    QSpinBox* windows_ = nullptr;
    QSpinBox* seq_len_ = nullptr;
    QPushButton* calibrate_ = nullptr;
    QLabel* status_ = nullptr;
};

}  // namespace mlawb::gui
