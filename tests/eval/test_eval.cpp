// `mlawb eval` end to end: both fixture models reproduce transformers' LongBench-syn scores
// and predictions; a run killed with SIGKILL and run again ends with the scores of an
// uninterrupted run, no duplicate samples and an intact database; malformed JSONL lines are
// reported with file and line, skipped and counted, or abort with --strict.
#include "core/error.h"
#include "core/llama_model.h"
#include "eval/perplexity.h"
#include "eval/store.h"
#include "test_support.h"

#include <QProcess>
#include <QTemporaryDir>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

using json = nlohmann::json;
namespace fs = std::filesystem;
using namespace mlawb;

namespace {

const QString kMlawb = QString::fromStdString(test::binary_dir() + "/app/cli/mlawb");

struct Result {
    int status;
    QByteArray out, err;
};

Result run_mlawb(const QStringList& args, int timeout_ms = 600000) {
    QProcess p;
    p.start(kMlawb, args);
    p.waitForFinished(timeout_ms);
    return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, p.readAllStandardOutput(),
            p.readAllStandardError()};
}

json reference(const std::string& model) {
    std::ifstream in(test::fixtures_dir() + "/reference/" + model + ".json");
    return json::parse(in);
}

QString tasks_dir() { return QString::fromStdString(test::fixtures_dir() + "/longbench-syn"); }

}  // namespace

class TestEval : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void reproducesReference_data();
    void reproducesReference();
    void killedRunResumesToSameScores();
    void malformedLines();
    void multipleChoiceAndPerplexityTasks();
    void officialLayoutLoadsAndScores();
};

void TestEval::initTestCase() {
    MLAWB_REQUIRE_PATH(kMlawb.toStdString());
    MLAWB_REQUIRE_PATH(tasks_dir().toStdString() + "/passkey.jsonl");
}

void TestEval::reproducesReference_data() {
    QTest::addColumn<QString>("model");
    QTest::newRow("wb-tiny-mha") << "wb-tiny-mha";
    QTest::newRow("wb-tiny-gqa") << "wb-tiny-gqa";
}

void TestEval::reproducesReference() {
    QFETCH(QString, model);
    QTemporaryDir tmp;
    const QString db = tmp.path() + "/results.db";
    Result r = run_mlawb({"eval", QString::fromStdString(test::model_dir(model.toStdString())), "--tasks", tasks_dir(),
                          "--db", db, "--json"});
    QVERIFY2(r.status == 0, r.err.constData());
    const json ours = json::parse(r.out.toStdString());
    const json ref = reference(model.toStdString());
    // Scores: every key of the reference (datasets and buckets), exactly.
    for (const auto& [key, value] : ref["longbench_syn_scores"].items()) {
        QVERIFY2(ours["scores"].contains(key), key.c_str());
        QVERIFY2(std::abs(ours["scores"][key].get<double>() - value.get<double>()) < 1e-9,
                 qPrintable(QString("%1: ours %2, reference %3").arg(key.c_str()).arg(ours["scores"][key].get<double>())
                                .arg(value.get<double>())));
    }
    // Predictions, sample by sample, from the store.
    ResultsStore store = ResultsStore::open(db.toStdString());
    std::map<std::string, std::string> predictions;
    for (const auto& run : store.list_runs())
        for (const SampleRow& s : store.samples(run.id)) predictions[s.sample_id] = s.prediction;
    int same = 0, total = 0;
    for (const json& p : ref["longbench_syn_predictions"]) {
        ++total;
        same += predictions[p["_id"].get<std::string>()] == p["pred"].get<std::string>();
    }
    qInfo("%s: %d of %d predictions identical to transformers'", qPrintable(model), same, total);
    QVERIFY2(total - same <= 4, qPrintable(QString("%1 predictions differ").arg(total - same)));
    QCOMPARE(QString::fromStdString(store.integrity_check()), QString("ok"));
}

void TestEval::killedRunResumesToSameScores() {
    QTemporaryDir tmp;
    const QString db = tmp.path() + "/results.db";
    const QStringList args = {"eval", QString::fromStdString(test::model_dir("wb-tiny-mha")), "--tasks", tasks_dir(),
                              "--datasets", "passkey", "--db", db, "--json"};
    QProcess p;
    p.start(kMlawb, args);
    QVERIFY(p.waitForStarted());
    // Wait until some (not all) samples are recorded, then SIGKILL.
    int64_t recorded = 0;
    for (int i = 0; i < 1200 && recorded < 10; ++i) {
        QTest::qWait(100);
        if (!fs::exists(db.toStdString())) continue;
        try {
            ResultsStore s = ResultsStore::open(db.toStdString(), ResultsStore::OpenMode::ExistingOnly);
            for (const auto& run : s.list_runs()) recorded = run.samples;
        } catch (const Error&) {
        }
    }
    QVERIFY2(recorded >= 10, "the run recorded no samples");
    ::kill(static_cast<pid_t>(p.processId()), SIGKILL);
    p.waitForFinished();
    {
        ResultsStore s = ResultsStore::open(db.toStdString());
        QCOMPARE(QString::fromStdString(s.integrity_check()), QString("ok"));
        QVERIFY(s.list_runs().at(0).samples < 45);
    }
    Result again = run_mlawb(args);
    QVERIFY2(again.status == 0, again.err.constData());
    QVERIFY2(again.err.contains("resuming"), again.err.constData());
    const json ours = json::parse(again.out.toStdString());
    const json ref = reference("wb-tiny-mha")["longbench_syn_scores"];
    for (const char* key : {"passkey", "passkey@0-512", "passkey@512-1024", "passkey@1024-2048"})
        QCOMPARE(ours["scores"][key].get<double>(), ref[key].get<double>());
    ResultsStore s = ResultsStore::open(db.toStdString());
    QCOMPARE(s.list_runs().size(), size_t(1));
    const auto samples = s.samples(s.list_runs()[0].id);
    QCOMPARE(samples.size(), size_t(45));
    std::set<std::string> ids;
    for (const auto& row : samples) ids.insert(row.sample_id);
    QCOMPARE(ids.size(), size_t(45));  // no duplicate sample rows
    QCOMPARE(QString::fromStdString(s.integrity_check()), QString("ok"));
}

void TestEval::malformedLines() {
    QTemporaryDir tmp;
    const fs::path dir = tmp.path().toStdString();
    for (const char* f : {"dataset2prompt.json", "dataset2maxlen.json", "dataset2metric.json"})
        fs::copy_file(fs::path(tasks_dir().toStdString()) / f, dir / f);
    std::ifstream in(tasks_dir().toStdString() + "/passkey.jsonl");
    std::string first, second;
    std::getline(in, first);
    std::getline(in, second);
    std::ofstream(dir / "passkey.jsonl") << first << "\n{not json\n"
                                         << R"({"_id": "x", "input": 3, "context": "c", "answers": ["1"]})" << "\n"
                                         << R"({"_id": "y", "context": "c", "answers": ["1"]})" << "\n"
                                         << second << "\n";
    const QString model = QString::fromStdString(test::model_dir("wb-tiny-mha"));
    const QString db = QString::fromStdString((dir / "r.db").string());
    Result strict = run_mlawb({"eval", model, "--tasks", QString::fromStdString(dir.string()), "--db", db, "--strict"});
    QCOMPARE(strict.status, 2);
    QVERIFY2(strict.err.contains("passkey.jsonl:2") && strict.err.contains("malformed JSON"), strict.err.constData());
    Result lenient = run_mlawb({"eval", model, "--tasks", QString::fromStdString(dir.string()), "--db", db, "--json"});
    QVERIFY2(lenient.status == 0, lenient.err.constData());
    QVERIFY2(lenient.err.contains("passkey.jsonl:3: input: expected a string"), lenient.err.constData());
    QVERIFY2(lenient.err.contains("passkey.jsonl:4: input: missing"), lenient.err.constData());
    ResultsStore s = ResultsStore::open(db.toStdString());
    bool found = false;
    for (const auto& run : s.list_runs()) {
        if (run.status != RunStatus::Finished) continue;
        const RunDetail d = s.run(run.id);
        QCOMPARE(d.malformed_lines, int64_t(3));
        QCOMPARE(run.samples, int64_t(2));
        found = true;
    }
    QVERIFY(found);
}

// Multiple choice (lm-eval's log-likelihood protocol) and perplexity as recorded eval tasks,
// checked against a direct computation with the engine.
void TestEval::multipleChoiceAndPerplexityTasks() {
    const std::string mc = test::source_dir() + "/tests/data/mc/tiny.jsonl";
    const std::string text = test::source_dir() + "/resources/text/demo.txt";
    MLAWB_REQUIRE_PATH(mc);
    QTemporaryDir tmp;
    const QString db = tmp.path() + "/r.db";
    const QString model = QString::fromStdString(test::model_dir("wb-tiny-mha"));
    Result r = run_mlawb({"eval", model, "--mc", QString::fromStdString(mc), "--db", db, "--json"});
    QVERIFY2(r.status == 0, r.err.constData());
    const json out = json::parse(r.out.toStdString());

    LoadedModel m = load_model(test::model_dir("wb-tiny-mha"));
    ResultsStore store = ResultsStore::open(db.toStdString());
    const auto rows = store.samples(out["runs"]["multiple_choice"].get<int64_t>());
    QCOMPARE(rows.size(), size_t(15));
    std::ifstream in(mc);
    std::string line;
    double correct = 0;
    for (const SampleRow& row : rows) {
        std::getline(in, line);
        const json item = json::parse(line);
        QCOMPARE(row.sample_id, item["_id"].get<std::string>());
        // Direct: log p(choice tokens | query) from one forward pass of query + choice.
        const auto query_ids = m.tokenizer.encode(item["query"].get<std::string>());
        const json details = json::parse(row.details_json);
        for (size_t c = 0; c < item["choices"].size(); ++c) {
            const auto ids32 = m.tokenizer.encode(item["query"].get<std::string>() + item["choices"][c].get<std::string>());
            std::vector<int64_t> ids(ids32.begin(), ids32.end());
            torch::NoGradGuard no_grad;
            KVCache cache = m.model->make_cache();
            torch::Tensor logp = torch::log_softmax(m.model->forward(torch::tensor(ids).unsqueeze(0), cache)[0], -1);
            double ll = 0;
            for (size_t t = query_ids.size(); t < ids.size(); ++t) ll += logp[t - 1][ids[t]].item<double>();
            QVERIFY(std::abs(ll - details["loglikelihoods"][c].get<double>()) < 1e-4);
        }
        correct += row.score;
        QCOMPARE(row.score == 1.0, details["predicted"].get<int64_t>() == item["gold"].get<int64_t>());
    }
    QCOMPARE(out["scores"]["acc"].get<double>(), 100.0 * correct / 15);

    Result p = run_mlawb({"eval", model, "--perplexity", QString::fromStdString(text), "--db", db, "--json"});
    QVERIFY2(p.status == 0, p.err.constData());
    std::ifstream tin(text, std::ios::binary);
    std::stringstream ss;
    ss << tin.rdbuf();
    const auto ids32 = m.tokenizer.encode(ss.str());
    const double direct = compute_perplexity(*m.model, std::vector<int64_t>(ids32.begin(), ids32.end()), {}).perplexity;
    QVERIFY(std::abs(json::parse(p.out.toStdString())["scores"]["perplexity"].get<double>() / direct - 1) < 1e-9);
}

// Hand-written records in the official LongBench layout, with no dataset2metric.json: the
// built-in official mapping picks qa_f1_score for hotpotqa and classification_score for trec.
void TestEval::officialLayoutLoadsAndScores() {
    const std::string dir = test::source_dir() + "/tests/data/longbench-official/data";
    MLAWB_REQUIRE_PATH(dir + "/hotpotqa.jsonl");
    QTemporaryDir tmp;
    Result r = run_mlawb({"eval", QString::fromStdString(test::model_dir("wb-tiny-mha")), "--tasks",
                          QString::fromStdString(dir), "--db", tmp.path() + "/r.db", "--json"});
    QVERIFY2(r.status == 0, r.err.constData());
    const json out = json::parse(r.out.toStdString());
    QVERIFY(out["scores"].contains("hotpotqa"));
    QVERIFY(out["scores"].contains("trec"));
    ResultsStore store = ResultsStore::open((tmp.path() + "/r.db").toStdString());
    int samples = 0;
    for (const auto& run : store.list_runs()) {
        QVERIFY(run.status == RunStatus::Finished);
        QVERIFY(run.main_metric.has_value());
        QCOMPARE(QString::fromStdString(run.main_metric->name),
                 QString(run.dataset == "trec" ? "classification_score" : "qa_f1_score"));
        samples += static_cast<int>(run.samples);
    }
    QCOMPARE(samples, 3);
}

QTEST_GUILESS_MAIN(TestEval)
#include "test_eval.moc"
