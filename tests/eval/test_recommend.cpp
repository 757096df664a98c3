// `mlawb recommend` (eval/recommend.h): the Pareto front, budget parsing, candidates and their
// analysis scores, and a recommendation at a 25% KV budget compared with the sweep's front.
#include "analysis/spectrum.h"
#include "analysis/strategies.h"
#include "core/config.h"
#include "core/error.h"
#include "eval/cli_test_support.h"
#include "eval/recommend.h"
#include "eval/sqlite_test_support.h"
#include "eval/sweep.h"
#include "test_support.h"

#include <QTemporaryDir>
#include <QTest>
#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

using namespace mlawb;
using json = nlohmann::json;
using test::CliRun;
using test::cli_run;
using test::mha;
using test::mha_config;
using test::tasks_dir;

class TestRecommend : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void paretoFront();
    void budgetParse_data();
    void budgetParse();
    void recommendCandidatesAndScores();
    void recommendNearSweepFront();
};

void TestRecommend::initTestCase() {
    MLAWB_REQUIRE_PATH(mha() + "/config.json");
    MLAWB_REQUIRE_PATH(tasks_dir() + "/passkey.jsonl");
}

void TestRecommend::paretoFront() {
    // bytes, value: (10, 50) (20, 60) (20, 55) (30, 60) (5, 40) (40, 70) (40, 70)
    const std::vector<ParetoPoint> points = {{10, 50}, {20, 60}, {20, 55}, {30, 60}, {5, 40}, {40, 70}, {40, 70}};
    QVERIFY(pareto_front(points) == (std::vector<size_t>{4, 0, 1, 5, 6}));
    std::vector<ParetoPoint> front;
    for (size_t i : pareto_front(points)) front.push_back(points[i]);
    QCOMPARE(front_gap({20, 55}, front), 5.0);
    QCOMPARE(front_gap({30, 60}, front), 0.0);
    QCOMPARE(front_gap({3, 10}, front), 0.0);   // cheaper than the whole front
    QCOMPARE(front_gap({45, 80}, front), 0.0);  // above it
}

void TestRecommend::budgetParse_data() {
    QTest::addColumn<QString>("text");
    QTest::addColumn<double>("share");  // < 0: refused
    QTest::newRow("percent") << "20%" << 0.2;
    QTest::newRow("fraction") << "0.25" << 0.25;
    QTest::newRow("all") << "100%" << 1.0;
    QTest::newRow("zero") << "0%" << -1.0;
    QTest::newRow("over") << "150%" << -1.0;
    QTest::newRow("words") << "a fifth" << -1.0;
    QTest::newRow("trailing") << "20%%" << -1.0;
}

void TestRecommend::budgetParse() {
    QFETCH(QString, text);
    QFETCH(double, share);
    if (share < 0) MLAWB_EXPECT_ERROR(parse_budget(text.toStdString()), "--budget");
    else QCOMPARE(parse_budget(text.toStdString()), share);
}

void TestRecommend::recommendCandidatesAndScores() {
    const ModelConfig config = mha_config();
    const std::vector<Candidate> without = enumerate_candidates(config, 0.25, CandidateAxes{}, "");
    const std::vector<Candidate> with = enumerate_candidates(config, 0.25, CandidateAxes{}, "s.json");
    QVERIFY(without.size() > 100);
    QVERIFY(with.size() > without.size());
    std::set<std::string> texts;
    for (const Candidate& c : with) {
        QVERIFY2(c.share <= 0.25 + 1e-12, c.text.c_str());
        QVERIFY2(texts.insert(c.text).second, c.text.c_str());  // distinct
        QCOMPARE(QString::fromStdString(canonical_setting(MlaSpec::parse(c.text), config).to_string()),
                 QString::fromStdString(c.text));
        c.spec.validate_sizes(config);
        QCOMPARE(c.quant_fidelity, quantization_fidelity(c.spec.kv_bits));
    }
    for (const Candidate& c : without) QVERIFY(c.spec.strategy != "2-norm");
    QVERIFY(texts.count("strategy=full,kv_bits=4"));                // 25% exactly
    QVERIFY(texts.count("strategy=high,r=4,d_kv=24,svd=joint"));    // 4 (8 + 24) x 2 B = 256 B of 1024 per layer
    QVERIFY(!texts.count("strategy=high,r=8,d_kv=24,svd=joint"));   // 320 B: over
    QVERIFY(!texts.count("strategy=full,kv_bits=8"));               // 50%

    QCOMPARE(quantization_fidelity(16), 1.0);
    QCOMPARE(quantization_fidelity(2), 1.0 - 1.0 / 9.0);
    QCOMPARE(quantization_fidelity(4), 1.0 - 1.0 / 225.0);

    RopeScores scores;  // 1 layer, 1 KV head, 4 pairs
    scores.n_layer = scores.n_head = scores.n_kv_head = 1;
    scores.n_pairs = 4;
    scores.scores = {4, 3, 2, 1};
    KeptPairs kept(1, 1, 4);
    kept.set(0, 0, 0);
    kept.set(0, 0, 1);
    QCOMPARE(rope_mass_kept(scores, kept), 0.7);
    MLAWB_EXPECT_ERROR(rope_mass_kept(scores, KeptPairs(2, 1, 4)), "do not match");

    LayerSpectrum layer;  // joint sigma 2, 1: rank 1 keeps 4 of 5; split: k_nope 1, 1 and v 3, 1
    layer.sigma_joint = {2, 1};
    layer.sigma_k_nope = {1, 1};
    layer.sigma_v = {3, 1};
    QCOMPARE(spectral_energy_kept({layer}, SvdMode::Joint, 1, 1), 0.8);
    QCOMPARE(spectral_energy_kept({layer}, SvdMode::Split, 2, 1), (1.0 + 9.0) / 12.0);
    QCOMPARE(spectral_energy_kept({layer}, SvdMode::None, -1, 1), 1.0);

    // The shortlist: at most 2 per family, families ordered by their best score.
    std::vector<Candidate> cs(5);
    const double analysis[] = {0.9, 0.5, 0.7, 0.95, 0.6};
    const int bits[] = {16, 16, 16, 4, 4};
    for (int i = 0; i < 5; ++i) {
        cs[i].spec.kv_bits = bits[i];
        cs[i].analysis = analysis[i];
        cs[i].text = "c" + std::to_string(i);
    }
    QVERIFY(shortlist(cs, 2) == (std::vector<size_t>{3, 4, 0, 2}));
    QVERIFY(shortlist(cs, 1) == (std::vector<size_t>{3, 0}));
}

void TestRecommend::recommendNearSweepFront() {
    // `mlawb recommend --budget 25%` on wb-tiny-mha, its top settings evaluated, against a small
    // sweep of settings within the same budget recorded in the same DB with the same options:
    // every recommended point is on or above the sweep's accuracy-against-bytes front, or below
    // it by at most one record's weight in the mean score. Small on purpose (2 records of 2
    // datasets, 1024 tokens of perplexity); the README's numbers come from a larger run.
    QTemporaryDir tmp;
    const std::string dir = tmp.path().toStdString(), db = dir + "/cmp.db", scores = dir + "/scores.json";
    const std::string text = test::fixtures_dir() + "/heldout.txt";
    MLAWB_REQUIRE_PATH(text);
    const std::vector<std::string> eval_opts = {"--tasks", tasks_dir(), "--datasets", "passkey,source_cls", "--limit", "2",
                                                "--db", db};
    const CliRun calib = cli_run({"rope-scores", mha(), "--calib", text, "--windows", "2", "--seq-len", "512", "--out", scores});
    QVERIFY2(calib.status == 0, calib.err.c_str());
    std::vector<std::string> rec = {"recommend", mha(), "--budget", "25%", "--scores", scores, "--calib", text,
                                    "--ppl-tokens", "1024", "--strategies", "full,high,2-norm", "--kv-bits", "16,4",
                                    "--per-family", "1", "--evaluate", "2", "--json"};
    rec.insert(rec.end(), eval_opts.begin(), eval_opts.end());
    const CliRun r = cli_run(rec);
    QVERIFY2(r.status == 0, r.err.c_str());
    const json report = json::parse(r.out);
    QVERIFY(report["candidates"].get<int>() > 10);
    const double budget_bytes = report["budget_bytes"].get<double>();
    std::vector<std::pair<std::string, ParetoPoint>> recommended;
    for (const json& row : report["shortlist"]) {
        QVERIFY(row["bytes"].get<double>() <= budget_bytes + 1e-9);
        QVERIFY(!row["perplexity"].is_null());
        if (row.contains("accuracy"))
            recommended.push_back({row["setting"], {row["bytes"].get<double>(), row["accuracy"].get<double>()}});
    }
    QCOMPARE(recommended.size(), size_t(2));

    std::vector<std::string> grids = {"strategy=high,2-norm;r=2,4;d_kv=8,16,24;scores=" + scores, "strategy=full;kv_bits=4,2",
                                      "strategy=high;r=8;d_kv=32,48;kv_bits=8"};
    std::set<std::string> swept;
    for (const std::string& grid : grids) {
        std::vector<std::string> sweep = {"sweep", mha(), "--grid", grid};
        sweep.insert(sweep.end(), eval_opts.begin(), eval_opts.end());
        std::vector<std::string> plan = sweep;
        plan.erase(plan.end() - 2, plan.end());  // no --db: every item
        plan.insert(plan.end(), {"--plan", "--json"});
        const CliRun p = cli_run(plan);
        QVERIFY2(p.status == 0, p.err.c_str());
        for (const json& item : json::parse(p.out)) swept.insert(item["setting"].get<std::string>());
        const CliRun ran = cli_run(sweep);
        QVERIFY2(ran.status == 0, ran.err.c_str());
    }
    // Per swept setting: mean of the datasets' headline scores (eval's "overall") and KV bytes.
    std::map<std::string, std::vector<double>> scores_of;
    std::map<std::string, double> bytes_of;
    for (const std::string& row : query_column(
             db, "SELECT s.spec || '|' || printf('%.17g', x.value) || '|' || printf('%.17g', mem.bytes_formula) FROM runs r "
                 "JOIN settings s ON s.id = r.setting_id JOIN memory mem ON mem.run_id = r.id JOIN metrics x ON x.run_id = r.id "
                 "AND x.bucket = '' WHERE r.status = 'finished' AND x.rowid = (SELECT min(rowid) FROM metrics WHERE run_id = "
                 "r.id AND bucket = '')")) {
        const size_t a = row.rfind('|', row.rfind('|') - 1), b = row.rfind('|');
        // eval records the resolved spec ("strategy=full,r=32,..."); the sweep lists canonical ones.
        const std::string spec = canonical_setting(MlaSpec::parse(row.substr(0, a)), mha_config()).to_string();
        scores_of[spec].push_back(std::stod(row.substr(a + 1, b - a - 1)));
        bytes_of[spec] = std::stod(row.substr(b + 1));
    }
    std::vector<std::string> names;
    std::vector<ParetoPoint> points;
    for (const std::string& spec : swept) {
        QVERIFY2(scores_of[spec].size() == 2, spec.c_str());
        if (bytes_of[spec] > budget_bytes + 1e-9) continue;
        double mean = 0;
        for (double v : scores_of[spec]) mean += v / 2;
        names.push_back(spec);
        points.push_back({bytes_of[spec], std::round(mean * 100) / 100});
    }
    QVERIFY(points.size() >= 10);
    std::vector<ParetoPoint> front;
    qInfo("sweep within budget (%zu settings; * = on its Pareto front):", points.size());
    const std::vector<size_t> on_front = pareto_front(points);
    for (size_t i = 0; i < points.size(); ++i) {
        const bool f = std::find(on_front.begin(), on_front.end(), i) != on_front.end();
        if (f) front.push_back(points[i]);
        qInfo("  %c %-60s %6.0f B/token %6.2f", f ? '*' : ' ', names[i].c_str(), points[i].bytes, points[i].value);
    }
    const double one_record = 100.0 / (2 * 2);  // one of 2 records of one of 2 datasets, in the mean
    for (const auto& [spec, p] : recommended) {
        const double gap = front_gap(p, front);
        qInfo("recommended %-50s %6.0f B/token %6.2f: %.2f below the sweep's front", spec.c_str(), p.bytes, p.value, gap);
        QVERIFY2(gap <= one_record, spec.c_str());
    }
}

QTEST_GUILESS_MAIN(TestRecommend)
#include "test_recommend.moc"
