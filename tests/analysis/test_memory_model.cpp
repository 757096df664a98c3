// KV-cache memory model against the MHA2MLA paper's figures: Llama-2-7B (r 8, d_kv 64:
// 2560 values per token per layer, -68.75%; 4-bit -92.19%) and SmolLM-135M (r 4, d_kv 32/16/8:
// -68.75/-81.25/-87.50%), plus the GQA fixture, scale/zero-point overhead, the residual
// window, totals and refusals.
#include "analysis/memory_model.h"
#include "analysis/mla_spec.h"
#include "core/config.h"
#include "core/error.h"
#include "test_support.h"

#include <cmath>

using namespace mlawb;

namespace {

std::string config_file(const QString& name) {
    if (name == "wb-tiny-gqa") return test::model_dir("wb-tiny-gqa") + "/config.json";
    return test::source_dir() + "/tests/data/configs/" + name.toStdString() + ".json";
}

MemoryEstimate estimate(const QString& model, const std::string& spec, int64_t ctx = 4096, int64_t batch = 1) {
    return estimate_memory(ModelConfig::from_file(config_file(model)), MlaSpec::parse(spec), ctx, batch);
}

}  // namespace

class TestMemoryModel : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void configFiles_data();
    void configFiles();
    void paperSettings_data();
    void paperSettings();
    void realBytesCountScales_data();
    void realBytesCountScales();
    void residualWindow_data();
    void residualWindow();
    void totalsScaleWithContextAndBatch();
    void refusals_data();
    void refusals();
};

void TestMemoryModel::configFiles_data() {
    QTest::addColumn<QString>("model");
    QTest::addColumn<qint64>("layers");
    QTest::addColumn<qint64>("kvHeads");
    QTest::addColumn<qint64>("headDim");
    QTest::addColumn<qint64>("hidden");
    QTest::addColumn<qint64>("context");
    QTest::newRow("Llama-2-7B (MHA)") << "llama-2-7b" << qint64(32) << qint64(32) << qint64(128) << qint64(4096) << qint64(4096);
    QTest::newRow("SmolLM-135M (GQA 9/3)") << "smollm-135m" << qint64(30) << qint64(3) << qint64(64) << qint64(576)
                                           << qint64(2048);
    QTest::newRow("wb-tiny-gqa") << "wb-tiny-gqa" << qint64(6) << qint64(2) << qint64(64) << qint64(256) << qint64(2048);
}

void TestMemoryModel::configFiles() {
    QFETCH(QString, model);
    QFETCH(qint64, layers);
    QFETCH(qint64, kvHeads);
    QFETCH(qint64, headDim);
    QFETCH(qint64, hidden);
    QFETCH(qint64, context);
    MLAWB_REQUIRE_PATH(config_file(model));
    const ModelConfig c = ModelConfig::from_file(config_file(model));
    QCOMPARE(c.n_layer, layers);
    QCOMPARE(c.n_kv_head, kvHeads);
    QCOMPARE(c.head_dim, headDim);
    QCOMPARE(c.hidden, hidden);
    QCOMPARE(c.max_position, context);
    QCOMPARE(c.rope_theta, 10000.0);
    QCOMPARE(c.rms_eps, 1e-5);
}

void TestMemoryModel::paperSettings_data() {
    QTest::addColumn<QString>("model");
    QTest::addColumn<QString>("spec");
    QTest::addColumn<qint64>("originalPerLayer");  // 2 n_kv d
    QTest::addColumn<qint64>("perLayer");          // values per token per layer
    QTest::addColumn<double>("reduction");         // nominal, percent (positive = smaller)
    QTest::addColumn<QString>("layout");
    // Llama-2-7B: 2 x 32 x 128 = 8192; MLA 32 (2 x 8 + 64) = 2560.
    QTest::newRow("Llama-2-7B r8 d_kv64") << "llama-2-7b" << "strategy=2-norm,r=8,d_kv=64,svd=joint,calib=t.txt" << qint64(8192)
                                          << qint64(2560) << 68.75 << "MLA joint";
    QTest::newRow("Llama-2-7B r8 d_kv64 4-bit") << "llama-2-7b" << "strategy=high,r=8,d_kv=64,svd=joint,kv_bits=4"
                                                << qint64(8192) << qint64(2560) << 92.1875 << "MLA joint";
    QTest::newRow("Llama-2-7B r8 d_kv64 split") << "llama-2-7b" << "strategy=high,r=8,d_kv=64,svd=split" << qint64(8192)
                                                << qint64(2560) << 68.75 << "MLA split";
    QTest::newRow("Llama-2-7B original 8-bit") << "llama-2-7b" << "strategy=full,kv_bits=8" << qint64(8192) << qint64(8192)
                                               << 50.0 << "MHA";
    // SmolLM-135M: 2 x 3 x 64 = 384; MLA 3 (8 + d_kv).
    QTest::newRow("SmolLM r4 d_kv32") << "smollm-135m" << "strategy=2-norm,r=4,d_kv=32,scores=s.json" << qint64(384)
                                      << qint64(120) << 68.75 << "MLA joint";
    QTest::newRow("SmolLM r4 d_kv16") << "smollm-135m" << "strategy=2-norm,r=4,d_kv=16,scores=s.json" << qint64(384)
                                      << qint64(72) << 81.25 << "MLA joint";
    QTest::newRow("SmolLM r4 d_kv8") << "smollm-135m" << "strategy=2-norm,r=4,d_kv=8,scores=s.json" << qint64(384)
                                     << qint64(48) << 87.50 << "MLA joint";
    QTest::newRow("SmolLM original (GQA)") << "smollm-135m" << "strategy=full" << qint64(384) << qint64(384) << 0.0 << "GQA";
    // wb-tiny-gqa: 2 x 2 x 64 = 256.
    QTest::newRow("wb-tiny-gqa original") << "wb-tiny-gqa" << "strategy=full" << qint64(256) << qint64(256) << 0.0 << "GQA";
    QTest::newRow("wb-tiny-gqa partial-RoPE only") << "wb-tiny-gqa" << "strategy=uniform,r=4" << qint64(256) << qint64(256)
                                                   << 0.0 << "partial-RoPE";
    QTest::newRow("wb-tiny-gqa r4 d_kv16") << "wb-tiny-gqa" << "strategy=low,r=4,d_kv=16" << qint64(256) << qint64(48)
                                           << 81.25 << "MLA joint";
}

void TestMemoryModel::paperSettings() {
    QFETCH(QString, model);
    QFETCH(QString, spec);
    QFETCH(qint64, originalPerLayer);
    QFETCH(qint64, perLayer);
    QFETCH(double, reduction);
    QFETCH(QString, layout);
    MLAWB_REQUIRE_PATH(config_file(model));
    const MemoryEstimate m = estimate(model, spec.toStdString());
    QCOMPARE(m.original_elements_per_token_layer, originalPerLayer);
    QCOMPARE(m.elements_per_token_layer, perLayer);
    QCOMPARE(m.elements_per_token, perLayer * m.n_layer);
    QCOMPARE(QString(m.layout), layout);
    QVERIFY2(std::abs(m.reduction_percent - reduction) < 0.01,
             qPrintable(QString("reduction %1%, expected %2%").arg(m.reduction_percent).arg(reduction)));
    QCOMPARE(m.original_bytes_per_token_layer, 2.0 * originalPerLayer);
    QCOMPARE(m.nominal_bytes_per_token_layer, perLayer * m.kv_bits / 8.0);
    // The real figure is shown beside the nominal one: never smaller, equal at 16 bits.
    if (m.kv_bits == 16) QCOMPARE(m.real_bytes_per_token_layer, m.nominal_bytes_per_token_layer);
    else QVERIFY(m.real_bytes_per_token_layer > m.nominal_bytes_per_token_layer);
    QVERIFY(m.reduction_percent_real <= m.reduction_percent);
}

void TestMemoryModel::realBytesCountScales_data() {
    // Real bytes per token per layer = values x bits / 8 + 4 B (fp16 scale + zero point) per group,
    // groups counted per cached part (a part shorter than a group is one group).
    QTest::addColumn<QString>("model");
    QTest::addColumn<QString>("spec");
    QTest::addColumn<qint64>("groups");
    QTest::addColumn<double>("realBytes");
    QTest::addColumn<double>("realReduction");
    // c_kv 2048 / 64 = 32 groups, k_rope 512 / 64 = 8: 1280 + 160 = 1440 B of 16384.
    QTest::newRow("Llama 4-bit, groups of 64") << "llama-2-7b" << "strategy=high,r=8,d_kv=64,kv_bits=4" << qint64(40)
                                               << 1440.0 << 91.2109375;
    // groups of 128: 16 + 4 = 20 groups: 1280 + 80 = 1360.
    QTest::newRow("Llama 4-bit, groups of 128") << "llama-2-7b" << "strategy=high,r=8,d_kv=64,kv_bits=4,kv_group=128"
                                                << qint64(20) << 1360.0 << 91.69921875;
    // SmolLM d_kv 8: c_kv 24 values and k_rope 24 values, each shorter than 64: 2 groups.
    // 2-bit: 48 x 2 / 8 = 12 B + 8 B = 20 B of 768.
    QTest::newRow("SmolLM 2-bit, parts shorter than a group") << "smollm-135m" << "strategy=high,r=4,d_kv=8,kv_bits=2"
                                                              << qint64(2) << 20.0 << 100.0 * (1 - 20.0 / 768.0);
    // Original K and V, 8-bit, groups of 32: 128/32 = 4 each, 8 groups: 256 + 32 = 288 B of 512.
    QTest::newRow("wb-tiny-gqa original 8-bit") << "wb-tiny-gqa" << "strategy=full,kv_bits=8,kv_group=32" << qint64(8)
                                                << 288.0 << 43.75;
    // Group of 1 value: a scale and zero point per value.
    QTest::newRow("group of one") << "wb-tiny-gqa" << "strategy=full,kv_bits=4,kv_group=1" << qint64(256)
                                  << 128.0 + 1024.0 << 100.0 * (1 - 1152.0 / 512.0);
    QTest::newRow("16-bit: no groups") << "llama-2-7b" << "strategy=high,r=8,d_kv=64" << qint64(0) << 5120.0 << 68.75;
}

void TestMemoryModel::realBytesCountScales() {
    QFETCH(QString, model);
    QFETCH(QString, spec);
    QFETCH(qint64, groups);
    QFETCH(double, realBytes);
    QFETCH(double, realReduction);
    MLAWB_REQUIRE_PATH(config_file(model));
    const MemoryEstimate m = estimate(model, spec.toStdString());
    QCOMPARE(m.groups_per_token_layer, groups);
    QCOMPARE(m.parts[0].groups_per_token_layer + m.parts[1].groups_per_token_layer, groups);
    QCOMPARE(m.real_bytes_per_token_layer, realBytes);
    QCOMPARE(m.real_bytes_per_token, realBytes * m.n_layer);
    QVERIFY2(std::abs(m.reduction_percent_real - realReduction) < 1e-9,
             qPrintable(QString("real reduction %1%, expected %2%").arg(m.reduction_percent_real).arg(realReduction)));
}

void TestMemoryModel::residualWindow_data() {
    // The most recent min(ctx, residual) tokens stay at 16 bits in the real total.
    QTest::addColumn<QString>("spec");
    QTest::addColumn<qint64>("ctx");
    QTest::addColumn<qint64>("windowTokens");
    QTest::newRow("default window 128 of 4096") << "strategy=high,r=8,d_kv=64,kv_bits=4" << qint64(4096) << qint64(128);
    QTest::newRow("context shorter than the window") << "strategy=high,r=8,d_kv=64,kv_bits=4" << qint64(100) << qint64(100);
    QTest::newRow("no window") << "strategy=high,r=8,d_kv=64,kv_bits=4,residual=0" << qint64(4096) << qint64(0);
    QTest::newRow("16-bit cache: nothing to keep") << "strategy=high,r=8,d_kv=64,residual=512" << qint64(4096) << qint64(0);
}

void TestMemoryModel::residualWindow() {
    QFETCH(QString, spec);
    QFETCH(qint64, ctx);
    QFETCH(qint64, windowTokens);
    MLAWB_REQUIRE_PATH(config_file("llama-2-7b"));
    const MemoryEstimate m = estimate("llama-2-7b", spec.toStdString(), ctx, 3);
    QCOMPARE(m.residual_tokens, windowTokens);
    // Llama, 2560 values: 16-bit 5120 B per token per layer; 32 layers; 3 sequences.
    const double expected =
        3.0 * 32.0 * ((ctx - windowTokens) * m.real_bytes_per_token_layer + windowTokens * 5120.0);
    QCOMPARE(m.real_total_bytes, expected);
    QCOMPARE(m.unquantized_bytes_per_token_layer, 5120.0);
    QVERIFY(std::abs(m.total_reduction_percent_real - 100.0 * (1 - m.real_total_bytes / m.original_total_bytes)) < 1e-9);
}

void TestMemoryModel::totalsScaleWithContextAndBatch() {
    MLAWB_REQUIRE_PATH(config_file("llama-2-7b"));
    // Original Llama-2-7B at 4096 tokens: 32 layers x 8192 values x 2 B x 4096 = 2 GiB per sequence.
    const MemoryEstimate one = estimate("llama-2-7b", "strategy=high,r=8,d_kv=64,kv_bits=4", 4096, 1);
    QCOMPARE(one.original_total_bytes, 2.0 * 1024 * 1024 * 1024);
    QCOMPARE(one.nominal_total_bytes, 4096.0 * 32 * 1280);  // 160 MiB
    const MemoryEstimate eight = estimate("llama-2-7b", "strategy=high,r=8,d_kv=64,kv_bits=4", 4096, 8);
    QCOMPARE(eight.original_total_bytes, 8 * one.original_total_bytes);
    QCOMPARE(eight.nominal_total_bytes, 8 * one.nominal_total_bytes);
    QCOMPARE(eight.real_total_bytes, 8 * one.real_total_bytes);
    const MemoryEstimate longer = estimate("llama-2-7b", "strategy=high,r=8,d_kv=64", 32768, 1);
    QCOMPARE(longer.original_total_bytes, 16.0 * 1024 * 1024 * 1024);
    QCOMPARE(longer.real_total_bytes, longer.nominal_total_bytes);  // 16-bit: no scales, no window
    QCOMPARE(longer.context_tokens, 32768);
}

void TestMemoryModel::refusals_data() {
    QTest::addColumn<QString>("spec");
    QTest::addColumn<qint64>("ctx");
    QTest::addColumn<qint64>("batch");
    QTest::addColumn<QStringList>("needles");
    QTest::newRow("d_kv beyond the joint matrix") << "strategy=high,r=8,d_kv=129" << qint64(4096) << qint64(1)
                                                  << QStringList{"d_kv:", "at most 128"};
    QTest::newRow("r beyond d/2") << "strategy=high,r=65" << qint64(4096) << qint64(1) << QStringList{"r:", "exceed"};
    QTest::newRow("custom latent needs r") << "strategy=custom,mask=m.json,d_kv=16" << qint64(4096) << qint64(1)
                                           << QStringList{"r:", "needs r"};
    QTest::newRow("zero context") << "strategy=full" << qint64(0) << qint64(1) << QStringList{"ctx", "at least 1"};
    QTest::newRow("zero batch") << "strategy=full" << qint64(16) << qint64(0) << QStringList{"batch", "at least 1"};
}

void TestMemoryModel::refusals() {
    QFETCH(QString, spec);
    QFETCH(qint64, ctx);
    QFETCH(qint64, batch);
    QFETCH(QStringList, needles);
    MLAWB_REQUIRE_PATH(config_file("llama-2-7b"));
    const ModelConfig config = ModelConfig::from_file(config_file("llama-2-7b"));
    bool thrown = false;
    try {
        estimate_memory(config, MlaSpec::parse(spec.toStdString()), ctx, batch);
    } catch (const Error& e) {
        thrown = true;
        for (const QString& n : needles) QVERIFY2(QString(e.what()).contains(n), e.what());
    }
    QVERIFY(thrown);
    // The memory model needs no scores or mask file: 2-norm without scores= still estimates.
    QCOMPARE(estimate_memory(config, MlaSpec::parse("strategy=2-norm,r=8,d_kv=64"), 16, 1).elements_per_token_layer, 2560);
}

QTEST_APPLESS_MAIN(TestMemoryModel)
#include "test_memory_model.moc"
