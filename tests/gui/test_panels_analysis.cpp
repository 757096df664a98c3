// The RoPE heatmap and spectrum panels offscreen: calibrate scores of the bundled model on the
// demo text, outline strategy 2-norm r 4 and compare with find_strategy (what `mlawb strategy`
// prints), compute spectra for high r 4 d_kv 16 and check the curves and the rank marker, and
// export PNG / PDF / SVG / CSV (and fail loudly on an unwritable path). Saves the panels' screenshots.
#include "gui_test_support.h"

#include "analysis/strategies.h"
#include "app/gui/panels/RopeHeatmapPanel.h"
#include "app/gui/panels/SpectrumPanel.h"
#include "app/gui/plots/RopeHeatmap.h"
#include "app/gui/plots/SpectrumPlot.h"
#include "core/config.h"

#include <QFile>
#include <QImage>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>

using namespace mlawb::gui;

namespace {

constexpr int kJobTimeoutMs = 120000;

QString bundledModel() { return QString::fromStdString(mlawb::test::source_dir() + "/resources/models/wb-tiny-mha"); }
QString demoText() { return QString::fromStdString(mlawb::test::source_dir() + "/resources/text/demo.txt"); }
using mlawb::test::checkExports;
using mlawb::test::saveScreenshot;

}  // namespace

class PanelsAnalysisTest : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);  // the score cache goes to ~/.qttest
        MLAWB_REQUIRE_PATH(bundledModel().toStdString());
        MLAWB_REQUIRE_PATH(demoText().toStdString());
    }

    void heatmapOutlinesTwoNormPairs() {
        QFile::remove(RopeHeatmapPanel::cacheFileFor(bundledModel()));
        RopeHeatmapPanel panel;
        panel.setShowDialogs(false);
        panel.resize(1280, 760);
        panel.show();
        QVERIFY(panel.setModelFolder(bundledModel()));
        QVERIFY(!panel.hasScores());
        QVERIFY(!panel.heatmap()->hasData());

        panel.setCalibrationWindows(2, 256);
        QSignalSpy finished(&panel, &RopeHeatmapPanel::calibrationFinished);
        QVERIFY(panel.startCalibration(demoText()));
        QVERIFY(panel.isCalibrating());
        QVERIFY(!panel.startCalibration(demoText()));  // one at a time
        QTRY_VERIFY_WITH_TIMEOUT(finished.count() == 1, kJobTimeoutMs);
        QVERIFY2(finished.first().at(0).toBool(), qPrintable(finished.first().at(1).toString()));
        QVERIFY(panel.hasScores());
        const mlawb::RopeScores scores = *panel.scores();
        QCOMPARE(scores.provenance.windows, int64_t{2});
        QCOMPARE(scores.provenance.seq_len, int64_t{256});

        panel.setStrategy(QStringLiteral("2-norm"), 4);
        const mlawb::ModelConfig config =
            mlawb::ModelConfig::from_file((bundledModel() + QStringLiteral("/config.json")).toStdString());
        mlawb::StrategyInput input;
        input.config = &config;
        input.r = 4;
        input.scores = &scores;
        const mlawb::KeptPairs expected = mlawb::find_strategy("2-norm").select(input);
        QCOMPARE(panel.keptPairs().mask, expected.mask);
        for (int head = 0; head < config.n_kv_head; ++head) {
            panel.heatmap()->setView(RopeQuantity::Score, head);
            std::vector<std::pair<int64_t, int64_t>> want;
            for (int64_t l = 0; l < config.n_layer; ++l)
                for (int64_t k : expected.pairs(l, head)) want.emplace_back(l, k);
            QCOMPARE(want.size(), size_t(4 * config.n_layer));
            QCOMPARE(panel.heatmap()->outlinedCells(), want);
            QCOMPARE(panel.heatmap()->valueAt(2, 5), scores.score(2, head, 5));
        }
        // Qn of query head 3 outlines KV head 3's pairs (MHA); hover names layer, pair, value.
        panel.heatmap()->setView(RopeQuantity::QNorm, 3);
        QCOMPARE(panel.heatmap()->outlinedKvHead(), int64_t{3});
        QCOMPARE(panel.heatmap()->valueAt(1, 7), scores.q_norm(1, 3, 7));
        const QString hover = panel.heatmap()->hoverText(7.2, 0.9);
        QVERIFY2(hover.startsWith(QStringLiteral("layer 1, pair 7: Qn")), qPrintable(hover));
        QVERIFY(panel.heatmap()->hoverText(-3, 0).isEmpty());
        panel.heatmap()->setView(RopeQuantity::Score, 0);

        // The scores were cached: a fresh panel on the same model shows them without calibrating.
        RopeHeatmapPanel reopened;
        reopened.setShowDialogs(false);
        QVERIFY(reopened.setModelFolder(bundledModel()));
        QVERIFY(reopened.hasScores());
        QCOMPARE(reopened.scores()->scores, scores.scores);

        saveScreenshot(panel, QStringLiteral("panel-rope-heatmap.png"));
        QCOMPARE(static_cast<int>(panel.exportedTable().rows.size()), static_cast<int>(config.n_layer * config.head_dim / 2));
        checkExports(panel, QStringLiteral("RoPE pair"));
    }

    void calibrationCancels() {
        RopeHeatmapPanel panel;
        panel.setShowDialogs(false);
        QVERIFY(panel.setModelFolder(bundledModel()));
        panel.setCalibrationWindows(64, 256);
        QSignalSpy finished(&panel, &RopeHeatmapPanel::calibrationFinished);
        QVERIFY(panel.startCalibration(demoText()));
        panel.cancelCalibration();
        QTRY_VERIFY_WITH_TIMEOUT(finished.count() == 1, kJobTimeoutMs);
        QVERIFY(!finished.first().at(0).toBool());
        QCOMPARE(finished.first().at(1).toString(), QStringLiteral("cancelled"));
        QVERIFY(panel.lastError().isEmpty());  // a cancel is not an error
    }

    void spectrumMarksTheRank() {
        SpectrumPanel panel;
        panel.setShowDialogs(false);
        panel.resize(1280, 760);
        panel.show();
        panel.setModelFolder(bundledModel());
        panel.setSetting(QStringLiteral("high"), 4, 16);
        QSignalSpy finished(&panel, &SpectrumPanel::computeFinished);
        QVERIFY(panel.startCompute());
        QTRY_VERIFY_WITH_TIMEOUT(finished.count() == 1, kJobTimeoutMs);
        QVERIFY2(finished.first().at(0).toBool(), qPrintable(finished.first().at(1).toString()));
        const mlawb::SpectrumReport& report = *panel.report();
        QCOMPARE(report.rank, int64_t{4 * 16});  // n_kv x d_kv
        QCOMPARE(static_cast<int>(report.layers.size()), 6);

        // One layer: four sigma curves and four energy curves; the marker at x = rank.
        SpectrumPlot* plot = panel.plot();
        QCOMPARE(plot->layerIndex(), 0);
        QCOMPARE(plot->seriesCount(), 8);
        QCOMPARE(plot->markerPosition(), 64.0);
        int points = 0;
        for (mlawb::SpectrumMatrix m : mlawb::spectrum_matrices())
            points += static_cast<int>(report.layers[0].sigma(m).size());
        QCOMPARE(static_cast<int>(plot->table().rows.size()), points);

        // The overlay: one matrix (joint), every layer, sigma + energy each.
        panel.showLayer(SpectrumPlot::kAllLayers);
        QCOMPARE(plot->layerIndex(), SpectrumPlot::kAllLayers);
        QCOMPARE(plot->seriesCount(), 12);
        QCOMPARE(static_cast<int>(plot->table().rows.size()),
                 6 * static_cast<int>(report.layers[0].sigma_joint.size()));
        panel.showLayer(2);
        QCOMPARE(plot->layerIndex(), 2);
        QCOMPARE(plot->table().rows.front().at(0), QStringLiteral("2"));

        panel.showLayer(0);
        saveScreenshot(panel, QStringLiteral("panel-spectrum.png"));
        checkExports(panel, QStringLiteral("singular value index"));
    }

    void twoNormSpectrumNeedsScores() {
        SpectrumPanel panel;
        panel.setShowDialogs(false);
        panel.setModelFolder(bundledModel());
        panel.setSetting(QStringLiteral("2-norm"), 4, 16);
        QSignalSpy finished(&panel, &SpectrumPanel::computeFinished);
        QVERIFY(panel.startCompute());
        QTRY_VERIFY_WITH_TIMEOUT(finished.count() == 1, kJobTimeoutMs);
        QVERIFY(!finished.first().at(0).toBool());
        QVERIFY2(panel.lastError().contains(QStringLiteral("RoPE scores")), qPrintable(panel.lastError()));
    }
};

QTEST_MAIN(PanelsAnalysisTest)
#include "test_panels_analysis.moc"
