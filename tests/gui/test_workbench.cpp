// The whole window offscreen: the Settings tab's 2-norm r 4 (and uniform with a start) outlines
// in the RoPE heatmap exactly the pairs analysis/strategies selects; d_kv moves give the memory
// model's figures; a computed spectrum feeds the Settings tab's errors; "Evaluate this setting"
// opens the Eval tab with it; "Convert and save" writes a folder the workbench opens as MLA; the
// session persists; the shortcuts and the 1280x800 layout; and `mla-workbench --screenshots`.
#include "gui_test_support.h"

#include "analysis/memory_model.h"
#include "analysis/strategies.h"
#include "app/gui/MainWindow.h"
#include "app/gui/ScreenshotTour.h"
#include "app/gui/panels/EvalPanel.h"
#include "app/gui/panels/ModelPanel.h"
#include "app/gui/panels/RopeHeatmapPanel.h"
#include "app/gui/panels/SettingsPanel.h"
#include "app/gui/panels/SpectrumPanel.h"
#include "app/gui/plots/RopeHeatmap.h"
#include "core/config.h"

#include <QAction>
#include <QImage>
#include <QLocale>
#include <QProcess>
#include <QPushButton>
#include <QSettings>
#include <QSignalSpy>
#include <QSlider>
#include <QSpinBox>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTabWidget>
#include <QTemporaryDir>

using namespace mlawb::gui;

namespace {

constexpr int kJobTimeoutMs = 300000;

QString bundledModel() { return QString::fromStdString(mlawb::test::source_dir() + "/resources/models/wb-tiny-mha"); }
QString demoText() { return QString::fromStdString(mlawb::test::source_dir() + "/resources/text/demo.txt"); }
mlawb::ModelConfig bundledConfig() {
    return mlawb::ModelConfig::from_file((bundledModel() + QStringLiteral("/config.json")).toStdString());
}

bool openModel(MainWindow& window, const QString& folder) {
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    window.openModelFolder(folder);
    return loaded.wait(20000) || loaded.count() == 1;
}

// Calibrates scores on the demo text (small, so fast) and waits.
bool calibrate(RopeHeatmapPanel& panel) {
    panel.setCalibrationWindows(2, 256);
    QSignalSpy finished(&panel, &RopeHeatmapPanel::calibrationFinished);
    if (!panel.startCalibration(demoText())) return false;
    return finished.wait(kJobTimeoutMs) && finished.first().first().toBool();
}

QString grouped(int64_t v) { return QLocale(QLocale::English).toString(static_cast<qlonglong>(v)); }

QSettings workbenchSettings() { return QSettings(QStringLiteral("MLA Workbench"), QStringLiteral("mla-workbench")); }

}  // namespace

class WorkbenchTest : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        workbenchSettings().clear();
        MLAWB_REQUIRE_PATH(bundledModel().toStdString());
        MLAWB_REQUIRE_PATH(demoText().toStdString());
    }

    void settingOutlinesTheStrategysPairs() {
        MainWindow window;
        window.setShowDialogs(false);
        QVERIFY(openModel(window, bundledModel()));
        QVERIFY(calibrate(*window.ropeHeatmapPanel()));
        const mlawb::ModelConfig config = bundledConfig();
        const mlawb::RopeScores scores = *window.ropeHeatmapPanel()->scores();

        SettingsPanel* settings = window.settingsPanel();
        settings->setStrategy(QStringLiteral("2-norm"));
        settings->rSpin()->setValue(4);
        QVERIFY2(settings->validationText().isEmpty(), qPrintable(settings->validationText()));
        window.tabs()->setCurrentWidget(window.ropeHeatmapPanel());  // the heatmap follows the setting

        mlawb::StrategyInput input;
        input.config = &config;
        input.r = 4;
        input.scores = &scores;
        const mlawb::KeptPairs expected = mlawb::find_strategy("2-norm").select(input);
        QCOMPARE(window.ropeHeatmapPanel()->keptPairs().mask, expected.mask);
        RopeHeatmap* heatmap = window.ropeHeatmapPanel()->heatmap();
        for (int64_t g = 0; g < config.n_kv_head; ++g) {
            heatmap->setView(RopeQuantity::Score, g);
            std::vector<std::pair<int64_t, int64_t>> want;
            for (int64_t l = 0; l < config.n_layer; ++l)
                for (int64_t k : expected.pairs(l, g)) want.emplace_back(l, k);
            QCOMPARE(heatmap->outlinedCells(), want);
        }
        // The Settings table lists KV head 0's pairs, the same ones.
        for (int64_t l = 0; l < config.n_layer; ++l)
            QCOMPARE(settings->figures().layers[static_cast<size_t>(l)].kept_pairs_head0, expected.pairs(l, 0));

        // uniform with a start: the heatmap's start follows too.
        settings->setStrategy(QStringLiteral("uniform"));
        settings->startSpin()->setValue(3);
        window.tabs()->setCurrentWidget(window.modelPanel());
        window.tabs()->setCurrentWidget(window.ropeHeatmapPanel());
        input.start = 3;
        input.scores = nullptr;
        QCOMPARE(window.ropeHeatmapPanel()->keptPairs().mask, mlawb::find_strategy("uniform").select(input).mask);
        QCOMPARE(window.ropeHeatmapPanel()->keptPairs().pairs(0, 0), (std::vector<int64_t>{3, 11, 19, 27}));
    }

    void dKvMovesShowTheMemoryModel_data() {
        QTest::addColumn<int>("dKv");
        QTest::addColumn<QString>("svd");
        QTest::addColumn<int>("bits");
        QTest::newRow("joint 8") << 8 << "joint" << 16;
        QTest::newRow("joint 16") << 16 << "joint" << 16;
        QTest::newRow("joint 64") << 64 << "joint" << 16;
        QTest::newRow("split 32") << 32 << "split" << 16;
        QTest::newRow("joint 16, 4-bit") << 16 << "joint" << 4;
        QTest::newRow("split 32, 8-bit") << 32 << "split" << 8;
    }
    void dKvMovesShowTheMemoryModel() {
        QFETCH(int, dKv);
        QFETCH(QString, svd);
        QFETCH(int, bits);
        MainWindow window;
        window.setShowDialogs(false);
        QVERIFY(openModel(window, bundledModel()));
        SettingsPanel* settings = window.settingsPanel();
        settings->setStrategy(QStringLiteral("high"));
        settings->setSvdMode(svd == QLatin1String("split") ? mlawb::SvdMode::Split : mlawb::SvdMode::Joint);
        settings->setKvBits(bits);
        settings->rSpin()->setValue(4);
        settings->dKvSlider()->setValue(dKv);  // as a drag would
        QCOMPARE(settings->dKvSpin()->value(), dKv);
        const mlawb::MlaSpec spec = mlawb::MlaSpec::parse(
            QStringLiteral("strategy=high,r=4,d_kv=%1,svd=%2,kv_bits=%3").arg(dKv).arg(svd).arg(bits).toStdString());
        const mlawb::MemoryEstimate m = mlawb::estimate_memory(bundledConfig(), spec, 2048, 1);
        QCOMPARE(settings->specText(), QString::fromStdString(spec.to_string()));
        QCOMPARE(settings->fieldText(QStringLiteral("elements_layer")),
                 QStringLiteral("%1 per token (original %2)")
                     .arg(grouped(m.elements_per_token_layer), grouped(m.original_elements_per_token_layer)));
        QCOMPARE(settings->fieldText(QStringLiteral("elements_model")),
                 QStringLiteral("%1 per token (original %2)")
                     .arg(grouped(m.elements_per_token), grouped(m.original_elements_per_token)));
        QVERIFY2(settings->fieldText(QStringLiteral("bytes_model"))
                     .startsWith(QStringLiteral("nominal %1 B").arg(grouped(static_cast<int64_t>(m.nominal_bytes_per_token)))),
                 qPrintable(settings->fieldText(QStringLiteral("bytes_model"))));
        QVERIFY2(settings->fieldText(QStringLiteral("reduction"))
                     .startsWith(QString::number(m.reduction_percent, 'f', 2) + QStringLiteral("% nominal")),
                 qPrintable(settings->fieldText(QStringLiteral("reduction"))));
    }

    void spectrumFeedsTheSettingsErrors() {
        MainWindow window;
        window.setShowDialogs(false);
        QVERIFY(openModel(window, bundledModel()));
        SettingsPanel* settings = window.settingsPanel();
        settings->setStrategy(QStringLiteral("high"));
        settings->setSvdMode(mlawb::SvdMode::Joint);
        settings->rSpin()->setValue(4);
        settings->dKvSpin()->setValue(16);
        QCOMPARE(settings->figures().error_source, ErrorSource::NoSpectrum);
        window.tabs()->setCurrentWidget(window.spectrumPanel());  // takes high r4 d_kv16
        QSignalSpy computed(window.spectrumPanel(), &SpectrumPanel::computeFinished);
        QVERIFY(window.spectrumPanel()->startCompute());
        QVERIFY(computed.wait(kJobTimeoutMs));
        QVERIFY(computed.first().first().toBool());
        QCOMPARE(settings->figures().error_source, ErrorSource::SameMask);
        const mlawb::SpectrumReport& report = *window.spectrumPanel()->report();
        for (size_t l = 0; l < report.layers.size(); ++l)
            QVERIFY(std::abs(settings->figures().layers[l].approximation_error - report.layers[l].error_joint) < 1e-12);
    }

    void evaluateThisSettingOpensEval() {
        MainWindow window;
        window.setShowDialogs(false);
        QVERIFY(openModel(window, bundledModel()));
        SettingsPanel* settings = window.settingsPanel();
        settings->setStrategy(QStringLiteral("low"));
        settings->rSpin()->setValue(8);
        settings->dKvSpin()->setValue(32);
        QVERIFY(settings->evaluateButton()->isEnabled());
        settings->evaluateButton()->click();
        QCOMPARE(window.tabs()->currentWidget(), window.evalPanel());
        QCOMPARE(window.evalPanel()->setting(), settings->specText());
        QCOMPARE(window.evalPanel()->modelFolder(), QDir::cleanPath(bundledModel()));
    }

    void convertAndSaveWritesAnMlaModel() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        MainWindow window;
        window.setShowDialogs(false);
        QVERIFY(openModel(window, bundledModel()));
        QVERIFY(calibrate(*window.ropeHeatmapPanel()));  // 2-norm from the heatmap's in-memory scores
        SettingsPanel* settings = window.settingsPanel();
        settings->setStrategy(QStringLiteral("2-norm"));
        settings->rSpin()->setValue(4);
        settings->setSvdMode(mlawb::SvdMode::Joint);
        settings->dKvSpin()->setValue(16);
        QVERIFY(settings->convertButton()->isEnabled());
        const QString out = dir.filePath(QStringLiteral("tiny-mla"));
        QSignalSpy converted(settings, &SettingsPanel::convertFinished);
        QVERIFY(settings->startConvert(out));
        QVERIFY(settings->isConverting());
        QVERIFY(!settings->convertButton()->isEnabled());
        QVERIFY(converted.wait(kJobTimeoutMs));
        QVERIFY2(converted.first().first().toBool(), qPrintable(converted.first().at(1).toString()));
        QCOMPARE(converted.first().at(1).toString(), out);
        const mlawb::ModelConfig written = mlawb::ModelConfig::from_file((out + QStringLiteral("/config.json")).toStdString());
        QVERIFY(written.mla.present);
        QCOMPARE(QString::fromStdString(written.mla.spec), settings->specText());
        // The 2-norm mask written is the one the heatmap's scores select.
        mlawb::StrategyInput input;
        const mlawb::ModelConfig config = bundledConfig();
        input.config = &config;
        input.r = 4;
        input.scores = &*window.ropeHeatmapPanel()->scores();
        const mlawb::KeptPairs expected = mlawb::find_strategy("2-norm").select(input);
        QCOMPARE(static_cast<int64_t>(written.mla.kept_pairs.size()), config.n_layer);
        for (int64_t l = 0; l < config.n_layer; ++l)
            for (int64_t g = 0; g < config.n_kv_head; ++g)
                QCOMPARE(written.mla.kept_pairs[static_cast<size_t>(l)][static_cast<size_t>(g)], expected.pairs(l, g));

        // The workbench opens it; a second conversion to the same folder is refused, reported.
        converted.clear();
        QVERIFY(settings->startConvert(out));
        QVERIFY(converted.wait(kJobTimeoutMs));
        QVERIFY(!converted.first().first().toBool());
        QVERIFY2(converted.first().at(1).toString().contains(QStringLiteral("already exists")),
                 qPrintable(converted.first().at(1).toString()));
        QCOMPARE(window.lastError(), converted.first().at(1).toString());
        QVERIFY(openModel(window, out));
        QVERIFY(window.modelPanel()->hasSummary());
    }

    void sessionPersists() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString db = dir.filePath(QStringLiteral("kept.db"));
        {
            MainWindow window;
            window.setShowDialogs(false);
            window.restoreSession();
            window.resize(1100, 720);
            window.show();
            QVERIFY(openModel(window, bundledModel()));
            window.settingsPanel()->setStrategy(QStringLiteral("low"));
            window.settingsPanel()->rSpin()->setValue(6);
            window.settingsPanel()->dKvSpin()->setValue(24);
            window.evalPanel()->setDatabasePath(db);
            window.evalPanel()->setLimit(3);
            window.evalPanel()->setCheckedDatasets({QStringLiteral("passkey")});
            window.evalPanel()->setSetting(QStringLiteral("strategy=high,r=2,d_kv=8"));
            window.tabs()->setCurrentWidget(window.evalPanel());
            window.close();  // saves the session
        }
        QCOMPARE(MainWindow::lastModelFolder(), QDir::cleanPath(bundledModel()));
        MainWindow window;
        window.setShowDialogs(false);
        window.restoreSession();
        QCOMPARE(window.evalPanel()->databasePath(), QDir::cleanPath(db));
        QCOMPARE(window.evalPanel()->limit(), 3);
        QCOMPARE(window.evalPanel()->checkedDatasets(), QStringList{QStringLiteral("passkey")});
        QCOMPARE(window.evalPanel()->setting(), QStringLiteral("strategy=high,r=2,d_kv=8"));
        QCOMPARE(window.tabs()->currentWidget(), window.evalPanel());
        QCOMPARE(window.size(), QSize(1100, 720));
        QVERIFY(openModel(window, MainWindow::lastModelFolder()));
        QCOMPARE(window.settingsPanel()->currentInput().spec.strategy, std::string("low"));
        QCOMPARE(window.settingsPanel()->rSpin()->value(), 6);
        QCOMPARE(window.settingsPanel()->dKvSpin()->value(), 24);
        workbenchSettings().clear();
    }

    void shortcutsAndLayout() {
        MainWindow window;
        window.setShowDialogs(false);
        window.resize(1280, 800);
        window.show();
        QVERIFY(QTest::qWaitForWindowActive(&window));
        QVERIFY(openModel(window, bundledModel()));
        QCOMPARE(window.action(QStringLiteral("open"))->shortcut(), QKeySequence(QKeySequence::Open));
        QCOMPARE(window.action(QStringLiteral("run"))->shortcut(), QKeySequence(Qt::CTRL | Qt::Key_R));
        QCOMPARE(window.action(QStringLiteral("export"))->shortcut(), QKeySequence(Qt::CTRL | Qt::Key_E));
        QTest::keyClick(&window, Qt::Key_3, Qt::ControlModifier);
        QCOMPARE(window.tabs()->currentWidget(), window.spectrumPanel());
        QTest::keyClick(&window, Qt::Key_1, Qt::ControlModifier);
        // Export on a tab without a plot says so instead of doing nothing.
        window.action(QStringLiteral("export"))->trigger();
        QVERIFY2(window.statusBar()->currentMessage().contains(QStringLiteral("no plot")),
                 qPrintable(window.statusBar()->currentMessage()));

        // Every tab fits 1280x800: the window keeps that size whichever tab is shown.
        for (int i = 0; i < window.tabs()->count(); ++i) {
            window.tabs()->setCurrentIndex(i);
            QTest::qWait(20);
            QVERIFY2(window.minimumSizeHint().width() <= 1280 && window.minimumSizeHint().height() <= 800,
                     qPrintable(QStringLiteral("%1: minimum %2x%3").arg(window.tabs()->tabText(i))
                                    .arg(window.minimumSizeHint().width()).arg(window.minimumSizeHint().height())));
            QCOMPARE(window.size(), QSize(1280, 800));
        }
    }

    // The documentation's screenshots: the real binary, offscreen, one PNG per tab at 1280x800.
    void screenshotsOption() {
        MLAWB_REQUIRE_PATH(mlawb::test::fixtures_dir() + "/longbench-syn");
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString out = dir.filePath(QStringLiteral("shots"));
        QProcess process;
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert(QStringLiteral("QT_QPA_PLATFORM"), QStringLiteral("offscreen"));
        env.insert(QStringLiteral("XDG_CONFIG_HOME"), dir.filePath(QStringLiteral("config")));  // no real session
        env.insert(QStringLiteral("XDG_CACHE_HOME"), dir.filePath(QStringLiteral("cache")));
        process.setProcessEnvironment(env);
        process.setProcessChannelMode(QProcess::MergedChannels);
        process.start(QStringLiteral(MLAWB_WORKBENCH_BIN),
                      {QStringLiteral("--screenshots"), out, QStringLiteral("--model"), bundledModel()});
        QVERIFY(process.waitForStarted());
        QVERIFY2(process.waitForFinished(kJobTimeoutMs * 2), "mla-workbench --screenshots did not finish");
        const QString log = QString::fromUtf8(process.readAll());
        QVERIFY2(process.exitStatus() == QProcess::NormalExit && process.exitCode() == 0, qPrintable(log));
        for (const QString& name : ScreenshotTour::fileNames()) {
            const QImage image(QDir(out).filePath(name));
            QVERIFY2(!image.isNull(), qPrintable(name + QStringLiteral(" missing\n") + log));
            QCOMPARE(image.size(), QSize(1280, 800));
        }
        // The tour never writes the user's session.
        QVERIFY(!QFileInfo::exists(dir.filePath(QStringLiteral("config/MLA Workbench/mla-workbench.conf"))));

        // A folder that cannot be created fails with status 1 and a message.
        process.start(QStringLiteral(MLAWB_WORKBENCH_BIN), {QStringLiteral("--screenshots"), QStringLiteral("/proc/shots")});
        QVERIFY(process.waitForFinished(60000));
        QCOMPARE(process.exitCode(), 1);
        QVERIFY(QString::fromUtf8(process.readAll()).contains(QStringLiteral("/proc/shots")));
    }
};

QTEST_MAIN(WorkbenchTest)
#include "test_workbench.moc"
