// The mlawb command line as a user drives it: outputs of info/tokenize/generate on the bundled
// model, and every bad input answered with one "error: <file>: <field>: ..." line and exit 2.
#include "app/cli/commands.h"
#include "core/safetensors.h"
#include "test_support.h"

#include <QTemporaryDir>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

using namespace mlawb;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct CliRun {
    int status;
    std::string out, err;
};

CliRun run(std::vector<std::string> args) {
    std::ostringstream out, err;
    int status = cli::run_cli(args, out, err);
    return {status, out.str(), err.str()};
}

std::string bundled() { return test::source_dir() + "/resources/models/wb-tiny-mha"; }

// A writable copy of a fixture model folder (config, tokenizer, weights).
std::string copy_model(const QTemporaryDir& tmp, const std::string& name, const std::string& from) {
    const fs::path dst = fs::path(tmp.path().toStdString()) / name;
    fs::create_directories(dst);
    for (const char* f : {"config.json", "tokenizer.json", "model.safetensors"}) {
        fs::copy_file(fs::path(from) / f, dst / f);
        fs::permissions(dst / f, fs::perms::owner_write, fs::perm_options::add);
    }
    return dst.string();
}

void edit_config(const std::string& folder, const std::function<void(json&)>& edit) {
    json c;
    {
        std::ifstream in(folder + "/config.json");
        c = json::parse(in);
    }
    edit(c);
    std::ofstream(folder + "/config.json") << c.dump(2);
}

}  // namespace

class TestCli : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { MLAWB_REQUIRE_PATH(bundled() + "/model.safetensors"); }
    void infoText();
    void infoJson();
    void infoConfigOnly();
    void tokenizeMatchesReference();
    void generateMatchesReference();
    void convertExportsLoadableMla();
    void badInputs_data();
    void badInputs();
};

void TestCli::infoText() {
    CliRun r = run({"info", bundled()});
    QCOMPARE(r.status, 0);
    QVERIFY2(r.out.find("layers       6") != std::string::npos, r.out.c_str());
    QVERIFY(r.out.find("4 query / 4 key-value") != std::string::npos);
}

void TestCli::infoJson() {
    CliRun r = run({"info", bundled(), "--json"});
    QCOMPARE(r.status, 0);
    json j = json::parse(r.out);
    QCOMPARE(j["layers"].get<int>(), 6);
    QCOMPARE(j["q_heads"].get<int>(), 4);
    QCOMPARE(j["kv_heads"].get<int>(), 4);
    QCOMPARE(j["head_dim"].get<int>(), 64);
    // K plus V over 6 layers of 4 heads x 64 dims.
    QCOMPARE(j["kv_elements_per_token"].get<int>(), 3072);
    QCOMPARE(j["kv_bytes_per_token_fp16"].get<int>(), 6144);
    QCOMPARE(j["stored_dtype"].get<std::string>(), std::string("BF16"));
    QCOMPARE(j["per_layer"].size(), size_t(6));
    // Tied embeddings are counted once: vocab*hidden + 6 layers + final norm.
    const int64_t per_layer = 4 * 256 * 256 + 3 * 256 * 768 + 2 * 256;
    QCOMPARE(j["parameters"].get<int64_t>(), 4096 * 256 + 6 * per_layer + 256);
}

void TestCli::infoConfigOnly() {
    const std::string cfg = test::model_dir("wb-tiny-gqa") + "/config.json";
    MLAWB_REQUIRE_PATH(cfg);
    CliRun r = run({"info", cfg, "--config-only", "--json"});
    QCOMPARE(r.status, 0);
    json j = json::parse(r.out);
    QCOMPARE(j["kv_heads"].get<int>(), 2);
    QCOMPARE(j["kv_elements_per_token"].get<int>(), 6 * 2 * 2 * 64);
    QCOMPARE(j["config_only"].get<bool>(), true);
}

void TestCli::tokenizeMatchesReference() {
    CliRun r = run({"tokenize", bundled(), "Hello world", "--json"});
    QCOMPARE(r.status, 0);
    QCOMPARE(json::parse(r.out)["ids"].get<std::vector<int>>(), (std::vector<int>{40, 3936, 1743}));
}

void TestCli::generateMatchesReference() {
    const std::string ref_path = test::fixtures_dir() + "/reference/wb-tiny-mha.json";
    MLAWB_REQUIRE_PATH(ref_path);
    std::ifstream in(ref_path);
    const json prompt = json::parse(in)["prompts"][0];
    CliRun r = run({"generate", bundled(), "--prompt", prompt["text"].get<std::string>(), "--max-new", "16", "--json"});
    QCOMPARE(r.status, 0);
    json j = json::parse(r.out);
    QCOMPARE(j["ids"].get<std::vector<int64_t>>(), prompt["greedy16"].get<std::vector<int64_t>>());
    QCOMPARE(j["prompt_tokens"].get<int>(), int(prompt["ids"].size()));
}

void TestCli::convertExportsLoadableMla() {
    QTemporaryDir tmp;
    const std::string out = tmp.path().toStdString() + "/mla";
    CliRun r = run({"convert", bundled(), "--mla", "strategy=uniform,r=4,d_kv=16,svd=joint", "--out", out, "--json"});
    QVERIFY2(r.status == 0, r.err.c_str());
    QCOMPARE(json::parse(r.out)["kv_elements_per_token_layer"].get<int>(), 4 * (8 + 16));
    CliRun info = run({"info", out, "--json"});
    QCOMPARE(info.status, 0);
    json j = json::parse(info.out);
    QCOMPARE(j["mla"]["kept_pairs"][0][0].get<std::vector<int>>(), (std::vector<int>{0, 8, 16, 24}));
    QCOMPARE(j["kv_elements_per_token"].get<int>(), 6 * 4 * (8 + 16));
    // Generation runs on the exported MLA model; converting it again is refused.
    CliRun gen = run({"generate", out, "--prompt", "The pass key is", "--max-new", "4", "--json"});
    QVERIFY2(gen.status == 0, gen.err.c_str());
    QCOMPARE(json::parse(gen.out)["ids"].size(), size_t(4));
    CliRun again = run({"convert", out, "--mla", "strategy=high,r=4,d_kv=16", "--out", out + "2"});
    QCOMPARE(again.status, 2);
    QVERIFY2(again.err.find("already converted") != std::string::npos, again.err.c_str());
    // An existing output folder is never overwritten.
    CliRun exists = run({"convert", bundled(), "--mla", "strategy=high,r=4,d_kv=16", "--out", out});
    QCOMPARE(exists.status, 2);
    QVERIFY2(exists.err.find("already exists") != std::string::npos, exists.err.c_str());
}

void TestCli::badInputs_data() {
    QTest::addColumn<QString>("setup");
    QTest::addColumn<QString>("command");
    QTest::addColumn<QString>("needles");  // '|'-separated words the error line must contain
    QTest::newRow("unsupported model_type") << "gpt2" << "info" << "config.json|model_type|gpt2|llama";
    QTest::newRow("malformed config JSON") << "badjson" << "info" << "config.json|malformed JSON";
    QTest::newRow("missing tensor") << "missing-tensor" << "info" << "model.layers.5.mlp.down_proj.weight|missing";
    QTest::newRow("shape not matching config") << "shape" << "info" << "model.safetensors|gate_proj.weight|[768, 256]|[512, 256]";
    QTest::newRow("truncated safetensors") << "truncated" << "info" << "model.safetensors|outside the data area";
    QTest::newRow("pickle-only folder") << "pickle" << "info" << "pytorch_model.bin|safetensors";
    QTest::newRow("missing folder") << "none" << "info" << "config.json";
    QTest::newRow("truncated safetensors, generate") << "truncated" << "generate" << "model.safetensors";
    QTest::newRow("missing text file") << "good" << "perplexity-missing-text" << "no-such.txt|cannot open";
    QTest::newRow("unknown option") << "good" << "info --bogus" << "--bogus|unknown option";
    QTest::newRow("bad integer") << "good" << "generate-bad-int" << "--max-new|integer";
    QTest::newRow("bad --mla key") << "good" << "perplexity-bad-spec" << "--mla|unknown key 'rank'";
    QTest::newRow("impossible r") << "good" << "generate-big-r" << "--mla|r|exceed";
}

void TestCli::badInputs() {
    QFETCH(QString, setup);
    QFETCH(QString, command);
    QFETCH(QString, needles);
    QTemporaryDir tmp;
    QVERIFY(tmp.isValid());
    std::string folder = copy_model(tmp, "m", bundled());
    if (setup == "gpt2") {
        edit_config(folder, [](json& c) { c["model_type"] = "gpt2"; });
    } else if (setup == "badjson") {
        std::ofstream(folder + "/config.json") << "{\"model_type\": \"llama\",";
    } else if (setup == "missing-tensor") {
        // Rewrite the checkpoint without one tensor, through our writer.
        const std::string src = folder + "/model.safetensors";
        {
            auto file = SafetensorsFile::open(bundled() + "/model.safetensors");
            std::vector<TensorToWrite> keep;
            for (const auto& t : file->tensors())
                if (t.name != "model.layers.5.mlp.down_proj.weight") keep.push_back({t.name, t.dtype, t.shape, t.data});
            write_safetensors(src, keep);
        }
    } else if (setup == "shape") {
        edit_config(folder, [](json& c) { c["intermediate_size"] = 512; });
    } else if (setup == "truncated") {
        fs::resize_file(folder + "/model.safetensors", fs::file_size(folder + "/model.safetensors") / 2);
    } else if (setup == "pickle") {
        fs::remove(folder + "/model.safetensors");
        std::ofstream(folder + "/pytorch_model.bin") << "not really a pickle";
    } else if (setup == "none") {
        folder = tmp.path().toStdString() + "/does-not-exist";
    }
    std::vector<std::string> args;
    if (command == "info") args = {"info", folder};
    else if (command == "generate") args = {"generate", folder, "--prompt", "hi"};
    else if (command == "perplexity-missing-text") args = {"perplexity", folder, "--text", "/tmp/no-such.txt"};
    else if (command == "info --bogus") args = {"info", folder, "--bogus"};
    else if (command == "generate-bad-int") args = {"generate", folder, "--prompt", "hi", "--max-new", "lots"};
    else if (command == "perplexity-bad-spec")
        args = {"perplexity", folder, "--text", bundled() + "/config.json", "--mla", "strategy=high,rank=4"};
    else if (command == "generate-big-r") args = {"generate", folder, "--prompt", "hi", "--mla", "strategy=high,r=40"};
    CliRun r = run(args);
    QCOMPARE(r.status, 2);
    QVERIFY2(r.out.empty(), r.out.c_str());
    QVERIFY2(r.err.rfind("error: ", 0) == 0, r.err.c_str());
    QCOMPARE(std::count(r.err.begin(), r.err.end(), '\n'), 1L);  // one line
    for (const QString& n : needles.split('|'))
        QVERIFY2(r.err.find(n.toStdString()) != std::string::npos, qPrintable(QString::fromStdString(r.err) + " lacks " + n));
}

QTEST_APPLESS_MAIN(TestCli)
#include "test_cli.moc"
