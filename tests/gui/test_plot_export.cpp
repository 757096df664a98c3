// Every plot exports to PNG, PDF, SVG and CSV and the files are validated (PNG decodes at the
// export size, PDF starts with %PDF, SVG parses as XML and holds the plot's text, CSV holds the
// plotted rows); an unwritable path reports an error, through MainWindow too. The Pareto view's
// points, front, baseline and labels come from RunCatalog over plain RunDetail rows, and a click
// on a point opens its run.
#include "gui_test_support.h"

#include "app/gui/MainWindow.h"
#include "app/gui/RunCatalog.h"
#include "app/gui/panels/ParetoPanel.h"
#include "app/gui/panels/RopeHeatmapPanel.h"
#include "app/gui/panels/SpectrumPanel.h"
#include "app/gui/plots/ParetoPlot.h"
#include "app/gui/plots/RopeHeatmap.h"
#include "app/gui/plots/SpectrumPlot.h"

#include <QSignalSpy>
#include <QStandardPaths>

#include <cmath>

using namespace mlawb::gui;
using mlawb::RunDetail;

namespace {

QString bundledModel() { return QString::fromStdString(mlawb::test::source_dir() + "/resources/models/wb-tiny-mha"); }

// One finished LongBench run as the store reports it.
RunDetail run(int64_t id, const std::string& spec, const std::string& dataset, double score, double bytes,
              const std::string& model = "hash-a", mlawb::RunStatus status = mlawb::RunStatus::Finished,
              const std::string& options = R"({"limit":2})") {
    RunDetail d;
    d.summary.id = id;
    d.summary.model_path = "/models/" + model;
    d.summary.model_hash = model;
    d.summary.setting_spec = spec;
    d.summary.task = "longbench";
    d.summary.dataset = dataset;
    d.summary.status = status;
    d.summary.samples = 2;
    d.summary.main_metric = mlawb::MetricRow{"retrieval_score", "", score};
    d.options_json = options;
    d.memory = mlawb::MemoryRow{};
    d.memory->bytes_formula = bytes;
    return d;
}

// Four settings on two datasets: the original (6144 B), two on the front, one dominated; one
// setting with a single dataset, a cancelled run, another model and other options around them.
std::vector<RunDetail> catalog() {
    return {
        run(1, "strategy=full", "passkey", 60, 6144),
        run(2, "strategy=full", "source_cls", 40, 6144),
        run(3, "strategy=high,r=4,d_kv=16,svd=joint", "passkey", 50, 1152),
        run(4, "strategy=high,r=4,d_kv=16,svd=joint", "source_cls", 40, 1152),
        run(5, "strategy=low,r=4,d_kv=16,svd=joint", "passkey", 30, 1152),   // dominated by high
        run(6, "strategy=low,r=4,d_kv=16,svd=joint", "source_cls", 30, 1152),
        run(7, "strategy=2-norm,r=2,d_kv=8,svd=joint", "passkey", 20, 576),
        run(8, "strategy=2-norm,r=2,d_kv=8,svd=joint", "source_cls", 10, 576),
        run(9, "strategy=uniform,r=8,d_kv=32,svd=joint", "passkey", 70, 2304),  // passkey only
        run(10, "strategy=high,r=4,d_kv=16,svd=joint", "passkey", 99, 1152, "hash-a", mlawb::RunStatus::Cancelled),
        run(11, "strategy=high,r=4,d_kv=16,svd=joint", "passkey", 99, 1152, "hash-b"),
        run(12, "strategy=high,r=4,d_kv=16,svd=joint", "passkey", 99, 1152, "hash-a", mlawb::RunStatus::Finished,
            R"({"limit":45})"),
    };
}

mlawb::RopeScores syntheticScores(const mlawb::ModelConfig& c) {
    mlawb::RopeScores s;
    s.n_layer = c.n_layer;
    s.n_head = c.n_head;
    s.n_kv_head = c.n_kv_head;
    s.n_pairs = c.head_dim / 2;
    for (int64_t i = 0; i < s.n_layer * s.n_kv_head * s.n_pairs; ++i) s.scores.push_back(std::sin(0.37 * i) + 1.5);
    for (int64_t i = 0; i < s.n_layer * s.n_head * s.n_pairs; ++i) s.q_norms.push_back(std::cos(0.11 * i) + 1.5);
    s.k_norms = s.scores;
    s.provenance.text_file = "synthetic";
    return s;
}

mlawb::SpectrumReport syntheticSpectrum(const mlawb::ModelConfig& c) {
    mlawb::SpectrumReport report;
    report.n_kv_head = c.n_kv_head;
    report.head_dim = c.head_dim;
    report.hidden = c.hidden;
    report.rank = 64;
    for (int64_t l = 0; l < c.n_layer; ++l) {
        mlawb::LayerSpectrum layer;
        layer.layer = l;
        for (int i = 0; i < 200; ++i) {
            const double sigma = std::pow(1.0 + i, -1.0 - 0.1 * static_cast<double>(l));
            layer.sigma_k.push_back(sigma);
            layer.sigma_k_nope.push_back(sigma * 0.9);
            layer.sigma_v.push_back(sigma * 0.8);
            layer.sigma_joint.push_back(sigma * 1.1);
        }
        report.layers.push_back(layer);
    }
    return report;
}

}  // namespace

class PlotExportTest : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { QStandardPaths::setTestModeEnabled(true); }

    void paretoPointsFrontAndBaseline() {
        ParetoQuery query;
        query.model_hash = "hash-a";
        query.options_json = R"({"limit":2})";
        const ParetoData mean = build_pareto(catalog(), query);
        // Mean over passkey and source_cls; uniform lacks source_cls and is left out.
        QCOMPARE(mean.datasets, (std::vector<std::string>{"passkey", "source_cls"}));
        QCOMPARE(mean.left_out, int64_t{1});
        QCOMPARE(mean.points.size(), size_t{4});
        QCOMPARE(mean.metric, std::string("mean of 2 datasets"));
        // Sorted by bytes: 2-norm (576, 15), high (1152, 45), low (1152, 30), original (6144, 50).
        QCOMPARE(mean.points[0].label, std::string("2-norm r2 d_kv8"));
        QCOMPARE(mean.points[0].score, 15.0);
        QCOMPARE(mean.points[1].label, std::string("high r4 d_kv16"));
        QCOMPARE(mean.points[1].score, 45.0);
        QCOMPARE(mean.points[1].run_id, int64_t{3});
        QCOMPARE(mean.points[1].run_ids, (std::vector<int64_t>{3, 4}));
        QCOMPARE(mean.points[2].label, std::string("low r4 d_kv16"));
        QCOMPARE(mean.points[3].label, std::string("original"));
        QCOMPARE(mean.points[0].on_front, true);
        QCOMPARE(mean.points[1].on_front, true);
        QCOMPARE(mean.points[2].on_front, false);  // same bytes as high, lower score
        QCOMPARE(mean.points[3].on_front, true);   // the best score
        QVERIFY(mean.baseline);
        QCOMPARE(mean.baseline->score, 50.0);
        QCOMPARE(mean.baseline->kv_bytes_per_token, 6144.0);

        // One dataset: uniform is back, and on the front (2304 B, the best passkey score).
        query.dataset = "passkey";
        const ParetoData passkey = build_pareto(catalog(), query);
        QCOMPARE(passkey.points.size(), size_t{5});
        QCOMPARE(passkey.left_out, int64_t{0});
        QCOMPARE(passkey.metric, std::string("retrieval_score"));
        int front = 0;
        for (const ParetoPoint& p : passkey.points) {
            front += p.on_front;
            if (p.label == "uniform r8 d_kv32") QVERIFY(p.on_front);
            if (p.label == "original") QVERIFY(!p.on_front);  // uniform beats it on both axes
        }
        QCOMPARE(front, 3);

        // Other options are not mixed in; "" takes the latest run per setting and dataset.
        query.options_json = R"({"limit":45})";
        QCOMPARE(build_pareto(catalog(), query).points.size(), size_t{1});
        query.options_json.clear();
        const ParetoData any = build_pareto(catalog(), query);
        for (const ParetoPoint& p : any.points)
            if (p.label == "high r4 d_kv16") QCOMPARE(p.run_id, int64_t{12});

        // Lower is better (perplexity): the front flips.
        std::vector<ParetoPoint> ppl(3);
        ppl[0].kv_bytes_per_token = 100, ppl[0].score = 60;
        ppl[1].kv_bytes_per_token = 200, ppl[1].score = 55;
        ppl[2].kv_bytes_per_token = 300, ppl[2].score = 58;
        mark_pareto_front(ppl, false);
        QVERIFY(ppl[0].on_front && ppl[1].on_front && !ppl[2].on_front);
    }

    void settingLabels() {
        QCOMPARE(setting_label("strategy=full"), std::string("original"));
        QCOMPARE(setting_label("strategy=full,kv_bits=4"), std::string("full kv4"));
        QCOMPARE(setting_label("strategy=2-norm,r=4,d_kv=16,scores=/tmp/s.json"), std::string("2-norm r4 d_kv16"));
        QCOMPARE(setting_label("strategy=uniform,r=4,start=1,d_kv=32,svd=split"), std::string("uniform r4 s1 d_kv32 split"));
        QCOMPARE(setting_label("strategy=high,r=8"), std::string("high r8 (no latent)"));
        QCOMPARE(setting_label("not a spec"), std::string("not a spec"));
        QVERIFY(is_baseline_setting("strategy=full"));
        QVERIFY(!is_baseline_setting("strategy=full,kv_bits=8"));
        QCOMPARE(options_summary(R"({"buckets":[0,512],"limit":-1,"max_prompt":-1,"tasks":"/t"})"),
                 std::string("limit all · max prompt auto · buckets 0,512"));
    }

    void paretoPlotDrawsAndOpensRuns() {
        ParetoQuery query;
        query.model_hash = "hash-a";
        query.options_json = R"({"limit":2})";
        const ParetoData data = build_pareto(catalog(), query);
        ParetoPanel panel;
        panel.setShowDialogs(false);
        panel.resize(1280, 760);
        panel.show();
        QVERIFY(QTest::qWaitForWindowExposed(&panel));
        panel.plot()->setData(data);
        panel.plot()->replot();
        QCOMPARE(panel.plot()->frontPointCount(), 3);
        QCOMPARE(panel.plot()->labelCount(), 4);
        QVERIFY(panel.plot()->hasBaselineLine());
        QCOMPARE(static_cast<int>(panel.exportedTable().rows.size()), 4);
        QCOMPARE(panel.exportedTable().rows[1].at(0), QStringLiteral("3"));    // run id
        QCOMPARE(panel.exportedTable().rows[1].at(3), QStringLiteral("1152"));  // bytes
        QCOMPARE(panel.exportedTable().rows[1].at(5), QStringLiteral("1"));     // on the front

        // A click on a drawn point (and within the radius) opens its run; far from any, nothing.
        QSignalSpy activated(&panel, &ParetoPanel::runActivated);
        const QPoint high = panel.plot()->pointPixel(1).toPoint();
        QCOMPARE(panel.plot()->pointAt(QPointF(high) + QPointF(5, -4)), 1);
        QTest::mouseClick(panel.plot(), Qt::LeftButton, Qt::NoModifier, high + QPoint(3, 3));
        QCOMPARE(activated.count(), 1);
        QCOMPARE(activated.first().first().toLongLong(), qint64{3});
        QTest::mouseClick(panel.plot(), Qt::LeftButton, Qt::NoModifier, QPoint(5, 5));
        QCOMPARE(activated.count(), 1);
        mlawb::test::checkExports(panel, QStringLiteral("KV cache bytes per token"));
    }

    void heatmapAndSpectrumExport() {
        MLAWB_REQUIRE_PATH(bundledModel().toStdString());
        const mlawb::ModelConfig config =
            mlawb::ModelConfig::from_file((bundledModel() + QStringLiteral("/config.json")).toStdString());
        RopeHeatmapPanel heatmap;
        heatmap.setShowDialogs(false);
        QVERIFY(heatmap.setModelFolder(bundledModel()));
        heatmap.setScores(syntheticScores(config));
        heatmap.setStrategy(QStringLiteral("2-norm"), 4);
        QCOMPARE(static_cast<int>(heatmap.exportedTable().rows.size()), static_cast<int>(config.n_layer * config.head_dim / 2));
        mlawb::test::checkExports(heatmap, QStringLiteral("RoPE pair"));
        QFile::remove(RopeHeatmapPanel::cacheFileFor(bundledModel()));  // synthetic: not for other tests

        SpectrumPanel spectrum;
        spectrum.setShowDialogs(false);
        spectrum.plot()->setReport(syntheticSpectrum(config));
        QCOMPARE(static_cast<int>(spectrum.exportedTable().rows.size()), 4 * 200);
        mlawb::test::checkExports(spectrum, QStringLiteral("singular value index"));
    }

    // MainWindow shows (here: records) the export error; nothing is written.
    void exportErrorReachesTheWindow() {
        MainWindow window;
        window.setShowDialogs(false);
        window.paretoPanel()->plot()->setData(build_pareto(catalog(), ParetoQuery{"hash-a", "longbench", "", ""}));
        const ExportResult r = window.paretoPanel()->exportTo(QStringLiteral("/proc/pareto.svg"));
        QVERIFY(!r.ok);
        QCOMPARE(window.lastError(), r.message);
    }
};

QTEST_MAIN(PlotExportTest)
#include "test_plot_export.moc"
