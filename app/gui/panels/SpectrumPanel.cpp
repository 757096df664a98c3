#include "app/gui/panels/SpectrumPanel.h"

#include "analysis/strategies.h"
#include "app/gui/plots/SpectrumPlot.h"
#include "app/gui/workers/BackgroundJob.h"
#include "core/config.h"
#include "core/error.h"
#include "core/safetensors.h"

#include <QComboBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>

#include <memory>

namespace mlawb::gui {

SpectrumPanel::SpectrumPanel(QWidget* parent) : PlotPanel(parent) {
    buildUi();
    connect(job(), &BackgroundJob::finished, this, &SpectrumPanel::onComputeFinished);
}

void SpectrumPanel::buildUi() {
    strategy_ = new QComboBox;
    for (const char* name : {"high", "low", "uniform", "2-norm"}) strategy_->addItem(QString::fromLatin1(name));
    r_ = new QSpinBox;
    r_->setRange(0, 4096);
    r_->setValue(4);
    start_ = new QSpinBox;
    start_->setRange(0, 4096);
    start_->setToolTip(tr("uniform: the first kept pair"));
    d_kv_ = new QSpinBox;
    d_kv_->setRange(1, 1 << 16);
    d_kv_->setValue(16);
    layer_ = new QComboBox;
    overlay_matrix_ = new QComboBox;
    for (mlawb::SpectrumMatrix m : mlawb::spectrum_matrices())
        overlay_matrix_->addItem(spectrumMatrixLabel(m), static_cast<int>(m));
    overlay_matrix_->setCurrentIndex(overlay_matrix_->count() - 1);  // joint
    overlay_matrix_->setToolTip(tr("The matrix drawn for every layer in the all-layers overlay"));
    compute_ = new QPushButton(tr("Compute spectra"));
    createJobControls(compute_);
    QPushButton* exportButton = makeExportButton();
    summary_ = new QLabel(tr("Open a model, choose a setting and compute its spectra."));
    summary_->setWordWrap(true);
    plot_ = new SpectrumPlot;

    auto* settingRow = new QHBoxLayout;
    settingRow->addWidget(new QLabel(tr("Strategy")));
    settingRow->addWidget(strategy_);
    settingRow->addWidget(new QLabel(tr("r")));
    settingRow->addWidget(r_);
    settingRow->addWidget(new QLabel(tr("start")));
    settingRow->addWidget(start_);
    settingRow->addWidget(new QLabel(tr("d_kv")));
    settingRow->addWidget(d_kv_);
    settingRow->addWidget(compute_);
    settingRow->addWidget(jobProgress(), 1);
    settingRow->addWidget(jobCancel());

    auto* viewRow = new QHBoxLayout;
    viewRow->addWidget(new QLabel(tr("Layer")));
    viewRow->addWidget(layer_);
    viewRow->addWidget(new QLabel(tr("overlay matrix")));
    viewRow->addWidget(overlay_matrix_);
    viewRow->addStretch(1);
    viewRow->addWidget(exportButton);

    auto* layout = new QVBoxLayout(this);
    layout->addLayout(settingRow);
    layout->addLayout(viewRow);
    layout->addWidget(summary_);
    layout->addWidget(plot_, 1);

    connect(compute_, &QPushButton::clicked, this, &SpectrumPanel::startCompute);
    const auto startFollowsStrategy = [this] { start_->setEnabled(strategy_->currentText() == QLatin1String("uniform")); };
    connect(strategy_, &QComboBox::currentTextChanged, this, startFollowsStrategy);
    startFollowsStrategy();
    connect(layer_, &QComboBox::currentIndexChanged, this,
            [this](int index) { plot_->setLayerIndex(layer_->itemData(index).toInt()); });
    connect(overlay_matrix_, &QComboBox::currentIndexChanged, this, [this](int index) {
        plot_->setOverlayMatrix(static_cast<mlawb::SpectrumMatrix>(overlay_matrix_->itemData(index).toInt()));
    });
}

void SpectrumPanel::setModelFolder(const QString& folder) {
    cancelCompute();
    folder_ = QDir::cleanPath(QFileInfo(folder).absoluteFilePath());
    report_.reset();
    scores_.reset();
    layer_->clear();
    plot_->setReport({});
    summary_->setText(tr("%1: choose a setting and compute its spectra.").arg(QFileInfo(folder_).fileName()));
}

void SpectrumPanel::setSetting(const QString& strategy, int r, int dKv, int start) {
    strategy_->setCurrentText(strategy);
    r_->setValue(r);
    d_kv_->setValue(dKv);
    start_->setValue(start);
}

bool SpectrumPanel::isComputing() const { return job()->isRunning(); }
void SpectrumPanel::cancelCompute() { job()->cancel(); }

bool SpectrumPanel::startCompute() {
    if (folder_.isEmpty()) return false;
    const std::string folder = folder_.toStdString(), strategy = strategy_->currentText().toStdString();
    const int64_t r = r_->value(), dKv = d_kv_->value();
    const int64_t start = strategy == "uniform" ? start_->value() : 0;
    const std::optional<mlawb::RopeScores> scores = scores_;
    mlawb::MlaSpec mask;
    mask.strategy = strategy;
    mask.r = r;
    mask.start = start;
    const bool started = job()->start([this, folder, strategy, r, start, dKv, scores, mask](const JobControl& control) {
        const mlawb::ModelConfig config = mlawb::ModelConfig::from_file(folder + "/config.json");
        const mlawb::StrategyInfo& info = mlawb::find_strategy(strategy);
        if (info.needs_scores && !scores)
            throw mlawb::Error("", "strategy", "2-norm needs RoPE scores: calibrate them on the RoPE heatmap tab first");
        mlawb::StrategyInput input;
        input.config = &config;
        input.r = r;
        input.start = start;
        input.scores = scores ? &*scores : nullptr;
        const mlawb::KeptPairs kept = info.select(input);
        const mlawb::Checkpoint checkpoint = mlawb::Checkpoint::open_folder(folder);
        mlawb::SpectrumOptions options;
        options.progress = control.progress;
        options.cancelled = control.cancelled;
        auto result = std::make_shared<mlawb::SpectrumReport>(
            mlawb::compute_spectra(checkpoint, config, kept, dKv, options));
        return std::function<void()>([this, result, mask] { showReport(*result, mask); });
    });
    if (!started) return false;
    markJobStarted(tr("Computing spectra…"));
    return true;
}

void SpectrumPanel::onComputeFinished(bool ok, bool cancelled, const QString& message) {
    markJobEnded(ok);
    if (cancelled) summary_->setText(tr("Cancelled."));
    else if (!ok) reportError(tr("Spectra failed"), message);
    Q_EMIT computeFinished(ok, message);
}

void SpectrumPanel::showReport(const mlawb::SpectrumReport& result, const mlawb::MlaSpec& mask) {
    report_ = result;
    report_mask_ = mask;
    plot_->setReport(result);
    {
        const QSignalBlocker block(layer_);
        layer_->clear();
        for (size_t i = 0; i < result.layers.size(); ++i)
            layer_->addItem(tr("Layer %1").arg(result.layers[i].layer), static_cast<int>(i));
        layer_->addItem(tr("All layers"), SpectrumPlot::kAllLayers);
        layer_->setCurrentIndex(0);
    }
    plot_->setLayerIndex(0);
    double meanEnergy = 0.0, worstError = 0.0;
    for (const mlawb::LayerSpectrum& l : result.layers) {
        meanEnergy += l.energy_joint / static_cast<double>(result.layers.size());
        worstError = std::max(worstError, l.error_joint);
    }
    summary_->setText(tr("Joint rank n_kv x d_kv = %1 (marker): mean energy kept %2 %, worst relative error %3; "
                         "split rank %4 per part. Computed in %5 s.")
                          .arg(result.rank)
                          .arg(100.0 * meanEnergy, 0, 'f', 2)
                          .arg(worstError, 0, 'f', 4)
                          .arg(result.split_rank)
                          .arg(result.seconds, 0, 'f', 2));
}

void SpectrumPanel::showLayer(int layerIndex) {
    const int row = layer_->findData(layerIndex);
    if (row >= 0) layer_->setCurrentIndex(row);
}

QCustomPlot* SpectrumPanel::exportedPlot() const { return plot_; }

PlotTable SpectrumPanel::exportedTable() const { return plot_->table(); }

void SpectrumPanel::showStatus(const QString& message) { summary_->setText(message); }

}  // namespace mlawb::gui
