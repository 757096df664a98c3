#include "app/gui/ScreenshotTour.h"

#include "app/gui/BundledResources.h"
#include "app/gui/MainWindow.h"
#include "app/gui/panels/EvalPanel.h"
#include "app/gui/panels/ModelPanel.h"
#include "app/gui/panels/ParetoPanel.h"
#include "app/gui/panels/ResultsPanel.h"
#include "app/gui/panels/RopeHeatmapPanel.h"
#include "app/gui/panels/SettingsPanel.h"
#include "app/gui/panels/SpectrumPanel.h"

#include <QApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QImage>
#include <QSlider>
#include <QSpinBox>
#include <QTabWidget>
#include <QTableView>
#include <QThread>
#include <QTimer>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace mlawb::gui {

namespace {

constexpr int kJobTimeoutMs = 10 * 60 * 1000;

// The tour's evaluation: small enough for a minute on two CPU cores, large enough that the
// Pareto view has a front and Results has flipped samples to compare. The Settings tab's setting
// (2-norm r=4 d_kv=16) comes right after the original; the last one is what the Eval tab shows.
const QStringList kDatasets = {QStringLiteral("passkey"), QStringLiteral("source_cls")};
constexpr int kLimit = 4;
const QStringList kSettings = {QStringLiteral("strategy=full"), QStringLiteral("strategy=2-norm,r=4,d_kv=16"),
                               QStringLiteral("strategy=high,r=16,d_kv=32"), QStringLiteral("strategy=high,r=24,d_kv=64"),
                               QStringLiteral("strategy=high,r=16,d_kv=64")};

}  // namespace

QStringList ScreenshotTour::fileNames() {
    return {QStringLiteral("model-panel.png"), QStringLiteral("rope-heatmap.png"), QStringLiteral("spectrum.png"),
            QStringLiteral("settings.png"),    QStringLiteral("eval.png"),         QStringLiteral("results.png"),
            QStringLiteral("pareto.png")};
}

ScreenshotTour::ScreenshotTour(MainWindow& window, const QString& outDir, const QString& modelFolder, QObject* parent)
    : QObject(parent), window_(window), out_dir_(outDir), model_folder_(modelFolder) {}

void ScreenshotTour::start() {
    if (!QDir().mkpath(out_dir_)) {
        fail(1, QStringLiteral("%1: cannot create the folder").arg(out_dir_));
        return;
    }
    if (!scratch_.isValid()) {
        fail(2, QStringLiteral("cannot create a temporary folder for the results database"));
        return;
    }
    window_.setShowDialogs(false);  // unattended: an error ends the tour, not a dialog
    window_.setRecordRecentModels(false);
    connect(&window_, &MainWindow::modelLoaded, this, [this] {
        // Queued: the tour spins the event loop itself, which must not happen inside the signal.
        QTimer::singleShot(0, this, &ScreenshotTour::run);
    }, Qt::SingleShotConnection);
    connect(&window_, &MainWindow::modelLoadFailed, this,
            [this](const QString&, const QString& message) { fail(2, message); });
    window_.openModelFolder(model_folder_);
}

void ScreenshotTour::fail(int code, const QString& message) {
    if (failed_) return;
    failed_ = true;
    std::fprintf(stderr, "error: %s\n", qPrintable(message));
    Q_EMIT finished(code);
}

bool ScreenshotTour::waitUntil(const std::function<bool()>& done, int timeoutMs, const QString& what) {
    QElapsedTimer timer;
    timer.start();
    while (!done()) {
        if (timer.elapsed() > timeoutMs) {
            fail(2, QStringLiteral("timed out: %1").arg(what));
            return false;
        }
        QApplication::processEvents(QEventLoop::AllEvents, 50);
        QThread::msleep(5);
    }
    return true;
}

bool ScreenshotTour::shoot(QWidget* tab, const QString& fileName) {
    window_.tabs()->setCurrentWidget(tab);
    // Let layouts settle and the plots repaint before the grab.
    QElapsedTimer settle;
    settle.start();
    while (settle.elapsed() < 250) QApplication::processEvents(QEventLoop::AllEvents, 20);
    const QString path = QDir(out_dir_).filePath(fileName);
    if (!window_.grab().save(path, "PNG")) {
        fail(1, QStringLiteral("%1: cannot write PNG").arg(path));
        return false;
    }
    std::fprintf(stderr, "wrote %s\n", qPrintable(path));
    return true;
}

void ScreenshotTour::run() {
    const QStringList files = fileNames();
    if (!shoot(window_.modelPanel(), files[0])) return;

    // RoPE heatmap: 2-norm scores (cached per model, else a short calibration on the demo text).
    RopeHeatmapPanel* rope = window_.ropeHeatmapPanel();
    if (!rope->hasScores()) {
        const QString text = demoTextFile();
        rope->setCalibrationWindows(4, 256);
        bool calibrated = false, ok = false;
        QMetaObject::Connection c = connect(rope, &RopeHeatmapPanel::calibrationFinished, this,
                                            [&](bool success) { calibrated = true, ok = success; });
        if (text.isEmpty() || !rope->startCalibration(text)) {
            fail(2, QStringLiteral("cannot start the RoPE calibration (demo text: %1)").arg(text));
            return;
        }
        const bool waited = waitUntil([&] { return calibrated; }, kJobTimeoutMs, QStringLiteral("RoPE calibration"));
        disconnect(c);
        if (!waited) return;
        if (!ok) {
            fail(2, QStringLiteral("RoPE calibration failed: %1").arg(rope->lastError()));
            return;
        }
    }
    // The setting every tab shows: 2-norm r=4 d_kv=16 (joint).
    SettingsPanel* settings = window_.settingsPanel();
    settings->setStrategy(QStringLiteral("2-norm"));
    settings->setSvdMode(mlawb::SvdMode::Joint);
    settings->rSpin()->setValue(4);
    settings->dKvSpin()->setValue(16);
    settings->contextSpin()->setValue(2048);
    if (!shoot(rope, files[1])) return;  // showing the tab makes it follow the setting

    // Spectrum of the same mask and rank; the Settings tab takes its approximation errors.
    SpectrumPanel* spectrum = window_.spectrumPanel();
    window_.tabs()->setCurrentWidget(spectrum);
    bool computed = false, spectrumOk = false;
    QMetaObject::Connection c = connect(spectrum, &SpectrumPanel::computeFinished, this,
                                        [&](bool success) { computed = true, spectrumOk = success; });
    if (!spectrum->startCompute()) {
        fail(2, QStringLiteral("cannot start the spectra"));
        return;
    }
    const bool waited = waitUntil([&] { return computed; }, kJobTimeoutMs, QStringLiteral("spectra"));
    disconnect(c);
    if (!waited) return;
    if (!spectrumOk) {
        fail(2, QStringLiteral("spectra failed: %1").arg(spectrum->lastError()));
        return;
    }
    if (!shoot(spectrum, files[2])) return;
    if (!shoot(settings, files[3])) return;

    // Eval: the original model and three MLA settings, 2 samples of 2 datasets, into a temp DB.
    EvalPanel* eval = window_.evalPanel();
    if (eval->tasksFolder().isEmpty()) {
        fail(2, QStringLiteral("no bundled task folder (longbench-syn) found"));
        return;
    }
    eval->setDatabasePath(scratch_.filePath(QStringLiteral("results.db")));
    eval->setCheckedDatasets(kDatasets);
    eval->setLimit(kLimit);
    std::vector<std::map<std::string, int64_t>> runIds;  // per setting: dataset -> run
    for (const QString& spec : kSettings) {
        eval->setSetting(spec);
        bool finished = false, ok = false;
        QString message;
        QMetaObject::Connection e = connect(eval, &EvalPanel::evaluationFinished, this,
                                            [&](bool success, bool, const QString& m) {
                                                finished = true, ok = success, message = m;
                                            });
        window_.tabs()->setCurrentWidget(eval);
        if (!eval->startEvaluation()) {
            disconnect(e);
            fail(2, QStringLiteral("cannot start the evaluation of %1: %2").arg(spec, eval->lastError()));
            return;
        }
        const bool done = waitUntil([&] { return finished; }, kJobTimeoutMs, QStringLiteral("evaluation of ") + spec);
        disconnect(e);
        if (!done) return;
        if (!ok) {
            fail(2, QStringLiteral("evaluation of %1 failed: %2").arg(spec, message));
            return;
        }
        runIds.push_back(eval->lastOutcome()->run_ids);
        std::fprintf(stderr, "evaluated %s\n", qPrintable(spec));
    }
    if (!shoot(eval, files[4])) return;

    // Results: compare the original with an MLA setting on one dataset, preferring a pair with
    // flipped samples to show.
    ResultsPanel* results = window_.resultsPanel();
    results->reload();
    std::vector<std::pair<qint64, qint64>> pairs;  // (original, MLA) on the same dataset
    for (size_t s = 1; s < runIds.size(); ++s)
        for (const auto& [dataset, run] : runIds[s]) pairs.emplace_back(runIds[0].at(dataset), run);
    bool compared = false;
    for (const auto& [a, b] : pairs) {
        if (!results->compareRuns(a, b)) continue;
        compared = true;
        if (results->comparison() && !results->comparison()->changed.empty()) break;
    }
    if (!compared) {
        fail(2, QStringLiteral("cannot compare runs: %1").arg(results->lastError()));
        return;
    }
    results->detailTabs()->setCurrentIndex(1);
    if (!shoot(results, files[5])) return;

    ParetoPanel* pareto = window_.paretoPanel();
    pareto->reload();
    pareto->setDataset(QString());  // mean of the datasets
    if (pareto->data().points.empty()) {
        fail(2, QStringLiteral("the Pareto view is empty after the evaluation"));
        return;
    }
    if (!shoot(pareto, files[6])) return;
    Q_EMIT finished(0);
}

}  // namespace mlawb::gui
