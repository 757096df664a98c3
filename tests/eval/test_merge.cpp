// `mlawb merge` over small synthetic stores (eval/store_merge.h): idempotence, conflicts
// reported with the first file's results kept, and stores of an unknown or the current schema.
// Merging real per-shard sweep stores is in test_sweep.
#include "core/error.h"
#include "eval/cli_test_support.h"
#include "eval/sqlite_test_support.h"
#include "eval/store.h"
#include "eval/store_dump.h"
#include "eval/store_merge.h"
#include "test_support.h"

#include <QTemporaryDir>
#include <QTest>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

using namespace mlawb;
using json = nlohmann::json;
namespace fs = std::filesystem;
using test::CliRun;
using test::cli_run;

// QCOMPARE for std::string, printing both sides on failure.
#define QCOMPARE_STR(a, b) QCOMPARE(QString::fromStdString(a), QString::fromStdString(b))

namespace {

// A small synthetic store: one model, settings and runs as the test lists them.
struct FakeRun {
    std::string spec, dataset;
    bool finished;
    std::vector<std::pair<std::string, double>> samples;  // id, score
};
void make_store(const std::string& path, const std::vector<FakeRun>& runs) {
    ResultsStore s = ResultsStore::open(path);
    const int64_t model = s.upsert_model("/m", "hash-m", "{}");
    for (const FakeRun& r : runs) {
        RunRequest req;
        req.model_id = model;
        req.setting_id = s.upsert_setting(r.spec, "");
        req.task = "longbench";
        req.dataset = r.dataset;
        req.options_json = R"({"limit": 2})";
        const RunHandle h = s.begin_or_resume_run(req);
        double sum = 0;
        for (const auto& [id, score] : r.samples) {
            SampleRow row;
            row.sample_id = id;
            row.score = score;
            row.prediction = "p" + std::to_string(score);
            s.record_sample(h.run_id, row);
            sum += score;
        }
        if (r.finished) {
            s.record_metrics(h.run_id, {{"score", "", sum}, {"score", "0-512", sum}});
            MemoryRow mem;
            mem.kv_elements_per_token = 10;
            mem.bytes_formula = 20;
            mem.bytes_real = 20;
            s.record_memory(h.run_id, mem);
            s.finish_run(h.run_id, RunStatus::Finished);
        }
    }
}

}  // namespace

class TestMerge : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void mergeIdempotentWithConflicts();
    void mergeRefusesUnknownSchema_data();
    void mergeRefusesUnknownSchema();
    void mergeKnowsTheCurrentSchema();
};

void TestMerge::mergeIdempotentWithConflicts() {
    QTemporaryDir tmp;
    const std::string a = tmp.path().toStdString() + "/a.db", b = tmp.path().toStdString() + "/b.db",
                      out = tmp.path().toStdString() + "/all.db";
    make_store(a, {{"strategy=high,r=4", "passkey", true, {{"p1", 1}, {"p2", 0}}},
                   {"strategy=high,r=8", "passkey", false, {{"p1", 1}}},
                   {"strategy=low,r=4", "passkey", false, {{"p1", 0}}}});
    make_store(b, {{"strategy=high,r=8", "passkey", true, {{"p1", 1}, {"p2", 1}}},     // completes a's run
                   {"strategy=uniform,r=4", "passkey", true, {{"p1", 0}, {"p2", 0}}},  // new
                   {"strategy=low,r=4", "passkey", false, {{"p2", 1}}},                // extends a's run
                   {"strategy=high,r=4", "passkey", true, {{"p1", 0}, {"p2", 0}}}});   // conflicts with a's
    const MergeReport first = merge_result_stores({a, b}, out);
    QVERIFY(!first.output_existed);
    QCOMPARE(first.runs_total, int64_t(4));
    QCOMPARE(first.sources.size(), size_t(2));
    QCOMPARE(first.sources[0].runs_added, int64_t(3));
    QCOMPARE(first.sources[1].runs_added, int64_t(1));
    QCOMPARE(first.sources[1].runs_completed, int64_t(1));
    QCOMPARE(first.sources[1].runs_extended, int64_t(1));
    QCOMPARE(first.sources[1].runs_conflicting, int64_t(1));
    QCOMPARE(first.conflicts.size(), size_t(1));
    QCOMPARE(QString::fromStdString(first.conflicts[0].setting), QString("strategy=high,r=4"));
    QVERIFY2(first.conflicts[0].reason.find("sample p1") != std::string::npos, first.conflicts[0].reason.c_str());
    // The conflicting run keeps the first source's results; the completed one took b's.
    QCOMPARE_STR(query_column(out, "SELECT group_concat(x.score) FROM samples x JOIN runs r ON r.id = x.run_id JOIN settings s "
                               "ON s.id = r.setting_id WHERE s.spec = 'strategy=high,r=4' ORDER BY x.sample_id")[0],
             std::string("1.0,0.0"));
    QCOMPARE_STR(query_column(out, "SELECT r.status || ' ' || (SELECT count(*) FROM samples WHERE run_id = r.id) || ' ' || "
                               "(SELECT value FROM metrics WHERE run_id = r.id AND bucket = '') FROM runs r JOIN settings s "
                               "ON s.id = r.setting_id WHERE s.spec = 'strategy=high,r=8'")[0],
             std::string("finished 2 2.0"));
    QCOMPARE(count_rows(out, "SELECT count(*) FROM samples x JOIN runs r ON r.id = x.run_id JOIN settings s ON s.id = "
                             "r.setting_id WHERE s.spec = 'strategy=low,r=4'"),
             int64_t(2));
    QCOMPARE(count_rows(out, "SELECT count(*) FROM memory"), int64_t(3));
    QCOMPARE(count_rows(out, "SELECT count(*) FROM models"), int64_t(1));
    {
        ResultsStore s = ResultsStore::open(out, ResultsStore::OpenMode::ExistingOnly);
        QCOMPARE(QString::fromStdString(s.integrity_check()), QString("ok"));
    }

    // Idempotent: merging the same sources into the result changes no row (ids included).
    const std::string before = dump_all(out);
    const MergeReport second = merge_result_stores({a, b}, out);
    QVERIFY(second.output_existed);
    QCOMPARE(QString::fromStdString(dump_all(out)), QString::fromStdString(before));
    for (const MergeSourceReport& r : second.sources) {
        QCOMPARE(r.runs_added + r.runs_completed + r.runs_extended, int64_t(0));
        QCOMPARE(r.samples_added, int64_t(0));
    }
    QCOMPARE(second.conflicts.size(), size_t(1));  // still reported, still not overwritten
    // The output merged into itself, and a copy of it, change nothing either.
    const MergeReport self = merge_result_stores({out}, out);
    QCOMPARE(self.conflicts.size(), size_t(0));
    QCOMPARE(QString::fromStdString(dump_all(out)), QString::fromStdString(before));

    // The CLI: exit status 1 with the conflict on stderr; no temporary file left behind.
    const CliRun cli = cli_run({"merge", a, b, "-o", out});
    QCOMPARE(cli.status, 1);
    QVERIFY2(cli.err.find("conflict:") != std::string::npos && cli.err.find("kept the output's") != std::string::npos,
             cli.err.c_str());
    for (const auto& entry : fs::directory_iterator(tmp.path().toStdString()))
        QVERIFY2(entry.path().string().find(".tmp") == std::string::npos, entry.path().c_str());
    const CliRun clean = cli_run({"merge", a, "-o", tmp.path().toStdString() + "/only-a.db", "--json"});
    QVERIFY2(clean.status == 0, clean.err.c_str());
    QCOMPARE(json::parse(clean.out)["runs_total"].get<int>(), 3);
}

void TestMerge::mergeRefusesUnknownSchema_data() {
    QTest::addColumn<QString>("sql");
    QTest::addColumn<QString>("needle");
    QTest::newRow("older version") << "PRAGMA user_version = 1" << "schema version 1";
    QTest::newRow("newer version") << "PRAGMA user_version = 99" << "schema version 99";
    QTest::newRow("unknown table") << "CREATE TABLE training_log (run_id INTEGER, step INTEGER, loss REAL)"
                                   << "table 'training_log' is unknown to merge";
    QTest::newRow("unknown column") << "ALTER TABLE runs ADD COLUMN gpu_name TEXT" << "runs.gpu_name";
}

void TestMerge::mergeRefusesUnknownSchema() {
    QFETCH(QString, sql);
    QFETCH(QString, needle);
    QTemporaryDir tmp;
    const std::string good = tmp.path().toStdString() + "/good.db", bad = tmp.path().toStdString() + "/bad.db",
                      out = tmp.path().toStdString() + "/out.db";
    make_store(good, {{"strategy=high,r=4", "passkey", true, {{"p1", 1}}}});
    make_store(bad, {{"strategy=low,r=4", "passkey", true, {{"p1", 1}}}});
    exec_raw(bad, sql.toStdString());
    const std::string n = needle.toStdString();
    MLAWB_EXPECT_ERROR(merge_result_stores({good, bad}, out), "bad.db", n.c_str());
    QVERIFY(!fs::exists(out));  // nothing written: the check runs before any copy
    // An existing output keeps its bytes when a source is refused.
    merge_result_stores({good}, out);
    const std::string before = dump_all(out);
    MLAWB_EXPECT_ERROR(merge_result_stores({bad}, out), n.c_str());
    QCOMPARE(QString::fromStdString(dump_all(out)), QString::fromStdString(before));
    const CliRun cli = cli_run({"merge", good, bad, "-o", out});
    QCOMPARE(cli.status, 2);
    QVERIFY2(cli.err.find(n) != std::string::npos, cli.err.c_str());
}

void TestMerge::mergeKnowsTheCurrentSchema() {
    // A store made by this build has exactly the tables and columns merge copies. When the
    // schema changes (a v3 table, a new column), this fails until merge_tables() is updated.
    QTemporaryDir tmp;
    const std::string db = tmp.path().toStdString() + "/fresh.db";
    { ResultsStore::open(db); }
    std::vector<std::string> expected;
    for (const MergeTable& t : merge_tables()) expected.push_back(t.name);
    std::sort(expected.begin(), expected.end());
    QVERIFY(query_column(db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name") ==
            expected);
    for (const MergeTable& t : merge_tables()) {
        std::vector<std::string> columns = query_column(db, std::string("SELECT name FROM pragma_table_info('") + t.name + "')");
        std::vector<std::string> listed = t.columns;
        std::sort(columns.begin(), columns.end());
        std::sort(listed.begin(), listed.end());
        QVERIFY2(columns == listed, t.name);
    }
    const std::string out = tmp.path().toStdString() + "/out.db";
    const MergeReport r = merge_result_stores({db}, out);
    QCOMPARE(r.runs_total, int64_t(0));
    QCOMPARE(count_rows(out, "PRAGMA user_version"), int64_t(kResultsSchemaVersion));
}

QTEST_GUILESS_MAIN(TestMerge)
#include "test_merge.moc"
