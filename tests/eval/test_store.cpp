// The results store: schema and pragmas, idempotent writes, resume, two writer processes at
// once, a writer killed with SIGKILL, refused files, the content hash, compare/export and the
// runs/compare/export commands.
#include "app/cli/commands.h"
#include "core/error.h"
#include "eval/store.h"
#include "test_support.h"
#include "eval/sqlite_test_support.h"

#include <QProcess>
#include <QTemporaryDir>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sqlite3.h>
#include <sstream>

using namespace mlawb;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string temp_file(const QTemporaryDir& dir, const std::string& name) { return dir.path().toStdString() + "/" + name; }

// Model, setting and run request the tests vary one field at a time.
struct RunInputs {
    std::string model_hash = "hash-a", spec = "strategy=full", kept = "", task = "longbench", dataset = "passkey";
    std::string options = R"({"limit": 10, "max_prompt": 1024})";
};

RunHandle begin(ResultsStore& store, const RunInputs& in) {
    RunRequest r;
    r.model_id = store.upsert_model("/models/" + in.model_hash, in.model_hash, "{}");
    r.setting_id = store.upsert_setting(in.spec, in.kept);
    r.task = in.task;
    r.dataset = in.dataset;
    r.options_json = in.options;
    return store.begin_or_resume_run(r);
}

SampleRow sample(const std::string& id, double score, const std::string& prediction = "p") {
    SampleRow s;
    s.sample_id = id;
    s.prompt_tokens = 300;
    s.truncated = true;
    s.prediction = prediction;
    s.score = score;
    s.latency_ms = 12.5;
    s.generated_tokens = 4;
    s.length = 250;
    return s;
}

QString child_exe() { return QStringLiteral(MLAWB_STORE_WRITER_CHILD); }

struct CliRun {
    int status;
    std::string out, err;
};
CliRun cli_run(const std::vector<std::string>& args) {
    std::ostringstream out, err;
    const int status = cli::run_cli(args, out, err);
    return {status, out.str(), err.str()};
}

}  // namespace

class TestStore : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void sha256KnownVectors_data();
    void sha256KnownVectors();
    void schemaCreatedWithPragmas();
    void upsertsAreIdempotent();
    void runIdentity_data();
    void runIdentity();
    void resumeReturnsRecordedSamples();
    void recordSampleTwiceKeepsOneRow();
    void metricsAndMemoryRoundTrip();
    void refusedFiles_data();
    void refusedFiles();
    void refusedWrites_data();
    void refusedWrites();
    void twoProcessesWriteAtOnce();
    void killedWriterLeavesConsistentDbAndResumes();
    void modelContentHash();
    void compareRuns();
    void exportCsv();
    void cliRunsCompareExport();
};

void TestStore::sha256KnownVectors_data() {
    QTest::addColumn<QByteArray>("input");
    QTest::addColumn<QString>("digest");
    // FIPS 180-4 examples plus the padding edges (55, 56 and 64 bytes: one or two final blocks).
    QTest::newRow("empty") << QByteArray() << "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    QTest::newRow("abc") << QByteArray("abc") << "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    QTest::newRow("two blocks") << QByteArray("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                                << "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
    QTest::newRow("55 bytes") << QByteArray(55, 'a') << "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318";
    QTest::newRow("56 bytes") << QByteArray(56, 'a') << "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a";
    QTest::newRow("64 bytes") << QByteArray(64, 'a') << "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb";
    QTest::newRow("million a") << QByteArray(1000000, 'a')
                               << "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
}

void TestStore::sha256KnownVectors() {
    QFETCH(QByteArray, input);
    QFETCH(QString, digest);
    QCOMPARE(QString::fromStdString(sha256_hex(input.toStdString())), digest);
}

void TestStore::schemaCreatedWithPragmas() {
    QTemporaryDir dir;
    const std::string path = temp_file(dir, "new.db");
    ResultsStore store = ResultsStore::open(path);
    QCOMPARE(store.schema_version(), kResultsSchemaVersion);
    QCOMPARE(store.pragma("journal_mode"), std::string("wal"));
    QCOMPARE(store.pragma("foreign_keys"), std::string("1"));
    QCOMPARE(store.pragma("busy_timeout"), std::string("10000"));
    QCOMPARE(store.integrity_check(), std::string("ok"));
    // Seen from another connection, as the sqlite3 CLI sees the file.
    QCOMPARE(query_column(path, "PRAGMA user_version"), std::vector<std::string>{std::to_string(kResultsSchemaVersion)});
    QCOMPARE(query_column(path, "PRAGMA journal_mode"), std::vector<std::string>{"wal"});
    QCOMPARE(query_column(path, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"),
             (std::vector<std::string>{"memory", "metrics", "models", "runs", "samples", "settings", "training_steps"}));
    QCOMPARE(query_column(path, "SELECT name FROM pragma_table_info('samples') ORDER BY cid"),
             (std::vector<std::string>{"run_id", "sample_id", "prompt_tokens", "truncated", "prediction", "score",
                                       "latency_ms", "generated_tokens", "length", "details_json"}));
    // Reopening an up-to-date file changes nothing.
    store = ResultsStore::open(path, ResultsStore::OpenMode::ExistingOnly);
    QCOMPARE(store.schema_version(), kResultsSchemaVersion);
    MLAWB_EXPECT_ERROR(store.pragma("writable_schema"), "pragma", "not one of");
}

void TestStore::upsertsAreIdempotent() {
    QTemporaryDir dir;
    ResultsStore store = ResultsStore::open(temp_file(dir, "r.db"));
    const int64_t model = store.upsert_model("/a/model", "hash-1", R"({"n_layer": 6})");
    QCOMPARE(store.upsert_model("/a/model", "hash-1", R"({"n_layer": 6})"), model);
    QCOMPARE(store.upsert_model("/moved/model", "hash-1", R"({"n_layer": 6})"), model);  // same content, new place
    QVERIFY(store.upsert_model("/a/model", "hash-2", "{}") != model);
    QCOMPARE(query_column(store.path(), "SELECT path FROM models WHERE content_hash = 'hash-1'"),
             std::vector<std::string>{"/moved/model"});

    const std::string kept = R"({"kept_pairs": [[[0, 1]]]})";
    const int64_t setting = store.upsert_setting("strategy=high,r=2", kept);
    QCOMPARE(store.upsert_setting("strategy=high,r=2", kept), setting);
    QVERIFY(store.upsert_setting("strategy=high,r=2", R"({"kept_pairs": [[[0, 2]]]})") != setting);
    QVERIFY(store.upsert_setting("strategy=full", "") != setting);
    QCOMPARE(query_column(store.path(), "SELECT kept_pairs_hash FROM settings WHERE id = " + std::to_string(setting)),
             std::vector<std::string>{sha256_hex(kept)});
    QCOMPARE(count_rows(store.path(), "SELECT count(*) FROM settings"), 3);
}

void TestStore::runIdentity_data() {
    QTest::addColumn<QString>("field");
    QTest::addColumn<QString>("value");
    QTest::addColumn<bool>("sameRun");
    QTest::newRow("identical") << "none" << "" << true;
    QTest::newRow("options reordered and spaced") << "options" << R"({ "max_prompt":1024,"limit":10 })" << true;
    QTest::newRow("other limit") << "options" << R"({"limit": 20, "max_prompt": 1024})" << false;
    QTest::newRow("other dataset") << "dataset" << "kv_retrieval" << false;
    QTest::newRow("other task") << "task" << "perplexity" << false;
    QTest::newRow("other spec") << "spec" << "strategy=high,r=4" << false;
    QTest::newRow("other kept pairs") << "kept" << R"({"kept_pairs": [[[3]]]})" << false;
    QTest::newRow("other model content") << "model" << "hash-b" << false;
}

void TestStore::runIdentity() {
    QFETCH(QString, field);
    QFETCH(QString, value);
    QFETCH(bool, sameRun);
    QTemporaryDir dir;
    ResultsStore store = ResultsStore::open(temp_file(dir, "r.db"));
    const RunHandle first = begin(store, {});
    QVERIFY(!first.resumed);
    RunInputs other;
    const std::string v = value.toStdString();
    if (field == "options") other.options = v;
    if (field == "dataset") other.dataset = v;
    if (field == "task") other.task = v;
    if (field == "spec") other.spec = v;
    if (field == "kept") other.kept = v;
    if (field == "model") other.model_hash = v;
    const RunHandle second = begin(store, other);
    QCOMPARE(second.run_id == first.run_id, sameRun);
    QCOMPARE(second.run_key == first.run_key, sameRun);
    QCOMPARE(second.resumed, sameRun);
    QCOMPARE(static_cast<int64_t>(store.list_runs().size()), sameRun ? 1 : 2);
}

void TestStore::resumeReturnsRecordedSamples() {
    QTemporaryDir dir;
    ResultsStore store = ResultsStore::open(temp_file(dir, "r.db"));
    const RunHandle run = begin(store, {});
    QVERIFY(run.recorded_sample_ids.empty());
    for (const char* id : {"a", "b", "c"}) QVERIFY(store.record_sample(run.run_id, sample(id, 1)));
    store.finish_run(run.run_id, RunStatus::Cancelled);
    QCOMPARE(store.run(run.run_id).summary.status, RunStatus::Cancelled);

    const RunHandle resumed = begin(store, {});
    QCOMPARE(resumed.run_id, run.run_id);
    QVERIFY(resumed.resumed);
    QVERIFY(!resumed.finished);
    QCOMPARE(resumed.recorded_sample_ids, (std::set<std::string>{"a", "b", "c"}));
    const RunDetail running = store.run(run.run_id);
    QCOMPARE(running.summary.status, RunStatus::Running);
    QCOMPARE(running.summary.finished_at, std::string());

    QVERIFY(store.record_sample(run.run_id, sample("d", 0)));
    store.finish_run(run.run_id, RunStatus::Finished);
    const RunHandle again = begin(store, {});
    QVERIFY(again.finished);
    QCOMPARE(again.recorded_sample_ids.size(), size_t(4));
    const RunDetail finished = store.run(run.run_id);
    QCOMPARE(finished.summary.status, RunStatus::Finished);  // re-opening a finished run leaves it finished
    QVERIFY(!finished.summary.finished_at.empty());
    QCOMPARE(finished.summary.samples, 4);
}

void TestStore::recordSampleTwiceKeepsOneRow() {
    QTemporaryDir dir;
    ResultsStore store = ResultsStore::open(temp_file(dir, "r.db"));
    const int64_t run = begin(store, {}).run_id;
    QVERIFY(store.record_sample(run, sample("x", 1, "first")));
    QVERIFY(!store.record_sample(run, sample("x", 0, "second")));
    QCOMPARE(store.record_samples(run, {sample("x", 1), sample("y", 1), sample("y", 1), sample("z", 0)}), 2);
    const std::vector<SampleRow> rows = store.samples(run);
    QCOMPARE(rows.size(), size_t(3));
    QCOMPARE(rows[0].sample_id, std::string("x"));
    QCOMPARE(rows[0].prediction, std::string("first"));  // the first record stands
    QCOMPARE(rows[0].prompt_tokens, 300);
    QVERIFY(rows[0].truncated);
    QCOMPARE(rows[0].latency_ms, 12.5);
    QCOMPARE(rows[0].length, 250);
    QCOMPARE(store.recorded_sample_ids(run), (std::set<std::string>{"x", "y", "z"}));
}

void TestStore::metricsAndMemoryRoundTrip() {
    QTemporaryDir dir;
    ResultsStore store = ResultsStore::open(temp_file(dir, "r.db"));
    const int64_t run = begin(store, {}).run_id;
    store.record_metrics(run, {{"score", "", 50.0}, {"score", "0-512", 60.0}, {"accuracy", "", 0.5}});
    store.record_metrics(run, {{"score", "", 55.5}});  // recomputed after a resume: replaced in place
    store.record_memory(run, {1536, 3072.0, std::nullopt, std::nullopt, 123456789, std::nullopt});
    store.record_memory(run, {1536, 3072.0, 65536, 32, 123456789, std::nullopt});
    const RunDetail d = store.run(run);
    QCOMPARE(d.metrics.size(), size_t(3));
    QCOMPARE(d.metrics[0].value, 55.5);
    QCOMPARE(d.metrics[1].bucket, std::string("0-512"));
    QVERIFY(d.summary.main_metric.has_value());
    QCOMPARE(d.summary.main_metric->name, std::string("score"));  // first recorded overall metric
    QCOMPARE(d.summary.main_metric->value, 55.5);
    QVERIFY(d.memory.has_value());
    QCOMPARE(d.memory->kv_elements_per_token, 1536);
    QCOMPARE(d.memory->bytes_measured.value_or(-1), 65536);
    QCOMPARE(d.memory->peak_rss_bytes.value_or(-1), 123456789);
    QVERIFY(!d.memory->peak_gpu_bytes.has_value());
    QCOMPARE(count_rows(store.path(), "SELECT count(*) FROM memory"), 1);
    QCOMPARE(d.options_json, std::string(R"({"limit":10,"max_prompt":1024})"));
}

void TestStore::refusedFiles_data() {
    QTest::addColumn<QString>("setup");
    QTest::addColumn<QString>("needle");
    QTest::newRow("not a database") << "text" << "not an SQLite database";
    QTest::newRow("newer schema") << "newer" << "schema version 99 is newer than this program's";
    QTest::newRow("another program's database") << "foreign" << "another program";
    QTest::newRow("missing file for reading") << "missing" << "no such results database";
    QTest::newRow("a folder") << "folder" << "is a folder";
}

void TestStore::refusedFiles() {
    QFETCH(QString, setup);
    QFETCH(QString, needle);
    QTemporaryDir dir;
    const std::string path = temp_file(dir, "bad.db");
    if (setup == "text") std::ofstream(path) << "run_id,score\n1,0.5\n" << std::string(2000, 'x');
    if (setup == "newer") exec_raw(path, "CREATE TABLE runs (id INTEGER); PRAGMA user_version = 99;");
    if (setup == "foreign") exec_raw(path, "CREATE TABLE contacts (name TEXT);");
    if (setup == "folder") fs::create_directory(path);
    const auto mode = setup == "missing" ? ResultsStore::OpenMode::ExistingOnly : ResultsStore::OpenMode::CreateIfMissing;
    const QByteArray needle_utf8 = needle.toUtf8();  // outlives the macro's use of the text
    MLAWB_EXPECT_ERROR(ResultsStore::open(path, mode), path.c_str(), needle_utf8.constData());
    if (setup == "missing") QVERIFY(!fs::exists(path));  // reading never creates a file
    if (setup == "newer") QCOMPARE(query_column(path, "PRAGMA user_version"), std::vector<std::string>{"99"});
}

void TestStore::refusedWrites_data() {
    QTest::addColumn<QString>("write");
    QTest::addColumn<QString>("where");
    QTest::addColumn<QString>("needle");
    QTest::newRow("sample of unknown run") << "sample" << "samples: insert" << "no run with id 999";
    QTest::newRow("non-finite score") << "nan score" << "samples: insert" << "not a finite number";
    QTest::newRow("options not an object") << "options" << "runs: begin" << "must be a JSON object";
    QTest::newRow("check constraint") << "malformed" << "runs: insert" << "CHECK constraint failed";
    QTest::newRow("unknown model id") << "model" << "runs: begin" << "no model with id 77";
    QTest::newRow("finish as running") << "finish" << "runs: finish" << "not running";
    QTest::newRow("metric of unknown run") << "metric" << "metrics: upsert" << "no run with id 999";
}

void TestStore::refusedWrites() {
    QFETCH(QString, write);
    QFETCH(QString, where);
    QFETCH(QString, needle);
    QTemporaryDir dir;
    const std::string path = temp_file(dir, "r.db");
    ResultsStore store = ResultsStore::open(path);
    const int64_t run = begin(store, {}).run_id;
    RunRequest request;
    request.model_id = store.upsert_model("/m", "hash-a", "{}");
    request.setting_id = store.upsert_setting("strategy=full", "");
    request.task = "longbench";
    request.dataset = "other";
    const std::map<QString, std::function<void()>> writes = {
        {"sample", [&] { store.record_sample(999, sample("a", 1)); }},
        {"nan score", [&] { store.record_sample(run, sample("a", std::nan(""))); }},
        {"options", [&] { request.options_json = "[1, 2]", store.begin_or_resume_run(request); }},
        {"malformed", [&] { request.malformed_lines = -1, store.begin_or_resume_run(request); }},
        {"model", [&] { request.model_id = 77, store.begin_or_resume_run(request); }},
        {"finish", [&] { store.finish_run(run, RunStatus::Running); }},
        {"metric", [&] { store.record_metrics(999, {{"score", "", 1}}); }},
    };
    const QByteArray where_utf8 = where.toUtf8(), needle_utf8 = needle.toUtf8();  // outlive the macro's use of the text
    MLAWB_EXPECT_ERROR(writes.at(write)(), path.c_str(), where_utf8.constData(), needle_utf8.constData());
    // A refused write leaves nothing behind and the store usable.
    QCOMPARE(store.list_runs().size(), size_t(1));
    QCOMPARE(store.samples(run).size(), size_t(0));
    QVERIFY(store.record_sample(run, sample("ok", 1)));
}

void TestStore::twoProcessesWriteAtOnce() {
    QTemporaryDir dir;
    const std::string path = temp_file(dir, "shared.db");  // not created yet: both race to create the schema
    const int count = 200;
    const qint64 start_at = QDateTime::currentMSecsSinceEpoch() + 1500;  // after both have loaded
    QProcess a, b;
    for (auto [child, tag] : {std::pair{&a, "A"}, std::pair{&b, "B"}})
        child->start(child_exe(), {QString::fromStdString(path), "concurrent", tag, QString::number(count),
                                   QString::number(start_at)});
    for (QProcess* child : {&a, &b}) {
        QVERIFY2(child->waitForFinished(120000), "writer did not finish in 2 minutes");
        const QByteArray err = child->readAllStandardError();
        QVERIFY2(child->exitStatus() == QProcess::NormalExit && child->exitCode() == 0, err.constData());
        QVERIFY2(err.isEmpty(), err.constData());
    }
    ResultsStore store = ResultsStore::open(path, ResultsStore::OpenMode::ExistingOnly);
    QCOMPARE(store.integrity_check(), std::string("ok"));
    std::map<std::string, RunSummary> by_dataset;
    for (const auto& r : store.list_runs()) by_dataset[r.dataset] = r;
    QCOMPARE(by_dataset.size(), size_t(3));  // A, B and the shared run, each once
    QCOMPARE(by_dataset["A"].samples, count);
    QCOMPARE(by_dataset["B"].samples, count);
    QCOMPARE(by_dataset["A"].status, RunStatus::Finished);
    // Shared: A-i and B-i from each, and common-i written by both but stored once.
    QCOMPARE(by_dataset["shared"].samples, 2 * count + count / 4);
    QCOMPARE(count_rows(path, "SELECT count(*) FROM models"), 1);
    QCOMPARE(count_rows(path, "SELECT count(*) FROM settings"), 1);
}

void TestStore::killedWriterLeavesConsistentDbAndResumes() {
    QTemporaryDir dir;
    const std::string path = temp_file(dir, "killed.db");
    const int total = 20000;
    int64_t rows_before = 0;
    for (int round = 1; round <= 3; ++round) {
        QProcess child;
        child.start(child_exe(), {QString::fromStdString(path), "loop", QString::number(total)});
        QVERIFY(child.waitForStarted());
        // Let it get well into the run (past a WAL auto-checkpoint at ~1000 pages), then SIGKILL.
        const int64_t kill_after = rows_before + 400 * round;
        int64_t seen = 0;
        QByteArray pending;
        while (seen < kill_after) {
            QVERIFY2(child.state() == QProcess::Running || child.bytesAvailable() > 0, child.readAllStandardError().constData());
            child.waitForReadyRead(20000);
            pending += child.readAllStandardOutput();
            int newline;
            while ((newline = pending.indexOf('\n')) >= 0) {
                const QByteArray line = pending.left(newline);
                pending.remove(0, newline + 1);
                if (line.startsWith("recorded ")) seen = line.mid(9).toLongLong();
                if (line == "finished") QFAIL("the writer finished before it could be killed");
            }
        }
        QCOMPARE(::kill(static_cast<pid_t>(child.processId()), SIGKILL), 0);
        QVERIFY(child.waitForFinished(20000));
        QCOMPARE(child.exitStatus(), QProcess::CrashExit);

        ResultsStore store = ResultsStore::open(path, ResultsStore::OpenMode::ExistingOnly);
        QCOMPARE(store.integrity_check(), std::string("ok"));
        const int64_t rows = count_rows(path, "SELECT count(*) FROM samples");
        QCOMPARE(count_rows(path, "SELECT count(DISTINCT sample_id) FROM samples"), rows);
        QVERIFY2(rows >= kill_after && rows < total, qPrintable(QString("%1 rows after kill").arg(rows)));
        qInfo("round %d: killed after seeing %lld samples recorded; %lld rows in the file", round, (long long)seen,
              (long long)rows);
        QCOMPARE(store.list_runs().front().status, RunStatus::Running);
        rows_before = rows;
    }
    QProcess child;
    child.start(child_exe(), {QString::fromStdString(path), "loop", QString::number(total)});
    QVERIFY(child.waitForFinished(300000));
    QVERIFY2(child.exitCode() == 0, child.readAllStandardError().constData());
    const QByteArray out = child.readAllStandardOutput();
    QVERIFY2(out.startsWith("resumed " + QByteArray::number(static_cast<qint64>(rows_before)) + "\n"), out.left(80).constData());
    QVERIFY(out.endsWith("finished\n"));

    ResultsStore store = ResultsStore::open(path, ResultsStore::OpenMode::ExistingOnly);
    QCOMPARE(store.integrity_check(), std::string("ok"));
    QCOMPARE(count_rows(path, "SELECT count(*) FROM samples"), total);
    QCOMPARE(count_rows(path, "SELECT count(DISTINCT sample_id) FROM samples"), total);
    QCOMPARE(store.list_runs().size(), size_t(1));
    QCOMPARE(store.list_runs().front().status, RunStatus::Finished);
}

void TestStore::modelContentHash() {
    const std::string fixture = test::model_dir("wb-tiny-mha");
    MLAWB_REQUIRE_PATH(fixture + "/model.safetensors");
    const std::string original = model_content_hash(fixture);
    QCOMPARE(original.size(), size_t(64));
    QCOMPARE(model_content_hash(fixture), original);
    QVERIFY(model_content_hash(test::model_dir("wb-tiny-gqa")) != original);

    QTemporaryDir dir;
    const fs::path copy = fs::path(dir.path().toStdString()) / "copy";
    fs::create_directory(copy);
    for (const auto& entry : fs::directory_iterator(fixture)) {
        fs::copy_file(entry.path(), copy / entry.path().filename());
        fs::permissions(copy / entry.path().filename(), fs::perms::owner_write, fs::perm_options::add);
    }
    QCOMPARE(model_content_hash(copy.string()), original);  // content, not place

    // One byte of the weights: the first of the data area (first sampled block) and the last
    // of the file (last block). Same header and size, as after fine-tuning.
    const fs::path weights = copy / "model.safetensors";
    uint64_t header_length = 0;
    {
        std::ifstream in(weights, std::ios::binary);
        in.read(reinterpret_cast<char*>(&header_length), 8);  // little-endian host, as the format
    }
    const uint64_t size = fs::file_size(weights);
    auto flip_byte = [&](uint64_t offset) {
        std::fstream f(weights, std::ios::binary | std::ios::in | std::ios::out);
        f.seekg(static_cast<std::streamoff>(offset));
        const char byte = static_cast<char>(f.get() ^ 0x01);
        f.seekp(static_cast<std::streamoff>(offset));
        f.put(byte);
    };
    for (uint64_t offset : {8 + header_length, size - 1}) {
        flip_byte(offset);
        QVERIFY2(model_content_hash(copy.string()) != original, qPrintable(QString("byte %1 not seen").arg(offset)));
        flip_byte(offset);  // back to the original
    }
    QCOMPARE(model_content_hash(copy.string()), original);
    std::ofstream(copy / "generation_config.json", std::ios::app) << " ";
    QVERIFY(model_content_hash(copy.string()) != original);
    fs::remove(copy / "config.json");
    MLAWB_EXPECT_ERROR(model_content_hash(copy.string()), "config.json", "missing");
}

void TestStore::compareRuns() {
    QTemporaryDir dir;
    ResultsStore store = ResultsStore::open(temp_file(dir, "r.db"));
    const int64_t a = begin(store, {}).run_id;
    RunInputs other;
    other.spec = "strategy=2-norm,r=4,d_kv=16,svd=joint";
    const int64_t b = begin(store, other).run_id;
    store.record_samples(a, {sample("s1", 1), sample("s2", 0), sample("s3", 0.5), sample("s4", 1), sample("onlyA", 1)});
    store.record_samples(b, {sample("s1", 0), sample("s2", 1), sample("s3", 0.25), sample("s4", 1), sample("onlyB", 0)});
    store.record_metrics(a, {{"score", "", 70}, {"score", "0-512", 80}});
    store.record_metrics(b, {{"score", "", 60}, {"score", "512-1024", 40}});
    const RunComparison c = store.compare(a, b);
    QCOMPARE(c.metrics.size(), size_t(3));
    QCOMPARE(c.metrics[0].a.value_or(-1), 70.0);
    QCOMPARE(c.metrics[0].b.value_or(-1), 60.0);
    QVERIFY(!c.metrics[1].b.has_value());  // 0-512 only in a
    QCOMPARE(c.metrics[2].bucket, std::string("512-1024"));
    QVERIFY(!c.metrics[2].a.has_value());
    QCOMPARE(c.changed.size(), size_t(3));
    QCOMPARE(c.changed[0].sample_id, std::string("s1"));
    QCOMPARE(c.changed[0].kind, SampleChange::Kind::Lost);
    QCOMPARE(c.changed[1].kind, SampleChange::Kind::Gained);
    QCOMPARE(c.changed[2].kind, SampleChange::Kind::Changed);
    QCOMPARE(c.unchanged, 1);
    QCOMPARE(c.only_a, std::vector<std::string>{"onlyA"});
    QCOMPARE(c.only_b, std::vector<std::string>{"onlyB"});
    MLAWB_EXPECT_ERROR(store.compare(a, 42), "runs: read", "no run with id 42");
}

void TestStore::exportCsv() {
    QTemporaryDir dir;
    ResultsStore store = ResultsStore::open(temp_file(dir, "r.db"));
    RunInputs in;
    in.spec = "strategy=high,r=4";  // a comma: the field must be quoted
    const int64_t a = begin(store, in).run_id;
    begin(store, RunInputs{});  // no metrics: one row with the metric empty
    store.record_metrics(a, {{"score", "", 71.11111111111111}, {"score", "0-512", 50}});
    const std::string out = temp_file(dir, "out.csv");
    QCOMPARE(store.export_csv(out), 3);
    QVERIFY(!fs::exists(out + ".tmp"));
    std::ifstream in_file(out);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in_file, line);) lines.push_back(line.substr(0, line.find('\r')));
    QCOMPARE(lines.size(), size_t(4));
    QCOMPARE(lines[0], std::string("run_id,model,model_hash,setting,task,dataset,status,metric,bucket,value"));
    QCOMPARE(lines[1], std::string("1,/models/hash-a,hash-a,\"strategy=high,r=4\",longbench,passkey,running,score,,71.11111111111111"));
    QCOMPARE(lines[2], std::string("1,/models/hash-a,hash-a,\"strategy=high,r=4\",longbench,passkey,running,score,0-512,50"));
    QCOMPARE(lines[3], std::string("2,/models/hash-a,hash-a,strategy=full,longbench,passkey,running,,,"));
    MLAWB_EXPECT_ERROR(store.export_csv(temp_file(dir, "no/such/folder/out.csv")), "cannot create");
}

void TestStore::cliRunsCompareExport() {
    QTemporaryDir dir;
    const std::string db = temp_file(dir, "cli.db");
    {
        ResultsStore store = ResultsStore::open(db);
        const int64_t a = begin(store, {}).run_id;
        RunInputs in;
        in.spec = "strategy=high,r=4";
        const int64_t b = begin(store, in).run_id;
        store.record_samples(a, {sample("s1", 1), sample("s2", 0)});
        store.record_samples(b, {sample("s1", 0), sample("s2", 0)});
        store.record_metrics(a, {{"score", "", 50}});
        store.record_metrics(b, {{"score", "", 0}});
        store.finish_run(a, RunStatus::Finished);
    }
    CliRun runs = cli_run({"runs", "--db", db, "--json"});
    QCOMPARE(runs.status, 0);
    const json list = json::parse(runs.out)["runs"];
    QCOMPARE(list.size(), size_t(2));
    QCOMPARE(list[0]["status"].get<std::string>(), std::string("finished"));
    QCOMPARE(list[0]["samples"].get<int>(), 2);
    QCOMPARE(list[0]["main_metric"]["value"].get<double>(), 50.0);
    runs = cli_run({"runs", "--db", db});
    QCOMPARE(runs.status, 0);
    QVERIFY2(runs.out.find("strategy=high,r=4") != std::string::npos && runs.out.find("score 50") != std::string::npos,
             runs.out.c_str());

    CliRun compare = cli_run({"compare", "1", "2", "--db", db, "--json"});
    QCOMPARE(compare.status, 0);
    const json c = json::parse(compare.out);
    QCOMPARE(c["metrics"][0]["delta"].get<double>(), -50.0);
    QCOMPARE(c["samples"]["changed"][0]["id"].get<std::string>(), std::string("s1"));
    QCOMPARE(c["samples"]["changed"][0]["kind"].get<std::string>(), std::string("lost"));
    compare = cli_run({"compare", "1", "2", "--db", db});
    QVERIFY2(compare.out.find("-50") != std::string::npos && compare.out.find("lost") != std::string::npos,
             compare.out.c_str());

    const std::string csv = temp_file(dir, "x.csv");
    const CliRun exported = cli_run({"export", "--db", db, "--csv", csv});
    QCOMPARE(exported.status, 0);
    QVERIFY(fs::exists(csv));

    const CliRun missing = cli_run({"runs", "--db", temp_file(dir, "none.db")});
    QCOMPARE(missing.status, 2);
    QVERIFY2(missing.err.find("none.db: open: no such results database") != std::string::npos, missing.err.c_str());
    const CliRun bad_id = cli_run({"compare", "1", "x", "--db", db});
    QCOMPARE(bad_id.status, 2);
    QVERIFY2(bad_id.err.find("RUN_B") != std::string::npos, bad_id.err.c_str());
}

QTEST_GUILESS_MAIN(TestStore)
#include "test_store.moc"
