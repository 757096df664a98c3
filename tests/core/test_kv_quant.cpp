// KV-cache quantization: quantize -> dequantize within half a step, the residual window rule,
// cache bytes after N tokens equal to the memory model's exact figure (MHA, GQA and MLA at
// 8/4/2 bits), and bad settings refused with the reason.
#include "analysis/convert.h"
#include "analysis/memory_model.h"
#include "analysis/mla_spec.h"
#include "core/config.h"
#include "core/error.h"
#include "core/kv_quant.h"
#include "core/llama_model.h"
#include "core/safetensors.h"
#include "test_support.h"

#include <QtTest>
#include <cmath>

using namespace mlawb;

namespace {

LlamaForCausalLM load(const std::string& name) {
    const std::string dir = test::model_dir(name);
    LlamaForCausalLM m(ModelConfig::from_file(dir + "/config.json"));
    m->load_weights(Checkpoint::open_folder(dir));
    m->eval();
    return m;
}

KeptPairs first_pairs(const ModelConfig& c, int64_t r) {
    KeptPairs kept(c.n_layer, c.n_kv_head, c.head_dim / 2);
    for (int64_t l = 0; l < c.n_layer; ++l)
        for (int64_t g = 0; g < c.n_kv_head; ++g)
            for (int64_t k = 0; k < r; ++k) kept.set(l, g, k);
    return kept;
}

CacheOptions options_of(const MlaSpec& spec) { return CacheOptions{spec.kv_bits, spec.kv_group, spec.residual}; }

}  // namespace

class TestKvQuant : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { at::set_num_threads(1); }
    void roundTripWithinHalfStep_data();
    void roundTripWithinHalfStep();
    void residualWindowRule();
    void cacheBytesEqualMemoryModel_data();
    void cacheBytesEqualMemoryModel();
    void int8CacheStaysCloseToFloat();
    void badSettingsRefused();
};

void TestKvQuant::roundTripWithinHalfStep_data() {
    QTest::addColumn<int>("bits");
    QTest::addColumn<int>("width");
    QTest::addColumn<int>("group");
    for (int bits : {8, 4, 2}) {
        const QByteArray b = QByteArray::number(bits);
        QTest::newRow(b + "-bit 256/64") << bits << 256 << 64;
        QTest::newRow(b + "-bit 100/32 tail") << bits << 100 << 32;
        QTest::newRow(b + "-bit 7/4 tail, odd row") << bits << 7 << 4;
        QTest::newRow(b + "-bit 30/64 narrower than a group") << bits << 30 << 64;
        QTest::newRow(b + "-bit 9/1") << bits << 9 << 1;
    }
}

void TestKvQuant::roundTripWithinHalfStep() {
    QFETCH(int, bits);
    QFETCH(int, width);
    QFETCH(int, group);
    torch::manual_seed(bits * 1000 + width + group);
    for (double spread : {1e-3, 1.0, 40.0}) {
        // Rows with different offsets and spreads, plus one constant row.
        torch::Tensor x = torch::randn({33, width}) * spread + torch::randn({33, 1}) * 5.0;
        x[0].fill_(1.25);
        const QuantizedRows q = quantize_rows(x, bits, group);
        const int64_t groups = groups_per_row(width, group);
        QCOMPARE(q.codes.scalar_type(), torch::kUInt8);
        QCOMPARE(q.codes.size(1), packed_row_bytes(width, bits));
        QCOMPARE(q.scales.scalar_type(), torch::kFloat16);
        QCOMPARE(q.zeros.scalar_type(), torch::kFloat16);
        QCOMPARE(q.scales.size(1), groups);
        torch::Tensor back = dequantize_rows(q, width, bits, group);
        QCOMPARE(back.sizes(), x.sizes());
        // Each element's step: its group's scale.
        torch::Tensor step = q.scales.to(torch::kFloat32).repeat_interleave(group, 1).narrow(1, 0, width);
        torch::Tensor excess = (x - back).abs() - (step * 0.5 * (1 + 1e-5) + 1e-6 * x.abs().max().item<double>());
        QVERIFY2(excess.max().item<double>() <= 0,
                 qPrintable(QString("error exceeds half a step by %1").arg(excess.max().item<double>())));
        QCOMPARE((x[0] - back[0]).abs().max().item<double>(), 0.0);  // constant row: exact
    }
}

void TestKvQuant::residualWindowRule() {
    for (int64_t residual : {0, 1, 4}) {
        QuantizedSequence seq(CacheOptions{4, 8, residual});
        torch::Tensor all = torch::randn({2, 3, 23, 8});
        int64_t n = 0;
        for (int64_t t : {5, 1, 1, 3, 1, 8, 4}) {  // prefill then a mix of decode steps and chunks
            torch::Tensor held = seq.append(all.narrow(2, n, t));
            n += t;
            QCOMPARE(seq.length(), n);
            QCOMPARE(seq.window_tokens(), residual_window_tokens(n, residual));
            QCOMPARE(seq.quantized_tokens() % std::max<int64_t>(residual, 1), int64_t(0));
            QCOMPARE(held.sizes(), all.narrow(2, 0, n).sizes());
            const int64_t w = seq.window_tokens();
            // The window is held as given; older tokens only to within the quantization error.
            if (w > 0) QVERIFY(torch::equal(held.narrow(2, n - w, w), all.narrow(2, n - w, w)));
            QVERIFY(torch::allclose(held, all.narrow(2, 0, n), 0, 0.5));
            // Any token range, across the store / window boundary too, equals that slice of the view.
            for (int64_t start = 0; start < n; start += 3)
                for (int64_t count : {int64_t(1), int64_t(4), n - start})
                    if (start + count <= n) QVERIFY(torch::equal(seq.range(start, count), held.narrow(2, start, count)));
            QCOMPARE(seq.bytes(), seq.quantized_tokens() * 2 * (packed_row_bytes(24, 4) + 4 * groups_per_row(24, 8)) +
                                      w * 2 * 24 * 4);
        }
        seq.clear();
        QCOMPARE(seq.length(), int64_t(0));
        QCOMPARE(seq.bytes(), int64_t(0));
    }
    QCOMPARE(residual_window_tokens(128, 128), int64_t(128));
    QCOMPARE(residual_window_tokens(129, 128), int64_t(1));
    QCOMPARE(residual_window_tokens(256, 128), int64_t(128));
}

void TestKvQuant::cacheBytesEqualMemoryModel_data() {
    QTest::addColumn<QString>("model");
    QTest::addColumn<QString>("specText");
    for (const char* model : {"wb-tiny-mha", "wb-tiny-gqa"})
        for (const char* mla : {"strategy=full", "strategy=high,r=4,d_kv=16,svd=joint"})
            for (const char* bits : {"16", "8", "4", "2"}) {
                const QString spec = QString("%1,kv_bits=%2").arg(mla, bits);
                QTest::newRow(qPrintable(QString("%1 %2").arg(model, spec))) << QString(model) << spec;
            }
}

void TestKvQuant::cacheBytesEqualMemoryModel() {
    QFETCH(QString, model);
    QFETCH(QString, specText);
    torch::NoGradGuard no_grad;
    LlamaForCausalLM m = load(model.toStdString());
    const ModelConfig& c = m->config();
    const MlaSpec spec = MlaSpec::parse(specText.toStdString());
    spec.validate_sizes(c);
    if (!spec.is_original()) convert_to_mla(*m, spec, first_pairs(c, 4));
    m->set_cache_options(options_of(spec));
    for (int64_t n : {1, 127, 128, 129, 1000, 2048}) {
        KVCache cache = m->make_cache();
        m->forward(torch::ones({1, n}, torch::kInt64), cache, LogitsFor::Last);
        const MemoryEstimate est = estimate_memory(c, spec, n, 1, /*compute_element_bytes=*/4);
        QCOMPARE(cache.length(), n);
        QCOMPARE(cache.bytes(), est.exact_total_bytes);
        // Up to `residual` tokens everything sits in the float32 window; beyond, the cache is smaller.
        const int64_t float_bytes = est.elements_per_token * n * 4;
        if (spec.kv_bits < 16 && n > spec.residual) QVERIFY(cache.bytes() < float_bytes);
        else QCOMPARE(cache.bytes(), float_bytes);
    }
    // Prefill then decode token by token lands on the same bytes as one prefill.
    KVCache cache = m->make_cache();
    m->forward(torch::ones({1, 100}, torch::kInt64), cache, LogitsFor::Last);
    for (int i = 0; i < 29; ++i) m->forward(torch::ones({1, 1}, torch::kInt64), cache, LogitsFor::Last);
    QCOMPARE(cache.bytes(), estimate_memory(c, spec, 129, 1, 4).exact_total_bytes);
    // Batch of 2: twice one sequence.
    KVCache batch_cache = m->make_cache();
    m->forward(torch::ones({2, 129}, torch::kInt64), batch_cache, LogitsFor::Last);
    QCOMPARE(batch_cache.bytes(), estimate_memory(c, spec, 129, 2, 4).exact_total_bytes);
}

void TestKvQuant::int8CacheStaysCloseToFloat() {
    torch::NoGradGuard no_grad;
    LlamaForCausalLM m = load("wb-tiny-mha");
    torch::Tensor ids = torch::randint(5, 500, {1, 300}, torch::kInt64);
    auto logits_with = [&](int bits, int64_t residual = 128) {
        KVCache cache = m->make_cache(CacheOptions{bits, 64, residual});
        return m->forward(ids, cache);
    };
    torch::Tensor reference = logits_with(16), int8 = logits_with(8), int2 = logits_with(2);
    const double err8 = (int8 - reference).abs().max().item<double>();
    const double err2 = (int2 - reference).abs().max().item<double>();
    QVERIFY2(err8 < 0.1 * reference.abs().max().item<double>(), qPrintable(QString::number(err8)));
    QVERIFY2(err8 < err2, qPrintable(QString("int8 %1, int2 %2").arg(err8).arg(err2)));
    // A window wider than the prompt quantizes nothing: the float result exactly.
    QVERIFY(torch::equal(logits_with(2, 512), reference));
}

void TestKvQuant::badSettingsRefused() {
    MLAWB_EXPECT_ERROR(MlaSpec::parse("kv_bits=3"), "kv_bits", "16");
    MLAWB_EXPECT_ERROR(MlaSpec::parse("kv_group=0"), "kv_group");
    MLAWB_EXPECT_ERROR(MlaSpec::parse("residual=-1"), "residual");
    const ModelConfig mha = ModelConfig::from_file(test::model_dir("wb-tiny-mha") + "/config.json");
    // K and V are 4 x 64 = 256 values per token: 48 does not divide them.
    MLAWB_EXPECT_ERROR(MlaSpec::parse("kv_bits=4,kv_group=48").validate_sizes(mha), "kv_group", "does not divide", "256");
    // c_kv is 4 x 12 = 48 values per token: 32 does not divide it.
    MLAWB_EXPECT_ERROR(MlaSpec::parse("strategy=high,r=4,d_kv=12,kv_bits=2,kv_group=32").validate_sizes(mha), "c_kv", "48");
    // A part narrower than a group is one group; at 16 bits the group is not used.
    MlaSpec::parse("strategy=high,r=4,d_kv=16,kv_bits=4,kv_group=64").validate_sizes(mha);
    MlaSpec::parse("kv_bits=16,kv_group=48").validate_sizes(mha);
    MLAWB_EXPECT_ERROR(QuantizedSequence(CacheOptions{3, 64, 128}), "kv_bits");
    MLAWB_EXPECT_ERROR(QuantizedSequence(CacheOptions{4, 0, 128}), "kv_group");
    MLAWB_EXPECT_ERROR(QuantizedSequence(CacheOptions{4, 64, -1}), "residual");
    MLAWB_EXPECT_ERROR(quantize_rows(torch::zeros({1, 8}), 16, 8), "kv_bits");
    // Scales and zero points are float16: values beyond its range, or NaN, are refused.
    MLAWB_EXPECT_ERROR(quantize_rows(torch::full({2, 8}, -1e6), 8, 8), "kv_bits", "float16");
    MLAWB_EXPECT_ERROR(quantize_rows(torch::tensor({0.0, 1e9, 0.0, 0.0}).view({1, 4}), 2, 4), "kv_bits", "float16");
    MLAWB_EXPECT_ERROR(quantize_rows(torch::tensor({0.0, std::nan(""), 1.0, 2.0}).view({1, 4}), 4, 4), "kv_bits",
                       "non-finite");
    // Just inside the range still round-trips within half a step.
    const torch::Tensor big = torch::tensor({-60000.0f, 60000.0f, 0.0f, 1.0f}).view({1, 4});
    const QuantizedRows q = quantize_rows(big, 8, 4);
    const double step = q.scales.to(torch::kFloat32).max().item<double>();
    QVERIFY((dequantize_rows(q, 4, 8, 4) - big).abs().max().item<double>() <= step / 2 + 1e-2);
}

QTEST_APPLESS_MAIN(TestKvQuant)
#include "test_kv_quant.moc"
