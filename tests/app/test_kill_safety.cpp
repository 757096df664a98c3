// Crash safety (issue 12): the built `mlawb` is killed with SIGKILL at random moments during
// `eval --mc`, `eval --tasks ... --limit` and `convert`, several times each. After every kill:
// no partial output is visible (the output folder is absent or complete; the DB passes
// PRAGMA integrity_check), and running the same command again completes with results
// identical to an uninterrupted run (scores, every sample's prediction, score and details;
// every output file byte for byte).
//
// The kill moments are uniform over the uninterrupted run's duration, from a seed printed at
// the start; MLAWB_KILL_SEED=<n> repeats a sequence, MLAWB_KILL_ROUNDS=<n> changes the count.
#include "core/error.h"
#include "eval/store.h"
#include "test_support.h"

#include <QDir>
#include <QElapsedTimer>
#include <QProcess>
#include <QRandomGenerator>
#include <QTemporaryDir>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

using json = nlohmann::json;
namespace fs = std::filesystem;
using namespace mlawb;

namespace {

const QString kMlawb = QString::fromStdString(test::binary_dir() + "/app/cli/mlawb");

struct Result {
    int status = -1;  // exit code; -1 when killed or timed out
    QByteArray out, err;
    qint64 elapsed_ms = 0;
};

Result run_mlawb(const QStringList& args) {
    QProcess p;
    QElapsedTimer clock;
    clock.start();
    p.start(kMlawb, args);
    p.waitForFinished(900000);
    return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, p.readAllStandardOutput(),
            p.readAllStandardError(), clock.elapsed()};
}

// Starts the command and sends SIGKILL after `delay_ms`; true when it was still running then.
bool kill_after(const QStringList& args, qint64 delay_ms) {
    QProcess p;
    p.start(kMlawb, args);
    if (!p.waitForStarted()) return false;
    if (p.waitForFinished(static_cast<int>(delay_ms))) return false;  // finished first: nothing to kill
    ::kill(static_cast<pid_t>(p.processId()), SIGKILL);
    p.waitForFinished();
    return true;
}

quint32 seed_from_environment() {
    const QByteArray fixed = qgetenv("MLAWB_KILL_SEED");
    if (!fixed.isEmpty()) return fixed.toUInt();
    return QRandomGenerator::system()->generate();
}

int rounds_from_environment(int fallback) {
    const QByteArray n = qgetenv("MLAWB_KILL_ROUNDS");
    return n.isEmpty() ? fallback : n.toInt();
}

// Everything a run's results consist of, without what legitimately differs between runs
// (latency, timestamps, run ids): sample id -> (prediction, score, details, prompt tokens), and
// the metric rows.
struct StoredResults {
    std::map<std::string, std::tuple<std::string, double, std::string, int64_t>> samples;
    std::vector<std::tuple<std::string, std::string, double>> metrics;
    size_t runs = 0;
    size_t sample_rows = 0;  // counts duplicates, which `samples` would fold
    std::string statuses;
};

StoredResults read_results(const std::string& db) {
    StoredResults r;
    ResultsStore store = ResultsStore::open(db, ResultsStore::OpenMode::ExistingOnly);
    for (const RunSummary& run : store.list_runs()) {
        ++r.runs;
        r.statuses += std::string(run_status_name(run.status)) + " ";
        for (const SampleRow& s : store.samples(run.id)) {
            ++r.sample_rows;
            r.samples[s.sample_id] = {s.prediction, s.score, s.details_json, s.prompt_tokens};
        }
        for (const MetricRow& m : store.run(run.id).metrics) r.metrics.emplace_back(m.name, m.bucket, m.value);
    }
    return r;
}

std::string integrity(const std::string& db) {
    if (!fs::exists(db)) return "ok";  // killed before the file was created: nothing to corrupt
    try {
        return ResultsStore::open(db, ResultsStore::OpenMode::ExistingOnly).integrity_check();
    } catch (const Error& e) {
        return std::string("cannot open: ") + e.what();
    }
}

std::string read_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// name -> bytes of every file in a folder (flat: a converted model folder has no subfolders).
std::map<std::string, std::string> folder_files(const fs::path& folder) {
    std::map<std::string, std::string> files;
    for (const auto& entry : fs::directory_iterator(folder)) files[entry.path().filename().string()] = read_bytes(entry.path());
    return files;
}

QString describe_difference(const std::map<std::string, std::string>& want, const std::map<std::string, std::string>& got) {
    QStringList lines;
    for (const auto& [name, bytes] : want) {
        auto it = got.find(name);
        if (it == got.end()) lines << QString::fromStdString(name + " missing");
        else if (it->second != bytes) lines << QString::fromStdString(name + " differs");
    }
    for (const auto& [name, bytes] : got)
        if (!want.count(name)) lines << QString::fromStdString(name + " unexpected");
    return lines.join(", ");
}

}  // namespace

class TestKillSafety : public QObject {
    Q_OBJECT

private:
    QRandomGenerator random_;
    int rounds_ = 3;

    qint64 random_moment(qint64 duration_ms) {
        // Uniform over the run, from process start (loading the model) to just before the end.
        return 20 + static_cast<qint64>(random_.bounded(std::max<double>(1.0, 0.95 * double(duration_ms))));
    }

    // Kills `args` (which write to `db`) twice at random moments, checks the DB after each kill,
    // then runs it to the end and compares with the uninterrupted run's results.
    void check_eval_resumes(const QStringList& args_without_db, const QString& db, const Result& reference,
                            const StoredResults& want) {
        const QStringList args = args_without_db + QStringList{"--db", db};
        int killed = 0;
        for (int k = 0; k < 2; ++k) {
            const qint64 at = random_moment(reference.elapsed_ms);
            if (kill_after(args, at)) ++killed;
            const std::string check = integrity(db.toStdString());
            QVERIFY2(check == "ok", qPrintable(QString("after SIGKILL at %1 ms: integrity_check: %2").arg(at).arg(check.c_str())));
        }
        const Result resumed = run_mlawb(args + QStringList{"--json"});
        QVERIFY2(resumed.status == 0, resumed.err.constData());
        const json got_scores = json::parse(resumed.out.toStdString())["scores"];
        const json want_scores = json::parse(reference.out.toStdString())["scores"];
        QVERIFY2(got_scores == want_scores, (got_scores.dump() + " vs uninterrupted " + want_scores.dump()).c_str());
        const StoredResults got = read_results(db.toStdString());
        QCOMPARE(got.runs, want.runs);  // resumed, not started over beside a dead run
        QCOMPARE(got.sample_rows, want.sample_rows);  // no duplicate samples
        QVERIFY(got.samples == want.samples);
        QVERIFY(got.metrics == want.metrics);
        QCOMPARE(QString::fromStdString(got.statuses), QString::fromStdString(want.statuses));
        QCOMPARE(QString::fromStdString(integrity(db.toStdString())), QString("ok"));
        qInfo("%d of 2 kills landed before the end", killed);
    }

private Q_SLOTS:
    void initTestCase() {
        MLAWB_REQUIRE_PATH(kMlawb.toStdString());
        MLAWB_REQUIRE_PATH(test::model_dir("wb-tiny-mha") + "/model.safetensors");
        MLAWB_REQUIRE_PATH(test::source_dir() + "/tests/data/mc/tiny.jsonl");
        MLAWB_REQUIRE_PATH(test::fixtures_dir() + "/longbench-syn/passkey.jsonl");
        MLAWB_REQUIRE_PATH(test::fixtures_dir() + "/heldout.txt");
        const auto seed = seed_from_environment();
        random_.seed(seed);
        rounds_ = rounds_from_environment(rounds_);
        qInfo("kill moments from MLAWB_KILL_SEED=%u, %d rounds per command", seed, rounds_);
    }

    void evalMultipleChoice() {
        QTemporaryDir tmp;
        QVERIFY(tmp.isValid());
        const QStringList args = {"eval", QString::fromStdString(test::model_dir("wb-tiny-mha")), "--mc",
                                  QString::fromStdString(test::source_dir() + "/tests/data/mc/tiny.jsonl")};
        const QString reference_db = tmp.path() + "/reference.db";
        const Result reference = run_mlawb(args + QStringList{"--db", reference_db, "--json"});
        QVERIFY2(reference.status == 0, reference.err.constData());
        const StoredResults want = read_results(reference_db.toStdString());
        QCOMPARE(want.sample_rows, size_t(15));
        for (int round = 0; round < rounds_; ++round) {
            check_eval_resumes(args, tmp.path() + QString("/killed-%1.db").arg(round), reference, want);
            if (QTest::currentTestFailed()) return;
        }
    }

    void evalLongBench() {
        QTemporaryDir tmp;
        QVERIFY(tmp.isValid());
        const QStringList args = {"eval", QString::fromStdString(test::model_dir("wb-tiny-gqa")), "--tasks",
                                  QString::fromStdString(test::fixtures_dir() + "/longbench-syn"), "--datasets",
                                  "passkey,kv_retrieval", "--limit", "4"};
        const QString reference_db = tmp.path() + "/reference.db";
        const Result reference = run_mlawb(args + QStringList{"--db", reference_db, "--json"});
        QVERIFY2(reference.status == 0, reference.err.constData());
        const StoredResults want = read_results(reference_db.toStdString());
        QCOMPARE(want.sample_rows, size_t(8));
        for (int round = 0; round < rounds_; ++round) {
            check_eval_resumes(args, tmp.path() + QString("/killed-%1.db").arg(round), reference, want);
            if (QTest::currentTestFailed()) return;
        }
    }

    void convert() {
        QTemporaryDir tmp;
        QVERIFY(tmp.isValid());
        const fs::path root = tmp.path().toStdString();
        // Calibration on 20 kB of held-out text (3 windows) gives the run a middle to be killed in.
        const fs::path calib = root / "calib.txt";
        std::ofstream(calib, std::ios::binary) << read_bytes(test::fixtures_dir() + "/heldout.txt").substr(0, 20000);
        const QStringList args = {"convert", QString::fromStdString(test::model_dir("wb-tiny-gqa")), "--mla",
                                  QString::fromStdString("strategy=2-norm,r=4,d_kv=16,svd=joint,calib=" + calib.string())};
        const fs::path reference_out = root / "reference" / "out";
        fs::create_directories(reference_out.parent_path());
        const Result reference = run_mlawb(args + QStringList{"--out", QString::fromStdString(reference_out.string())});
        QVERIFY2(reference.status == 0, reference.err.constData());
        const auto want = folder_files(reference_out);
        QVERIFY(want.count("model.safetensors") && want.count("config.json"));

        int stale_staging = 0;
        for (int round = 0; round < rounds_ + 1; ++round) {
            const fs::path parent = root / ("round-" + std::to_string(round));
            const fs::path out = parent / "out";
            fs::create_directories(parent);
            const QStringList run_args = args + QStringList{"--out", QString::fromStdString(out.string())};
            const qint64 at = random_moment(reference.elapsed_ms);
            const bool killed = kill_after(run_args, at);

            // Nothing half-written under a visible name: the folder is absent or complete.
            QStringList visible;
            for (const auto& entry : fs::directory_iterator(parent)) {
                const std::string name = entry.path().filename().string();
                if (name.front() == '.') ++stale_staging;  // hidden staging of the killed run
                else visible << QString::fromStdString(name);
            }
            QVERIFY2(visible.isEmpty() || visible == QStringList{"out"},
                     qPrintable(QString("after SIGKILL at %1 ms: %2").arg(at).arg(visible.join(", "))));
            if (fs::exists(out))
                QVERIFY2(folder_files(out) == want, qPrintable(QString("after SIGKILL at %1 ms: %2").arg(at).arg(
                                                            describe_difference(want, folder_files(out)))));

            // The same command again: completes the conversion, or refuses to overwrite a complete one.
            const Result again = run_mlawb(run_args);
            if (visible.isEmpty()) QVERIFY2(again.status == 0, again.err.constData());
            else QVERIFY2(again.status == 2 && again.err.contains("already exists"), again.err.constData());
            QVERIFY2(folder_files(out) == want, qPrintable(describe_difference(want, folder_files(out))));
            qInfo("round %d: SIGKILL at %lld ms (%s)", round, static_cast<long long>(at),
                  killed ? (visible.isEmpty() ? "before the rename" : "after the rename") : "finished first");
        }
        // Killed runs leave their hidden staging folder behind (export removes only its own on
        // failure); report it so a cleanup can be judged, but it is never visible as output.
        qInfo("%d hidden staging folder(s) left by killed runs", stale_staging);
    }
};

QTEST_APPLESS_MAIN(TestKillSafety)
#include "test_kill_safety.moc"
