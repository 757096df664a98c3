// The Eval, Results and Pareto tabs offscreen, on the bundled model and the fixtures' LongBench
// task set: a 2-sample evaluation runs to completion into a temporary database and shows up in
// Results (sortable, filterable, two runs compared with their flipped samples' prompts) and in
// Pareto (points, baseline, a click opening the run); a run cancelled mid-way resumes where it
// stopped; the window keeps answering (timers fire, tabs switch) while a job runs.
#include "gui_test_support.h"

#include "app/gui/EvalSession.h"
#include "app/gui/MainWindow.h"
#include "app/gui/panels/EvalPanel.h"
#include "app/gui/panels/ParetoPanel.h"
#include "app/gui/panels/ResultsPanel.h"
#include "app/gui/plots/ParetoPlot.h"
#include "eval/runner.h"
#include "eval/store.h"

#include <QElapsedTimer>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QSignalSpy>
#include <QSortFilterProxyModel>
#include <QStandardItemModel>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTableView>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTimer>

#include <nlohmann/json.hpp>

using namespace mlawb::gui;

namespace {

constexpr int kRunTimeoutMs = 300000;

QString bundledModel() { return QString::fromStdString(mlawb::test::source_dir() + "/resources/models/wb-tiny-mha"); }
QString tasksFolder() { return QString::fromStdString(mlawb::test::fixtures_dir() + "/longbench-syn"); }

bool openModel(MainWindow& window) {
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    window.openModelFolder(bundledModel());
    return loaded.wait(20000) || loaded.count() == 1;
}

// Runs the panel's evaluation to its end; the finished() arguments (ok, cancelled, message).
QList<QVariant> runToEnd(EvalPanel& panel) {
    QSignalSpy finished(&panel, &EvalPanel::evaluationFinished);
    if (!panel.startEvaluation()) return {false, false, panel.lastError()};
    QElapsedTimer timer;
    timer.start();
    while (finished.isEmpty() && timer.elapsed() < kRunTimeoutMs) QTest::qWait(20);
    return finished.isEmpty() ? QList<QVariant>{false, false, QStringLiteral("timed out")} : finished.first();
}

int rowOfRun(const ResultsPanel& results, qint64 runId) {
    for (int row = 0; row < results.proxyModel()->rowCount(); ++row)
        if (results.proxyModel()->index(row, ResultsPanel::ColId).data(Qt::UserRole).toLongLong() == runId) return row;
    return -1;
}

}  // namespace

class EvalResultsTest : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        MLAWB_REQUIRE_PATH(bundledModel().toStdString());
        MLAWB_REQUIRE_PATH(tasksFolder().toStdString());
    }

    void evaluationShowsInResultsAndPareto() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString db = dir.filePath(QStringLiteral("results.db"));
        MainWindow window;
        window.setShowDialogs(false);
        window.resize(1280, 800);
        window.show();
        QVERIFY(openModel(window));
        EvalPanel* eval = window.evalPanel();
        // The bundled task set is preselected, every dataset checked.
        // resources/tasks/longbench-syn is found first, beside the sources.
        QCOMPARE(eval->tasksFolder(),
                 QDir::cleanPath(QString::fromStdString(mlawb::test::source_dir() + "/resources/tasks/longbench-syn")));
        QCOMPARE(eval->availableDatasets(), (QStringList{QStringLiteral("kv_retrieval"), QStringLiteral("passage_retrieval"),
                                                         QStringLiteral("passkey"), QStringLiteral("source_cls")}));
        QCOMPARE(eval->checkedDatasets().size(), 4);
        eval->setDatabasePath(db);
        eval->setCheckedDatasets({QStringLiteral("passkey")});
        eval->setLimit(2);
        eval->setSetting(QStringLiteral("strategy=full"));
        QList<QVariant> end = runToEnd(*eval);
        QVERIFY2(end.at(0).toBool(), qPrintable(end.at(2).toString()));
        QCOMPARE(eval->progressBar()->value(), 2);
        QCOMPARE(eval->progressBar()->maximum(), 2);
        QVERIFY2(eval->etaText().startsWith(QStringLiteral("done in")), qPrintable(eval->etaText()));

        // The store holds the run as `mlawb eval` keys it, finished, with 2 samples and its metrics.
        const mlawb::ResultsStore store = mlawb::ResultsStore::open(db.toStdString(), mlawb::ResultsStore::OpenMode::ExistingOnly);
        std::vector<mlawb::RunSummary> runs = store.list_runs();
        QCOMPARE(runs.size(), size_t{1});
        const mlawb::RunDetail original = store.run(runs[0].id);
        QCOMPARE(original.summary.status, mlawb::RunStatus::Finished);
        QCOMPARE(original.summary.samples, int64_t{2});
        QCOMPARE(original.summary.setting_spec, std::string("strategy=full"));
        QCOMPARE(original.options_json,
                 nlohmann::json::parse(mlawb::longbench_run_options_json(2, -1, {0, 512, 1024, 2048}, eval->tasksFolder().toStdString())).dump());
        QVERIFY(original.memory);
        QCOMPARE(original.memory->kv_elements_per_token, int64_t{6 * 2 * 4 * 64});
        // The same memory row as `mlawb eval` records (eval/longbench_run): cache bits and real bytes.
        QCOMPARE(original.memory->kv_bits, 16);
        QCOMPARE(original.memory->bytes_real, original.memory->bytes_formula);
        QVERIFY(original.memory->bytes_real > 0);
        QCOMPARE(original.device, std::string("cpu f32"));
        // The live score shown is the store's headline metric.
        QCOMPARE(eval->scoresTable()->item(0, EvalPanel::ColDone)->text(), QStringLiteral("2 / 2"));
        QCOMPARE(eval->scoresTable()->item(0, EvalPanel::ColScore)->text(),
                 QString::number(original.summary.main_metric->value, 'f', 2));
        QCOMPARE(eval->lastOutcome()->scores.at("passkey"), original.summary.main_metric->value);

        // A second setting, sent the way "Evaluate this setting" sends it.
        eval->setSetting(QStringLiteral("strategy=high,r=2,d_kv=8"));
        end = runToEnd(*eval);
        QVERIFY2(end.at(0).toBool(), qPrintable(end.at(2).toString()));
        runs = store.list_runs();
        QCOMPARE(runs.size(), size_t{2});
        const qint64 a = runs[0].id, b = runs[1].id;

        // Results: both runs, sortable and filterable; the comparison of the two.
        ResultsPanel* results = window.resultsPanel();
        QCOMPARE(results->databasePath(), QDir::cleanPath(db));
        QCOMPARE(results->runsModel()->rowCount(), 2);
        QCOMPARE(results->proxyModel()->rowCount(), 2);
        results->runsView()->sortByColumn(ResultsPanel::ColId, Qt::AscendingOrder);
        QCOMPARE(results->proxyModel()->index(0, ResultsPanel::ColId).data().toString(), QString::number(a));
        results->runsView()->sortByColumn(ResultsPanel::ColKvBytes, Qt::AscendingOrder);  // MLA first: fewer bytes
        QCOMPARE(results->proxyModel()->index(0, ResultsPanel::ColId).data().toString(), QString::number(b));
        results->setFilterText(QStringLiteral("HIGH r2"));  // case-insensitive, any column
        QCOMPARE(results->proxyModel()->rowCount(), 1);
        QCOMPARE(results->proxyModel()->index(0, ResultsPanel::ColSetting).data().toString(), QStringLiteral("high r2 d_kv8"));
        results->setFilterText(QString());
        results->setStatusFilter(QStringLiteral("cancelled"));
        QCOMPARE(results->proxyModel()->rowCount(), 0);
        results->setStatusFilter(QString());
        QCOMPARE(results->proxyModel()->rowCount(), 2);

        // Selecting two rows enables Compare; the deltas and flips are the store's.
        results->runsView()->selectionModel()->clearSelection();
        for (qint64 id : {a, b})
            results->runsView()->selectionModel()->select(
                results->proxyModel()->index(rowOfRun(*results, id), 0),
                QItemSelectionModel::Select | QItemSelectionModel::Rows);
        QVERIFY(results->compareButton()->isEnabled());
        QVERIFY(results->compareSelected());
        const mlawb::RunComparison expected = store.compare(a, b);
        QVERIFY(results->comparison());
        QCOMPARE(results->comparison()->a.summary.id, a);
        QCOMPARE(results->metricDeltaTable()->rowCount(), static_cast<int>(expected.metrics.size()));
        QCOMPARE(results->metricDeltaTable()->item(0, 1)->text(), QStringLiteral("overall"));
        QCOMPARE(results->metricDeltaTable()->item(0, 2)->text(), QString::number(*expected.metrics[0].a, 'f', 2));
        // high r=2 d_kv=8 is a harsh compression of wb-tiny: its passkey answers change (greedy
        // decoding on fixed weights, so this is deterministic).
        QVERIFY2(!expected.changed.empty(), "no flipped samples to show");
        QCOMPARE(results->flippedTable()->rowCount(), static_cast<int>(expected.changed.size()));
        for (int row = 0; row < static_cast<int>(expected.changed.size()); ++row) {
            results->showFlippedSample(row);
            const QString text = results->sampleView()->toPlainText();
            QVERIFY2(text.contains(QString::fromStdString(expected.changed[row].sample_id)), qPrintable(text));
            QVERIFY(text.contains(QString::fromStdString(expected.changed[row].prediction_b)));
            QVERIFY2(text.contains(QStringLiteral("The pass key is")), "the prompt is rebuilt from the task folder");
        }
        QCOMPARE(static_cast<int64_t>(expected.changed.size()) + expected.unchanged, int64_t{2});

        // Pareto: the two settings on passkey, the original as the baseline; a click opens the run.
        ParetoPanel* pareto = window.paretoPanel();
        pareto->setDataset(QStringLiteral("passkey"));
        const ParetoData& data = pareto->data();
        QCOMPARE(data.points.size(), size_t{2});
        QVERIFY(data.baseline);
        QCOMPARE(data.baseline->run_id, a);
        QCOMPARE(data.points[0].run_id, b);  // fewer bytes first
        QCOMPARE(data.points[0].label, std::string("high r2 d_kv8"));
        QCOMPARE(data.points[0].kv_bytes_per_token, store.run(b).memory->bytes_formula);
        QVERIFY(data.points[0].on_front);  // the fewest bytes is always on the front
        QVERIFY(pareto->plot()->hasBaselineLine());
        window.tabs()->setCurrentWidget(pareto);
        QTest::qWait(50);
        pareto->plot()->replot();
        QTest::mouseClick(pareto->plot(), Qt::LeftButton, Qt::NoModifier, pareto->plot()->pointPixel(0).toPoint());
        QCOMPARE(window.tabs()->currentWidget(), results);
        QCOMPARE(results->shownRunId(), b);
        QCOMPARE(results->selectedRunIds(), (std::vector<qint64>{b}));
        mlawb::test::saveScreenshot(window, QStringLiteral("eval-results-window.png"));
    }

    void cancelledRunResumes() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString db = dir.filePath(QStringLiteral("results.db"));
        EvalPanel panel;
        panel.setShowDialogs(false);
        panel.setModelFolder(bundledModel());
        QVERIFY(panel.setTasksFolder(tasksFolder()));
        panel.setDatabasePath(db);
        panel.setCheckedDatasets({QStringLiteral("source_cls")});
        panel.setLimit(6);

        // Cancel as soon as the first sample is recorded.
        QSignalSpy scored(&panel, &EvalPanel::sampleScored);
        connect(&panel, &EvalPanel::sampleScored, &panel, [&panel] { panel.cancelEvaluation(); });
        QList<QVariant> end = runToEnd(panel);
        QCOMPARE(end.at(0).toBool(), false);
        QVERIFY2(end.at(1).toBool(), qPrintable(end.at(2).toString()));  // cancelled, not failed
        QVERIFY(panel.lastError().isEmpty());
        const mlawb::ResultsStore store = mlawb::ResultsStore::open(db.toStdString());
        const int64_t runId = store.list_runs().at(0).id;
        QCOMPARE(store.run(runId).summary.status, mlawb::RunStatus::Cancelled);
        const auto recorded = static_cast<int>(store.recorded_sample_ids(runId).size());
        QVERIFY2(recorded >= 1 && recorded < 6, qPrintable(QString::number(recorded)));
        QCOMPARE(scored.count(), recorded);
        QCOMPARE(panel.scoresTable()->item(0, EvalPanel::ColState)->text(), QStringLiteral("cancelled"));

        // Run again: the same run resumes, scores only the samples it lacks, and finishes.
        disconnect(&panel, &EvalPanel::sampleScored, &panel, nullptr);
        scored.clear();
        QString resumedState;
        connect(&panel, &EvalPanel::sampleScored, &panel, [&] {
            if (resumedState.isEmpty()) resumedState = panel.scoresTable()->item(0, EvalPanel::ColState)->text();
        });
        end = runToEnd(panel);
        QVERIFY2(end.at(0).toBool(), qPrintable(end.at(2).toString()));
        QCOMPARE(store.list_runs().size(), size_t{1});
        QCOMPARE(store.run(runId).summary.status, mlawb::RunStatus::Finished);
        QCOMPARE(store.recorded_sample_ids(runId).size(), size_t{6});
        QCOMPARE(scored.count(), 6 - recorded);
        QCOMPARE(scored.first().at(2).toInt(), recorded + 1);  // counting the earlier samples
        QCOMPARE(resumedState, QStringLiteral("resumed (%1 recorded)").arg(recorded));

        // A third Run finds it finished and scores nothing.
        scored.clear();
        end = runToEnd(panel);
        QVERIFY(end.at(0).toBool());
        QCOMPARE(scored.count(), 0);
        QCOMPARE(panel.scoresTable()->item(0, EvalPanel::ColState)->text(), QStringLiteral("finished"));
    }

    void windowRespondsWhileEvaluating() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        MainWindow window;
        window.setShowDialogs(false);
        window.resize(1280, 800);
        window.show();
        QVERIFY(openModel(window));
        EvalPanel* eval = window.evalPanel();
        eval->setDatabasePath(dir.filePath(QStringLiteral("results.db")));
        eval->setCheckedDatasets({QStringLiteral("passage_retrieval")});
        eval->setLimit(20);
        QSignalSpy finished(eval, &EvalPanel::evaluationFinished);
        QVERIFY(eval->startEvaluation());
        QVERIFY(!eval->startEvaluation());  // one at a time

        // While the worker scores one sample (seconds), a 20 ms timer keeps firing and tab
        // switches take effect: a GUI thread blocked by the evaluation would see neither.
        int ticks = 0, switches = 0;
        QList<int> ticksAtSample, switchesAtSample;
        connect(eval, &EvalPanel::sampleScored, eval, [&] {
            ticksAtSample.append(ticks);
            switchesAtSample.append(switches);
        });
        QTimer timer;
        connect(&timer, &QTimer::timeout, &timer, [&] { ++ticks; });
        timer.start(20);
        QElapsedTimer total;
        total.start();
        while (ticksAtSample.size() < 2 && finished.isEmpty() && total.elapsed() < kRunTimeoutMs) {
            const int tab = switches % window.tabs()->count();
            window.tabs()->setCurrentIndex(tab);
            QCOMPARE(window.tabs()->currentIndex(), tab);
            ++switches;
            QTest::qWait(30);
        }
        timer.stop();
        QVERIFY2(finished.isEmpty(), "the evaluation ended before the check");
        QVERIFY(eval->isRunning());
        QVERIFY2(ticksAtSample.size() >= 2, "no two samples scored in time");
        QVERIFY2(ticksAtSample[1] - ticksAtSample[0] >= 5,
                 qPrintable(QStringLiteral("%1 timer ticks during one sample").arg(ticksAtSample[1] - ticksAtSample[0])));
        QVERIFY2(switchesAtSample[1] - switchesAtSample[0] >= 3,
                 qPrintable(QStringLiteral("%1 tab switches during one sample").arg(switchesAtSample[1] - switchesAtSample[0])));

        // Ctrl+. cancels from anywhere.
        QVERIFY(QTest::qWaitForWindowActive(&window));
        QTest::keyClick(&window, Qt::Key_Period, Qt::ControlModifier);
        QTRY_VERIFY_WITH_TIMEOUT(!finished.isEmpty(), kRunTimeoutMs);
        QVERIFY(finished.first().at(1).toBool());
    }
};

QTEST_MAIN(EvalResultsTest)
#include "test_eval_results.moc"
