// Sweeps (eval/sweep.h), merging results stores (eval/store_merge.h) and `mlawb sweep` /
// `mlawb merge` / scripts/slurm: grid expansion, the sharding property, resumed shards, merge
// idempotence and conflicts, and several processes sharing a sweep giving what one gives.
// `mlawb recommend` has test_recommend, merging synthetic stores test_merge.
#include "app/cli/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/tokenizer.h"
#include "eval/longbench.h"
#include "analysis/spectrum.h"
#include "analysis/strategies.h"
#include "eval/recommend.h"
#include "eval/cli_test_support.h"
#include "eval/store_dump.h"
#include "eval/sqlite_test_support.h"
#include "eval/store.h"
#include "eval/store_merge.h"
#include "eval/sweep.h"
#include "test_support.h"

#include <QProcess>
#include <QTemporaryDir>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

using namespace mlawb;
using json = nlohmann::json;
using test::CliRun;
using test::cli_run;
using test::mha;
using test::mha_config;
using test::tasks_dir;
namespace fs = std::filesystem;

namespace {

const QString kMlawb = QString::fromStdString(test::binary_dir() + "/app/cli/mlawb");

QProcess* start_mlawb(const QStringList& args, QObject* parent) {
    auto* p = new QProcess(parent);
    p->start(kMlawb, args);
    return p;
}
CliRun finish(QProcess* p, int timeout_ms = 900000) {
    p->waitForFinished(timeout_ms);
    return {p->exitStatus() == QProcess::NormalExit ? p->exitCode() : -1, p->readAllStandardOutput().toStdString(),
            p->readAllStandardError().toStdString()};
}

QStringList qargs(const std::vector<std::string>& args) {
    QStringList out;
    for (const std::string& a : args) out << QString::fromStdString(a);
    return out;
}

// QCOMPARE for std::string, printing both sides on failure.
#define QCOMPARE_STR(a, b) QCOMPARE(QString::fromStdString(a), QString::fromStdString(b))

std::string join(const std::vector<std::string>& items, const std::string& sep) {
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
    return out;
}

// Items with pseudo-random costs (a fixed LCG: the same on every run).
std::vector<SweepItem> synthetic_items(int64_t n, uint64_t seed) {
    std::vector<SweepItem> items;
    uint64_t x = seed;
    for (int64_t i = 0; i < n; ++i) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        const int64_t cost = 1 + static_cast<int64_t>((x >> 33) % 1000);
        items.push_back({"strategy=high,r=" + std::to_string(1 + i / 4), "ds" + std::to_string(i % 4), cost});
    }
    return items;
}

// Everything a run's results are, keyed by run_key: status, metrics, samples (id, score,
// prediction) and the setting, as text for exact comparison.
std::map<std::string, std::string> results_by_run_key(const std::string& db) {
    std::map<std::string, std::string> out;
    for (const std::string& key : query_column(db, "SELECT run_key FROM runs ORDER BY run_key")) {
        std::string text;
        for (const std::string& row : query_column(
                 db, "SELECT s.spec || ' ' || r.task || ' ' || r.dataset || ' ' || r.status || ' ' || r.options_json "
                     "FROM runs r JOIN settings s ON s.id = r.setting_id WHERE run_key = '" + key + "'"))
            text += row + "\n";
        for (const std::string& row :
             query_column(db, "SELECT name || '@' || bucket || '=' || printf('%.17g', value) FROM metrics WHERE run_id = "
                              "(SELECT id FROM runs WHERE run_key = '" + key + "') ORDER BY name, bucket"))
            text += row + "\n";
        for (const std::string& row : query_column(
                 db, "SELECT sample_id || ' ' || printf('%.17g', score) || ' ' || prediction FROM samples WHERE run_id = "
                     "(SELECT id FROM runs WHERE run_key = '" + key + "') ORDER BY sample_id"))
            text += row + "\n";
        out[key] = text;
    }
    return out;
}

}  // namespace

class TestSweep : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void gridExpansion_data();
    void gridExpansion();
    void gridRefusals_data();
    void gridRefusals();
    void gridKeysAreSpecKeys();
    void shardParse_data();
    void shardParse();
    void shardingProperty();
    void shardingOfRealGrid();
    void costModel();
    void planShardsCoverGrid();
    void resumedShardSkipsDoneItems();
    void originalAndFullRunsCountAsDone();
    void multiProcessShardsMergeEqualUnsharded();
    void slurmScriptsShardTheGrid();
};

void TestSweep::initTestCase() {
    MLAWB_REQUIRE_PATH(kMlawb.toStdString());
    MLAWB_REQUIRE_PATH(mha() + "/config.json");
    MLAWB_REQUIRE_PATH(tasks_dir() + "/passkey.jsonl");
}

void TestSweep::gridExpansion_data() {
    QTest::addColumn<QString>("grid");
    QTest::addColumn<int>("combinations");
    QTest::addColumn<QString>("settings");  // canonical texts joined by '|'
    QTest::addColumn<int>("refused");
    QTest::addColumn<int>("collapsed");
    QTest::newRow("issue example without 2-norm")
        << "strategy=high,low;r=2,8;d_kv=8,32;svd=joint" << 8
        << "strategy=high,r=2,d_kv=8,svd=joint|strategy=high,r=2,d_kv=32,svd=joint|strategy=high,r=8,d_kv=8,svd=joint|"
           "strategy=high,r=8,d_kv=32,svd=joint|strategy=low,r=2,d_kv=8,svd=joint|strategy=low,r=2,d_kv=32,svd=joint|"
           "strategy=low,r=8,d_kv=8,svd=joint|strategy=low,r=8,d_kv=32,svd=joint"
        << 0 << 0;
    QTest::newRow("d_kv alone means joint") << "strategy=uniform;r=4;d_kv=16" << 1
                                            << "strategy=uniform,r=4,d_kv=16,svd=joint" << 0 << 0;
    QTest::newRow("full needs no r") << "strategy=full,high;r=4" << 2 << "strategy=high,r=4" << 1 << 0;
    QTest::newRow("full with r = head_dim/2 is full") << "strategy=full;r=-,32" << 2 << "strategy=full" << 0 << 1;
    QTest::newRow("start only matters for uniform")
        << "strategy=high,uniform;r=4;start=0,1" << 4 << "strategy=high,r=4|strategy=uniform,r=4|strategy=uniform,r=4,start=1"
        << 0 << 1;
    QTest::newRow("2-norm without scores refused") << "strategy=2-norm,high;r=4" << 2 << "strategy=high,r=4" << 1 << 0;
    QTest::newRow("svd none beside a latent via '-'")
        << "strategy=high;r=4;svd=none,joint;d_kv=-,16" << 4 << "strategy=high,r=4|strategy=high,r=4,d_kv=16,svd=joint"
        << 2 << 0;
    QTest::newRow("kv_group only matters when quantized")
        << "strategy=high;r=8;kv_bits=16,4;kv_group=64,32" << 4
        << "strategy=high,r=8|strategy=high,r=8,kv_bits=4|strategy=high,r=8,kv_bits=4,kv_group=32" << 0 << 1;
    QTest::newRow("split needs even d_kv, r too large refused")
        << "strategy=low;r=4,33;d_kv=15,16;svd=split" << 4 << "strategy=low,r=4,d_kv=16,svd=split" << 3 << 0;
}

void TestSweep::gridExpansion() {
    QFETCH(QString, grid);
    QFETCH(int, combinations);
    QFETCH(QString, settings);
    QFETCH(int, refused);
    QFETCH(int, collapsed);
    const GridExpansion e = expand_grid(SweepGrid::parse(grid.toStdString()), mha_config());
    QCOMPARE(e.combinations, int64_t(combinations));
    QCOMPARE(QString::fromStdString(join(e.settings, "|")), settings);
    QCOMPARE(int(e.refused.size()), refused);
    QCOMPARE(int(e.collapsed.size()), collapsed);
    for (const RefusedCombination& r : e.refused) QVERIFY2(!r.reason.empty(), r.combination.c_str());
    // Every setting round-trips through the spec parser unchanged: it is canonical.
    for (const std::string& s : e.settings) QCOMPARE(QString::fromStdString(MlaSpec::parse(s).to_string()), QString::fromStdString(s));
}

void TestSweep::gridRefusals_data() {
    QTest::addColumn<QString>("grid");
    QTest::addColumn<QString>("needle");
    QTest::newRow("empty") << "" << "empty grid";
    QTest::newRow("no equals") << "strategy" << "is not key=value";
    QTest::newRow("unknown key") << "strategy=high;rank=4" << "unknown key 'rank'";
    QTest::newRow("key twice") << "r=1;r=2" << "r: given twice";
    QTest::newRow("empty value") << "r=1,,2" << "empty value";
    QTest::newRow("value twice") << "r=2,2" << "value '2' given twice";
    QTest::newRow("empty axis") << "strategy=high;;r=2" << "empty axis";
    QTest::newRow("nothing valid") << "strategy=high;r=64" << "no valid setting";
}

void TestSweep::gridRefusals() {
    QFETCH(QString, grid);
    QFETCH(QString, needle);
    const std::string n = needle.toStdString();
    MLAWB_EXPECT_ERROR(expand_grid(SweepGrid::parse(grid.toStdString()), mha_config()), "--grid", n.c_str());
}

void TestSweep::gridKeysAreSpecKeys() {
    // Every key a grid takes is one MlaSpec::parse takes (a grid of all of them parses, and each
    // axis alone gives a spec the parser reads back).
    const std::string all =
        "strategy=uniform;r=4;d_kv=16;svd=joint;start=1;scores=s.json;calib=c.txt;mask=m.json;variant=sum;kv_bits=4;"
        "kv_group=32;residual=16";
    const SweepGrid grid = SweepGrid::parse(all);
    QCOMPARE(grid.axes.size(), size_t(12));
    for (const GridAxis& axis : grid.axes) {
        const std::string spec = axis.key == "strategy" ? "strategy=uniform,r=4" : "strategy=uniform,r=4," + axis.key + "=" + axis.values[0];
        try {
            if (axis.key != "r") MlaSpec::parse(spec);
        } catch (const Error& e) {
            QVERIFY2(std::string(e.what()).find("unknown key") == std::string::npos, e.what());
        }
    }
}

void TestSweep::shardParse_data() {
    QTest::addColumn<QString>("text");
    QTest::addColumn<bool>("valid");
    QTest::newRow("0/1") << "0/1" << true;
    QTest::newRow("2/3") << "2/3" << true;
    QTest::newRow("3/3") << "3/3" << false;
    QTest::newRow("negative") << "-1/2" << false;
    QTest::newRow("no slash") << "1" << false;
    QTest::newRow("letters") << "a/b" << false;
    QTest::newRow("zero shards") << "0/0" << false;
    QTest::newRow("spaces") << " 0/2" << false;
}

void TestSweep::shardParse() {
    QFETCH(QString, text);
    QFETCH(bool, valid);
    if (valid) {
        const ShardSpec s = ShardSpec::parse(text.toStdString());
        QCOMPARE(QString::fromStdString(s.to_string()), text);
    } else {
        MLAWB_EXPECT_ERROR(ShardSpec::parse(text.toStdString()), "--shard", "i/N");
    }
}

void TestSweep::shardingProperty() {
    // Grids of several sizes and every N in 1..7: the shards partition the grid (union = grid,
    // no overlap), loads differ by at most the largest item cost, and the split is the same
    // when computed again and from a shuffled item list (no dependence on the input order).
    for (int64_t n_items : {0, 1, 2, 5, 12, 18, 37, 100}) {
        for (uint64_t seed : {1ULL, 7ULL}) {
            const std::vector<SweepItem> items = synthetic_items(n_items, seed);
            std::vector<SweepItem> shuffled = items;
            std::reverse(shuffled.begin(), shuffled.end());
            std::rotate(shuffled.begin(), shuffled.begin() + shuffled.size() / 3, shuffled.end());
            int64_t max_cost = 0;
            for (const SweepItem& i : items) max_cost = std::max(max_cost, i.cost);
            for (int64_t count = 1; count <= 7; ++count) {
                std::multiset<std::string> seen;
                std::vector<int64_t> loads;
                for (int64_t k = 0; k < count; ++k) {
                    const std::vector<SweepItem> mine = shard_items(items, ShardSpec{k, count});
                    const std::vector<SweepItem> again = shard_items(shuffled, ShardSpec{k, count});
                    QCOMPARE(again.size(), mine.size());
                    int64_t load = 0;
                    for (size_t i = 0; i < mine.size(); ++i) {
                        QCOMPARE(again[i].key(), mine[i].key());
                        seen.insert(mine[i].key());
                        load += mine[i].cost;
                        if (i > 0) QVERIFY(mine[i - 1].cost >= mine[i].cost);  // dealing order
                    }
                    loads.push_back(load);
                }
                const QString where = QStringLiteral("%1 items, seed %2, N = %3").arg(n_items).arg(seed).arg(count);
                QVERIFY2(seen.size() == items.size(), qPrintable(where));  // nothing lost, nothing twice
                for (const SweepItem& i : items) QVERIFY2(seen.count(i.key()) == 1, qPrintable(where));
                const auto [lo, hi] = std::minmax_element(loads.begin(), loads.end());
                QVERIFY2(*hi - *lo <= max_cost, qPrintable(where + QStringLiteral(": loads %1..%2, max cost %3")
                                                                     .arg(*lo).arg(*hi).arg(max_cost)));
            }
        }
    }
}

void TestSweep::shardingOfRealGrid() {
    // The grid on the fixture model and task set: 18 settings x 4 datasets.
    const ModelConfig config = mha_config();
    const GridExpansion e = expand_grid(SweepGrid::parse("strategy=high,low;r=2,4,8;d_kv=8,16,32;svd=joint"), config);
    QCOMPARE(e.settings.size(), size_t(18));
    const LongBenchTaskSet tasks = LongBenchTaskSet::open(tasks_dir());
    const Tokenizer tok = Tokenizer::from_file(mha() + "/tokenizer.json");
    std::vector<DatasetWork> work;
    for (const std::string& d : tasks.datasets()) work.push_back(measure_dataset(tasks, d, tok, config, 2, -1));
    const std::vector<SweepItem> items = make_sweep_items(e.settings, work);
    QCOMPARE(items.size(), size_t(72));
    for (int64_t count : {1, 2, 3, 4, 7}) {
        const std::vector<int64_t> owner = assign_shards(items, count);
        std::vector<int64_t> loads(count, 0);
        int64_t max_cost = 0;
        for (size_t i = 0; i < items.size(); ++i) {
            loads[owner[i]] += items[i].cost;
            max_cost = std::max(max_cost, items[i].cost);
        }
        const auto [lo, hi] = std::minmax_element(loads.begin(), loads.end());
        QVERIFY(*hi - *lo <= max_cost);
    }
}

void TestSweep::costModel() {
    const ModelConfig config = mha_config();
    const LongBenchTaskSet tasks = LongBenchTaskSet::open(tasks_dir());
    const Tokenizer tok = Tokenizer::from_file(mha() + "/tokenizer.json");
    const DatasetWork w = measure_dataset(tasks, "passkey", tok, config, 3, -1);
    QCOMPARE(w.records, int64_t(3));
    const LongBenchDataset data = tasks.load("passkey", false);
    int64_t tokens = 0;
    for (int i = 0; i < 3; ++i)
        tokens += std::min<int64_t>(tok.encode(fill_prompt(tasks.prompt_template("passkey"), data.records[i])).size(),
                                    config.max_position - tasks.max_new_tokens("passkey"));
    QCOMPARE(w.prompt_tokens, tokens);
    QCOMPARE(w.new_tokens, 3 * tasks.max_new_tokens("passkey"));
    // A short max prompt caps every record.
    const DatasetWork capped = measure_dataset(tasks, "passkey", tok, config, 3, 100);
    QCOMPARE(capped.prompt_tokens, int64_t(300));
    const std::vector<SweepItem> items =
        make_sweep_items({"strategy=full", "strategy=high,r=4", "strategy=high,r=4,kv_bits=4", "strategy=full,kv_bits=4"}, {w});
    QCOMPARE(items[0].cost, w.work());
    QCOMPARE(items[1].cost, (w.work() * (1000 + kConvertedPermille) + 500) / 1000);
    QCOMPARE(items[2].cost, (w.work() * (1000 + kConvertedPermille + kQuantizedCachePermille) + 500) / 1000);
    QCOMPARE(items[3].cost, (w.work() * (1000 + kQuantizedCachePermille) + 500) / 1000);
}

void TestSweep::planShardsCoverGrid() {
    // `mlawb sweep --plan --json --shard k/N` for N = 1..4: the shards' lists partition the grid.
    const std::vector<std::string> base = {"sweep", mha(), "--grid", "strategy=high,uniform;r=2,4;d_kv=8,16",
                                           "--tasks", tasks_dir(), "--limit", "2", "--plan", "--json"};
    std::set<std::string> all;
    {
        const CliRun r = cli_run(base);
        QVERIFY2(r.status == 0, r.err.c_str());
        for (const json& item : json::parse(r.out)) {
            QVERIFY(item.contains("setting") && item.contains("dataset") && item["cost"].get<int64_t>() > 0);
            all.insert(item["setting"].get<std::string>() + "\n" + item["dataset"].get<std::string>());
        }
    }
    QCOMPARE(all.size(), size_t(8 * 4));
    for (int count = 1; count <= 4; ++count) {
        std::multiset<std::string> seen;
        for (int k = 0; k < count; ++k) {
            std::vector<std::string> args = base;
            args.insert(args.end(), {"--shard", std::to_string(k) + "/" + std::to_string(count)});
            const CliRun r = cli_run(args);
            QVERIFY2(r.status == 0, r.err.c_str());
            for (const json& item : json::parse(r.out))
                seen.insert(item["setting"].get<std::string>() + "\n" + item["dataset"].get<std::string>());
        }
        QCOMPARE(seen.size(), all.size());
        QVERIFY(std::set<std::string>(seen.begin(), seen.end()) == all);
    }
    // The text plan names the shard and its load.
    std::vector<std::string> args = base;
    args.pop_back();
    args.insert(args.end(), {"--shard", "1/3"});
    const CliRun text = cli_run(args);
    QVERIFY2(text.status == 0, text.err.c_str());
    QVERIFY2(text.out.find("shard     1/3") != std::string::npos, text.out.c_str());
}

void TestSweep::resumedShardSkipsDoneItems() {
    // Shard 0/2 of a 2 x 2 grid runs, then plans nothing more; shard 1/2 still has its items.
    // A run recorded by `mlawb eval` itself counts as done for the sweep (same options JSON).
    QTemporaryDir tmp;
    const std::string db = tmp.path().toStdString() + "/s.db";
    const std::vector<std::string> base = {"sweep",  mha(),     "--grid",   "strategy=high;r=4,8;d_kv=16", "--tasks",
                                           tasks_dir(), "--datasets", "passkey,source_cls", "--limit", "1", "--db", db};
    auto plan = [&](const std::string& shard) {
        std::vector<std::string> args = base;
        args.insert(args.end(), {"--shard", shard, "--plan", "--json"});
        const CliRun r = cli_run(args);
        if (r.status != 0) qWarning("%s", r.err.c_str());
        return r.status == 0 ? json::parse(r.out) : json::array();
    };
    const json before0 = plan("0/2"), before1 = plan("1/2");
    QCOMPARE(before0.size() + before1.size(), size_t(4));
    QVERIFY(!before0.empty());
    std::vector<std::string> run = base;
    run.insert(run.end(), {"--shard", "0/2", "--json"});
    const CliRun first = cli_run(run);
    QVERIFY2(first.status == 0, first.err.c_str());
    QCOMPARE(json::parse(first.out)["items"].size(), before0.size());
    QCOMPARE(plan("0/2").size(), size_t(0));
    QVERIFY(plan("1/2") == before1);
    const CliRun again = cli_run(run);
    QVERIFY2(again.status == 0, again.err.c_str());
    QCOMPARE(json::parse(again.out)["items"].size(), size_t(0));
    QCOMPARE(json::parse(again.out)["skipped"].get<size_t>(), before0.size());
    const int64_t runs = count_rows(db, "SELECT count(*) FROM runs");
    QCOMPARE(runs, int64_t(before0.size()));

    // One of shard 1's items evaluated by `mlawb eval` directly: the sweep sees it as done.
    const json item = before1[0];
    const CliRun eval = cli_run({"eval", mha(), "--tasks", tasks_dir(), "--datasets", item["dataset"].get<std::string>(),
                                 "--mla", item["setting"].get<std::string>(), "--limit", "1", "--db", db});
    QVERIFY2(eval.status == 0, eval.err.c_str());
    const json after1 = plan("1/2");
    QCOMPARE(after1.size(), before1.size() - 1);
    for (const json& i : after1) QVERIFY(i != item);
}

void TestSweep::originalAndFullRunsCountAsDone() {
    // eval records the resolved spec ("strategy=full,r=32,kv_bits=4" for --mla
    // "strategy=full,kv_bits=4", "strategy=full" without --mla); the sweep's canonical settings
    // find both, and its own run of the original is a plain eval's run (same run key).
    QTemporaryDir tmp;
    const std::string db = tmp.path().toStdString() + "/f.db";
    const std::vector<std::string> common = {"--tasks", tasks_dir(), "--datasets", "passkey", "--limit", "1", "--db", db};
    auto plan = [&](const std::string& grid) {
        std::vector<std::string> args = {"sweep", mha(), "--grid", grid, "--plan", "--json"};
        args.insert(args.end(), common.begin(), common.end());
        const CliRun r = cli_run(args);
        if (r.status != 0) qWarning("%s", r.err.c_str());
        return r.status == 0 ? json::parse(r.out).size() : size_t(99);
    };
    QCOMPARE(plan("strategy=full;kv_bits=16,4"), size_t(2));
    std::vector<std::string> eval = {"eval", mha(), "--mla", "strategy=full,kv_bits=4"};
    eval.insert(eval.end(), common.begin(), common.end());
    QCOMPARE(cli_run(eval).status, 0);
    QCOMPARE(plan("strategy=full;kv_bits=16,4"), size_t(1));
    std::vector<std::string> sweep = {"sweep", mha(), "--grid", "strategy=full"};
    sweep.insert(sweep.end(), common.begin(), common.end());
    QCOMPARE(cli_run(sweep).status, 0);
    QCOMPARE(plan("strategy=full;kv_bits=16,4"), size_t(0));
    std::vector<std::string> plain = {"eval", mha()};
    plain.insert(plain.end(), common.begin(), common.end());
    const CliRun again = cli_run(plain);
    QCOMPARE(again.status, 0);
    QCOMPARE(count_rows(db, "SELECT count(*) FROM runs"), int64_t(2));  // the plain eval found the sweep's run
}

void TestSweep::multiProcessShardsMergeEqualUnsharded() {
    // 3 shard processes in parallel, each with its own DB, merged; and 2 workers (--workers)
    // writing one DB: both equal one unsharded sweep, run key by run key, score by score.
    QTemporaryDir tmp;
    const std::string dir = tmp.path().toStdString();
    const std::vector<std::string> base = {"sweep",   mha(),       "--grid",     "strategy=high,uniform;r=4,8;d_kv=16",
                                           "--tasks", tasks_dir(), "--datasets", "passkey,source_cls",
                                           "--limit", "1"};
    auto with = [&](std::vector<std::string> extra) {
        std::vector<std::string> args = base;
        args.insert(args.end(), extra.begin(), extra.end());
        return qargs(args);
    };
    std::vector<QProcess*> shards;
    for (int k = 0; k < 3; ++k)
        shards.push_back(start_mlawb(with({"--db", dir + "/shard-" + std::to_string(k) + ".db", "--shard",
                                           std::to_string(k) + "/3"}),
                                     this));
    QProcess* single = start_mlawb(with({"--db", dir + "/single.db"}), this);
    for (QProcess* p : shards) {
        const CliRun r = finish(p);
        QVERIFY2(r.status == 0, r.err.c_str());
    }
    const CliRun s = finish(single);
    QVERIFY2(s.status == 0, s.err.c_str());
    const CliRun merged = finish(start_mlawb(qargs({"merge", dir + "/shard-0.db", dir + "/shard-1.db", dir + "/shard-2.db",
                                                    "-o", dir + "/all.db"}),
                                             this));
    QVERIFY2(merged.status == 0, merged.err.c_str());
    QProcess* workers_process = new QProcess(this);
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert("MLAWB_EXE", kMlawb);
    workers_process->setProcessEnvironment(env);
    workers_process->start(kMlawb, with({"--db", dir + "/workers.db", "--workers", "2"}));
    const CliRun workers = finish(workers_process);
    QVERIFY2(workers.status == 0, (workers.out + workers.err).c_str());

    const auto want = results_by_run_key(dir + "/single.db");
    QCOMPARE(want.size(), size_t(8));  // 4 settings x 2 datasets
    for (const char* name : {"/all.db", "/workers.db"}) {
        const auto got = results_by_run_key(dir + name);
        QCOMPARE(got.size(), want.size());
        for (const auto& [key, text] : want) {
            QVERIFY2(got.count(key), (std::string(name) + ": missing run " + key).c_str());
            QCOMPARE(QString::fromStdString(got.at(key)), QString::fromStdString(text));
        }
    }
    // Every shard DB holds only its own items: no run twice across shards.
    int64_t total = 0;
    for (int k = 0; k < 3; ++k) total += count_rows(dir + "/shard-" + std::to_string(k) + ".db", "SELECT count(*) FROM runs");
    QCOMPARE(total, int64_t(8));
    // Merging again is a no-op; the sweep over the merged DB has nothing left.
    const std::string before = dump_all(dir + "/all.db");
    QCOMPARE(cli_run({"merge", dir + "/shard-0.db", dir + "/shard-1.db", dir + "/shard-2.db", "-o", dir + "/all.db"}).status, 0);
    QCOMPARE(QString::fromStdString(dump_all(dir + "/all.db")), QString::fromStdString(before));
    std::vector<std::string> plan = base;
    plan.insert(plan.end(), {"--db", dir + "/all.db", "--plan", "--json"});
    const CliRun left = cli_run(plan);
    QVERIFY2(left.status == 0, left.err.c_str());
    QCOMPARE(json::parse(left.out).size(), size_t(0));
}

void TestSweep::slurmScriptsShardTheGrid() {
    // scripts/slurm/sweep.sbatch run by hand as array tasks 3..5 of an array 3-5 (the shard is
    // the task's place in the array, not its id), with --plan passed through; and merge.sbatch
    // refusing a missing shard DB.
    const std::string script = test::source_dir() + "/scripts/slurm/sweep.sbatch";
    MLAWB_REQUIRE_PATH(script);
    QTemporaryDir tmp;
    const std::string grid = "strategy=high,low;r=2,4;d_kv=8,16";
    const CliRun whole = cli_run({"sweep", mha(), "--grid", grid, "--tasks", tasks_dir(), "--limit", "2", "--plan", "--json"});
    QVERIFY2(whole.status == 0, whole.err.c_str());
    std::multiset<std::string> seen;
    for (int task = 3; task <= 5; ++task) {
        QProcess p;
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert("SLURM_ARRAY_TASK_ID", QString::number(task));
        env.insert("SLURM_ARRAY_TASK_MIN", "3");
        env.insert("SLURM_ARRAY_TASK_MAX", "5");
        env.remove("SLURM_ARRAY_TASK_COUNT");
        env.insert("MLAWB", kMlawb);
        p.setProcessEnvironment(env);
        p.start("bash", qargs({script, mha(), grid, tasks_dir(), tmp.path().toStdString() + "/out", "--limit", "2", "--plan",
                               "--json"}));
        const CliRun r = finish(&p);
        QVERIFY2(r.status == 0, r.err.c_str());
        QVERIFY2(r.err.find("shard " + std::to_string(task - 3) + "/3") != std::string::npos, r.err.c_str());
        for (const json& item : json::parse(r.out)) seen.insert(item.dump());
    }
    std::multiset<std::string> all;
    for (const json& item : json::parse(whole.out)) all.insert(item.dump());
    QCOMPARE(seen.size(), all.size());
    QVERIFY(seen == all);

    QProcess merge;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert("MLAWB", kMlawb);
    merge.setProcessEnvironment(env);
    merge.start("bash", qargs({test::source_dir() + "/scripts/slurm/merge.sbatch", tmp.path().toStdString() + "/out", "3"}));
    const CliRun m = finish(&merge);
    QCOMPARE(m.status, 2);
    QVERIFY2(m.err.find("shard-0-of-3.db is missing") != std::string::npos, m.err.c_str());
}

QTEST_GUILESS_MAIN(TestSweep)
#include "test_sweep.moc"
