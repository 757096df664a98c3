// The real config.json files of the families MHA2MLA was applied to and that its users ask
// for (tests/data/configs/, sources in its README.md): each parses, and `mlawb info FILE
// --config-only --json` reports the head counts, the KV cache per token and the parameter
// count that the model cards publish. Expected values are written out by hand, not derived
// from the files, so a parsing slip shows up as a mismatch. Then the architecture reference
// folders (tests/data/arch) through `mlawb info`, `tokenize` and `generate`, against the
// transformers / tokenizers outputs recorded beside them.
#include "app/cli/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "test_support.h"

#include <QTemporaryDir>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

using namespace mlawb;
using json = nlohmann::json;

namespace {

struct CliRun {
    int status;
    std::string out, err;
};

CliRun run(const std::vector<std::string>& args) {
    std::ostringstream out, err;
    const int status = cli::run_cli(args, out, err);
    return {status, out.str(), err.str()};
}

std::string config_path(const QString& file) {
    return test::source_dir() + "/tests/data/configs/" + file.toStdString();
}

}  // namespace

class TestInfoConfigs : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void realConfigs_data();
    void realConfigs();
    void folderForm();
    void textOutput();
    void unsupportedFamily();
    void archFolders_data();
    void archFolders();
};

void TestInfoConfigs::realConfigs_data() {
    QTest::addColumn<QString>("file");
    QTest::addColumn<QString>("modelType");
    QTest::addColumn<int>("layers");
    QTest::addColumn<int>("qHeads");
    QTest::addColumn<int>("kvHeads");
    QTest::addColumn<int>("headDim");
    QTest::addColumn<QString>("rope");       // rope.scaling
    QTest::addColumn<double>("theta");
    QTest::addColumn<bool>("tied");
    QTest::addColumn<bool>("qkvBias");
    QTest::addColumn<int>("slidingWindow");  // 0 = full attention
    // K plus V, all layers, one sequence: 2 * layers * kv_heads * head_dim elements.
    QTest::addColumn<qlonglong>("kvElements");
    QTest::addColumn<qlonglong>("parameters");  // as the model cards publish them
    // file                       type       L   q   kv  d    rope       theta    tied   bias   window  KV elem  parameters
    QTest::newRow("SmolLM-135M") << "smollm-135m.json" << "llama" << 30 << 9 << 3 << 64 << "default" << 1e4 << true
                                 << false << 0 << 11520LL << 134515008LL;
    QTest::newRow("SmolLM-360M") << "smollm-360m.json" << "llama" << 32 << 15 << 5 << 64 << "default" << 1e4 << true
                                 << false << 0 << 20480LL << 361821120LL;
    QTest::newRow("SmolLM-1.7B") << "smollm-1.7b.json" << "llama" << 24 << 32 << 32 << 64 << "default" << 1e4 << true
                                 << false << 0 << 98304LL << 1711376384LL;
    QTest::newRow("Llama-2-7B") << "llama-2-7b.json" << "llama" << 32 << 32 << 32 << 128 << "default" << 1e4 << false
                                << false << 0 << 262144LL << 6738415616LL;
    QTest::newRow("Llama-2-13B") << "llama-2-13b.json" << "llama" << 40 << 40 << 40 << 128 << "default" << 1e4 << false
                                 << false << 0 << 409600LL << 13015864320LL;
    QTest::newRow("Llama-3.2-1B") << "llama-3.2-1b.json" << "llama" << 16 << 32 << 8 << 64 << "llama3" << 5e5 << true
                                  << false << 0 << 16384LL << 1235814400LL;
    QTest::newRow("Llama-3.2-3B") << "llama-3.2-3b.json" << "llama" << 28 << 24 << 8 << 128 << "llama3" << 5e5 << true
                                  << false << 0 << 57344LL << 3212749824LL;
    QTest::newRow("Llama-3.1-8B") << "llama-3.1-8b.json" << "llama" << 32 << 32 << 8 << 128 << "llama3" << 5e5 << false
                                  << false << 0 << 65536LL << 8030261248LL;
    QTest::newRow("Mistral-7B-v0.1") << "mistral-7b-v0.1.json" << "mistral" << 32 << 32 << 8 << 128 << "default" << 1e4
                                     << false << false << 4096 << 65536LL << 7241732096LL;
    // Qwen2 files carry sliding_window 131072 with use_sliding_window false: full attention.
    QTest::newRow("Qwen2-0.5B") << "qwen2-0.5b.json" << "qwen2" << 24 << 14 << 2 << 64 << "default" << 1e6 << true
                                << true << 0 << 6144LL << 494032768LL;
    QTest::newRow("Qwen2-1.5B") << "qwen2-1.5b.json" << "qwen2" << 28 << 12 << 2 << 128 << "default" << 1e6 << true
                                << true << 0 << 14336LL << 1543714304LL;
    QTest::newRow("Qwen2-7B") << "qwen2-7b.json" << "qwen2" << 28 << 28 << 4 << 128 << "default" << 1e6 << false << true
                              << 0 << 28672LL << 7615616512LL;
    QTest::newRow("Qwen2.5-7B") << "qwen2.5-7b.json" << "qwen2" << 28 << 28 << 4 << 128 << "default" << 1e6 << false
                                << true << 0 << 28672LL << 7615616512LL;
}

void TestInfoConfigs::realConfigs() {
    QFETCH(QString, file);
    QFETCH(QString, modelType);
    QFETCH(int, layers);
    QFETCH(int, qHeads);
    QFETCH(int, kvHeads);
    QFETCH(int, headDim);
    QFETCH(QString, rope);
    QFETCH(double, theta);
    QFETCH(bool, tied);
    QFETCH(bool, qkvBias);
    QFETCH(int, slidingWindow);
    QFETCH(qlonglong, kvElements);
    QFETCH(qlonglong, parameters);
    const std::string path = config_path(file);
    MLAWB_REQUIRE_PATH(path);

    const ModelConfig c = ModelConfig::from_file(path);
    QCOMPARE(QString::fromStdString(c.model_type), modelType);
    QCOMPARE(c.n_head, qHeads);
    QCOMPARE(c.n_kv_head, kvHeads);
    QCOMPARE(c.head_dim, headDim);

    const CliRun r = run({"info", path, "--config-only", "--json"});
    QVERIFY2(r.status == 0, r.err.c_str());
    const json j = json::parse(r.out);
    QCOMPARE(j["config_only"].get<bool>(), true);
    QCOMPARE(QString::fromStdString(j["model_type"].get<std::string>()), modelType);
    QCOMPARE(j["layers"].get<int>(), layers);
    QCOMPARE(j["q_heads"].get<int>(), qHeads);
    QCOMPARE(j["kv_heads"].get<int>(), kvHeads);
    QCOMPARE(j["head_dim"].get<int>(), headDim);
    QCOMPARE(QString::fromStdString(j["attention"].get<std::string>()), QString(qHeads == kvHeads ? "MHA" : "GQA"));
    QCOMPARE(QString::fromStdString(j["rope"]["scaling"].get<std::string>()), rope);
    QCOMPARE(j["rope"]["theta"].get<double>(), theta);
    QCOMPARE(j["tie_word_embeddings"].get<bool>(), tied);
    QCOMPARE(j["qkv_bias"].get<bool>(), qkvBias);
    QCOMPARE(j["sliding_window"].get<int>(), slidingWindow);
    QCOMPARE(j["kv_elements_per_token"].get<qlonglong>(), kvElements);
    QCOMPARE(j["kv_bytes_per_token_fp16"].get<qlonglong>(), 2 * kvElements);
    QCOMPARE(j["parameters"].get<qlonglong>(), parameters);
    QCOMPARE(qlonglong(j["per_layer"].size()), qlonglong(layers));
    QCOMPARE(j["per_layer"][0]["kv_elements_per_token"].get<qlonglong>(), kvElements / layers);
}

// A folder holding config.json works as well as the file, without any weights.
void TestInfoConfigs::folderForm() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string folder = dir.path().toStdString();
    std::ifstream in(config_path("llama-3.2-1b.json"), std::ios::binary);
    std::ofstream(folder + "/config.json", std::ios::binary) << in.rdbuf();
    const CliRun r = run({"info", folder, "--config-only", "--json"});
    QVERIFY2(r.status == 0, r.err.c_str());
    const json j = json::parse(r.out);
    QCOMPARE(j["kv_heads"].get<int>(), 8);
    QCOMPARE(j["rope"]["factor"].get<double>(), 32.0);
    QCOMPARE(j["rope"]["original_max_position_embeddings"].get<int>(), 8192);
}

void TestInfoConfigs::textOutput() {
    const CliRun r = run({"info", config_path("mistral-7b-v0.1.json"), "--config-only"});
    QVERIFY2(r.status == 0, r.err.c_str());
    for (const char* needle : {"32 query / 8 key-value (group 4)", "sliding window 4096", "65536 elements/token",
                               "131072 B/token fp16"})
        QVERIFY2(r.out.find(needle) != std::string::npos, qPrintable(QString::fromStdString(r.out) + " lacks " + needle));
}

// A GPT-2 config is refused with one error line naming the file and model_type, exit 2.
void TestInfoConfigs::unsupportedFamily() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string path = dir.path().toStdString() + "/config.json";
    std::ofstream(path) << R"({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 768,
                              "n_head": 12, "n_layer": 12, "n_positions": 1024, "vocab_size": 50257})";
    const CliRun r = run({"info", path, "--config-only", "--json"});
    QCOMPARE(r.status, 2);
    QVERIFY(r.out.empty());
    for (const std::string& needle : {path, std::string("model_type"), std::string("unsupported architecture 'gpt2'"),
                                      std::string("llama, mistral, qwen2")})
        QVERIFY2(r.err.find(needle) != std::string::npos, qPrintable(QString::fromStdString(r.err) + " lacks " +
                                                                     QString::fromStdString(needle)));
    QCOMPARE(std::count(r.err.begin(), r.err.end(), '\n'), 1L);
}

void TestInfoConfigs::archFolders_data() {
    QTest::addColumn<QString>("family");
    QTest::addColumn<QString>("dtype");
    QTest::addColumn<int>("files");
    QTest::newRow("smollm") << "smollm" << "BF16" << 1;
    QTest::newRow("llama2 (2 shards)") << "llama2" << "BF16" << 2;
    QTest::newRow("llama3") << "llama3" << "BF16" << 1;
    QTest::newRow("mistral (f16)") << "mistral" << "F16" << 1;
    QTest::newRow("qwen2") << "qwen2" << "BF16" << 1;
    QTest::newRow("qwen25") << "qwen25" << "BF16" << 1;
}

void TestInfoConfigs::archFolders() {
    QFETCH(QString, family);
    QFETCH(QString, dtype);
    QFETCH(int, files);
    const std::string folder = test::source_dir() + "/tests/data/arch/" + family.toStdString();
    const std::string reference_path = folder + ".json";
    MLAWB_REQUIRE_PATH(reference_path);
    json reference;
    {
        std::ifstream in(reference_path);
        reference = json::parse(in);
    }

    CliRun r = run({"info", folder, "--json"});
    QVERIFY2(r.status == 0, r.err.c_str());
    const json info = json::parse(r.out);
    QCOMPARE(QString::fromStdString(info["stored_dtype"].get<std::string>()), dtype);
    QCOMPARE(info["weight_files"].get<int>(), files);
    QCOMPARE(info["kv_heads"].get<int>(), reference["config"]["num_key_value_heads"].get<int>());

    for (const json& encoding : {reference["encodings"][0], reference["encodings"][5], reference["encodings"].back()}) {
        r = run({"tokenize", folder, encoding["text"].get<std::string>(), "--json"});
        QVERIFY2(r.status == 0, r.err.c_str());
        QCOMPARE(json::parse(r.out)["ids"], encoding["ids"]);
    }

    // 16 greedy tokens from the first reference prompt, as transformers' generate gave them.
    const json& prompt = reference["prompts"][0];
    r = run({"generate", folder, "--prompt", prompt["text"].get<std::string>(), "--max-new", "16", "--json"});
    QVERIFY2(r.status == 0, r.err.c_str());
    const json generated = json::parse(r.out);
    QCOMPARE(generated["prompt_tokens"].get<size_t>(), prompt["ids"].size());
    QCOMPARE(generated["ids"], prompt["greedy16"]);
    QVERIFY(generated["text"].is_string());
}

QTEST_APPLESS_MAIN(TestInfoConfigs)
#include "test_info_configs.moc"
