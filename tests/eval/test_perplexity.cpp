// Held-out perplexity by the fixtures' protocol against transformers' figures.
#include "core/error.h"
#include "core/llama_model.h"
#include "eval/perplexity.h"
#include "test_support.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

using namespace mlawb;

class TestPerplexity : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void heldoutMatchesReference_data();
    void heldoutMatchesReference();
    void windowAccounting();
};

void TestPerplexity::heldoutMatchesReference_data() {
    QTest::addColumn<QString>("model");
    QTest::newRow("wb-tiny-mha") << "wb-tiny-mha";
    QTest::newRow("wb-tiny-gqa") << "wb-tiny-gqa";
}

void TestPerplexity::heldoutMatchesReference() {
    QFETCH(QString, model);
    const std::string text_path = test::fixtures_dir() + "/heldout.txt";
    const std::string ref_path = test::fixtures_dir() + "/reference/" + model.toStdString() + ".json";
    MLAWB_REQUIRE_PATH(text_path);
    MLAWB_REQUIRE_PATH(ref_path);
    std::ifstream ref_in(ref_path);
    const double reference = nlohmann::json::parse(ref_in)["perplexity_heldout"].get<double>();
    std::ifstream in(text_path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();

    LoadedModel m = load_model(test::model_dir(model.toStdString()));
    std::vector<int32_t> ids32 = m.tokenizer.encode(text.str());
    std::vector<int64_t> ids(ids32.begin(), ids32.end());
    PerplexityResult r = compute_perplexity(*m.model, ids, {});
    qInfo("%s: perplexity %.4f (reference %.4f), %lld tokens scored in %lld windows, %.0f tok/s", qPrintable(model),
          r.perplexity, reference, (long long)r.tokens_scored, (long long)r.windows, r.tokens_total / r.seconds);
    QVERIFY2(std::abs(r.perplexity / reference - 1) < 1e-3,
             qPrintable(QString("perplexity %1 vs reference %2").arg(r.perplexity).arg(reference)));
    QCOMPARE(r.tokens_scored, static_cast<int64_t>(ids.size()) - r.windows);
}

void TestPerplexity::windowAccounting() {
    LoadedModel m = load_model(test::model_dir("wb-tiny-mha"));
    std::vector<int64_t> ids(21, 5);
    PerplexityOptions options;
    options.window = 8;  // windows of 8, 8, 5 tokens: 7 + 7 + 4 scored
    int calls = 0;
    options.progress = [&](int64_t done, int64_t total, int64_t) {
        ++calls;
        QCOMPARE(total, 3);
        QVERIFY(done <= total);
    };
    PerplexityResult r = compute_perplexity(*m.model, ids, options);
    QCOMPARE(r.windows, 3);
    QCOMPARE(r.tokens_scored, 18);
    QCOMPARE(calls, 3);
    bool cancelled = false;
    options.cancelled = [] { return true; };
    try {
        compute_perplexity(*m.model, ids, options);
    } catch (const Cancelled&) {
        cancelled = true;
    }
    QVERIFY(cancelled);
}

QTEST_APPLESS_MAIN(TestPerplexity)
#include "test_perplexity.moc"
