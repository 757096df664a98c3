// config.json parsing: both styles (transformers 5's rope_parameters / dtype / layer_types and
// the hub's older rope_theta / rope_scaling / torch_dtype), the architecture references of
// tests/data/arch, sliding windows, contradictions between the two styles, and every refusal
// naming the file and key.
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
    void archReferenceConfigs_data();
    void archReferenceConfigs();
    void bothStyles_data();
    void bothStyles();
    void slidingWindow_data();
    void slidingWindow();
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

// The configs transformers 5.17 wrote for the architecture references (rope_parameters,
// dtype, Qwen2's layer_types with sliding_window null).
void TestConfig::archReferenceConfigs_data() {
    QTest::addColumn<QString>("family");
    QTest::addColumn<QString>("modelType");
    QTest::addColumn<double>("theta");
    QTest::addColumn<int>("ropeType");
    QTest::addColumn<double>("factor");
    QTest::addColumn<QString>("dtype");
    QTest::addColumn<int>("slidingWindow");
    QTest::addColumn<int>("headDim");
    QTest::addColumn<bool>("qkvBias");
    using T = RopeScaling::Type;
    QTest::newRow("smollm") << "smollm" << "llama" << 1e4 << int(T::Default) << 1.0 << "bfloat16" << 0 << 64 << false;
    QTest::newRow("llama2") << "llama2" << "llama" << 1e4 << int(T::Default) << 1.0 << "bfloat16" << 0 << 128 << false;
    QTest::newRow("llama3") << "llama3" << "llama" << 5e5 << int(T::Llama3) << 32.0 << "bfloat16" << 0 << 64 << false;
    QTest::newRow("mistral") << "mistral" << "mistral" << 1e4 << int(T::Default) << 1.0 << "float16" << 4096 << 128
                             << false;
    QTest::newRow("qwen2") << "qwen2" << "qwen2" << 1e6 << int(T::Default) << 1.0 << "bfloat16" << 0 << 64 << true;
    QTest::newRow("qwen25") << "qwen25" << "qwen2" << 1e6 << int(T::Default) << 1.0 << "bfloat16" << 0 << 64 << true;
}

void TestConfig::archReferenceConfigs() {
    QFETCH(QString, family);
    QFETCH(QString, modelType);
    QFETCH(double, theta);
    QFETCH(int, ropeType);
    QFETCH(double, factor);
    QFETCH(QString, dtype);
    QFETCH(int, slidingWindow);
    QFETCH(int, headDim);
    QFETCH(bool, qkvBias);
    const std::string path = test::source_dir() + "/tests/data/arch/" + family.toStdString() + "/config.json";
    MLAWB_REQUIRE_PATH(path);
    const ModelConfig c = ModelConfig::from_file(path);
    QCOMPARE(QString::fromStdString(c.model_type), modelType);
    QCOMPARE(c.rope_theta, theta);
    QCOMPARE(int(c.rope_scaling.type), ropeType);
    QCOMPARE(c.rope_scaling.factor, factor);
    if (c.rope_scaling.type == RopeScaling::Type::Llama3) {
        QCOMPARE(c.rope_scaling.low_freq_factor, 1.0);
        QCOMPARE(c.rope_scaling.high_freq_factor, 4.0);
        QCOMPARE(c.rope_scaling.original_max_position_embeddings, 8192);
    }
    QCOMPARE(QString::fromStdString(c.stored_dtype), dtype);
    QCOMPARE(c.sliding_window, slidingWindow);
    QCOMPARE(c.head_dim, headDim);
    QCOMPARE(c.qkv_bias, qkvBias);
}

// The same settings written in the new form, the old form, or both: both forms must agree
// where a file carries both.
void TestConfig::bothStyles_data() {
    QTest::addColumn<QString>("keys");
    QTest::addColumn<QString>("error");  // "" when the keys must parse; else field|words
    QTest::addColumn<double>("theta");
    QTest::addColumn<int>("ropeType");
    QTest::addColumn<QString>("dtype");
    using T = RopeScaling::Type;
    const QString llama3 = R"({"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
        "original_max_position_embeddings":8192)";
    QTest::newRow("new form") << QString(R"("rope_parameters":%1,"rope_theta":500000.0},"dtype":"bfloat16")").arg(llama3)
                              << "" << 5e5 << int(T::Llama3) << "bfloat16";
    QTest::newRow("old form") << QString(R"("rope_theta":500000.0,"rope_scaling":%1},"torch_dtype":"float16")").arg(llama3)
                              << "" << 5e5 << int(T::Llama3) << "float16";
    QTest::newRow("both, agreeing")
        << QString(R"("rope_parameters":%1,"rope_theta":500000.0},"rope_theta":500000.0,"rope_scaling":%1},
                   "dtype":"bfloat16","torch_dtype":"bfloat16")")
               .arg(llama3)
        << "" << 5e5 << int(T::Llama3) << "bfloat16";
    QTest::newRow("rope_parameters without type takes rope_scaling")
        << QString(R"("rope_parameters":{"rope_theta":500000.0},"rope_scaling":%1})").arg(llama3) << "" << 5e5
        << int(T::Llama3) << "";
    QTest::newRow("theta contradicts")
        << R"("rope_parameters":{"rope_theta":1000000.0,"rope_type":"default"},"rope_theta":10000.0)"
        << "rope_theta|10000 contradicts rope_parameters.rope_theta (1000000)" << 0.0 << 0 << "";
    QTest::newRow("scaling type contradicts")
        << QString(R"("rope_parameters":{"rope_theta":500000.0,"rope_type":"default"},"rope_scaling":%1})").arg(llama3)
        << "rope_scaling|'llama3' scaling (factor 8) contradicts rope_parameters ('default'" << 0.0 << 0 << "";
    QTest::newRow("scaling factor contradicts")
        << QString(R"("rope_parameters":%1,"rope_theta":500000.0},"rope_scaling":{"rope_type":"llama3","factor":32.0,
                   "low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192})")
               .arg(llama3)
        << "rope_scaling|factor 32) contradicts rope_parameters ('llama3', factor 8)" << 0.0 << 0 << "";
    QTest::newRow("dtype contradicts") << R"("dtype":"bfloat16","torch_dtype":"float32")"
                                       << "torch_dtype|'float32' contradicts dtype 'bfloat16'" << 0.0 << 0 << "";
    QTest::newRow("per-layer-type rope_parameters")
        << R"("rope_parameters":{"full_attention":{"rope_theta":1e6},"sliding_attention":{"rope_theta":1e4}})"
        << "rope_parameters|per-layer-type" << 0.0 << 0 << "";
}

void TestConfig::bothStyles() {
    QFETCH(QString, keys);
    QFETCH(QString, error);
    QFETCH(double, theta);
    QFETCH(int, ropeType);
    QFETCH(QString, dtype);
    const QString json = QString(R"({"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
        "num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,%1})").arg(keys);
    if (error.isEmpty()) {
        const ModelConfig c = ModelConfig::from_json_text(json.toStdString(), "inline");
        QCOMPARE(c.rope_theta, theta);
        QCOMPARE(int(c.rope_scaling.type), ropeType);
        QCOMPARE(QString::fromStdString(c.stored_dtype), dtype);
        if (c.rope_scaling.type == RopeScaling::Type::Llama3) QCOMPARE(c.rope_scaling.factor, 8.0);
        return;
    }
    const QStringList parts = error.split('|');
    const std::string field = (parts[0] + ": ").toStdString(), words = parts[1].toStdString();
    MLAWB_EXPECT_ERROR(ModelConfig::from_json_text(json.toStdString(), "inline"), "inline: ", field.c_str(),
                       words.c_str());
}

// Sliding windows: Mistral's applies to every layer; Qwen2's only with use_sliding_window, to
// the layers from max_window_layers on, or as transformers 5's layer_types lists. The engine
// has one window for all layers, so mixed models are refused.
void TestConfig::slidingWindow_data() {
    QTest::addColumn<QString>("modelType");
    QTest::addColumn<QString>("keys");
    QTest::addColumn<int>("window");     // expected sliding_window when no error
    QTest::addColumn<QString>("error");  // field|words, or ""
    QTest::newRow("mistral 4096") << "mistral" << R"("sliding_window":4096)" << 4096 << "";
    QTest::newRow("mistral null") << "mistral" << R"("sliding_window":null)" << 0 << "";
    QTest::newRow("llama ignores sliding_window") << "llama" << R"("sliding_window":4096)" << 0 << "";
    QTest::newRow("qwen2 hub: window set, use false")
        << "qwen2" << R"("sliding_window":131072,"use_sliding_window":false,"max_window_layers":28)" << 0 << "";
    QTest::newRow("qwen2 use true, max_window_layers 0")
        << "qwen2" << R"("sliding_window":4096,"use_sliding_window":true,"max_window_layers":0)" << 4096 << "";
    QTest::newRow("qwen2 use true, max_window_layers past the last layer")
        << "qwen2" << R"("sliding_window":4096,"use_sliding_window":true,"max_window_layers":2)" << 0 << "";
    QTest::newRow("qwen2 use true, default max_window_layers 28")
        << "qwen2" << R"("sliding_window":4096,"use_sliding_window":true)" << 0 << "";
    QTest::newRow("qwen2 v5: layer_types full, window null")
        << "qwen2" << R"("sliding_window":null,"use_sliding_window":false,"layer_types":["full_attention","full_attention"])"
        << 0 << "";
    QTest::newRow("qwen2 v5: layer_types sliding")
        << "qwen2"
        << R"("sliding_window":4096,"use_sliding_window":true,"max_window_layers":0,
              "layer_types":["sliding_attention","sliding_attention"])"
        << 4096 << "";
    QTest::newRow("mixed layers refused")
        << "qwen2" << R"("sliding_window":4096,"use_sliding_window":true,"max_window_layers":1)" << 0
        << "max_window_layers|1 of 2 layers use a sliding window";
    QTest::newRow("mixed layer_types refused")
        << "qwen2"
        << R"("sliding_window":4096,"use_sliding_window":true,"max_window_layers":1,
              "layer_types":["full_attention","sliding_attention"])"
        << 0 << "layer_types|1 of 2 layers";
    QTest::newRow("layer_types sliding contradicts use false")
        << "qwen2"
        << R"("sliding_window":4096,"use_sliding_window":false,"layer_types":["sliding_attention","sliding_attention"])"
        << 0 << "layer_types[0]|contradicts use_sliding_window false";
    QTest::newRow("layer_types full contradicts use true")
        << "qwen2"
        << R"("sliding_window":4096,"use_sliding_window":true,"max_window_layers":0,
              "layer_types":["full_attention","full_attention"])"
        << 0 << "layer_types[0]|contradicts use_sliding_window true";
    QTest::newRow("sliding layer without window")
        << "qwen2" << R"("sliding_window":null,"use_sliding_window":true,"layer_types":["sliding_attention","sliding_attention"])"
        << 0 << "layer_types[0]|needs a sliding_window";
    QTest::newRow("layer_types of the wrong length")
        << "qwen2" << R"("layer_types":["full_attention"])" << 0 << "layer_types|expected an array of 2";
    QTest::newRow("unknown layer kind")
        << "qwen2" << R"("layer_types":["full_attention","chunked_attention"])" << 0
        << "layer_types[1]|unsupported layer kind \"chunked_attention\"";
    QTest::newRow("negative window") << "mistral" << R"("sliding_window":-1)" << 0 << "sliding_window|must be positive";
}

void TestConfig::slidingWindow() {
    QFETCH(QString, modelType);
    QFETCH(QString, keys);
    QFETCH(int, window);
    QFETCH(QString, error);
    const QString json = QString(R"({"model_type":"%1","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
        "num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,%2})")
                             .arg(modelType, keys);
    if (error.isEmpty()) {
        QCOMPARE(ModelConfig::from_json_text(json.toStdString(), "inline").sliding_window, window);
        return;
    }
    const QStringList parts = error.split('|');
    const std::string field = (parts[0] + ": ").toStdString(), words = parts[1].toStdString();
    MLAWB_EXPECT_ERROR(ModelConfig::from_json_text(json.toStdString(), "inline"), "inline: ", field.c_str(),
                       words.c_str());
}

QTEST_APPLESS_MAIN(TestConfig)
#include "test_config.moc"
