// The MLA setting: spec parsing and its canonical text, every refusal naming the key, the
// partial-RoPE strategies' exact pair sets (MHA2MLA sec. 3.1), 2-norm picks on hand-made
// scores, custom masks, and resolve_setting with scores files and the calibration callback.
#include "analysis/mla_spec.h"
#include "analysis/setting.h"
#include "analysis/strategies.h"
#include "core/config.h"
#include "core/error.h"
#include "test_support.h"

#include <QTemporaryDir>
#include <fstream>

using namespace mlawb;

namespace {

// A Llama config of the given shape (head_dim explicit; hidden = n_head x head_dim unless given).
ModelConfig make_config(int64_t layers, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t hidden = 0) {
    if (hidden == 0) hidden = heads * head_dim;
    const std::string text = "{\"model_type\":\"llama\",\"hidden_size\":" + std::to_string(hidden) +
                             ",\"intermediate_size\":128,\"num_hidden_layers\":" + std::to_string(layers) +
                             ",\"num_attention_heads\":" + std::to_string(heads) +
                             ",\"num_key_value_heads\":" + std::to_string(kv_heads) +
                             ",\"head_dim\":" + std::to_string(head_dim) + ",\"vocab_size\":100}";
    return ModelConfig::from_json_text(text, "inline-config");
}

// d = 64 (32 pairs), 3 layers, 4 query heads over 2 KV heads, hidden 256: wb-tiny-gqa's head shape.
ModelConfig d64_config() { return make_config(3, 4, 2, 64, 256); }

QList<qint64> to_list(const std::vector<int64_t>& v) { return QList<qint64>(v.begin(), v.end()); }

// Scores for one layer, one query head per KV head (so S = Qn * Kn with Qn = 1 is the score).
RopeScores one_layer_scores(const QList<QVector<double>>& per_head) {
    RopeScores s;
    s.n_layer = 1;
    s.n_head = s.n_kv_head = per_head.size();
    s.n_pairs = per_head.front().size();
    for (const auto& head : per_head)
        for (double v : head) {
            s.scores.push_back(v);
            s.k_norms.push_back(v);
            s.q_norms.push_back(1.0);
        }
    return s;
}

KeptPairs run_strategy(const std::string& name, const ModelConfig& config, int64_t r, const RopeScores* scores = nullptr,
                       int64_t start = 0) {
    StrategyInput in;
    in.config = &config;
    in.r = r;
    in.start = start;
    in.scores = scores;
    return find_strategy(name).select(in);
}

void write_file(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

}  // namespace

class TestSetting : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void fixedStrategies_data();
    void fixedStrategies();
    void twoNorm_data();
    void twoNorm();
    void twoNormLayer_data();
    void twoNormLayer();
    void registryOrderAndErrors();
    void customRoundTrip();
    void customRefusals_data();
    void customRefusals();
    void specRoundTrip_data();
    void specRoundTrip();
    void badSpecs_data();
    void badSpecs();
    void impossibleSettings_data();
    void impossibleSettings();
    void largestLegalSettingsPass();
    void resolveFullKeepsAllPairs();
    void resolveFromScoresFile();
    void resolveRefusesMismatchedScores();
    void resolveRecombinesVariant();
    void resolveCalibratesThroughCallback();
    void gqaFixture();
};

void TestSetting::fixedStrategies_data() {
    QTest::addColumn<QString>("strategy");
    QTest::addColumn<qint64>("r");
    QTest::addColumn<qint64>("start");
    QTest::addColumn<QList<qint64>>("expected");
    QTest::newRow("high r=4") << "high" << qint64(4) << qint64(0) << QList<qint64>{0, 1, 2, 3};
    QTest::newRow("low r=4") << "low" << qint64(4) << qint64(0) << QList<qint64>{28, 29, 30, 31};
    QTest::newRow("uniform r=4") << "uniform" << qint64(4) << qint64(0) << QList<qint64>{0, 8, 16, 24};
    QTest::newRow("uniform r=4 start=1") << "uniform" << qint64(4) << qint64(1) << QList<qint64>{1, 9, 17, 25};
    QTest::newRow("uniform r=4 start=7 (last start)") << "uniform" << qint64(4) << qint64(7) << QList<qint64>{7, 15, 23, 31};
    QTest::newRow("uniform r=3 (D = 32/3 = 10)") << "uniform" << qint64(3) << qint64(0) << QList<qint64>{0, 10, 20};
    QTest::newRow("high r=1") << "high" << qint64(1) << qint64(0) << QList<qint64>{0};
    QList<qint64> all;
    for (qint64 k = 0; k < 32; ++k) all << k;
    QTest::newRow("low r=32 = all") << "low" << qint64(32) << qint64(0) << all;
    QTest::newRow("full") << "full" << qint64(32) << qint64(0) << all;
}

void TestSetting::fixedStrategies() {
    QFETCH(QString, strategy);
    QFETCH(qint64, r);
    QFETCH(qint64, start);
    QFETCH(QList<qint64>, expected);
    const ModelConfig config = d64_config();
    const KeptPairs kept = run_strategy(strategy.toStdString(), config, r, nullptr, start);
    QCOMPARE(kept.n_layer, 3);
    QCOMPARE(kept.n_kv_head, 2);
    QCOMPARE(kept.n_pairs, 32);
    for (int64_t l = 0; l < kept.n_layer; ++l)
        for (int64_t g = 0; g < kept.n_kv_head; ++g) {
            QCOMPARE(to_list(kept.pairs(l, g)), expected);
            QCOMPARE(kept.count(l, g), r);
        }
}

void TestSetting::twoNorm_data() {
    QTest::addColumn<QVector<double>>("scores");
    QTest::addColumn<qint64>("r");
    QTest::addColumn<QList<qint64>>("expected");
    QTest::newRow("largest three") << QVector<double>{1, 7, 3, 9, 0, 8, 2, 4} << qint64(3) << QList<qint64>{1, 3, 5};
    QTest::newRow("four-way tie goes to the lower k") << QVector<double>{1, 5, 5, 3, 5, 0, 2, 5} << qint64(3)
                                                   << QList<qint64>{1, 2, 4};
    QTest::newRow("tie for the last place") << QVector<double>{9, 1, 1, 1, 1, 1, 1, 8} << qint64(3) << QList<qint64>{0, 1, 7};
    QTest::newRow("all equal = high") << QVector<double>(8, 2.0) << qint64(4) << QList<qint64>{0, 1, 2, 3};
    QTest::newRow("low frequencies win") << QVector<double>{1, 2, 3, 4, 5, 6, 7, 8} << qint64(2) << QList<qint64>{6, 7};
}

void TestSetting::twoNorm() {
    QFETCH(QVector<double>, scores);
    QFETCH(qint64, r);
    QFETCH(QList<qint64>, expected);
    // Head 1 gets the reversed scores: heads choose independently.
    QVector<double> reversed(scores.rbegin(), scores.rend());
    const RopeScores s = one_layer_scores({scores, reversed});
    const ModelConfig config = make_config(1, 2, 2, 16);
    const KeptPairs kept = run_strategy("2-norm", config, r, &s);
    QCOMPARE(to_list(kept.pairs(0, 0)), expected);
    QCOMPARE(kept.count(0, 1), r);
    // The reversed head keeps its own top r: no dropped pair scores above a kept one.
    double min_kept = 1e300, max_dropped = -1e300;
    for (int64_t k = 0; k < 8; ++k) {
        if (kept.kept(0, 1, k)) min_kept = std::min(min_kept, s.score(0, 1, k));
        else max_dropped = std::max(max_dropped, s.score(0, 1, k));
    }
    QVERIFY(min_kept >= max_dropped);
}

void TestSetting::twoNormLayer_data() {
    QTest::addColumn<QVector<double>>("head0");
    QTest::addColumn<QVector<double>>("head1");
    QTest::addColumn<qint64>("r");
    QTest::addColumn<QList<qint64>>("kept0");
    QTest::addColumn<QList<qint64>>("kept1");
    QTest::newRow("budget 4 goes 3 + 1") << QVector<double>{9, 8, 7, 4, 0, 0, 0, 0} << QVector<double>{0, 0, 0, 0, 0, 0, 5, 0}
                                         << qint64(2) << QList<qint64>{0, 1, 2} << QList<qint64>{6};
    QTest::newRow("budget 4 all to head 1") << QVector<double>{1, 1, 1, 1, 1, 1, 1, 1}
                                            << QVector<double>{2, 0, 2, 0, 2, 0, 2, 0} << qint64(2) << QList<qint64>{}
                                            << QList<qint64>{0, 2, 4, 6};
    QTest::newRow("ties to lower head, then lower k") << QVector<double>(8, 1.0) << QVector<double>(8, 1.0) << qint64(2)
                                                      << QList<qint64>{0, 1, 2, 3} << QList<qint64>{};
    QTest::newRow("balanced scores = 2-norm") << QVector<double>{5, 0, 0, 4, 0, 0, 0, 0}
                                              << QVector<double>{0, 0, 6, 0, 0, 0, 0, 3} << qint64(2) << QList<qint64>{0, 3}
                                              << QList<qint64>{2, 7};
}

void TestSetting::twoNormLayer() {
    QFETCH(QVector<double>, head0);
    QFETCH(QVector<double>, head1);
    QFETCH(qint64, r);
    QFETCH(QList<qint64>, kept0);
    QFETCH(QList<qint64>, kept1);
    const RopeScores s = one_layer_scores({head0, head1});
    const ModelConfig config = make_config(1, 2, 2, 16);
    const KeptPairs kept = run_strategy("2-norm-layer", config, r, &s);
    QCOMPARE(to_list(kept.pairs(0, 0)), kept0);
    QCOMPARE(to_list(kept.pairs(0, 1)), kept1);
    QCOMPARE(kept.count(0, 0) + kept.count(0, 1), 2 * r);  // the layer's budget n_kv x r
}

void TestSetting::registryOrderAndErrors() {
    QStringList names;
    for (const auto& s : strategy_registry()) names << QString::fromStdString(s.name);
    QCOMPARE(names, (QStringList{"full", "high", "low", "uniform", "2-norm", "2-norm-layer", "custom"}));
    QVERIFY(find_strategy("2-norm").needs_scores);
    QVERIFY(find_strategy("2-norm-layer").needs_scores);
    QVERIFY(!find_strategy("uniform").needs_scores);
    MLAWB_EXPECT_ERROR(find_strategy("2norm"), "strategy", "'2norm'", "full, high, low, uniform, 2-norm, 2-norm-layer, custom");
}

void TestSetting::customRoundTrip() {
    // An uneven mask (2-norm-layer gives head 0 three pairs, head 1 one) survives JSON and a file.
    const RopeScores s = one_layer_scores({{9, 8, 7, 4, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0, 5, 0}});
    const ModelConfig config = make_config(1, 2, 2, 16);
    const KeptPairs original = run_strategy("2-norm-layer", config, 2, &s);
    const std::string text = original.to_json_text();
    const KeptPairs back = KeptPairs::from_json_text(text, "mask.json", 1, 2, 8);
    QVERIFY(back.mask == original.mask);

    QTemporaryDir tmp;
    QVERIFY(tmp.isValid());
    const std::string path = tmp.filePath("mask.json").toStdString();
    write_file(path, text);
    const ResolvedSetting any_count = resolve_setting(MlaSpec::parse("strategy=custom,mask=" + path), config, nullptr);
    QVERIFY(any_count.kept.mask == original.mask);
    QCOMPARE(any_count.kept.count(0, 0), 3);
    // With r given, every head must keep exactly r pairs: the error names the file and the head.
    MLAWB_EXPECT_ERROR(resolve_setting(MlaSpec::parse("strategy=custom,r=2,mask=" + path), config, nullptr), path.c_str(),
                       "kept_pairs[0][0]", "keeps 3 pairs", "r=2");
    // A high mask written by hand resolves with r.
    const KeptPairs high = run_strategy("high", config, 2);
    write_file(path, high.to_json_text());
    QVERIFY(resolve_setting(MlaSpec::parse("strategy=custom,r=2,mask=" + path), config, nullptr).kept.mask == high.mask);
}

void TestSetting::customRefusals_data() {
    QTest::addColumn<QString>("json");
    QTest::addColumn<QStringList>("needles");
    QTest::newRow("not JSON") << "{\"kept_pairs\": [" << QStringList{"m.json", "not valid JSON"};
    QTest::newRow("no kept_pairs") << "{\"pairs\": []}" << QStringList{"m.json", "kept_pairs", "missing"};
    QTest::newRow("two layers") << "{\"kept_pairs\": [[[0],[1]],[[0],[1]]]}" << QStringList{"m.json", "2 layers", "has 1"};
    QTest::newRow("one head") << "{\"kept_pairs\": [[[0]]]}" << QStringList{"m.json", "kept_pairs[0]", "2 KV heads"};
    QTest::newRow("pair out of range") << "{\"kept_pairs\": [[[0],[3, 8]]]}"
                                       << QStringList{"m.json", "kept_pairs[0][1][1]", "pair 8", "0..7"};
    QTest::newRow("negative pair") << "{\"kept_pairs\": [[[-1],[3]]]}" << QStringList{"kept_pairs[0][0][0]", "pair -1"};
    QTest::newRow("duplicate") << "{\"kept_pairs\": [[[2, 2],[3]]]}" << QStringList{"kept_pairs[0][0][1]", "listed twice"};
    QTest::newRow("not an integer") << "{\"kept_pairs\": [[[\"a\"],[3]]]}" << QStringList{"kept_pairs[0][0][0]", "integer"};
    QTest::newRow("head not a list") << "{\"kept_pairs\": [[3,[3]]]}" << QStringList{"kept_pairs[0][0]", "array"};
}

void TestSetting::customRefusals() {
    QFETCH(QString, json);
    QFETCH(QStringList, needles);
    bool thrown = false;
    try {
        KeptPairs::from_json_text(json.toStdString(), "m.json", 1, 2, 8);
    } catch (const Error& e) {
        thrown = true;
        for (const QString& n : needles) QVERIFY2(QString(e.what()).contains(n), e.what());
    }
    QVERIFY(thrown);
}

void TestSetting::specRoundTrip_data() {
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("canonical");
    QTest::newRow("paper's SmolLM setting") << "strategy=2-norm,r=4,d_kv=16,svd=joint,scores=s.json"
                                            << "strategy=2-norm,r=4,d_kv=16,svd=joint,scores=s.json";
    QTest::newRow("any order, spaces, svd inferred")
        << " d_kv=16 , r=4,scores=s.json,strategy=2-norm" << "strategy=2-norm,r=4,d_kv=16,svd=joint,scores=s.json";
    QTest::newRow("defaults dropped") << "strategy=high,r=4,start=0,variant=product,kv_bits=16,kv_group=64,residual=128,svd=none"
                                      << "strategy=high,r=4";
    QTest::newRow("full") << "strategy=full" << "strategy=full";
    QTest::newRow("uniform start") << "start=1,r=4,strategy=uniform" << "strategy=uniform,r=4,start=1";
    QTest::newRow("every key") << "strategy=2-norm-layer,r=8,d_kv=64,svd=split,calib=t.txt,variant=sum,kv_bits=2,"
                                  "kv_group=32,residual=0"
                               << "strategy=2-norm-layer,r=8,d_kv=64,svd=split,calib=t.txt,variant=sum,kv_bits=2,"
                                  "kv_group=32,residual=0";
    QTest::newRow("custom mask, path with '='") << "strategy=custom,mask=/tmp/a=b.json" << "strategy=custom,mask=/tmp/a=b.json";
}

void TestSetting::specRoundTrip() {
    QFETCH(QString, text);
    QFETCH(QString, canonical);
    const MlaSpec spec = MlaSpec::parse(text.toStdString());
    QCOMPARE(QString::fromStdString(spec.to_string()), canonical);
    const MlaSpec again = MlaSpec::parse(spec.to_string());
    QCOMPARE(again.to_string(), spec.to_string());
    QCOMPARE(again.strategy, spec.strategy);
    QCOMPARE(again.r, spec.r);
    QCOMPARE(again.d_kv, spec.d_kv);
    QVERIFY(again.svd == spec.svd);
    QCOMPARE(again.start, spec.start);
    QCOMPARE(again.scores_file, spec.scores_file);
    QCOMPARE(again.calib_file, spec.calib_file);
    QCOMPARE(again.mask_file, spec.mask_file);
    QCOMPARE(again.variant, spec.variant);
    QCOMPARE(again.kv_bits, spec.kv_bits);
    QCOMPARE(again.kv_group, spec.kv_group);
    QCOMPARE(again.residual, spec.residual);
}

void TestSetting::badSpecs_data() {
    QTest::addColumn<QString>("text");
    QTest::addColumn<QStringList>("needles");
    QTest::newRow("bad svd") << "strategy=high,r=4,svd=foo" << QStringList{"--mla", "svd", "'foo'", "joint, split, none"};
    QTest::newRow("unknown strategy") << "strategy=hgh,r=4" << QStringList{"strategy", "'hgh'", "high", "2-norm-layer"};
    QTest::newRow("unknown key") << "strategy=high,r=4,rank=8" << QStringList{"unknown key 'rank'", "d_kv", "residual"};
    QTest::newRow("r not a number") << "strategy=high,r=four" << QStringList{"r:", "'four'", "not an integer"};
    QTest::newRow("r with junk") << "strategy=high,r=4x" << QStringList{"r:", "'4x'"};
    QTest::newRow("r zero") << "strategy=high,r=0" << QStringList{"r:", "at least 1"};
    QTest::newRow("d_kv zero") << "strategy=high,r=4,d_kv=0" << QStringList{"d_kv:", "at least 1"};
    QTest::newRow("negative start") << "strategy=uniform,r=4,start=-1" << QStringList{"start:", "at least 0"};
    QTest::newRow("bad variant") << "strategy=2-norm,r=4,calib=t,variant=max" << QStringList{"variant", "'max'", "product, sum"};
    QTest::newRow("bad kv_bits") << "strategy=high,r=4,kv_bits=3" << QStringList{"kv_bits", "'3'", "16, 8, 4, 2"};
    QTest::newRow("kv_group zero") << "strategy=high,r=4,kv_group=0" << QStringList{"kv_group", "at least 1"};
    QTest::newRow("negative residual") << "strategy=high,r=4,residual=-5" << QStringList{"residual", "at least 0"};
    QTest::newRow("not key=value") << "strategy=high,r" << QStringList{"'r'", "key=value"};
    QTest::newRow("empty item") << "strategy=high,,r=4" << QStringList{"empty item"};
    QTest::newRow("trailing comma") << "strategy=high,r=4," << QStringList{"empty item"};
    QTest::newRow("empty value") << "strategy=high,r=" << QStringList{"r:", "empty value"};
    QTest::newRow("empty spec") << "" << QStringList{"empty setting", "strategy=2-norm"};
    QTest::newRow("key twice") << "strategy=high,r=4,r=8" << QStringList{"r:", "twice"};
    QTest::newRow("r missing") << "strategy=low" << QStringList{"r:", "strategy low needs r"};
    QTest::newRow("joint without d_kv") << "strategy=high,r=4,svd=joint" << QStringList{"svd:", "joint needs d_kv"};
    QTest::newRow("split without d_kv") << "strategy=high,r=4,svd=split" << QStringList{"svd:", "split needs d_kv"};
    QTest::newRow("split odd d_kv") << "strategy=high,r=4,svd=split,d_kv=15" << QStringList{"d_kv:", "even", "15"};
    QTest::newRow("none with d_kv") << "strategy=high,r=4,svd=none,d_kv=16" << QStringList{"d_kv:", "svd=none"};
    QTest::newRow("scores and calib") << "strategy=2-norm,r=4,scores=a,calib=b" << QStringList{"scores", "not both"};
}

void TestSetting::badSpecs() {
    QFETCH(QString, text);
    QFETCH(QStringList, needles);
    bool thrown = false;
    try {
        MlaSpec::parse(text.toStdString());
    } catch (const Error& e) {
        thrown = true;
        QCOMPARE(QString::fromStdString(e.field()), QStringLiteral("--mla"));
        for (const QString& n : needles) QVERIFY2(QString(e.what()).contains(n), e.what());
    }
    QVERIFY(thrown);
}

void TestSetting::impossibleSettings_data() {
    // Against d = 64 (32 pairs), 2 KV heads, hidden 256 (or 128). Joint matrix rows for r pairs:
    // 2 (64 - 2r) + 2 x 64; r = 4: 240 rows, so n_kv x d_kv <= min(240, hidden).
    QTest::addColumn<QString>("text");
    QTest::addColumn<qint64>("hidden");
    QTest::addColumn<QStringList>("needles");
    QTest::newRow("r > d/2") << "strategy=high,r=33" << qint64(256)
                             << QStringList{"r:", "33", "exceed head_dim/2", "32 pairs"};
    QTest::newRow("full with r") << "strategy=full,r=4" << qint64(256) << QStringList{"r:", "full keeps all 32", "r=32"};
    QTest::newRow("uniform past the end") << "strategy=uniform,r=4,start=8" << qint64(256)
                                          << QStringList{"start:", "reaches pair 32", "start at most 7"};
    QTest::newRow("d_kv too wide (joint rows)") << "strategy=high,r=4,d_kv=121" << qint64(256)
                                                << QStringList{"d_kv:", "2 x 121 = 242", "240 rows x 256 columns", "at most 120"};
    QTest::newRow("d_kv too wide (hidden < rows)") << "strategy=high,r=4,d_kv=65" << qint64(128)
                                                   << QStringList{"d_kv:", "240 rows x 128 columns", "at most 64"};
    QTest::newRow("d_kv too wide (split)") << "strategy=high,r=4,svd=split,d_kv=114" << qint64(256)
                                           << QStringList{"d_kv:", "112 rows", "at most 112"};
    QTest::newRow("split with every pair kept") << "strategy=low,r=32,svd=split,d_kv=16" << qint64(256)
                                                << QStringList{"svd:", "split needs W_k,nope"};
    QTest::newRow("2-norm without scores") << "strategy=2-norm,r=4" << qint64(256)
                                           << QStringList{"2-norm needs", "scores=FILE", "calib=FILE"};
    QTest::newRow("2-norm-layer without scores") << "strategy=2-norm-layer,r=4" << qint64(256)
                                                 << QStringList{"2-norm-layer needs"};
    QTest::newRow("custom without mask") << "strategy=custom,r=4" << qint64(256) << QStringList{"mask:", "needs mask=FILE"};
    QTest::newRow("custom latent without r") << "strategy=custom,mask=m.json,d_kv=16" << qint64(256)
                                             << QStringList{"r:", "custom with svd=joint needs r"};
}

void TestSetting::impossibleSettings() {
    QFETCH(QString, text);
    QFETCH(qint64, hidden);
    QFETCH(QStringList, needles);
    const ModelConfig config = make_config(3, 4, 2, 64, hidden);
    const MlaSpec spec = MlaSpec::parse(text.toStdString());  // well-formed: only the model refuses it
    bool thrown = false;
    try {
        spec.validate(config);
    } catch (const Error& e) {
        thrown = true;
        QCOMPARE(QString::fromStdString(e.field()), QStringLiteral("--mla"));
        for (const QString& n : needles) QVERIFY2(QString(e.what()).contains(n), e.what());
    }
    QVERIFY(thrown);
}

void TestSetting::largestLegalSettingsPass() {
    const ModelConfig config = d64_config();
    for (const char* text : {"strategy=high,r=4,d_kv=120,svd=joint", "strategy=high,r=4,d_kv=112,svd=split",
                             "strategy=uniform,r=4,start=7", "strategy=full,r=32", "strategy=low,r=32,d_kv=64,svd=joint",
                             "strategy=2-norm,r=32,calib=t.txt", "strategy=custom,mask=m.json"}) {
        const MlaSpec spec = MlaSpec::parse(text);
        spec.validate(config);  // throws on refusal
        QCOMPARE(spec.to_string(), std::string(text));
    }
}

void TestSetting::resolveFullKeepsAllPairs() {
    const ModelConfig config = d64_config();
    const ResolvedSetting full = resolve_setting(MlaSpec::parse("strategy=full"), config, nullptr);
    QCOMPARE(full.spec.r, 32);
    QCOMPARE(full.spec.kept_pairs(config), 32);
    QVERIFY(std::all_of(full.kept.mask.begin(), full.kept.mask.end(), [](uint8_t m) { return m == 1; }));
    QVERIFY(!full.scores.has_value());
    QVERIFY(MlaSpec::parse("strategy=full").is_original());
    QVERIFY(!MlaSpec::parse("strategy=full,d_kv=8").is_original());
}

void TestSetting::resolveFromScoresFile() {
    const ModelConfig config = make_config(1, 2, 2, 16);
    RopeScores s = one_layer_scores({{1, 7, 3, 9, 0, 8, 2, 4}, {5, 5, 1, 1, 1, 1, 1, 6}});
    QTemporaryDir tmp;
    QVERIFY(tmp.isValid());
    const std::string path = tmp.filePath("scores.json").toStdString();
    s.save(path);
    const ResolvedSetting r = resolve_setting(MlaSpec::parse("strategy=2-norm,r=3,scores=" + path), config, nullptr);
    QVERIFY(r.scores.has_value());
    QCOMPARE(to_list(r.kept.pairs(0, 0)), (QList<qint64>{1, 3, 5}));
    QCOMPARE(to_list(r.kept.pairs(0, 1)), (QList<qint64>{0, 1, 7}));
}

void TestSetting::resolveRefusesMismatchedScores() {
    QTemporaryDir tmp;
    QVERIFY(tmp.isValid());
    const std::string path = tmp.filePath("scores.json").toStdString();
    one_layer_scores({{1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 3, 4, 5, 6, 7, 8}}).save(path);
    // The model has 3 layers and 32 pairs: the error names the scores file and the dimension.
    MLAWB_EXPECT_ERROR(resolve_setting(MlaSpec::parse("strategy=2-norm,r=4,scores=" + path), d64_config(), nullptr),
                       path.c_str(), "n_layer", "scores are for 1", "has 3");
    MLAWB_EXPECT_ERROR(resolve_setting(MlaSpec::parse("strategy=2-norm,r=4,scores=" + path), make_config(1, 2, 2, 32), nullptr),
                       path.c_str(), "n_pairs", "scores are for 8", "has 16");
}

void TestSetting::resolveRecombinesVariant() {
    // Two query heads share one KV head; Qn and Kn chosen so the variants pick different pairs.
    RopeScores s;
    s.n_layer = 1;
    s.n_head = 2;
    s.n_kv_head = 1;
    s.n_pairs = 4;
    s.q_norms = {10, 0, 0, 0,  // head 0: pair 0 strong
                 0, 1, 1, 1};  // head 1
    s.k_norms = {0.1, 1, 1.5, 0.5};
    s.combine("product");  // S = sum_h Qn Kn = {1, 1, 1.5, 0.5}: top-1 = pair 2
    const ModelConfig config = make_config(1, 2, 1, 8);
    QTemporaryDir tmp;
    const std::string path = tmp.filePath("scores.json").toStdString();
    s.save(path);
    const ResolvedSetting product = resolve_setting(MlaSpec::parse("strategy=2-norm,r=1,scores=" + path), config, nullptr);
    QCOMPARE(to_list(product.kept.pairs(0, 0)), (QList<qint64>{2}));
    // variant=sum recombines the file's norms: S = sum_h (Qn + Kn) = {10.2, 3, 4, 2} -> pair 0.
    const ResolvedSetting sum =
        resolve_setting(MlaSpec::parse("strategy=2-norm,r=1,variant=sum,scores=" + path), config, nullptr);
    QCOMPARE(sum.scores->variant, std::string("sum"));
    QCOMPARE(to_list(sum.kept.pairs(0, 0)), (QList<qint64>{0}));
}

void TestSetting::resolveCalibratesThroughCallback() {
    const ModelConfig config = make_config(1, 2, 2, 16);
    std::string asked;
    auto calibrate = [&](const std::string& file) {
        asked = file;
        return one_layer_scores({{0, 0, 0, 0, 0, 0, 1, 2}, {3, 0, 0, 0, 0, 0, 0, 2}});
    };
    const ResolvedSetting r = resolve_setting(MlaSpec::parse("strategy=2-norm,r=2,calib=text.txt"), config, calibrate);
    QCOMPARE(asked, std::string("text.txt"));
    QCOMPARE(to_list(r.kept.pairs(0, 0)), (QList<qint64>{6, 7}));
    QCOMPARE(to_list(r.kept.pairs(0, 1)), (QList<qint64>{0, 7}));
    MLAWB_EXPECT_ERROR(resolve_setting(MlaSpec::parse("strategy=2-norm,r=2,calib=text.txt"), config, nullptr), "calib:",
                       "not available", "scores=FILE");
    // Strategies that need no scores never calibrate.
    asked.clear();
    resolve_setting(MlaSpec::parse("strategy=high,r=2,calib=text.txt"), config, calibrate);
    QVERIFY(asked.empty());
}

void TestSetting::gqaFixture() {
    const std::string path = test::model_dir("wb-tiny-gqa") + "/config.json";
    MLAWB_REQUIRE_PATH(path);
    const ModelConfig config = ModelConfig::from_file(path);
    const ResolvedSetting r = resolve_setting(MlaSpec::parse("strategy=uniform,r=4,d_kv=16"), config, nullptr);
    QCOMPARE(r.kept.n_layer, 6);
    QCOMPARE(r.kept.n_kv_head, 2);  // query heads 0,1 use KV head 0's pairs; 2,3 KV head 1's
    QCOMPARE(to_list(r.kept.pairs(5, 1)), (QList<qint64>{0, 8, 16, 24}));
}

QTEST_APPLESS_MAIN(TestSetting)
#include "test_setting.moc"
