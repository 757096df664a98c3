// Results store, schema v3: the per-step log of fine-tuning runs (training_steps): round trip,
// replacement on resume, refusals, cascade on run deletion, a version-2 file migrated in place,
// and `mlawb finetune` logging every step of a real (short) run.
#include "analysis/mla_spec.h"
#include "app/cli/commands.h"
#include "core/error.h"
#include "core/llama_model.h"
#include "eval/store.h"
#include "eval/store_sqlite.h"
#include "sqlite_test_support.h"
#include "test_support.h"

#include <QTemporaryDir>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

using namespace mlawb;
namespace fs = std::filesystem;

namespace {

// A run of task "finetune" in a fresh store.
int64_t finetune_run(ResultsStore& store, const std::string& options = "{}") {
    const int64_t model = store.upsert_model("/m", "hash-m", "{}");
    const int64_t setting = store.upsert_setting("strategy=full", "");
    RunRequest req;
    req.model_id = model;
    req.setting_id = setting;
    req.task = "finetune";
    req.dataset = "text.txt+tasks.jsonl";
    req.options_json = options;
    return store.begin_or_resume_run(req).run_id;
}

int run_cli_capture(const std::vector<std::string>& args, std::string& out, std::string& err) {
    std::ostringstream o, e;
    const int rc = cli::run_cli(args, o, e);
    out = o.str();
    err = e.str();
    return rc;
}

}  // namespace

class TestStoreTraining : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void stepsRoundTripInStepOrder();
    void resumedStepsReplaceTheirRows();
    void refusesBadRows_data();
    void refusesBadRows();
    void deletingTheRunDeletesItsSteps();
    void version2FileGainsTrainingSteps();
    void finetuneCommandLogsEveryStep();
};

void TestStoreTraining::stepsRoundTripInStepOrder() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("r.db").toStdString();
    ResultsStore store = ResultsStore::open(path);
    QCOMPARE(store.schema_version(), 3);
    const int64_t run = finetune_run(store);
    store.record_training_steps(run, {{2, 3.5, 1e-4, 0.8, 9000, std::nullopt}, {1, 4.25, 5e-5, 1.5, 8000, 70.5}});
    store.record_training_steps(run, {{3, 3.25, 1e-4, 0.7, 9100, std::nullopt}});
    const std::vector<TrainingStepRow> rows = store.training_steps(run);
    QCOMPARE(rows.size(), size_t(3));
    QCOMPARE(rows[0].step, int64_t(1));
    QCOMPARE(rows[0].loss, 4.25);
    QCOMPARE(rows[0].lr, 5e-5);
    QCOMPARE(rows[0].grad_norm, 1.5);
    QCOMPARE(rows[0].tokens_per_s, 8000.0);
    QVERIFY(rows[0].heldout_ppl.has_value());
    QCOMPARE(*rows[0].heldout_ppl, 70.5);
    QCOMPARE(rows[1].step, int64_t(2));
    QVERIFY(!rows[1].heldout_ppl.has_value());
    QCOMPARE(rows[2].loss, 3.25);
    // As the sqlite3 CLI sees it: NULL where nothing was measured.
    QCOMPARE(query_column(path, "SELECT coalesce(heldout_ppl, 'NULL') FROM training_steps ORDER BY step"),
             (std::vector<std::string>{"70.5", "NULL", "NULL"}));
    QVERIFY(store.training_steps(run + 1).empty());
}

void TestStoreTraining::resumedStepsReplaceTheirRows() {
    QTemporaryDir dir;
    ResultsStore store = ResultsStore::open(dir.filePath("r.db").toStdString());
    const int64_t run = finetune_run(store, R"({"steps": 4})");
    for (int64_t s = 1; s <= 3; ++s) store.record_training_steps(run, {{s, 5.0 - s, 1e-4, 1, 100, std::nullopt}});
    // The process died after step 3; the checkpoint was at 2: a resume re-logs 3 and goes on.
    const int64_t again = finetune_run(store, R"({"steps": 4})");
    QCOMPARE(again, run);
    store.record_training_steps(run, {{3, 1.75, 1e-4, 1, 100, 60.0}, {4, 1.5, 0, 1, 100, std::nullopt}});
    const auto rows = store.training_steps(run);
    QCOMPARE(rows.size(), size_t(4));
    QCOMPARE(rows[2].loss, 1.75);
    QCOMPARE(rows[2].heldout_ppl.value_or(0), 60.0);
    QCOMPARE(rows[3].lr, 0.0);
}

void TestStoreTraining::refusesBadRows_data() {
    QTest::addColumn<qlonglong>("step");
    QTest::addColumn<double>("loss");
    QTest::addColumn<double>("lr");
    QTest::addColumn<double>("heldout");
    QTest::addColumn<QString>("needle");
    const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
    QTest::newRow("step 0") << 0LL << 1.0 << 1e-4 << -1.0 << "steps count from 1";
    QTest::newRow("NaN loss") << 5LL << nan << 1e-4 << -1.0 << "step 5 of run 1: loss";
    QTest::newRow("infinite lr") << 5LL << 1.0 << inf << -1.0 << "lr is not a finite";
    QTest::newRow("negative lr") << 5LL << 1.0 << -1e-4 << -1.0 << "lr is negative";
    QTest::newRow("zero perplexity") << 5LL << 1.0 << 1e-4 << 0.0 << "heldout_ppl";
}

void TestStoreTraining::refusesBadRows() {
    QFETCH(qlonglong, step);
    QFETCH(double, loss);
    QFETCH(double, lr);
    QFETCH(double, heldout);
    QFETCH(QString, needle);
    QTemporaryDir dir;
    const std::string path = dir.filePath("r.db").toStdString();
    ResultsStore store = ResultsStore::open(path);
    const int64_t run = finetune_run(store);
    TrainingStepRow good{1, 2.0, 1e-4, 1.0, 10, std::nullopt};
    TrainingStepRow bad{step, loss, lr, 1.0, 10, std::nullopt};
    if (heldout >= 0) bad.heldout_ppl = heldout;
    const std::string n = needle.toStdString();
    MLAWB_EXPECT_ERROR(store.record_training_steps(run, {good, bad}), path.c_str(), "training_steps", n.c_str());
    QVERIFY(store.training_steps(run).empty());  // one transaction: the good row went too
    MLAWB_EXPECT_ERROR(store.record_training_steps(run + 7, {good}), "training_steps");
}

void TestStoreTraining::deletingTheRunDeletesItsSteps() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("r.db").toStdString();
    {
        ResultsStore store = ResultsStore::open(path);
        const int64_t run = finetune_run(store);
        store.record_training_steps(run, {{1, 2.0, 1e-4, 1.0, 10, std::nullopt}, {2, 1.9, 1e-4, 1.0, 10, std::nullopt}});
    }
    QCOMPARE(count_rows(path, "SELECT count(*) FROM training_steps"), int64_t(2));
    exec_raw(path, "PRAGMA foreign_keys = ON; DELETE FROM runs WHERE id = 1;");
    QCOMPARE(count_rows(path, "SELECT count(*) FROM training_steps"), int64_t(0));
}

// A file written by version 2 of the program opens at version 3 with its rows intact.
void TestStoreTraining::version2FileGainsTrainingSteps() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("v2.db").toStdString();
    const auto& migrations = store_detail::schema_migrations();
    QVERIFY(migrations.size() >= 3);
    QCOMPARE(migrations[2].version, 3);
    exec_raw(path, std::string(migrations[0].sql) + migrations[1].sql + R"sql(
        INSERT INTO models VALUES (1, '/m', 'hash1', '{}');
        INSERT INTO settings VALUES (1, 'strategy=full', '', '');
        INSERT INTO runs VALUES (1, 1, 1, 'perplexity', 'heldout', '{}', 'key1', 'finished',
                                 '2026-01-01T00:00:00Z', '2026-01-01T00:01:00Z', 'abc', 'h', 'cpu', 1, 0, '');
        INSERT INTO metrics VALUES (1, 'perplexity', '', 54.3);
        PRAGMA user_version = 2;)sql");
    QCOMPARE(query_column(path, "PRAGMA user_version"), std::vector<std::string>{"2"});
    QCOMPARE(count_rows(path, "SELECT count(*) FROM sqlite_master WHERE name = 'training_steps'"), int64_t(0));
    ResultsStore store = ResultsStore::open(path);
    QCOMPARE(store.schema_version(), kResultsSchemaVersion);
    QCOMPARE(store.integrity_check(), std::string("ok"));
    QCOMPARE(store.run(1).metrics.at(0).value, 54.3);
    QVERIFY(store.training_steps(1).empty());
    store.record_training_steps(1, {{1, 2.0, 1e-4, 1.0, 10, std::nullopt}});
    QCOMPARE(store.training_steps(1).size(), size_t(1));
}

// `mlawb finetune` on the fixture model: a run of task "finetune" with one row per update and
// the held-out perplexity at the eval steps; the output folder loads.
void TestStoreTraining::finetuneCommandLogsEveryStep() {
    const std::string model = test::model_dir("wb-tiny-mha");
    const std::string text = test::fixtures_dir() + "/finetune/text.txt";
    MLAWB_REQUIRE_PATH(model + "/model.safetensors");
    MLAWB_REQUIRE_PATH(text);
    QTemporaryDir dir;
    // A small slice of the fixture text keeps tokenization short.
    const std::string data = dir.filePath("data.txt").toStdString(), heldout = dir.filePath("heldout.txt").toStdString();
    {
        std::ifstream in(text, std::ios::binary);
        std::string bytes(30000, '\0');
        in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        std::ofstream(data, std::ios::binary) << bytes.substr(0, 25000);
        std::ofstream(heldout, std::ios::binary) << bytes.substr(25000);
    }
    const std::string db = dir.filePath("r.db").toStdString(), out = dir.filePath("out").toStdString();
    std::string o, e;
    const int rc = run_cli_capture({"finetune", model, "--mla", "strategy=high,r=4,d_kv=16", "--data", data, "--steps", "6",
                                    "--batch", "2", "--seq-len", "32", "--warmup", "2", "--eval-every", "3", "--heldout",
                                    heldout, "--heldout-window", "64", "--save-every", "3", "--db", db, "--out", out,
                                    "--token-cache", "none", "--json"},
                                   o, e);
    QVERIFY2(rc == 0, qPrintable(QString::fromStdString(e)));
    ResultsStore store = ResultsStore::open(db, ResultsStore::OpenMode::ExistingOnly);
    const std::vector<RunSummary> runs = store.list_runs();
    QCOMPARE(runs.size(), size_t(1));
    QCOMPARE(runs[0].task, std::string("finetune"));
    QCOMPARE(runs[0].status, RunStatus::Finished);
    QCOMPARE(runs[0].setting_spec, MlaSpec::parse("strategy=high,r=4,d_kv=16,svd=joint").to_string());
    const std::vector<TrainingStepRow> steps = store.training_steps(runs[0].id);
    QCOMPARE(steps.size(), size_t(6));
    for (size_t i = 0; i < steps.size(); ++i) {
        QCOMPARE(steps[i].step, int64_t(i + 1));
        QVERIFY(steps[i].loss > 0 && steps[i].tokens_per_s > 0);
        QCOMPARE(steps[i].heldout_ppl.has_value(), steps[i].step % 3 == 0);
    }
    QCOMPARE(steps[0].lr, 5e-5);  // warmup 2: half the peak at the first update
    const RunDetail detail = store.run(runs[0].id);
    QCOMPARE(detail.metrics.front().name, std::string("heldout_perplexity"));
    QCOMPARE(detail.metrics.front().value, *steps.back().heldout_ppl);
    LoadedModel m = load_model(out);
    QVERIFY(m.config.mla.present);
    QCOMPARE(m.config.mla.d_kv, int64_t(16));
    QVERIFY(fs::exists(out + ".checkpoints/step-000006/optimizer.pt"));
    // The same command again: the output exists, nothing is overwritten.
    QCOMPARE(run_cli_capture({"finetune", model, "--data", data, "--steps", "6", "--batch", "2", "--seq-len", "32",
                              "--db", db, "--out", out},
                             o, e),
             2);
    QVERIFY(e.find("already exists") != std::string::npos);
}

QTEST_GUILESS_MAIN(TestStoreTraining)
#include "test_store_training.moc"
