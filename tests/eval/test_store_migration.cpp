// Results-store schema migrations: a file written by an older version opens, gains the new
// columns with the values the old rows meant, and nothing recorded is lost. Also checks that
// `mlawb eval` records the KV cache settings and both byte figures (schema v2).
#include <QtTest/QtTest>

#include "app/cli/commands.h"
#include "eval/sqlite_test_support.h"
#include "eval/store.h"
#include "eval/store_sqlite.h"
#include "test_support.h"

#include <QTemporaryDir>
#include <cmath>
#include <filesystem>
#include <sstream>

using namespace mlawb;
using mlawb::test::model_dir;
using mlawb::test::source_dir;
namespace fs = std::filesystem;

class TestStoreMigration : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void version1FileGainsCacheColumns();
    void evalRecordsCacheSettingsAndBothByteFigures_data();
    void evalRecordsCacheSettingsAndBothByteFigures();
};

void TestStoreMigration::version1FileGainsCacheColumns() {
    QTemporaryDir dir;
    const std::string path = (fs::path(dir.path().toStdString()) / "v1.db").string();
    // A version-1 file as version 1 of the program left it: its schema, one finished run with
    // a memory row, user_version 1.
    const auto& migrations = store_detail::schema_migrations();
    QVERIFY(!migrations.empty());
    QCOMPARE(migrations.front().version, 1);
    exec_raw(path, std::string(migrations.front().sql) + R"sql(
        INSERT INTO models VALUES (1, '/m', 'hash1', '{}');
        INSERT INTO settings VALUES (1, 'strategy=full', '', '');
        INSERT INTO runs VALUES (1, 1, 1, 'perplexity', 'heldout', '{}', 'key1', 'finished',
                                 '2026-01-01T00:00:00Z', '2026-01-01T00:01:00Z', 'abc', 'h', 'cpu', 1, 0, '');
        INSERT INTO metrics VALUES (1, 'perplexity', '', 54.3);
        INSERT INTO memory VALUES (1, 1536, 3072.0, NULL, NULL, 1000, NULL);
        PRAGMA user_version = 1;)sql");
    QCOMPARE(query_column(path, "PRAGMA user_version"), std::vector<std::string>{"1"});

    ResultsStore store = ResultsStore::open(path);
    QCOMPARE(store.schema_version(), kResultsSchemaVersion);
    QCOMPARE(store.integrity_check(), std::string("ok"));
    const RunDetail d = store.run(1);
    QCOMPARE(d.metrics.size(), size_t(1));
    QCOMPARE(d.metrics[0].value, 54.3);
    QVERIFY(d.memory.has_value());
    QCOMPARE(d.memory->kv_elements_per_token, 1536);
    QCOMPARE(d.memory->bytes_formula, 3072.0);
    QCOMPARE(d.memory->kv_bits, 16);                // a version-1 run used a 16-bit cache
    QCOMPARE(d.memory->kv_group, 0);
    QCOMPARE(d.memory->kv_residual, 0);
    QCOMPARE(d.memory->bytes_real, 3072.0);         // real = nominal at 16 bits
    QCOMPARE(d.memory->peak_rss_bytes.value_or(-1), 1000);

    // The new columns take new rows; the CHECK keeps bits inside what the program reads.
    MemoryRow quantized = *d.memory;
    quantized.kv_bits = 4;
    quantized.kv_group = 64;
    quantized.kv_residual = 128;
    quantized.bytes_formula = 768.0;
    quantized.bytes_real = 864.0;
    store.record_memory(1, quantized);
    const RunDetail again = store.run(1);
    QCOMPARE(again.memory->kv_bits, 4);
    QCOMPARE(again.memory->kv_group, 64);
    QCOMPARE(again.memory->kv_residual, 128);
    QCOMPARE(again.memory->bytes_real, 864.0);
    quantized.kv_bits = 3;
    MLAWB_EXPECT_ERROR(store.record_memory(1, quantized), "memory");
    QCOMPARE(store.run(1).memory->kv_bits, 4);  // the refused write changed nothing
}

void TestStoreMigration::evalRecordsCacheSettingsAndBothByteFigures_data() {
    QTest::addColumn<QString>("mla");
    QTest::addColumn<int>("bits");
    QTest::addColumn<int>("group");
    QTest::addColumn<int>("residual");
    QTest::newRow("original, 16-bit cache") << "" << 16 << 0 << 0;
    QTest::newRow("original, int4 cache") << "strategy=full,svd=none,kv_bits=4" << 4 << 64 << 128;
    QTest::newRow("MLA d_kv 16, int8 cache, group 32") << "strategy=high,r=4,d_kv=16,svd=joint,kv_bits=8,kv_group=32,residual=16"
                                                       << 8 << 32 << 16;
}

void TestStoreMigration::evalRecordsCacheSettingsAndBothByteFigures() {
    QFETCH(QString, mla);
    QFETCH(int, bits);
    QFETCH(int, group);
    QFETCH(int, residual);
    const std::string model = model_dir("wb-tiny-mha");
    const std::string mc = source_dir() + "/tests/data/mc/tiny.jsonl";
    if (!fs::exists(model + "/config.json")) QFAIL(("fixture model missing: " + model).c_str());
    if (!fs::exists(mc)) QFAIL(("test data missing: " + mc).c_str());
    QTemporaryDir dir;
    const std::string db = (fs::path(dir.path().toStdString()) / "r.db").string();
    std::vector<std::string> args = {"eval", model, "--mc", mc, "--limit", "2", "--db", db};
    if (!mla.isEmpty()) {
        args.push_back("--mla");
        args.push_back(mla.toStdString());
    }
    std::ostringstream out, err;
    QVERIFY2(cli::run_cli(args, out, err) == 0, err.str().c_str());

    ResultsStore store = ResultsStore::open(db, ResultsStore::OpenMode::ExistingOnly);
    const auto runs = store.list_runs();
    QCOMPARE(runs.size(), size_t(1));
    const RunDetail d = store.run(runs[0].id);
    QVERIFY(d.memory.has_value());
    QCOMPARE(d.memory->kv_bits, bits);
    QCOMPARE(d.memory->kv_group, int64_t(group));
    QCOMPARE(d.memory->kv_residual, int64_t(residual));
    // Nominal = elements x bits / 8; real adds a 2-byte scale and a 2-byte zero point per group.
    QCOMPARE(d.memory->bytes_formula, d.memory->kv_elements_per_token * bits / 8.0);
    if (bits == 16) {
        QCOMPARE(d.memory->bytes_real, d.memory->bytes_formula);
    } else {
        const double groups = double(d.memory->kv_elements_per_token) / group;
        QVERIFY2(std::abs(d.memory->bytes_real - (d.memory->bytes_formula + 4.0 * groups)) < 1e-9,
                 qPrintable(QString("real %1 nominal %2 groups %3").arg(d.memory->bytes_real)
                                .arg(d.memory->bytes_formula).arg(groups)));
    }
}

QTEST_GUILESS_MAIN(TestStoreMigration)
#include "test_store_migration.moc"
