// The Llama forward pass against Hugging Face transformers' outputs on both fixture models
// (../shared/fixtures/reference): logits, argmax at every position, greedy continuations,
// KV-cache decoding equal to a full forward, and cache bytes.
#include "core/config.h"
#include "core/error.h"
#include "core/generate.h"
#include "core/llama_model.h"
#include "core/safetensors.h"
#include "test_support.h"

#include <fstream>
#include <nlohmann/json.hpp>

using namespace mlawb;
using json = nlohmann::json;

namespace {

json load_reference(const std::string& model) {
    std::ifstream in(test::fixtures_dir() + "/reference/" + model + ".json");
    return json::parse(in);
}

LlamaForCausalLM load_weights_only(const std::string& model) {
    const std::string dir = test::model_dir(model);
    LlamaForCausalLM m(ModelConfig::from_file(dir + "/config.json"));
    m->load_weights(Checkpoint::open_folder(dir));
    m->eval();
    return m;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

class TestModel : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void matchesTransformers_data();
    void matchesTransformers();
    void greedyContinuation_data() { matchesTransformers_data(); }
    void greedyContinuation();
    void cachedDecodeEqualsFullForward_data();
    void cachedDecodeEqualsFullForward();
    void cacheBytes_data() { cachedDecodeEqualsFullForward_data(); }
    void cacheBytes();
    void parameterNamesAreCheckpointNames();
    void loadModelRefusesBadFolder();
};

void TestModel::initTestCase() {
    for (const char* m : {"wb-tiny-mha", "wb-tiny-gqa"}) {
        MLAWB_REQUIRE_PATH(test::model_dir(m) + "/model.safetensors");
        MLAWB_REQUIRE_PATH(test::fixtures_dir() + "/reference/" + m + ".json");
    }
}

void TestModel::matchesTransformers_data() {
    QTest::addColumn<QString>("model");
    QTest::addColumn<int>("prompt");
    for (const char* m : {"wb-tiny-mha", "wb-tiny-gqa"})
        for (int p = 0; p < 3; ++p)
            QTest::newRow(qPrintable(QString("%1 prompt %2").arg(m).arg(p))) << QString(m) << p;
}

void TestModel::matchesTransformers() {
    QFETCH(QString, model);
    QFETCH(int, prompt);
    torch::NoGradGuard no_grad;
    const json ref = load_reference(model.toStdString())["prompts"][prompt];
    LlamaForCausalLM m = load_weights_only(model.toStdString());
    const std::vector<int64_t> ids = ref["ids"].get<std::vector<int64_t>>();
    KVCache cache = m->make_cache();
    torch::Tensor logits = m->forward(torch::tensor(ids, torch::kInt64).unsqueeze(0), cache)[0];  // [T, vocab]

    torch::Tensor last_ref = torch::tensor(ref["last_logits"].get<std::vector<float>>());
    const double last_err = max_abs_diff(logits[-1], last_ref);
    qInfo("%s prompt %d: last-position logits max |diff| %.2e", qPrintable(model), prompt, last_err);
    QVERIFY2(last_err < 1e-3, qPrintable(QString("last logits differ by %1").arg(last_err)));

    const auto first = ref["logits_first8_positions_first16"].get<std::vector<std::vector<float>>>();
    for (size_t t = 0; t < first.size(); ++t) {
        const double err = max_abs_diff(logits[t].narrow(0, 0, 16), torch::tensor(first[t]));
        QVERIFY2(err < 1e-3, qPrintable(QString("position %1 logits differ by %2").arg(t).arg(err)));
    }
    const std::vector<int64_t> argmax_ref = ref["argmax"].get<std::vector<int64_t>>();
    torch::Tensor argmax = logits.argmax(-1);
    for (size_t t = 0; t < argmax_ref.size(); ++t)
        QVERIFY2(argmax[t].item<int64_t>() == argmax_ref[t], qPrintable(QString("argmax differs at position %1").arg(t)));
}

void TestModel::greedyContinuation() {
    QFETCH(QString, model);
    QFETCH(int, prompt);
    const json ref = load_reference(model.toStdString())["prompts"][prompt];
    LlamaForCausalLM m = load_weights_only(model.toStdString());
    GenerateOptions options;
    options.max_new_tokens = 16;
    GenerateResult r = greedy_generate(*m, ref["ids"].get<std::vector<int64_t>>(), options);
    QCOMPARE(r.ids, ref["greedy16"].get<std::vector<int64_t>>());
}

void TestModel::cachedDecodeEqualsFullForward_data() {
    QTest::addColumn<QString>("model");
    QTest::newRow("mha") << "wb-tiny-mha";
    QTest::newRow("gqa") << "wb-tiny-gqa";
}

void TestModel::cachedDecodeEqualsFullForward() {
    QFETCH(QString, model);
    torch::NoGradGuard no_grad;
    LlamaForCausalLM m = load_weights_only(model.toStdString());
    // 300 tokens crosses the cache's 256-token growth block.
    torch::manual_seed(7);
    torch::Tensor ids = torch::randint(1, 4096, {1, 300}, torch::kInt64);
    KVCache full_cache = m->make_cache();
    torch::Tensor full = m->forward(ids, full_cache)[0];
    KVCache cache = m->make_cache();
    // A prefill of 5 tokens, then one token at a time.
    torch::Tensor prefill = m->forward(ids.narrow(1, 0, 5), cache)[0];
    double worst = max_abs_diff(prefill, full.narrow(0, 0, 5));
    for (int64_t t = 5; t < ids.size(1); ++t) {
        torch::Tensor step = m->forward(ids.narrow(1, t, 1), cache)[0][0];
        worst = std::max(worst, max_abs_diff(step, full[t]));
    }
    qInfo("%s: token-by-token vs full forward max |diff| %.2e", qPrintable(model), worst);
    QVERIFY2(worst < 1e-4, qPrintable(QString("decode differs by %1").arg(worst)));
}

void TestModel::cacheBytes() {
    QFETCH(QString, model);
    torch::NoGradGuard no_grad;
    LlamaForCausalLM m = load_weights_only(model.toStdString());
    const ModelConfig& c = m->config();
    for (int64_t n : {1, 100, 257}) {
        KVCache cache = m->make_cache();
        m->forward(torch::ones({1, n}, torch::kInt64), cache, LogitsFor::Last);
        QCOMPARE(cache.length(), n);
        // K plus V, every layer, float32 in the engine.
        QCOMPARE(cache.bytes(), c.kv_elements_per_token() * n * 4);
        QVERIFY(cache.allocated_bytes() >= cache.bytes());
    }
}

void TestModel::parameterNamesAreCheckpointNames() {
    const std::string dir = test::model_dir("wb-tiny-gqa");
    LlamaForCausalLM m(ModelConfig::from_file(dir + "/config.json"));
    Checkpoint ck = Checkpoint::open_folder(dir);
    std::vector<std::string> ours;
    for (const auto& p : m->named_parameters()) ours.push_back(p.key());
    std::sort(ours.begin(), ours.end());
    QCOMPARE(ours, ck.names());
}

void TestModel::loadModelRefusesBadFolder() {
    MLAWB_EXPECT_ERROR(load_model("/nonexistent/model"), "/nonexistent/model", "no such directory");
}

QTEST_APPLESS_MAIN(TestModel)
#include "test_model.moc"
