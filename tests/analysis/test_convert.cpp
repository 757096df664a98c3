// MHA2MLA conversion: exactness at full RoPE and full rank, absorbed decode equal to the
// plain path, and a cache that holds exactly c_kv and k_rope (bytes equal the formula).
#include "analysis/convert.h"
#include "analysis/export.h"
#include "analysis/memory_model.h"
#include "analysis/mla_spec.h"
#include "analysis/strategies.h"
#include "core/error.h"
#include "core/llama_model.h"
#include "core/mla_attention.h"
#include "core/safetensors.h"
#include "test_support.h"

#include <QTemporaryDir>
#include <filesystem>

using namespace mlawb;

namespace {

LlamaForCausalLM load(const std::string& name) {
    const std::string dir = test::model_dir(name);
    LlamaForCausalLM m(ModelConfig::from_file(dir + "/config.json"));
    m->load_weights(Checkpoint::open_folder(dir));
    m->eval();
    return m;
}

// Pairs {first .. first + r - 1} of every head (r = d/2: all pairs).
KeptPairs contiguous_pairs(const ModelConfig& c, int64_t first, int64_t r) {
    KeptPairs kept(c.n_layer, c.n_kv_head, c.head_dim / 2);
    for (int64_t l = 0; l < c.n_layer; ++l)
        for (int64_t g = 0; g < c.n_kv_head; ++g)
            for (int64_t k = first; k < first + r; ++k) kept.set(l, g, k);
    return kept;
}

torch::Tensor logits_of(LlamaForCausalLMImpl& m, const torch::Tensor& ids) {
    torch::NoGradGuard no_grad;
    KVCache cache = m.make_cache();
    return m.forward(ids, cache);
}

double max_abs(const torch::Tensor& t) { return t.abs().max().item<double>(); }

}  // namespace

class TestConvert : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void exactAtFullRank_data();
    void exactAtFullRank();
    void absorbedEqualsPlainDecode_data();
    void absorbedEqualsPlainDecode();
    void cacheHoldsOnlyLatentAndRopeKeys_data();
    void cacheHoldsOnlyLatentAndRopeKeys();
    void refusesConvertedModel();
    void exportLoadsAsSameModel_data();
    void exportLoadsAsSameModel();
};

void TestConvert::exactAtFullRank_data() {
    QTest::addColumn<QString>("model");
    QTest::addColumn<QString>("spec_text");
    for (const char* m : {"wb-tiny-mha", "wb-tiny-gqa"}) {
        QTest::addRow("%s joint d_kv 64", m) << m << "strategy=full,d_kv=64,svd=joint";
        QTest::addRow("%s split d_kv 128", m) << m << "strategy=full,d_kv=128,svd=split";
        QTest::addRow("%s none", m) << m << "strategy=full";
    }
}

void TestConvert::exactAtFullRank() {
    QFETCH(QString, model);
    QFETCH(QString, spec_text);
    MLAWB_REQUIRE_PATH(test::model_dir(model.toStdString()) + "/model.safetensors");
    LlamaForCausalLM m = load(model.toStdString());
    torch::manual_seed(3);
    torch::Tensor ids = torch::randint(1, 4096, {1, 200}, torch::kInt64);
    torch::Tensor before = logits_of(*m, ids);
    MlaSpec spec = MlaSpec::parse(spec_text.toStdString());
    const ModelConfig& c = m->config();
    convert_to_mla(*m, spec, contiguous_pairs(c, 0, c.head_dim / 2));
    const double err = max_abs(logits_of(*m, ids) - before);
    qInfo("%s %s: max |logit diff| %.2e", qPrintable(model), qPrintable(spec_text), err);
    QVERIFY2(err < 1e-4, qPrintable(QString::number(err)));
}

void TestConvert::absorbedEqualsPlainDecode_data() {
    QTest::addColumn<QString>("model");
    QTest::addColumn<QString>("spec_text");
    QTest::addColumn<int>("first_pair");
    QTest::addColumn<int>("cacheBits");  // 16 = float cache; else quantized, group 16, residual 16
    for (const char* m : {"wb-tiny-mha", "wb-tiny-gqa"}) {
        QTest::addRow("%s joint r4 d_kv 16", m) << m << "strategy=high,r=4,d_kv=16,svd=joint" << 0 << 16;
        QTest::addRow("%s split r4 d_kv 16 (low pairs)", m) << m << "strategy=low,r=4,d_kv=16,svd=split" << 28 << 16;
        // Over a quantized cache the absorbed path dequantizes block by block (online softmax);
        // a 300-token prompt makes it cross block boundaries and the residual window.
        QTest::addRow("%s joint r4 d_kv 16, int4 cache", m) << m << "strategy=high,r=4,d_kv=16,svd=joint" << 0 << 4;
        QTest::addRow("%s split r4 d_kv 16, int8 cache", m) << m << "strategy=low,r=4,d_kv=16,svd=split" << 28 << 8;
    }
}

// 64 greedy steps decoded twice from the same prompt: latent-space (absorbed) scores against
// rebuilt K/V; every step's logits must agree.
void TestConvert::absorbedEqualsPlainDecode() {
    QFETCH(QString, model);
    QFETCH(QString, spec_text);
    QFETCH(int, first_pair);
    QFETCH(int, cacheBits);
    torch::NoGradGuard no_grad;
    LlamaForCausalLM m = load(model.toStdString());
    const ModelConfig& c = m->config();
    convert_to_mla(*m, MlaSpec::parse(spec_text.toStdString()), contiguous_pairs(c, first_pair, 4));
    auto set_absorbed = [&](bool on) {
        for (int64_t l = 0; l < c.n_layer; ++l)
            std::dynamic_pointer_cast<MlaAttention>(m->layer(l)->self_attn)->set_absorbed_decode(on);
    };
    torch::manual_seed(5);
    torch::Tensor prompt = torch::randint(1, 4096, {1, cacheBits == 16 ? 40 : 300}, torch::kInt64);
    std::vector<torch::Tensor> runs[2];
    int64_t cache_bytes = 0;
    for (int absorbed = 0; absorbed < 2; ++absorbed) {
        set_absorbed(absorbed == 1);
        KVCache cache = cacheBits == 16 ? m->make_cache() : m->make_cache(CacheOptions{cacheBits, 16, 16});
        torch::Tensor logits = m->forward(prompt, cache, LogitsFor::Last);
        for (int step = 0; step < 64; ++step) {
            // Both runs feed the tokens chosen by the plain run, so they see identical inputs.
            const int64_t next = absorbed == 0 ? logits.reshape({-1}).argmax().item<int64_t>()
                                               : runs[0][step].reshape({-1}).argmax().item<int64_t>();
            runs[absorbed].push_back(logits);
            logits = m->forward(torch::full({1, 1}, next, torch::kInt64), cache, LogitsFor::Last);
        }
        cache_bytes = cache.bytes();
    }
    // The quantized rows really ran on a quantized cache: 364 tokens x n_kv (2r + d_kv) values
    // per layer at 4 bytes in float, far fewer bytes quantized.
    const int64_t float_bytes = (prompt.size(1) + 64) * c.n_layer * c.n_kv_head * (2 * 4 + 16) * 4;
    if (cacheBits == 16)
        QCOMPARE(cache_bytes, float_bytes);
    else
        QVERIFY2(cache_bytes < float_bytes / 2, qPrintable(QString("%1 vs %2").arg(cache_bytes).arg(float_bytes)));
    double worst = 0;
    for (int step = 0; step < 64; ++step) worst = std::max(worst, max_abs(runs[0][step] - runs[1][step]));
    qInfo("%s %s: absorbed vs plain decode, 64 steps, max |logit diff| %.2e", qPrintable(model), qPrintable(spec_text),
          worst);
    // Over a quantized cache both paths read the same dequantized values; the absorbed one sums
    // the softmax block by block (online), a different order of float32 additions.
    QVERIFY2(worst < (cacheBits == 16 ? 1e-4 : 1e-3), qPrintable(QString::number(worst)));
}

void TestConvert::cacheHoldsOnlyLatentAndRopeKeys_data() {
    QTest::addColumn<QString>("model");
    QTest::addColumn<QString>("spec_text");
    QTest::addColumn<int>("r");
    QTest::addColumn<int>("elementsPerTokenLayer");  // per sequence
    // MHA: n_kv 4, d 64; GQA: n_kv 2. MLA caches n_kv (2r + d_kv); partial RoPE only 2 n_kv d.
    QTest::newRow("mha original") << "wb-tiny-mha" << "strategy=full" << 32 << 2 * 4 * 64;
    QTest::newRow("gqa original") << "wb-tiny-gqa" << "strategy=full" << 32 << 2 * 2 * 64;
    QTest::newRow("mha joint r4 d_kv16") << "wb-tiny-mha" << "strategy=high,r=4,d_kv=16,svd=joint" << 4 << 4 * (8 + 16);
    QTest::newRow("mha split r4 d_kv16") << "wb-tiny-mha" << "strategy=high,r=4,d_kv=16,svd=split" << 4 << 4 * (8 + 16);
    QTest::newRow("mha partial rope only") << "wb-tiny-mha" << "strategy=high,r=4" << 4 << 2 * 4 * 64;
    QTest::newRow("gqa joint r4 d_kv32") << "wb-tiny-gqa" << "strategy=high,r=4,d_kv=32,svd=joint" << 4 << 2 * (8 + 32);
    QTest::newRow("gqa partial rope only") << "wb-tiny-gqa" << "strategy=high,r=4" << 4 << 2 * 2 * 64;
}

void TestConvert::cacheHoldsOnlyLatentAndRopeKeys() {
    QFETCH(QString, model);
    QFETCH(QString, spec_text);
    QFETCH(int, r);
    QFETCH(int, elementsPerTokenLayer);
    torch::NoGradGuard no_grad;
    LlamaForCausalLM m = load(model.toStdString());
    const ModelConfig& c = m->config();
    const MlaSpec spec = MlaSpec::parse(spec_text.toStdString());
    if (!spec.is_original()) convert_to_mla(*m, spec, contiguous_pairs(c, 0, r));
    for (int64_t n : {1, 100, 2048}) {
        KVCache cache = m->make_cache();
        m->forward(torch::ones({1, n}, torch::kInt64), cache, LogitsFor::Last);
        // float32 cache: 4 bytes per element, every layer.
        QCOMPARE(cache.bytes(), int64_t(elementsPerTokenLayer) * c.n_layer * n * 4);
        // The memory model's figure (16-bit values) is exactly half of the float32 bytes held.
        const MemoryEstimate est = estimate_memory(c, spec, n, 1);
        QCOMPARE(est.elements_per_token_layer, int64_t(elementsPerTokenLayer));
        QCOMPARE(static_cast<double>(cache.bytes()), est.nominal_total_bytes * 2);
    }
}

void TestConvert::refusesConvertedModel() {
    LlamaForCausalLM m = load("wb-tiny-mha");
    const ModelConfig& c = m->config();
    MlaSpec spec = MlaSpec::parse("strategy=high,r=4,d_kv=16,svd=joint");
    convert_to_mla(*m, spec, contiguous_pairs(c, 0, 4));
    MLAWB_EXPECT_ERROR(convert_to_mla(*m, spec, contiguous_pairs(c, 0, 4)), "already converted");
}

void TestConvert::exportLoadsAsSameModel_data() {
    QTest::addColumn<QString>("model");
    QTest::addColumn<QString>("spec_text");
    QTest::newRow("mha joint") << "wb-tiny-mha" << "strategy=high,r=4,d_kv=16,svd=joint";
    QTest::newRow("gqa split") << "wb-tiny-gqa" << "strategy=high,r=4,d_kv=16,svd=split";
    QTest::newRow("gqa none") << "wb-tiny-gqa" << "strategy=high,r=4";
}

// Export -> load_model -> the same logits as the in-memory conversion, bit for bit (float32).
void TestConvert::exportLoadsAsSameModel() {
    QFETCH(QString, model);
    QFETCH(QString, spec_text);
    LlamaForCausalLM m = load(model.toStdString());
    const ModelConfig& c = m->config();
    MlaSpec spec = MlaSpec::parse(spec_text.toStdString());
    KeptPairs kept = contiguous_pairs(c, 0, 4);
    convert_to_mla(*m, spec, kept);
    torch::manual_seed(11);
    torch::Tensor ids = torch::randint(1, 4096, {1, 120}, torch::kInt64);
    torch::Tensor in_memory = logits_of(*m, ids);

    QTemporaryDir tmp;
    const std::string out = tmp.path().toStdString() + "/converted";
    ExportRequest req{test::model_dir(model.toStdString()), out, spec, kept, nullptr};
    export_mla_model(*m, req);
    QVERIFY(std::filesystem::exists(out + "/model.safetensors"));
    QVERIFY(std::filesystem::exists(out + "/tokenizer.json"));
    // Nothing half-written is left beside it.
    for (const auto& entry : std::filesystem::directory_iterator(tmp.path().toStdString()))
        QVERIFY2(entry.path().filename() == "converted", entry.path().c_str());

    LoadedModel loaded = load_model(out);
    QVERIFY(loaded.config.mla.present);
    QCOMPARE(loaded.config.mla.kept_pairs[0][0], (std::vector<int64_t>{0, 1, 2, 3}));
    QCOMPARE(max_abs(logits_of(*loaded.model, ids) - in_memory), 0.0);
    // An existing folder is never overwritten; converting a converted model is refused.
    MLAWB_EXPECT_ERROR(export_mla_model(*m, req), "already exists");
    MLAWB_EXPECT_ERROR(convert_to_mla(*loaded.model, spec, kept), "already converted");
}

QTEST_APPLESS_MAIN(TestConvert)
#include "test_convert.moc"
