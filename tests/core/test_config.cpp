// config.json parsing: both fixture styles (rope_parameters vs top-level rope_theta),
// defaults, and every refusal naming the file and key.
#include "core/config.h"
#include "core/error.h"
#include "test_support.h"

using namespace mlawb;

class TestConfig : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void fixtureModels_data();
    void fixtureModels();
    void missingKvHeadsMeansMha();
    void ropeScaling_data();
    void ropeScaling();
    void refusals_data();
    void refusals();
};

void TestConfig::fixtureModels_data() {
    QTest::addColumn<QString>("model");
    QTest::addColumn<int>("kvHeads");
    QTest::addColumn<bool>("tied");
    QTest::newRow("wb-tiny-mha (rope_parameters)") << "wb-tiny-mha" << 4 << true;
    QTest::newRow("wb-tiny-gqa (rope_theta)") << "wb-tiny-gqa" << 2 << false;
}

void TestConfig::fixtureModels() {
    QFETCH(QString, model);
    QFETCH(int, kvHeads);
    QFETCH(bool, tied);
    const std::string path = test::model_dir(model.toStdString()) + "/config.json";
    MLAWB_REQUIRE_PATH(path);
    ModelConfig c = ModelConfig::from_file(path);
    QCOMPARE(c.model_type, std::string("llama"));
    QCOMPARE(c.n_layer, 6);
    QCOMPARE(c.n_head, 4);
    QCOMPARE(c.n_kv_head, kvHeads);
    QCOMPARE(c.head_dim, 64);
    QCOMPARE(c.hidden, 256);
    QCOMPARE(c.ffn, 768);
    QCOMPARE(c.vocab, 4096);
    QCOMPARE(c.max_position, 2048);
    QCOMPARE(c.rope_theta, 10000.0);
    QVERIFY(c.rope_scaling.type == RopeScaling::Type::Default);
    QCOMPARE(c.rms_eps, 1e-5);
    QCOMPARE(c.tie_word_embeddings, tied);
    QVERIFY(c.is_eos(0));
    QCOMPARE(c.kv_elements_per_token(), 6 * 2 * kvHeads * 64);
}

void TestConfig::missingKvHeadsMeansMha() {
    ModelConfig c = ModelConfig::from_json_text(
        R"({"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
            "num_attention_heads":4,"vocab_size":100})",
        "inline");
    QCOMPARE(c.n_kv_head, 4);
    QCOMPARE(c.head_dim, 16);
    QVERIFY(c.is_mha());
}

void TestConfig::ropeScaling_data() {
    QTest::addColumn<QString>("json");
    QTest::addColumn<int>("type");
    QTest::addColumn<double>("factor");
    QTest::addColumn<double>("theta");
    const QString base = R"({"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
        "num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,%1})";
    QTest::newRow("llama3 rope_scaling") << base.arg(R"("rope_theta":500000.0,"rope_scaling":{"rope_type":"llama3",
        "factor":32.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192})")
                                         << int(RopeScaling::Type::Llama3) << 32.0 << 500000.0;
    QTest::newRow("linear with legacy 'type'") << base.arg(R"("rope_theta":10000.0,"rope_scaling":{"type":"linear","factor":4.0})")
                                                << int(RopeScaling::Type::Linear) << 4.0 << 10000.0;
    QTest::newRow("rope_parameters default") << base.arg(R"("rope_parameters":{"rope_theta":1000000.0,"rope_type":"default"})")
                                             << int(RopeScaling::Type::Default) << 1.0 << 1000000.0;
    QTest::newRow("rope_scaling null") << base.arg(R"("rope_theta":10000.0,"rope_scaling":null)")
                                       << int(RopeScaling::Type::Default) << 1.0 << 10000.0;
}

void TestConfig::ropeScaling() {
    QFETCH(QString, json);
    QFETCH(int, type);
    QFETCH(double, factor);
    QFETCH(double, theta);
    ModelConfig c = ModelConfig::from_json_text(json.toStdString(), "inline");
    QCOMPARE(int(c.rope_scaling.type), type);
    QCOMPARE(c.rope_scaling.factor, factor);
    QCOMPARE(c.rope_theta, theta);
}

void TestConfig::refusals_data() {
    QTest::addColumn<QString>("json");
    QTest::addColumn<QString>("field");
    QTest::addColumn<QString>("words");
    const QString ok = R"("hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100)";
    QTest::newRow("unsupported model_type") << QString(R"({"model_type":"gpt2",%1})").arg(ok) << "model_type"
                                            << "gpt2|llama, mistral, qwen2";
    QTest::newRow("malformed JSON") << R"({"model_type": "llama",)" << "inline" << "malformed JSON";
    QTest::newRow("not an object") << "[1,2]" << "inline" << "JSON object";
    QTest::newRow("missing hidden_size")
        << R"({"model_type":"llama","intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100})"
        << "hidden_size" << "missing";
    QTest::newRow("string where int") << QString(R"({"model_type":"llama",%1,"num_key_value_heads":"two"})").arg(ok)
                                      << "num_key_value_heads" << "integer";
    QTest::newRow("kv heads not dividing") << QString(R"({"model_type":"llama",%1,"num_key_value_heads":3})").arg(ok)
                                           << "num_key_value_heads" << "divide";
    QTest::newRow("yarn scaling") << QString(R"({"model_type":"llama",%1,"rope_scaling":{"rope_type":"yarn","factor":4}})").arg(ok)
                                  << "rope_scaling.rope_type" << "yarn";
    QTest::newRow("gelu activation") << QString(R"({"model_type":"llama",%1,"hidden_act":"gelu"})").arg(ok) << "hidden_act"
                                     << "gelu";
}

void TestConfig::refusals() {
    QFETCH(QString, json);
    QFETCH(QString, field);
    QFETCH(QString, words);
    try {
        ModelConfig::from_json_text(json.toStdString(), "inline");
        QFAIL("expected an error");
    } catch (const Error& e) {
        const QString msg = QString::fromStdString(e.what());
        QVERIFY2(msg.startsWith("inline: "), qPrintable(msg));
        QVERIFY2(msg.contains(field), qPrintable(msg));
        for (const QString& w : words.split('|')) QVERIFY2(msg.contains(w), qPrintable(msg + " lacks " + w));
    }
}

QTEST_APPLESS_MAIN(TestConfig)
#include "test_config.moc"
