// Crash safety (issue 12): the built `mlawb` is killed with SIGKILL at random moments during
// `eval --mc`, `eval --tasks ... --limit`, `convert` and `finetune`, several times each. After every kill:
// no partial output is visible (the output folder is absent or complete; the DB passes
// PRAGMA integrity_check), and running the same command again completes with results
// identical to an uninterrupted run (scores, every sample's prediction, score and details;
// every output file byte for byte).
//
// The kill moments are uniform over the uninterrupted run's duration, from a seed printed at
// the start; MLAWB_KILL_SEED=<n> repeats a sequence, MLAWB_KILL_ROUNDS=<n> changes the count.
// `convert` is also killed once while it writes its staging folder, which random moments
// rarely hit (calibration dominates the run).
//
// `finetune` (24 updates with a checkpoint every 3 and held-out perplexity every 8, a few
// seconds) is killed twice a round, the second time while it resumes; after every kill the
// output folder is absent or complete, every visible checkpoint folder is complete (the same
// weights and state as the uninterrupted run's checkpoint of that step) and the DB passes
// integrity_check with every logged step equal to the uninterrupted run's. Then the command
// runs to the end (with --resume DIR.checkpoints when a checkpoint exists, as a user would)
// and everything it promises is bit for bit the uninterrupted run's: the weights and every
// output file, each step's loss, lr, grad norm and held-out perplexity in the store, the final
// metrics (wall-time figures excepted). Aimed kills follow: while a checkpoint is staged,
// while an old checkpoint is removed, while the output is staged, and just after the output
// folder appeared (before the store records the end).
#include "core/error.h"
#include "eval/store.h"
#include "eval/trainer.h"
#include "test_support.h"

#include <QCryptographicHash>
#include <QDir>
#include <QElapsedTimer>
#include <QProcess>
#include <QRandomGenerator>
#include <QTemporaryDir>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
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

// Starts the command and sends SIGKILL as soon as `condition` holds (polled every 2 ms);
// true when it was still running then.
bool kill_when(const QStringList& args, const std::function<bool()>& condition) {
    QProcess p;
    p.start(kMlawb, args);
    if (!p.waitForStarted()) return false;
    while (!condition())
        if (p.waitForFinished(2)) return false;
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

// --- finetune ---------------------------------------------------------------------------

std::string sha256_of(const std::string& bytes) {
    return QCryptographicHash::hash(QByteArray::fromStdString(bytes), QCryptographicHash::Sha256).toHex().toStdString();
}

// trainer_state.json without the wall-time figures of each step (seconds, tokens_per_s).
std::string trainer_state_without_timing(const std::string& text) {
    json state = json::parse(text);
    for (json& step : state.at("log")) {
        step.erase("seconds");
        step.erase("tokens_per_s");
    }
    return state.dump();
}

// A model / checkpoint folder written by finetune, as name -> SHA-256 of what must not differ
// between runs: the bytes of every file, trainer_state.json without timings, and for
// optimizer.pt only that it is a complete zip archive (torch::save names the entries by the
// parameters' addresses in memory, so its bytes differ from process to process; its contents
// are checked by the resumed run's results).
std::map<std::string, std::string> finetune_folder(const fs::path& folder) {
    std::map<std::string, std::string> files;
    for (const auto& entry : fs::directory_iterator(folder)) {
        const std::string name = entry.path().filename().string();
        std::string bytes = read_bytes(entry.path());
        if (name == "trainer_state.json") {
            try {
                bytes = trainer_state_without_timing(bytes);
            } catch (const std::exception& e) {
                bytes = std::string("malformed: ") + e.what();
            }
        } else if (name == "optimizer.pt") {
            // End of central directory record, no archive comment: the last 22 bytes.
            const bool complete = bytes.size() > 22 && bytes.compare(bytes.size() - 22, 4, "PK\x05\x06") == 0;
            bytes = complete ? "complete zip archive" : "truncated: " + std::to_string(bytes.size()) + " bytes";
        }
        files[name] = name == "optimizer.pt" ? bytes : sha256_of(bytes);
    }
    return files;
}

// What the store holds of a finetune run, bit for bit, without wall-time figures
// (tokens_per_s, peak_rss_bytes).
struct TrainingRecord {
    std::map<int64_t, std::tuple<double, double, double, std::optional<double>>> steps;  // loss, lr, grad norm, ppl
    std::vector<std::tuple<std::string, std::string, double>> metrics;
    size_t runs = 0;
    size_t step_rows = 0;
    std::string statuses;
};

TrainingRecord read_training(const std::string& db) {
    TrainingRecord r;
    ResultsStore store = ResultsStore::open(db, ResultsStore::OpenMode::ExistingOnly);
    for (const RunSummary& run : store.list_runs()) {
        ++r.runs;
        r.statuses += std::string(run_status_name(run.status)) + " ";
        for (const TrainingStepRow& s : store.training_steps(run.id)) {
            ++r.step_rows;
            r.steps[s.step] = {s.loss, s.lr, s.grad_norm, s.heldout_ppl};
        }
        for (const MetricRow& m : store.run(run.id).metrics)
            if (m.name != "tokens_per_s" && m.name != "peak_rss_bytes") r.metrics.emplace_back(m.name, m.bucket, m.value);
    }
    return r;
}

bool has_step_folder(const fs::path& checkpoints) {
    if (!fs::is_directory(checkpoints)) return false;
    for (const auto& entry : fs::directory_iterator(checkpoints))
        if (entry.path().filename().string().rfind("step-", 0) == 0) return true;
    return false;
}

bool has_hidden_entry(const fs::path& folder, const std::string& containing) {
    std::error_code ec;
    for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.front() == '.' && name.find(containing) != std::string::npos) return true;
    }
    return false;
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

    // The uninterrupted finetune run: its output folder, every checkpoint (it keeps all of them),
    // its store and its --json report.
    struct FinetuneReference {
        std::map<std::string, std::string> out;
        std::map<std::string, std::map<std::string, std::string>> checkpoints;  // step-NNNNNN -> files
        TrainingRecord record;
        json report;
        qint64 elapsed_ms = 0;
    };

    // After a kill: nothing partial is visible in `parent` (the output folder is absent or the
    // uninterrupted run's, every visible checkpoint is the uninterrupted run's of that step), the
    // DB passes integrity_check and every step it logged is the uninterrupted run's.
    void check_after_kill(const fs::path& parent, const FinetuneReference& ref, const QString& when) {
        const std::set<std::string> allowed = {"out", "out.checkpoints", "r.db", "r.db-wal", "r.db-shm", "r.db-journal"};
        for (const auto& entry : fs::directory_iterator(parent)) {
            const std::string name = entry.path().filename().string();
            if (name.front() != '.')  // hidden: staging of a killed run
                QVERIFY2(allowed.count(name), qPrintable(when + ": unexpected " + QString::fromStdString(name)));
        }
        const fs::path out = parent / "out";
        if (fs::exists(out)) {
            const auto got = finetune_folder(out);
            QVERIFY2(got == ref.out, qPrintable(when + ": out: " + describe_difference(ref.out, got)));
        }
        const fs::path checkpoints = parent / "out.checkpoints";
        if (fs::exists(checkpoints)) {
            for (const auto& entry : fs::directory_iterator(checkpoints)) {
                const std::string name = entry.path().filename().string();
                if (name.front() == '.') continue;  // staging or removal of a killed run
                auto want = ref.checkpoints.find(name);
                QVERIFY2(want != ref.checkpoints.end(), qPrintable(when + ": unexpected checkpoint " + QString::fromStdString(name)));
                const auto got = finetune_folder(entry.path());
                QVERIFY2(got == want->second, qPrintable(when + ": " + QString::fromStdString(name) + ": " +
                                                         describe_difference(want->second, got)));
            }
        }
        const std::string db = (parent / "r.db").string();
        const std::string check = integrity(db);
        QVERIFY2(check == "ok", qPrintable(when + ": integrity_check: " + QString::fromStdString(check)));
        if (fs::exists(db)) {
            const TrainingRecord got = read_training(db);
            QVERIFY2(got.runs <= 1, qPrintable(when + ": " + QString::number(got.runs) + " runs"));
            for (const auto& [step, row] : got.steps)
                QVERIFY2(ref.record.steps.count(step) && ref.record.steps.at(step) == row,
                         qPrintable(when + ": step " + QString::number(step) + " differs from the uninterrupted run's"));
        }
    }

    // The same command as a user would run it after a kill: --resume when a checkpoint exists.
    static QStringList with_resume(const QStringList& args, const fs::path& parent) {
        const fs::path checkpoints = parent / "out.checkpoints";
        return has_step_folder(checkpoints) ? args + QStringList{"--resume", QString::fromStdString(checkpoints.string())}
                                            : args;
    }

    // Runs the command to the end and compares everything with the uninterrupted run.
    void check_finetune_completes(const QStringList& args, const fs::path& parent, const FinetuneReference& ref) {
        const Result done = run_mlawb(with_resume(args, parent) + QStringList{"--json"});
        QVERIFY2(done.status == 0, done.err.constData());
        const json report = json::parse(done.out.toStdString());
        for (const char* key : {"final_loss", "steps", "tokens", "heldout_perplexity", "mla", "run"})
            QVERIFY2(report.at(key) == ref.report.at(key), (std::string(key) + ": " + report.dump() + " vs uninterrupted " +
                                                           ref.report.dump()).c_str());
        const auto out = finetune_folder(parent / "out");
        QVERIFY2(out == ref.out, qPrintable("out: " + describe_difference(ref.out, out)));
        const std::string db = (parent / "r.db").string();
        QCOMPARE(QString::fromStdString(integrity(db)), QString("ok"));
        const TrainingRecord got = read_training(db);
        QCOMPARE(got.runs, size_t(1));  // resumed, not started over beside a dead run
        QCOMPARE(got.step_rows, ref.record.step_rows);
        QVERIFY2(got.steps == ref.record.steps, "logged steps differ from the uninterrupted run's");
        QVERIFY2(got.metrics == ref.record.metrics, "final metrics differ from the uninterrupted run's");
        QCOMPARE(QString::fromStdString(got.statuses), QString::fromStdString(ref.record.statuses));
    }

private Q_SLOTS:
    void initTestCase() {
        MLAWB_REQUIRE_PATH(kMlawb.toStdString());
        MLAWB_REQUIRE_PATH(test::model_dir("wb-tiny-mha") + "/model.safetensors");
        MLAWB_REQUIRE_PATH(test::source_dir() + "/tests/data/mc/tiny.jsonl");
        MLAWB_REQUIRE_PATH(test::fixtures_dir() + "/longbench-syn/passkey.jsonl");
        MLAWB_REQUIRE_PATH(test::fixtures_dir() + "/heldout.txt");
        MLAWB_REQUIRE_PATH(test::fixtures_dir() + "/finetune/text.txt");
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
        // Random moments, then one kill aimed at the export itself: as soon as a hidden staging
        // entry appears beside the output (the weights are being written).
        for (int round = 0; round < rounds_ + 2; ++round) {
            const bool aimed = round == rounds_ + 1;
            const fs::path parent = root / ("round-" + std::to_string(round));
            const fs::path out = parent / "out";
            fs::create_directories(parent);
            const QStringList run_args = args + QStringList{"--out", QString::fromStdString(out.string())};
            const qint64 at = aimed ? -1 : random_moment(reference.elapsed_ms);
            const bool killed = aimed ? kill_when(run_args,
                                                  [&] {
                                                      for (const auto& entry : fs::directory_iterator(parent))
                                                          if (entry.path().filename().string().front() == '.') return true;
                                                      return false;
                                                  })
                                      : kill_after(run_args, at);

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
            // The killed run's staging is gone too: the run that wrote the output swept it.
            QStringList hidden;
            for (const auto& entry : fs::directory_iterator(parent))
                if (entry.path().filename().string().front() == '.') hidden << QString::fromStdString(entry.path().filename().string());
            QVERIFY2(hidden.isEmpty(), qPrintable("left behind after the rerun: " + hidden.join(", ")));
            const char* when = killed ? (visible.isEmpty() ? "before the rename" : "after the rename") : "finished first";
            if (aimed) qInfo("round %d: SIGKILL while staging the output (%s)", round, when);
            else qInfo("round %d: SIGKILL at %lld ms (%s)", round, static_cast<long long>(at), when);
        }
        // Killed runs leave their hidden staging folder behind until the next write beside the
        // output sweeps it (asserted above after each rerun); never visible as output.
        qInfo("%d hidden staging folder(s) left by killed runs (all swept by the reruns)", stale_staging);
    }

    void finetune() {
        QTemporaryDir tmp;
        QVERIFY(tmp.isValid());
        const fs::path root = tmp.path().toStdString();
        const std::string text = read_bytes(test::fixtures_dir() + "/finetune/text.txt");
        const fs::path data = root / "data.txt", heldout = root / "heldout.txt";
        std::ofstream(data, std::ios::binary) << text.substr(0, 25000);
        std::ofstream(heldout, std::ios::binary) << text.substr(25000, 5000);
        const QStringList args = {"finetune", QString::fromStdString(test::model_dir("wb-tiny-mha")), "--mla",
                                  "strategy=high,r=4,d_kv=16", "--data", QString::fromStdString(data.string()),
                                  "--steps", "24", "--batch", "2", "--seq-len", "32", "--save-every", "3",
                                  "--eval-every", "8", "--heldout", QString::fromStdString(heldout.string()),
                                  "--heldout-window", "64", "--token-cache", QString::fromStdString((root / "cache").string())};
        auto round_args = [&](const fs::path& parent) {
            return args + QStringList{"--db", QString::fromStdString((parent / "r.db").string()), "--out",
                                      QString::fromStdString((parent / "out").string())};
        };

        // The uninterrupted run keeps every checkpoint (--keep is not part of the run: the
        // killed runs keep the default 2, so removal is killed too).
        FinetuneReference ref;
        {
            const fs::path parent = root / "reference";
            fs::create_directories(parent);
            const Result r = run_mlawb(round_args(parent) + QStringList{"--keep", "0", "--json"});
            QVERIFY2(r.status == 0, r.err.constData());
            ref.elapsed_ms = r.elapsed_ms;
            ref.report = json::parse(r.out.toStdString());
            ref.out = finetune_folder(parent / "out");
            for (const auto& entry : fs::directory_iterator(parent / "out.checkpoints"))
                ref.checkpoints[entry.path().filename().string()] = finetune_folder(entry.path());
            ref.record = read_training((parent / "r.db").string());
            QVERIFY(ref.out.count("model.safetensors") && ref.out.count("trainer_state.json"));
            QCOMPARE(ref.checkpoints.size(), size_t(8));
            QCOMPARE(ref.record.step_rows, size_t(24));
            QCOMPARE(QString::fromStdString(ref.record.statuses), QString("finished "));
            QVERIFY(ref.record.steps.at(8) != ref.record.steps.at(16));
            QVERIFY(std::get<3>(ref.record.steps.at(24)).has_value());
            qInfo("uninterrupted finetune: %lld ms, final loss %.17g", static_cast<long long>(r.elapsed_ms),
                  ref.report.at("final_loss").get<double>());
        }

        // Random moments: the fresh command, then the resumed one, each killed once.
        for (int round = 0; round < rounds_; ++round) {
            const fs::path parent = root / ("round-" + std::to_string(round));
            fs::create_directories(parent);
            QStringList moments;
            for (int k = 0; k < 2; ++k) {
                const QStringList run_args = with_resume(round_args(parent), parent);
                const bool resumed = run_args.contains("--resume");
                const qint64 at = random_moment(ref.elapsed_ms);
                const bool killed = kill_after(run_args, at);
                const QString when = QString("round %1, SIGKILL at %2 ms%3").arg(round).arg(at).arg(resumed ? " (resumed)" : "");
                check_after_kill(parent, ref, when);
                if (QTest::currentTestFailed()) return;
                const std::string ckpt =
                    has_step_folder(parent / "out.checkpoints")
                        ? "newest " + fs::path(find_checkpoint((parent / "out.checkpoints").string())).filename().string()
                        : std::string("no checkpoint");
                moments << QString("%1 ms%2 (%3; %4%5)")
                               .arg(at)
                               .arg(resumed ? " resumed" : "")
                               .arg(killed ? "killed" : "finished first")
                               .arg(QString::fromStdString(ckpt))
                               .arg(fs::exists(parent / "out") ? ", out complete" : "");
            }
            check_finetune_completes(round_args(parent), parent, ref);
            if (QTest::currentTestFailed()) return;
            qInfo("round %d: SIGKILL at %s; resumed to the identical result", round, qPrintable(moments.join(", then ")));
        }

        // Aimed kills, at moments random ones rarely hit.
        const std::vector<std::pair<const char*, std::function<bool(const fs::path&)>>> aims = {
            {"while a checkpoint is staged",
             [](const fs::path& parent) { return has_hidden_entry(parent / "out.checkpoints", ".partial-"); }},
            {"while an old checkpoint is removed",
             [](const fs::path& parent) { return has_hidden_entry(parent / "out.checkpoints", ".removing-"); }},
            {"while the output is staged", [](const fs::path& parent) { return has_hidden_entry(parent, "out.partial-"); }},
            {"as soon as the output folder appeared", [](const fs::path& parent) { return fs::exists(parent / "out"); }},
        };
        for (size_t i = 0; i < aims.size(); ++i) {
            const fs::path parent = root / ("aimed-" + std::to_string(i));
            fs::create_directories(parent);
            const bool killed = kill_when(round_args(parent), [&] { return aims[i].second(parent); });
            const QString when = QString("SIGKILL %1").arg(aims[i].first);
            check_after_kill(parent, ref, when);
            if (QTest::currentTestFailed()) return;
            std::string recorded = "no DB";
            if (fs::exists(parent / "r.db")) recorded = read_training((parent / "r.db").string()).statuses;
            check_finetune_completes(round_args(parent), parent, ref);
            if (QTest::currentTestFailed()) return;
            qInfo("%s: %s (run status then: %s); resumed to the identical result", qPrintable(when),
                  killed ? "killed" : "finished first", recorded.c_str());
        }

        // The state the last aim is after: the output folder is complete but the store has not
        // recorded the end (here: has no run at all). The resumed command records it from the
        // folder, identical to the uninterrupted run.
        {
            const fs::path parent = root / "output-without-record";
            fs::create_directories(parent / "out.checkpoints");
            fs::copy(root / "reference" / "out", parent / "out");
            fs::copy(root / "reference" / "out.checkpoints" / "step-000024", parent / "out.checkpoints" / "step-000024");
            check_finetune_completes(round_args(parent), parent, ref);
            if (QTest::currentTestFailed()) return;
        }
        {
            // A folder that is not this run's finished result is refused, not taken over (here
            // the run's own checkpoint of step 21).
            const fs::path parent = root / "other-output";
            fs::create_directories(parent / "out.checkpoints");
            fs::copy(root / "reference" / "out.checkpoints" / "step-000021", parent / "out");
            fs::copy(root / "reference" / "out.checkpoints" / "step-000024", parent / "out.checkpoints" / "step-000024");
            const Result other = run_mlawb(with_resume(round_args(parent), parent));
            QVERIFY2(other.status == 2 && other.err.contains("already exists"), other.err.constData());
            QVERIFY(finetune_folder(parent / "out") == ref.checkpoints.at("step-000021"));
        }
        // Killed runs leave hidden staging (.out.partial-PID@HOST, .step-NNNNNN.partial-PID@HOST)
        // and removal (.step-NNNNNN.removing-PID@HOST) folders behind until a later write in the
        // same folder sweeps them; never visible as output. What is left is reported here (a run
        // that adopts a finished output writes nothing, so it sweeps nothing).
        int hidden = 0;
        for (const auto& round : fs::directory_iterator(root))
            for (const fs::path& folder : {round.path(), round.path() / "out.checkpoints"})
                if (fs::is_directory(folder))
                    for (const auto& entry : fs::directory_iterator(folder))
                        if (entry.path().filename().string().front() == '.') ++hidden;
        qInfo("%d hidden staging or removal folder(s) left by killed runs", hidden);
    }
};

QTEST_APPLESS_MAIN(TestKillSafety)
#include "test_kill_safety.moc"
