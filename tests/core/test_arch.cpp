// Every architecture family we load, against transformers 5.17 / tokenizers 0.23.2 references
// made by tests/reference/make_arch_refs.py (tests/data/arch/<family>/ and <family>.json):
// small random-weight models with each family's real config shape (SmolLM, Llama-2 sharded,
// Llama-3 with llama3 RoPE scaling, Mistral in f16, Qwen2 with q/k/v biases, Qwen2.5 with an
// explicit head_dim) and tokenizers with each family's real tokenizer.json pipeline.
// Checks: last-position logits within 1e-3, argmax at every position, 16 greedy tokens, and
// for the tokenizers exact ids and both decodes of every reference string.
#include "core/config.h"
#include "core/error.h"
#include "core/generate.h"
#include "core/llama_model.h"
#include "core/model_summary.h"
#include "test_support.h"

#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

using namespace mlawb;
using json = nlohmann::json;

Q_DECLARE_METATYPE(std::vector<int32_t>)

namespace {

const char* const kFamilies[] = {"smollm", "llama2", "llama3", "mistral", "qwen2", "qwen25"};

std::string family_dir(const std::string& family) { return test::source_dir() + "/tests/data/arch/" + family; }
std::string reference_path(const std::string& family) { return family_dir(family) + ".json"; }

json read_json(const std::string& path) {
    std::ifstream in(path);
    return json::parse(in);
}

QString format_ids(const std::vector<int32_t>& ids) {
    QStringList parts;
    for (int32_t id : ids) parts << QString::number(id);
    return "[" + parts.join(", ") + "]";
}

// Row names: family, index and a printable prefix of the text.
QByteArray row_name(const std::string& family, std::size_t index, const std::string& text) {
    std::string shown;
    for (char c : text.substr(0, 20)) shown += (c >= 0x20 && c < 0x7F) ? c : '.';
    return QByteArray::fromStdString(family + " " + std::to_string(index) + ": " + shown);
}

}  // namespace

class TestArch : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();
    void checkpointLayout_data();
    void checkpointLayout();
    void logits_data();
    void logits();
    void greedy_data() { logits_data(); }
    void greedy();
    void encodings_data();
    void encodings();

private:
    // Loaded once per family (config, tokenizer, weights).
    LoadedModel& model(const std::string& family) {
        auto& slot = models_[family];
        if (!slot) slot = std::make_unique<LoadedModel>(load_model(family_dir(family)));
        return *slot;
    }
    std::map<std::string, std::unique_ptr<LoadedModel>> models_;
    std::map<std::string, double> worst_logit_diff_;  // family -> max |diff| over its prompts
};

void TestArch::initTestCase() {
    for (const char* family : kFamilies) {
        MLAWB_REQUIRE_PATH(family_dir(family) + "/config.json");
        MLAWB_REQUIRE_PATH(family_dir(family) + "/tokenizer.json");
        MLAWB_REQUIRE_PATH(reference_path(family));
    }
}

void TestArch::cleanupTestCase() {
    for (const auto& [family, diff] : worst_logit_diff_)
        qInfo("%-8s last-position logits max |diff| vs transformers: %.3e", family.c_str(), diff);
}

// What make_arch_refs.py stored: the shapes each family must keep, the sharded and the f16
// checkpoint.
void TestArch::checkpointLayout_data() {
    QTest::addColumn<QString>("family");
    QTest::addColumn<QString>("modelType");
    QTest::addColumn<int>("qHeads");
    QTest::addColumn<int>("kvHeads");
    QTest::addColumn<int>("headDim");
    QTest::addColumn<bool>("tied");
    QTest::addColumn<bool>("qkvBias");
    QTest::addColumn<int>("ropeType");
    QTest::addColumn<QString>("dtype");
    QTest::addColumn<int>("files");
    using T = RopeScaling::Type;
    QTest::newRow("smollm") << "smollm" << "llama" << 3 << 1 << 64 << true << false << int(T::Default) << "BF16" << 1;
    QTest::newRow("llama2") << "llama2" << "llama" << 2 << 2 << 128 << false << false << int(T::Default) << "BF16" << 2;
    QTest::newRow("llama3") << "llama3" << "llama" << 4 << 1 << 64 << true << false << int(T::Llama3) << "BF16" << 1;
    QTest::newRow("mistral") << "mistral" << "mistral" << 4 << 1 << 128 << false << false << int(T::Default) << "F16" << 1;
    QTest::newRow("qwen2") << "qwen2" << "qwen2" << 7 << 1 << 64 << true << true << int(T::Default) << "BF16" << 1;
    QTest::newRow("qwen25") << "qwen25" << "qwen2" << 7 << 1 << 64 << false << true << int(T::Default) << "BF16" << 1;
}

void TestArch::checkpointLayout() {
    QFETCH(QString, family);
    QFETCH(QString, modelType);
    QFETCH(int, qHeads);
    QFETCH(int, kvHeads);
    QFETCH(int, headDim);
    QFETCH(bool, tied);
    QFETCH(bool, qkvBias);
    QFETCH(int, ropeType);
    QFETCH(QString, dtype);
    QFETCH(int, files);
    const ModelSummary s = ModelSummary::from_folder(family_dir(family.toStdString()));
    QCOMPARE(QString::fromStdString(s.config.model_type), modelType);
    QCOMPARE(s.config.n_head, qHeads);
    QCOMPARE(s.config.n_kv_head, kvHeads);
    QCOMPARE(s.config.head_dim, headDim);
    QCOMPARE(s.config.tie_word_embeddings, tied);
    QCOMPARE(s.config.qkv_bias, qkvBias);
    QCOMPARE(int(s.config.rope_scaling.type), ropeType);
    QCOMPARE(QString::fromStdString(s.weights_dtype), dtype);
    QCOMPARE(s.weight_files, files);
    // Qwen2.5's head_dim is not hidden / heads (256 / 7): the explicit value must win.
    if (family == "qwen25") QVERIFY(s.config.head_dim * s.config.n_head != s.config.hidden);
}

void TestArch::logits_data() {
    QTest::addColumn<QString>("family");
    QTest::addColumn<int>("prompt");
    for (const char* family : kFamilies)
        for (int p = 0; p < 3; ++p) QTest::newRow(qPrintable(QString("%1 prompt %2").arg(family).arg(p))) << family << p;
}

void TestArch::logits() {
    QFETCH(QString, family);
    QFETCH(int, prompt);
    torch::NoGradGuard no_grad;
    const json ref = read_json(reference_path(family.toStdString()))["prompts"][prompt];
    LoadedModel& m = model(family.toStdString());
    const std::vector<int64_t> ids = ref["ids"].get<std::vector<int64_t>>();
    KVCache cache = m.model->make_cache();
    const torch::Tensor logits = m.model->forward(torch::tensor(ids, torch::kInt64).unsqueeze(0), cache)[0];  // [T, vocab]

    const torch::Tensor last_ref = torch::tensor(ref["last_logits"].get<std::vector<float>>());
    const double diff = (logits[-1] - last_ref).abs().max().item<double>();
    qInfo("%s prompt %d: last-position logits max |diff| %.3e", qPrintable(family), prompt, diff);
    double& worst = worst_logit_diff_[family.toStdString()];
    worst = std::max(worst, diff);
    QVERIFY2(diff < 1e-3, qPrintable(QString("last-position logits differ by %1").arg(diff)));

    // Argmax at every position. A mismatch is excusable only where transformers' top two
    // logits are closer than 1e-4 (the reference's min_top2_margin over the prompt), and then
    // only if ours are as close: beyond that the two engines disagree on the ranking.
    const std::vector<int64_t> argmax_ref = ref["argmax"].get<std::vector<int64_t>>();
    const double min_margin = ref["min_top2_margin"].get<double>();
    QCOMPARE(int64_t(argmax_ref.size()), logits.size(0));
    const torch::Tensor argmax = logits.argmax(-1);
    const torch::Tensor top2 = std::get<0>(logits.topk(2, -1));  // [T, 2]
    for (std::size_t t = 0; t < argmax_ref.size(); ++t) {
        if (argmax[t].item<int64_t>() == argmax_ref[t]) continue;
        const double our_margin = (top2[t][0] - top2[t][1]).item<double>();
        QVERIFY2(min_margin < 1e-4 && our_margin < 1e-3,
                 qPrintable(QString("argmax differs at position %1 (%2 vs %3; reference min top-2 margin %4)")
                                .arg(t)
                                .arg(argmax[t].item<int64_t>())
                                .arg(argmax_ref[t])
                                .arg(min_margin)));
    }
}

void TestArch::greedy() {
    QFETCH(QString, family);
    QFETCH(int, prompt);
    const json ref = read_json(reference_path(family.toStdString()))["prompts"][prompt];
    LoadedModel& m = model(family.toStdString());
    GenerateOptions options;
    options.max_new_tokens = 16;
    // transformers stops after the eos of the config, which it includes, as greedy_generate does.
    const GenerateResult r = greedy_generate(*m.model, ref["ids"].get<std::vector<int64_t>>(), options);
    QCOMPARE(r.ids, ref["greedy16"].get<std::vector<int64_t>>());
}

void TestArch::encodings_data() {
    QTest::addColumn<QString>("family");
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<std::vector<int32_t>>("ids");
    QTest::addColumn<QByteArray>("decoded");
    QTest::addColumn<QByteArray>("decodedSkipSpecial");
    for (const char* family : kFamilies) {
        const std::string path = reference_path(family);
        MLAWB_REQUIRE_PATH(path);
        const json ref = read_json(path);
        QVERIFY2(ref["encodings"].size() >= 20, family);
        std::size_t index = 0;
        for (const json& e : ref["encodings"]) {
            const std::string text = e["text"].get<std::string>();
            QTest::newRow(row_name(family, index++, text).constData())
                << QString(family) << QByteArray::fromStdString(text) << e["ids"].get<std::vector<int32_t>>()
                << QByteArray::fromStdString(e["decoded"].get<std::string>())
                << QByteArray::fromStdString(e["decoded_skip_special"].get<std::string>());
        }
        // The prompts were tokenized by tokenizers too; their decodes are the texts themselves.
        for (const json& p : ref["prompts"]) {
            const std::string text = p["text"].get<std::string>();
            QTest::newRow(row_name(family, index++, text).constData())
                << QString(family) << QByteArray::fromStdString(text) << p["ids"].get<std::vector<int32_t>>()
                << QByteArray::fromStdString(text) << QByteArray::fromStdString(text);
        }
    }
}

void TestArch::encodings() {
    QFETCH(QString, family);
    QFETCH(QByteArray, text);
    QFETCH(std::vector<int32_t>, ids);
    QFETCH(QByteArray, decoded);
    QFETCH(QByteArray, decodedSkipSpecial);
    const Tokenizer& tokenizer = model(family.toStdString()).tokenizer;
    const std::vector<int32_t> got = tokenizer.encode(text.toStdString());
    QVERIFY2(got == ids, qPrintable("got  " + format_ids(got) + "\nwant " + format_ids(ids)));
    QCOMPARE(QByteArray::fromStdString(tokenizer.decode(ids)), decoded);
    QCOMPARE(QByteArray::fromStdString(tokenizer.decode_skip_special(ids)), decodedSkipSpecial);
}

QTEST_APPLESS_MAIN(TestArch)
#include "test_arch.moc"
