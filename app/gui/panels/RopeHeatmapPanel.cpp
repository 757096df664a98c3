#include "app/gui/panels/RopeHeatmapPanel.h"

#include "analysis/calibration.h"
#include "app/gui/BundledResources.h"
#include "app/gui/plots/RopeHeatmap.h"
#include "app/gui/workers/BackgroundJob.h"
#include "core/error.h"
#include "core/llama_model.h"

#include <QComboBox>
#include <QCryptographicHash>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QStandardPaths>
#include <QVBoxLayout>

#include <memory>

namespace mlawb::gui {

namespace {

QString cleanFolder(const QString& folder) { return QDir::cleanPath(QFileInfo(folder).absoluteFilePath()); }

bool scoresFitConfig(const mlawb::RopeScores& s, const mlawb::ModelConfig& c) {
    return s.n_layer == c.n_layer && s.n_head == c.n_head && s.n_kv_head == c.n_kv_head && s.n_pairs == c.head_dim / 2;
}

}  // namespace

RopeHeatmapPanel::RopeHeatmapPanel(QWidget* parent) : PlotPanel(parent) {
    buildUi();
    connect(job(), &BackgroundJob::finished, this, &RopeHeatmapPanel::onCalibrationFinished);
}

void RopeHeatmapPanel::buildUi() {
    quantity_ = new QComboBox;
    quantity_->addItem(tr("2-norm score"), static_cast<int>(RopeQuantity::Score));
    quantity_->addItem(tr("Qn (query head)"), static_cast<int>(RopeQuantity::QNorm));
    quantity_->addItem(tr("Kn (KV head)"), static_cast<int>(RopeQuantity::KNorm));
    head_ = new QSpinBox;
    strategy_ = new QComboBox;
    for (const char* name : {"2-norm", "high", "low", "uniform"}) strategy_->addItem(QString::fromLatin1(name));
    r_ = new QSpinBox;
    r_->setRange(1, 1);
    start_ = new QSpinBox;
    start_->setRange(0, 0);
    start_->setToolTip(tr("uniform: the first kept pair (then every n_pairs/r-th)"));
    windows_ = new QSpinBox;
    windows_->setRange(1, 1 << 16);
    windows_->setValue(16);
    seq_len_ = new QSpinBox;
    seq_len_->setRange(2, 1 << 20);
    seq_len_->setValue(2048);
    calibrate_ = new QPushButton(tr("Calibrate from text…"));
    createJobControls(calibrate_);
    QPushButton* exportButton = makeExportButton();
    status_ = new QLabel(tr("Open a model to see its RoPE scores."));
    status_->setWordWrap(true);
    heatmap_ = new RopeHeatmap;

    auto* viewRow = new QHBoxLayout;
    viewRow->addWidget(new QLabel(tr("Show")));
    viewRow->addWidget(quantity_);
    viewRow->addWidget(new QLabel(tr("head")));
    viewRow->addWidget(head_);
    viewRow->addSpacing(16);
    viewRow->addWidget(new QLabel(tr("Outline strategy")));
    viewRow->addWidget(strategy_);
    viewRow->addWidget(new QLabel(tr("r")));
    viewRow->addWidget(r_);
    viewRow->addWidget(new QLabel(tr("start")));
    viewRow->addWidget(start_);
    viewRow->addStretch(1);
    viewRow->addWidget(exportButton);

    auto* calibRow = new QHBoxLayout;
    calibRow->addWidget(calibrate_);
    calibRow->addWidget(new QLabel(tr("windows")));
    calibRow->addWidget(windows_);
    calibRow->addWidget(new QLabel(tr("tokens per window")));
    calibRow->addWidget(seq_len_);
    calibRow->addWidget(jobProgress(), 1);
    calibRow->addWidget(jobCancel());

    auto* layout = new QVBoxLayout(this);
    layout->addLayout(viewRow);
    layout->addLayout(calibRow);
    layout->addWidget(status_);
    layout->addWidget(heatmap_, 1);

    connect(quantity_, &QComboBox::currentIndexChanged, this, &RopeHeatmapPanel::updateView);
    connect(head_, &QSpinBox::valueChanged, this, &RopeHeatmapPanel::updateView);
    connect(strategy_, &QComboBox::currentIndexChanged, this, &RopeHeatmapPanel::updateKeptPairs);
    connect(r_, &QSpinBox::valueChanged, this, &RopeHeatmapPanel::updateKeptPairs);
    connect(start_, &QSpinBox::valueChanged, this, &RopeHeatmapPanel::updateKeptPairs);
    connect(calibrate_, &QPushButton::clicked, this, &RopeHeatmapPanel::chooseCalibrationText);
}

QString RopeHeatmapPanel::cacheFileFor(const QString& folder) {
    const QString clean = cleanFolder(folder);
    const QString hash = QString::fromLatin1(
        QCryptographicHash::hash(clean.toUtf8(), QCryptographicHash::Sha1).toHex().left(16));
    const QString dir = QStandardPaths::writableLocation(QStandardPaths::CacheLocation) + QStringLiteral("/rope-scores");
    return dir + QStringLiteral("/%1-%2.json").arg(QFileInfo(clean).fileName(), hash);
}

QString RopeHeatmapPanel::defaultCalibrationText() {
#ifdef MLAWB_FIXTURES_TEXT
    if (QFileInfo::exists(QStringLiteral(MLAWB_FIXTURES_TEXT))) return QStringLiteral(MLAWB_FIXTURES_TEXT);
#endif
    return demoTextFile();
}

bool RopeHeatmapPanel::setModelFolder(const QString& folder) {
    cancelCalibration();
    folder_ = cleanFolder(folder);
    scores_.reset();
    config_.reset();
    try {
        config_ = mlawb::ModelConfig::from_file((folder_ + QStringLiteral("/config.json")).toStdString());
    } catch (const std::exception& e) {
        reportError(tr("Cannot read the model"), QString::fromStdString(e.what()));
        updateView();
        return false;
    }
    head_->setValue(0);
    r_->setRange(1, static_cast<int>(config_->head_dim / 2));
    r_->setValue(std::min<int>(4, r_->maximum()));
    start_->setRange(0, static_cast<int>(config_->head_dim / 2) - 1);
    const QString cache = cacheFileFor(folder_);
    status_->setText(tr("No scores yet for %1: calibrate from a text file.").arg(QFileInfo(folder_).fileName()));
    if (QFileInfo::exists(cache)) {
        try {
            mlawb::RopeScores cached = mlawb::RopeScores::load(cache.toStdString());
            // A cache that no longer fits the model (the folder was overwritten) is ignored.
            if (scoresFitConfig(cached, *config_)) scores_ = std::move(cached);
        } catch (const std::exception&) {
            // A corrupt cache is as good as none: the user recalibrates.
        }
    }
    if (scores_) status_->setText(tr("Scores from the cache (%1).").arg(QDir::toNativeSeparators(cache)));
    updateKeptPairs();
    Q_EMIT scoresChanged();
    return true;
}

void RopeHeatmapPanel::setScores(const mlawb::RopeScores& scores) {
    if (config_ && !scoresFitConfig(scores, *config_)) {
        reportError(tr("Scores do not fit the model"),
               tr("RoPE scores of %1 layers x %2 KV heads x %3 pairs do not fit %4")
                   .arg(scores.n_layer).arg(scores.n_kv_head).arg(scores.n_pairs).arg(folder_));
        return;
    }
    scores_ = scores;
    if (!folder_.isEmpty()) {
        const QString cache = cacheFileFor(folder_);
        try {
            QDir().mkpath(QFileInfo(cache).absolutePath());
            scores.save(cache.toStdString());
        } catch (const std::exception& e) {
            reportError(tr("Cannot cache the scores"), QString::fromStdString(e.what()));
        }
    }
    const auto& p = scores.provenance;
    status_->setText(tr("Scores from %1: %2 windows x %3 tokens (%4 tokens).")
                         .arg(QFileInfo(QString::fromStdString(p.text_file)).fileName())
                         .arg(p.windows).arg(p.seq_len).arg(p.tokens));
    updateKeptPairs();
    Q_EMIT scoresChanged();
}

void RopeHeatmapPanel::setCalibrationWindows(int windows, int seqLen) {
    windows_->setValue(windows);
    seq_len_->setValue(seqLen);
}

bool RopeHeatmapPanel::isCalibrating() const { return job()->isRunning(); }

void RopeHeatmapPanel::chooseCalibrationText() {
    const QString file = QFileDialog::getOpenFileName(this, tr("Calibration text"), defaultCalibrationText(),
                                                      tr("Text files (*.txt);;All files (*)"));
    if (!file.isEmpty()) startCalibration(file);
}

bool RopeHeatmapPanel::startCalibration(const QString& textFile) {
    if (folder_.isEmpty() || !config_) return false;
    const std::string folder = folder_.toStdString(), text = textFile.toStdString();
    const int64_t windows = windows_->value(), seqLen = seq_len_->value();
    const bool started = job()->start([this, folder, text, windows, seqLen](const JobControl& control) {
        mlawb::CalibrationOptions options;
        options.windows = windows;
        options.seq_len = seqLen;
        options.progress = control.progress;
        options.cancelled = control.cancelled;
        mlawb::LoadedModel model = mlawb::load_model(folder);
        auto scores = std::make_shared<mlawb::RopeScores>(
            mlawb::calibrate_rope_scores_from_file(model, text, options));
        return std::function<void()>([this, scores] { setScores(*scores); });
    });
    if (!started) return false;
    markJobStarted(tr("Calibrating on %1…").arg(QFileInfo(textFile).fileName()));
    return true;
}

void RopeHeatmapPanel::cancelCalibration() { job()->cancel(); }

void RopeHeatmapPanel::onCalibrationFinished(bool ok, bool cancelled, const QString& message) {
    markJobEnded(ok);
    if (cancelled) status_->setText(tr("Calibration cancelled."));
    else if (!ok) reportError(tr("Calibration failed"), message);
    Q_EMIT calibrationFinished(ok, message);
}

void RopeHeatmapPanel::setStrategy(const QString& name, int r, int start) {
    const QSignalBlocker blockStrategy(strategy_), blockR(r_), blockStart(start_);
    strategy_->setCurrentText(name);
    r_->setValue(r);
    start_->setValue(start);
    updateKeptPairs();
}

void RopeHeatmapPanel::updateKeptPairs() {
    kept_ = {};
    if (config_ && (scores_ || strategy_->currentText() != QLatin1String("2-norm"))) {
        mlawb::StrategyInput input;
        input.config = &*config_;
        input.r = r_->value();
        input.start = start_->value();
        input.scores = scores_ ? &*scores_ : nullptr;
        try {
            kept_ = mlawb::find_strategy(strategy_->currentText().toStdString()).select(input);
        } catch (const std::exception& e) {
            // A live control (r, start) past what the strategy allows: said on the status
            // line, no dialog, nothing outlined until the user moves back.
            status_->setText(tr("No pairs outlined: %1").arg(QString::fromStdString(e.what())));
        }
    }
    updateView();
}

void RopeHeatmapPanel::updateView() {
    start_->setEnabled(strategy_->currentText() == QLatin1String("uniform"));
    const auto quantity = static_cast<RopeQuantity>(quantity_->currentData().toInt());
    const int64_t heads = !config_ ? 1 : quantity == RopeQuantity::QNorm ? config_->n_head : config_->n_kv_head;
    head_->setRange(0, static_cast<int>(std::max<int64_t>(heads - 1, 0)));
    heatmap_->setData(scores_ ? *scores_ : mlawb::RopeScores{}, kept_);
    heatmap_->setView(quantity, head_->value());
}

QCustomPlot* RopeHeatmapPanel::exportedPlot() const { return heatmap_; }

PlotTable RopeHeatmapPanel::exportedTable() const { return heatmap_->table(); }

void RopeHeatmapPanel::showStatus(const QString& message) { status_->setText(message); }

}  // namespace mlawb::gui
