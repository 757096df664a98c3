// Inputs found by the fuzz targets (tests/fuzz, issue 12) and by reviewing what they reach,
// replayed: each must be refused with an mlawb::Error naming the file, never crash. Every case
// runs in a forked child (tests/fuzz/regression_support.h) so a regression fails one test.
//
// Found by fuzzing: a number past double's range ("1e400") makes nlohmann throw out_of_range,
// not parse_error, so readers catching parse_error only let it escape (fuzz_config,
// fuzz_rope_scores, fuzz_custom_mask within seconds). Found by review of what the fuzzers reach
// (their inputs are too short): arrays nested a million deep parse fine (nlohmann's parser is
// iterative) but overflow the stack when an error message dumps them (recursive), and a huge
// layer count allocates before anything checks it.
//
// The LongBench prediction-file scorer (eval/metrics, fuzz_prediction_folder) lives in a library
// this suite does not link: its findings are replayed through the built `mlawb score --pred`.
#include "core/config.h"
#include "core/error.h"
#include "core/json_io.h"
#include "core/safetensors.h"
#include "core/tokenizer.h"
#include "fuzz/regression_support.h"
#include "test_support.h"

#include <QDir>
#include <QProcess>
#include <QTemporaryDir>
#include <fstream>
#include <iterator>

using namespace mlawb;

namespace {

std::string nested_arrays(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// A safetensors file's bytes: u64 little-endian header length, header, data.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
    std::string out(8, '\0');
    for (size_t i = 0; i < 8; ++i) out[i] = static_cast<char>((uint64_t(header.size()) >> (8 * i)) & 0xFF);
    return out + header + data;
}

void write_file(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out << bytes;
}

const char* const kSmallLlama =
    R"("model_type": "llama", "hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 2, "vocab_size": 10)";

}  // namespace

class TestFuzzRegressions : public QObject {
    Q_OBJECT

private Q_SLOTS:
    // ---- core/json_io: the shared reader of LongBench, multiple-choice and training JSONL ----

    void jsonNumberOverflowIsAnError() {
        // Was: nlohmann out_of_range.406 escaped parse_json_object_line (it caught parse_error).
        MLAWB_EXPECT_REFUSAL_IN_CHILD(parse_json_object_line(R"({"_id": "a", "length": 1e400})", "data.jsonl:3"),
                                      "data.jsonl:3", "malformed JSON", "number overflow");
        MLAWB_EXPECT_REFUSAL_IN_CHILD(parse_json_text("[0.428571e4000000004]", "scores.json"), "scores.json",
                                      "number overflow");
    }

    void jsonDepthCap_data() {
        QTest::addColumn<int>("depth");
        QTest::addColumn<bool>("accepted");
        QTest::newRow("at the cap") << kMaxJsonDepth << true;
        QTest::newRow("one past the cap") << kMaxJsonDepth + 1 << false;
        QTest::newRow("a million deep") << 1000000 << false;
    }
    void jsonDepthCap() {
        QFETCH(int, depth);
        QFETCH(bool, accepted);
        const std::string text = nested_arrays(static_cast<size_t>(depth));
        if (accepted) {
            QVERIFY(parse_json_text(text, "deep.json").is_array());
        } else {
            MLAWB_EXPECT_REFUSAL_IN_CHILD(parse_json_text(text, "deep.json"), "deep.json", "nested deeper than 256");
            MLAWB_EXPECT_REFUSAL_IN_CHILD(parse_json_object_line("{\"a\": " + text + "}", "x.jsonl:1"), "x.jsonl:1",
                                          "nested deeper than 256");
        }
    }

    // ---- core/safetensors ----

    void safetensorsDeepShapeInHeader() {
        // Was: the "shape holds <dim>" message dumped a million nested arrays: stack overflow.
        const std::string header =
            R"({"w": {"dtype": "F32", "shape": [)" + nested_arrays(1000000) + R"(], "data_offsets": [0, 4]}})";
        const std::string bytes = safetensors_bytes(header, std::string(4, '\0'));
        MLAWB_EXPECT_REFUSAL_IN_CHILD(
            parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "deep.safetensors"),
            "deep.safetensors", "header", "nested deeper than 256");
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const std::string path = dir.filePath("model.safetensors").toStdString();
        write_file(path, bytes);
        MLAWB_EXPECT_REFUSAL_IN_CHILD(SafetensorsFile::open(path), path.c_str(), "nested deeper than 256");
    }

    void safetensorsParseFromMemoryMatchesTheFile() {
        // The fuzzer's entry point is the reader's: same views, same metadata.
        const std::string header = R"({"__metadata__": {"format": "pt"}, "b": {"dtype": "F16", "shape": [2], )"
                                   R"("data_offsets": [4, 8]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})";
        const std::string bytes = safetensors_bytes(header, "ABCDEFGH");
        const SafetensorsHeader parsed =
            parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem");
        QCOMPARE(parsed.tensors.size(), size_t(2));
        QCOMPARE(parsed.tensors[0].name, std::string("a"));  // file order = data order
        QCOMPARE(std::string(reinterpret_cast<const char*>(parsed.tensors[1].data), 4), std::string("EFGH"));
        QCOMPARE(parsed.metadata.at("format"), std::string("pt"));
        QTemporaryDir dir;
        const std::string path = dir.filePath("m.safetensors").toStdString();
        write_file(path, bytes);
        const auto file = SafetensorsFile::open(path);
        QCOMPARE(file->tensors().size(), size_t(2));
        QCOMPARE(file->tensors()[1].name, std::string("b"));
        QCOMPARE(file->metadata(), parsed.metadata);
    }

    // ---- resource limits and crash-safe writes (core/safetensors, core/json_io) ----

    void memoryCheckBeforeMaterializing() {
        QVERIFY(available_memory_bytes() > 0);  // Linux: /proc/meminfo
        require_memory(1, "model.safetensors", "weights");
        MLAWB_EXPECT_ERROR(require_memory(uint64_t(1) << 62, "model.safetensors", "weights"), "model.safetensors",
                           "weights", "of memory, only");
    }

    void atomicWriteReplacesWithoutLeftovers() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const std::string path = dir.filePath("out.json").toStdString();
        write_file(path, "old");
        write_file_atomically(path, "new contents");
        std::ifstream in(path, std::ios::binary);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        QCOMPARE(text, std::string("new contents"));
        QCOMPARE(QDir(dir.path()).entryList(QDir::Files), QStringList{"out.json"});
        MLAWB_EXPECT_ERROR(write_file_atomically(dir.filePath("no/such/folder/x.json").toStdString(), "x"),
                           "no/such/folder/x.json", "cannot create");
        QCOMPARE(QDir(dir.path()).entryList(QDir::Files), QStringList{"out.json"});
    }

    // ---- core/config ----

    void configNumberOverflow() {
        // fuzz_config artifact crash-fe2771aa (a Mistral config with "rms_norm_eps": 1e51643, minimized):
        // nlohmann out_of_range.406 escapes ModelConfig::from_json_text, which catches parse_error only.
        MLAWB_EXPECT_REFUSAL_IN_CHILD(
            ModelConfig::from_json_text(std::string("{") + kSmallLlama + R"(, "num_hidden_layers": 1, "rms_norm_eps": 1e51643})",
                                        "config.json"),
            "config.json");
    }

    void configDeepLayerTypes() {
        // Stack overflow: config.cpp's "unsupported layer kind " + type.dump() recurses a million levels.
        MLAWB_EXPECT_REFUSAL_IN_CHILD(
            ModelConfig::from_json_text(std::string("{") + kSmallLlama + R"(, "num_hidden_layers": 1, "layer_types": [)" +
                                            nested_arrays(1000000) + "]}",
                                        "config.json"),
            "config.json");
    }

    void configHugeLayerCount() {
        // Out of memory: parse_sliding_window allocates std::vector<bool>(num_hidden_layers)
        // (125 GB here) before anything bounds the count.
        MLAWB_EXPECT_REFUSAL_IN_CHILD(
            ModelConfig::from_json_text(std::string("{") + kSmallLlama + R"(, "num_hidden_layers": 1000000000000})",
                                        "config.json"),
            "config.json", "num_hidden_layers");
    }

    void configHugeDimensions() {
        // UBSan: head_dim 2^62 is accepted and config.h's kv_elements_per_token_layer() computes
        // 2 x n_kv x head_dim: signed overflow. Found by review of what fuzz_config computes (what
        // `mlawb info --config-only` prints); the fuzzer did not combine it in 2.7M runs. The
        // same holds for hidden_size, intermediate_size and vocab_size in the tensor element
        // counts. A refusal naming the key is the fix.
        MLAWB_EXPECT_REFUSAL_IN_CHILD(
            [] {
                const ModelConfig c = ModelConfig::from_json_text(
                    std::string("{") + kSmallLlama + R"(, "num_hidden_layers": 2, "head_dim": 4611686018427387904})",
                    "config.json");
                (void)c.kv_elements_per_token();
            }(),
            "config.json", "head_dim");
    }

    // ---- core/tokenizer ----

    void tokenizerDeepVocabId() {
        // Stack overflow: tokenizer.cpp's "has an invalid id " + id_json.dump() recurses a million levels.
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const std::string path = dir.filePath("tokenizer.json").toStdString();
        write_file(path, R"({"model": {"type": "BPE", "vocab": {"a": )" + nested_arrays(1000000) + R"(}, "merges": []}})");
        MLAWB_EXPECT_REFUSAL_IN_CHILD(Tokenizer::from_file(path), "tokenizer.json");
    }

    // ---- eval/metrics: LongBench prediction files (`mlawb score --pred DIR`) ----

    void predictionLineRefused_data() {
        QTest::addColumn<QByteArray>("line");
        QTest::addColumn<QString>("needle");
        // fuzz_prediction_folder artifact crash-27d4d867 as found (its first byte picked the
        // dataset): nlohmann out_of_range.406 escaped parse_prediction_line, which caught
        // parse_error only, and `mlawb score` ended in std::terminate.
        QTest::newRow("artifact crash-27d4d867")
            << QByteArray::fromBase64("BTFlNDAwUGFyYWdyYXBoIDEyIiy+ImFuc3cAZXJzew==").mid(1) << QString("number overflow");
        QTest::newRow("a well-formed line with length 1e400")
            << QByteArray(R"({"pred": "Paragraph 12", "answers": ["Paragraph 12"], "all_classes": null, "length": 1e400})" "\n")
            << QString("number overflow");
        QTest::newRow("answers nested a million deep")
            << QByteArray::fromStdString(R"({"pred": "a", "answers": )" + nested_arrays(1000000) + R"(, "all_classes": null})")
            << QString("nested deeper than 256");
    }
    void predictionLineRefused() {
        QFETCH(QByteArray, line);
        QFETCH(QString, needle);
        const std::string mlawb = test::binary_dir() + "/app/cli/mlawb";
        MLAWB_REQUIRE_PATH(mlawb);
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        write_file(dir.filePath("passage_retrieval_en.jsonl").toStdString(), line.toStdString());
        QProcess p;
        p.start(QString::fromStdString(mlawb), {"score", "--pred", dir.path()});
        QVERIFY(p.waitForFinished(300000));
        const QString err = QString::fromUtf8(p.readAllStandardError());
        QVERIFY2(p.exitStatus() == QProcess::NormalExit && p.exitCode() == 2, qPrintable("not refused: " + err));
        QVERIFY2(err.startsWith("error: ") && err.contains("passage_retrieval_en.jsonl:1") && err.contains(needle),
                 qPrintable(err));
    }
};

QTEST_APPLESS_MAIN(TestFuzzRegressions)
#include "test_fuzz_regressions.moc"
