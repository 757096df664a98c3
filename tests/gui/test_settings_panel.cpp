// The Settings panel offscreen: a setting's figures must be the memory model's own, refusals show
// validation's reason in red instead of numbers, quantized caches show nominal and real bytes,
// 2-norm without scores asks for a calibration, and the per-layer approximation error comes from
// the stored singular values and says which mask they belong to. Saves the panel's screenshot.
#include "test_support.h"

#include "analysis/memory_model.h"
#include "analysis/spectrum.h"
#include "analysis/strategies.h"
#include "app/gui/MainWindow.h"
#include "app/gui/SettingsModel.h"
#include "app/gui/panels/SettingsPanel.h"
#include "core/safetensors.h"

#include <QApplication>
#include <QDir>
#include <QImage>
#include <QLocale>
#include <QProgressBar>
#include <QPushButton>
#include <QSignalSpy>
#include <QSlider>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTableWidget>

#include <cmath>

using mlawb::MlaSpec;
using mlawb::gui::SettingsPanel;

namespace {

std::string tinyModel() { return mlawb::test::source_dir() + "/resources/models/wb-tiny-mha"; }
mlawb::ModelConfig tinyConfig() { return mlawb::ModelConfig::from_file(tinyModel() + "/config.json"); }

// A spectrum with known values, sigma_i = (1 + i)^-(1 + l / 4) in layer l (later layers decay
// faster, so the bars differ), of the sizes compute_spectra gives for `r` kept pairs per head.
mlawb::SpectrumReport syntheticSpectrum(const mlawb::ModelConfig& c, int64_t r) {
    const auto values = [](int64_t n, int64_t layer) {
        const double decay = 1.0 + static_cast<double>(layer) / 4.0;
        std::vector<double> sigma(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) sigma[static_cast<size_t>(i)] = std::pow(1.0 + static_cast<double>(i), -decay);
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
        layer.sigma_k_nope = values(std::min(rows_nope, c.hidden), l);
        layer.sigma_v = values(std::min(rows_v, c.hidden), l);
        layer.sigma_joint = values(std::min(rows_nope + rows_v, c.hidden), l);
        report.layers.push_back(layer);
    }
    return report;
}

// "high r=4 d_kv=16 joint" on the panel, as the user would set it.
void chooseHighR4DKv16Joint(SettingsPanel& panel) {
    panel.setStrategy(QStringLiteral("high"));
    panel.setSvdMode(mlawb::SvdMode::Joint);
    panel.rSpin()->setValue(4);
    panel.dKvSlider()->setValue(16);
}

QString grouped(int64_t v) { return QLocale(QLocale::English).toString(static_cast<qlonglong>(v)); }

}  // namespace

class SettingsPanelTest : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { QStandardPaths::setTestModeEnabled(true); }

    void figuresAreTheMemoryModels() {
        MLAWB_REQUIRE_PATH(tinyModel());
        SettingsPanel panel;
        panel.setModelConfig(tinyConfig());
        chooseHighR4DKv16Joint(panel);
        panel.contextSpin()->setValue(4096);
        panel.batchSpin()->setValue(2);

        const MlaSpec spec = MlaSpec::parse("strategy=high,r=4,d_kv=16,svd=joint");
        const mlawb::MemoryEstimate m = mlawb::estimate_memory(tinyConfig(), spec, 4096, 2);
        QCOMPARE(m.elements_per_token_layer, 96);  // n_kv (2r + d_kv) = 4 (8 + 16)
        QCOMPARE(m.reduction_percent, 81.25);      // 1 - 96 / 512

        QVERIFY2(panel.validationText().isEmpty(), qPrintable(panel.validationText()));
        QCOMPARE(panel.specText(), QString::fromStdString(spec.to_string()));
        QCOMPARE(panel.dKvSpin()->value(), 16);
        QCOMPARE(panel.fieldText(QStringLiteral("layout")), QStringLiteral("MLA joint"));
        QCOMPARE(panel.fieldText(QStringLiteral("kept_pairs")), QStringLiteral("4 of 32 pairs per KV head keep RoPE"));
        QCOMPARE(panel.fieldText(QStringLiteral("elements_layer")), QStringLiteral("96 per token (original 512)"));
        QCOMPARE(panel.fieldText(QStringLiteral("elements_model")),
                 QStringLiteral("%1 per token (original %2)").arg(grouped(m.elements_per_token),
                                                                  grouped(m.original_elements_per_token)));
        QCOMPARE(panel.fieldText(QStringLiteral("bytes_layer")),
                 QStringLiteral("nominal 192 B · real 192 B at 16 bits (original 1,024 B at 16 bits)"));
        QVERIFY2(panel.fieldText(QStringLiteral("bytes_total")).startsWith(QStringLiteral("4,096 tokens x 2: ")),
                 qPrintable(panel.fieldText(QStringLiteral("bytes_total"))));
        QCOMPARE(panel.fieldText(QStringLiteral("reduction")),
                 QStringLiteral("81.25% nominal · 81.25% real per token · 81.25% real at context x batch"));
        // Kept pairs of KV head 0 in every layer: high keeps {0..r-1}.
        QCOMPARE(panel.layerTable()->rowCount(), 6);
        for (int row = 0; row < 6; ++row) QCOMPARE(panel.layerTable()->item(row, 1)->text(), QStringLiteral("0, 1, 2, 3"));
        // Evaluate needs a valid setting; Convert also needs the model's folder (weights).
        QVERIFY(panel.evaluateButton()->isEnabled());
        QVERIFY(!panel.convertButton()->isEnabled());
        panel.setModelFolder(QString::fromStdString(tinyModel()));
        QVERIFY(panel.convertButton()->isEnabled());
        QSignalSpy evaluate(&panel, &SettingsPanel::evaluateRequested);
        panel.evaluateButton()->click();
        QCOMPARE(evaluate.count(), 1);
        QCOMPARE(evaluate.first().first().toString(), QString::fromStdString(spec.to_string()));
        // The original model has nothing to convert.
        panel.setStrategy(QStringLiteral("full"));
        panel.setSvdMode(mlawb::SvdMode::None);
        QVERIFY(panel.evaluateButton()->isEnabled());
        QVERIFY(!panel.convertButton()->isEnabled());
    }

    void refusalsShowValidationInRed() {
        MLAWB_REQUIRE_PATH(tinyModel());
        SettingsPanel panel;
        panel.setModelConfig(tinyConfig());
        chooseHighR4DKv16Joint(panel);
        // The slider stops at the widest latent the joint SVD allows; the box goes past it.
        QCOMPARE(panel.dKvSlider()->maximum(), 64);  // min(480 rows, 256 hidden) / 4 KV heads
        panel.dKvSpin()->setValue(100);
        QVERIFY2(panel.validationText().contains(QStringLiteral("d_kv at most 64")), qPrintable(panel.validationText()));
        QCOMPARE(panel.fieldText(QStringLiteral("elements_layer")), QStringLiteral("—"));
        QVERIFY(!panel.figures().valid);

        panel.dKvSpin()->setValue(16);
        QVERIFY(panel.validationText().isEmpty());
        panel.setStrategy(QStringLiteral("uniform"));
        panel.startSpin()->setValue(31);  // r=4 steps by 8: pair 55 is past the last (31)
        QVERIFY2(panel.validationText().startsWith(QStringLiteral("start:")), qPrintable(panel.validationText()));

        // r above head_dim/2: the spin box stops at 32, so check the controller it reads.
        mlawb::gui::SettingsModel model;
        model.setConfig(tinyConfig());
        mlawb::gui::SettingsInput input;
        input.spec = MlaSpec::parse("strategy=high,r=33,d_kv=16");
        const mlawb::gui::SettingsFigures f = model.evaluate(input);
        QVERIFY(!f.valid);
        QVERIFY2(QString::fromStdString(f.message).contains(QStringLiteral("exceed head_dim/2")), f.message.c_str());
        QCOMPARE(panel.rSpin()->maximum(), 32);
    }

    void quantizedCacheShowsNominalAndReal() {
        MLAWB_REQUIRE_PATH(tinyModel());
        SettingsPanel panel;
        panel.setModelConfig(tinyConfig());
        chooseHighR4DKv16Joint(panel);
        panel.setKvBits(4);
        MlaSpec spec = MlaSpec::parse("strategy=high,r=4,d_kv=16,svd=joint,kv_bits=4");
        const mlawb::MemoryEstimate m = mlawb::estimate_memory(tinyConfig(), spec, 4096, 1);
        QVERIFY(m.real_bytes_per_token_layer > m.nominal_bytes_per_token_layer);
        QCOMPARE(panel.specText(), QString::fromStdString(spec.to_string()));
        QCOMPARE(panel.fieldText(QStringLiteral("bytes_layer")),
                 QStringLiteral("nominal %1 B · real %2 B at 4 bits (original 1,024 B at 16 bits)")
                     .arg(m.nominal_bytes_per_token_layer)
                     .arg(m.real_bytes_per_token_layer));
        QVERIFY(m.reduction_percent != m.reduction_percent_real);
        QVERIFY2(panel.fieldText(QStringLiteral("reduction"))
                     .startsWith(QStringLiteral("%1% nominal · %2% real per token")
                                     .arg(m.reduction_percent, 0, 'f', 2)
                                     .arg(m.reduction_percent_real, 0, 'f', 2)),
                 qPrintable(panel.fieldText(QStringLiteral("reduction"))));
    }

    void twoNormWithoutScoresAsksForCalibration() {
        MLAWB_REQUIRE_PATH(tinyModel());
        SettingsPanel panel;
        panel.setModelConfig(tinyConfig());
        panel.setStrategy(QStringLiteral("2-norm"));
        QCOMPARE(panel.validationText(), QStringLiteral("needs 2-norm scores: calibrate in the RoPE heatmap tab"));
        QVERIFY(panel.figures().needs_scores);
        QVERIFY(!panel.evaluateButton()->isEnabled());
    }

    void approximationErrorFromStoredSpectrumNamesItsMask() {
        MLAWB_REQUIRE_PATH(tinyModel());
        const mlawb::ModelConfig config = tinyConfig();
        SettingsPanel panel;
        panel.setModelConfig(config);
        chooseHighR4DKv16Joint(panel);
        QVERIFY(panel.errorSourceText().contains(QStringLiteral("no spectrum")));

        const mlawb::SpectrumReport report = syntheticSpectrum(config, 4);
        panel.setSpectrum(report, MlaSpec::parse("strategy=high,r=4"));
        QCOMPARE(panel.figures().error_source, mlawb::gui::ErrorSource::SameMask);
        const double expected = mlawb::truncate_spectrum(report.layers[0].sigma_joint, 4 * 16).error();
        QCOMPARE(panel.figures().layers[0].approximation_error, expected);
        QCOMPARE(panel.layerTable()->item(0, 2)->text(), QString::number(expected * 100.0, 'f', 2) + QLatin1Char('%'));
        auto* bar = qobject_cast<QProgressBar*>(panel.layerTable()->cellWidget(0, 3));
        QVERIFY(bar);
        QCOMPARE(bar->value(), static_cast<int>(std::lround(expected * 10000.0)));

        // A wider latent keeps more: the error falls, from the same singular values.
        panel.dKvSlider()->setValue(32);
        QVERIFY(panel.figures().layers[0].approximation_error < expected);

        // Another r changes W_k,nope: the figures stay, marked as the other mask's.
        panel.rSpin()->setValue(8);
        QCOMPARE(panel.figures().error_source, mlawb::gui::ErrorSource::OtherMask);
        QVERIFY2(panel.errorSourceText().contains(QStringLiteral("ANOTHER mask (strategy=high,r=4)")),
                 qPrintable(panel.errorSourceText()));

        panel.setSvdMode(mlawb::SvdMode::None);
        QCOMPARE(panel.figures().error_source, mlawb::gui::ErrorSource::NoLatent);
        QCOMPARE(panel.fieldText(QStringLiteral("layout")), QStringLiteral("partial-RoPE"));
    }

    void mainWindowFeedsTheSettingsTab() {
        MLAWB_REQUIRE_PATH(tinyModel());
        mlawb::gui::MainWindow window;
        window.setShowDialogs(false);
        QVERIFY(!window.settingsPanel()->isEnabled());
        QSignalSpy loaded(&window, &mlawb::gui::MainWindow::modelLoaded);
        window.openModelFolder(QString::fromStdString(tinyModel()));
        QTRY_VERIFY_WITH_TIMEOUT(loaded.count() == 1, 20000);
        QVERIFY(window.settingsPanel()->isEnabled());
        QCOMPARE(window.settingsPanel()->layerTable()->rowCount(), 6);
    }

    // With the real spectrum of the bundled model: the panel's errors, recomputed from the stored
    // singular values, equal compute_spectra's own at the rank it was computed for.
    // The panel alone as panel-settings.png (MLAWB_SCREENSHOT_DIR, else the build folder); the
    // documentation's window shots come from `mla-workbench --screenshots docs/screenshots`.
    void realSpectrumAndScreenshot() {
        MLAWB_REQUIRE_PATH(tinyModel());
        const mlawb::ModelConfig config = tinyConfig();
        const MlaSpec mask = MlaSpec::parse("strategy=high,r=4");
        mlawb::StrategyInput selection;
        selection.config = &config;
        selection.r = 4;
        const mlawb::KeptPairs kept = mlawb::find_strategy("high").select(selection);
        const mlawb::SpectrumReport report =
            mlawb::compute_spectra(mlawb::Checkpoint::open_folder(tinyModel()), config, kept, 16);

        SettingsPanel panel;
        panel.resize(1280, 760);
        panel.setModelConfig(config);
        chooseHighR4DKv16Joint(panel);
        panel.setKvBits(4);
        panel.setSpectrum(report, mask);
        QCOMPARE(panel.figures().error_source, mlawb::gui::ErrorSource::SameMask);
        for (size_t l = 0; l < report.layers.size(); ++l)
            QVERIFY(std::abs(panel.figures().layers[l].approximation_error - report.layers[l].error_joint) < 1e-12);
        panel.show();
        QVERIFY(QTest::qWaitForWindowExposed(&panel));
        const QImage image = panel.grab().toImage();
        QVERIFY(!image.isNull());
        QCOMPARE(image.width(), 1280 * static_cast<int>(image.devicePixelRatio()));
        const QString dir = qEnvironmentVariableIsSet("MLAWB_SCREENSHOT_DIR")
                                ? qEnvironmentVariable("MLAWB_SCREENSHOT_DIR")
                                : QString::fromStdString(mlawb::test::binary_dir() + "/screenshots");
        QVERIFY(QDir().mkpath(dir));
        QVERIFY(image.save(dir + QStringLiteral("/panel-settings.png")));
    }
};

QTEST_MAIN(SettingsPanelTest)
#include "test_settings_panel.moc"
