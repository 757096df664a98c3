// tokenizer.json BPE: exact ids against the Hugging Face reference encodings, round trips
// (held-out text, invalid UTF-8, long runs), added-token rules, the pipeline components one by
// one (normalizers, pre-tokenizers with the hand-coded split regexes, decoders, BPE model
// options), the refusals that name the component at fault, and thread safety. The architecture families' tokenizers are
// checked end to end against tokenizers in test_arch; the Unicode helpers have test_unicode.
#include <QElapsedTimer>
#include <QTemporaryDir>

#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/tokenizer.h"
#include "core/tokenizer_pipeline.h"
#include "core/tokenizer_regex.h"
#include "core/unicode.h"
#include "test_support.h"

using namespace mlawb;
using nlohmann::json;

Q_DECLARE_METATYPE(std::vector<int32_t>)

namespace {

std::string fixture_tokenizer_path() { return test::model_dir("wb-tiny-mha") + "/tokenizer.json"; }

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

void write_file(const std::string& path, const std::string& content) {
    std::ofstream out(path, std::ios::binary);
    out << content;
}

json fixture_json() { return json::parse(read_file(fixture_tokenizer_path())); }

QString format_ids(const std::vector<int32_t>& ids) {
    QStringList parts;
    for (int32_t id : ids) parts << QString::number(id);
    return "[" + parts.join(", ") + "]";
}

// Row names must be unique and readable: index plus a printable prefix of the text.
QByteArray row_name(int index, const std::string& text) {
    std::string shown;
    for (char c : text.substr(0, 24)) shown += (c >= 0x20 && c < 0x7F) ? c : '.';
    return QByteArray::number(index) + ": " + QByteArray::fromStdString(shown);
}

std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
    std::vector<int32_t> out;
    for (const auto& part : parts) out.insert(out.end(), part.begin(), part.end());
    return out;
}

}  // namespace

class TestTokenizer : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void referenceEncodings_data();
    void referenceEncodings();
    void heldoutRoundTrip();
    void vocabulary();
    void mergesAsStrings();
    void addedTokenRules_data();
    void addedTokenRules();
    void preTokenizerOptions_data();
    void preTokenizerOptions();
    void refusals_data();
    void refusals();
    void malformedJson();
    void invalidUtf8_data();
    void invalidUtf8();
    void longRuns_data();
    void longRuns();
    void concurrentEncoding();
    void normalizers_data();
    void normalizers();
    void splitRegexes_data();
    void splitRegexes();
    void preTokenizers_data();
    void preTokenizers();
    void decoders_data();
    void decoders();
    void bpeModelOptions_data();
    void bpeModelOptions();

private:
    // Writes `tokenizer` into the temporary folder and loads it.
    Tokenizer load_variant(const json& tokenizer, const QString& name = "tokenizer.json");
    std::string temp_path(const QString& name) const { return temp_.filePath(name).toStdString(); }
    // "#id" pieces are literal ids, other pieces plain text encoded by the fixture tokenizer.
    std::vector<int32_t> expected_ids(const QStringList& pieces) const {
        std::vector<int32_t> ids;
        for (const QString& piece : pieces) {
            if (piece.startsWith('#')) ids.push_back(piece.mid(1).toInt());
            else ids = concat({ids, fixture_->encode(piece.toStdString())});
        }
        return ids;
    }

    std::unique_ptr<Tokenizer> fixture_;
    QTemporaryDir temp_;
};

void TestTokenizer::initTestCase() {
    MLAWB_REQUIRE_PATH(fixture_tokenizer_path());
    QVERIFY(temp_.isValid());
    fixture_ = std::make_unique<Tokenizer>(Tokenizer::from_file(fixture_tokenizer_path()));
}

Tokenizer TestTokenizer::load_variant(const json& tokenizer, const QString& name) {
    write_file(temp_path(name), tokenizer.dump());
    return Tokenizer::from_file(temp_path(name));
}

void TestTokenizer::referenceEncodings_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<std::vector<int32_t>>("ids");
    const std::string encodings = test::fixtures_dir() + "/reference/tokenizer_encodings.json";
    const std::string model_reference = test::fixtures_dir() + "/reference/wb-tiny-mha.json";
    MLAWB_REQUIRE_PATH(encodings);
    MLAWB_REQUIRE_PATH(model_reference);
    int index = 0;
    const auto add_rows = [&](const json& cases) {
        for (const json& entry : cases) {
            const std::string text = entry.at("text").get<std::string>();
            QTest::newRow(row_name(index++, text).constData())
                << QByteArray::fromStdString(text) << entry.at("ids").get<std::vector<int32_t>>();
        }
    };
    add_rows(json::parse(read_file(encodings)));
    // The prompts of the model reference were tokenized by transformers too.
    add_rows(json::parse(read_file(model_reference)).at("prompts"));
    QVERIFY2(index >= 15, "too few reference encodings");
}

void TestTokenizer::referenceEncodings() {
    QFETCH(QByteArray, text);
    QFETCH(std::vector<int32_t>, ids);
    const std::vector<int32_t> got = fixture_->encode(text.toStdString());
    QVERIFY2(got == ids, qPrintable("got " + format_ids(got) + "\nwant " + format_ids(ids)));
    QCOMPARE(QByteArray::fromStdString(fixture_->decode(got)), text);
}

void TestTokenizer::heldoutRoundTrip() {
    const std::string path = test::fixtures_dir() + "/heldout.txt";
    MLAWB_REQUIRE_PATH(path);
    const std::string text = read_file(path);
    QVERIFY(text.size() > 100000);
    // A fresh tokenizer, so the timing includes filling the word cache.
    const Tokenizer tokenizer = Tokenizer::from_file(fixture_tokenizer_path());
    QElapsedTimer timer;
    timer.start();
    const std::vector<int32_t> ids = tokenizer.encode(text);
    const double seconds = std::max<qint64>(timer.nsecsElapsed(), 1) * 1e-9;
    qInfo("heldout.txt: %zu bytes -> %zu tokens in %.1f ms (%.1f MB/s)", text.size(), ids.size(), seconds * 1e3,
          text.size() / seconds / 1e6);
    QVERIFY(ids.size() > text.size() / 8 && ids.size() < text.size());
    for (int32_t id : ids) QVERIFY(id >= 0 && id < tokenizer.vocab_size());
    QVERIFY2(tokenizer.decode(ids) == text, "decode(encode(heldout.txt)) differs from the file");
    // A warm cache must not change the result.
    QVERIFY(tokenizer.encode(text) == ids);
}

void TestTokenizer::vocabulary() {
    QCOMPARE(fixture_->vocab_size(), 4096);
    QCOMPARE(fixture_->token_to_id("<|endoftext|>"), std::optional<int32_t>(0));
    QCOMPARE(fixture_->id_to_token(0), std::string("<|endoftext|>"));
    QCOMPARE(fixture_->token_to_id("!"), std::optional<int32_t>(1));
    QCOMPARE(fixture_->id_to_token(221), std::string("\xC4\xA0"));  // "Ġ", the space
    QCOMPARE(fixture_->decode({221}), std::string(" "));
    QCOMPARE(fixture_->id_to_token(-1), std::string());
    QCOMPARE(fixture_->id_to_token(4096), std::string());
    QVERIFY(!fixture_->token_to_id("no such token").has_value());
    for (int32_t id = 0; id < fixture_->vocab_size(); ++id)
        QCOMPARE(fixture_->token_to_id(fixture_->id_to_token(id)), std::optional<int32_t>(id));
    // Unknown ids are skipped, as tokenizers' decode does.
    QCOMPARE(fixture_->decode({40, -5, 99999, 3936}), fixture_->decode({40, 3936}));
}

void TestTokenizer::mergesAsStrings() {
    json variant = fixture_json();
    json& merges = variant["model"]["merges"];
    QVERIFY(merges.size() > 100 && merges[0].is_array());
    for (json& merge : merges) merge = merge[0].get<std::string>() + " " + merge[1].get<std::string>();
    const Tokenizer legacy = load_variant(variant);
    const std::string text = read_file(test::fixtures_dir() + "/heldout.txt").substr(0, 20000);
    QVERIFY(legacy.encode(text) == fixture_->encode(text));
}

void TestTokenizer::addedTokenRules_data() {
    // Expected ids as pieces: plain text encoded by the fixture tokenizer, or added ids.
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QStringList>("pieces");  // "#id" for an added token, else plain text
    QTest::newRow("lstrip+rstrip absorb spaces") << QByteArray("x  <sep>  y") << QStringList{"x", "#4096", "y"};
    QTest::newRow("lstrip stops at previous token") << QByteArray("<sep> <sep>") << QStringList{"#4096", "#4096"};
    QTest::newRow("single_word alone") << QByteArray("a [W] b") << QStringList{"a ", "#4097", " b"};
    QTest::newRow("single_word inside word") << QByteArray("a[W]b") << QStringList{"a[W]b"};
    QTest::newRow("single_word before letter") << QByteArray("[W]b") << QStringList{"[W]b"};
    QTest::newRow("leftmost longest") << QByteArray("<ab><cd>!") << QStringList{"#4099", "!"};
    QTest::newRow("shorter when longer fails") << QByteArray("<ab><c") << QStringList{"#4098", "<c"};
    QTest::newRow("special token") << QByteArray("a<|endoftext|> b") << QStringList{"a", "#0", " b"};
    QTest::newRow("normalized token") << QByteArray("say hi!") << QStringList{"say ", "#4100", "!"};
}

void TestTokenizer::addedTokenRules() {
    QFETCH(QByteArray, text);
    QFETCH(QStringList, pieces);
    json variant = fixture_json();
    const auto add = [&](int id, const char* content, bool lstrip, bool rstrip, bool single_word, bool normalized) {
        variant["added_tokens"].push_back({{"id", id}, {"content", content}, {"single_word", single_word},
                                           {"lstrip", lstrip}, {"rstrip", rstrip}, {"normalized", normalized},
                                           {"special", false}});
    };
    add(4096, "<sep>", true, true, false, false);
    add(4097, "[W]", false, false, true, false);
    add(4098, "<ab>", false, false, false, false);
    add(4099, "<ab><cd>", false, false, false, false);
    add(4100, "hi", false, false, false, true);
    const Tokenizer tokenizer = load_variant(variant);
    QCOMPARE(tokenizer.vocab_size(), 4101);
    QCOMPARE(tokenizer.token_to_id("<ab><cd>"), std::optional<int32_t>(4099));
    QCOMPARE(tokenizer.id_to_token(4096), std::string("<sep>"));

    const std::vector<int32_t> expected = expected_ids(pieces);
    const std::vector<int32_t> got = tokenizer.encode(text.toStdString());
    QVERIFY2(got == expected, qPrintable("got " + format_ids(got) + "\nwant " + format_ids(expected)));
}

void TestTokenizer::preTokenizerOptions_data() {
    QTest::addColumn<QString>("variant");
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QStringList>("pieces");  // as in addedTokenRules
    QTest::newRow("add_prefix_space") << "prefix" << QByteArray("Hello world") << QStringList{" Hello world"};
    QTest::newRow("add_prefix_space keeps a leading space")
        << "prefix" << QByteArray(" Hello") << QStringList{" Hello"};
    QTest::newRow("prefix per piece around added token")
        << "prefix" << QByteArray("a<|endoftext|>b") << QStringList{" a", "#0", " b"};
    // Without the regex the text is one BPE word, so "ĠĠ" (merge 0) forms across words;
    // ids from the GPT-2 encoder.py algorithm run on the same vocab and merges.
    QTest::newRow("use_regex false") << "no_regex" << QByteArray("x,  y's")
                                     << QStringList{"#88", "#12", "#257", "#89", "#443"};
    QTest::newRow("Sequence [ByteLevel]") << "sequence" << QByteArray("it's 42") << QStringList{"it's 42"};
    QTest::newRow("Digits individual")
        << "digits" << QByteArray("year 2024!") << QStringList{"year ", "2", "0", "2", "4", "!"};
}

void TestTokenizer::preTokenizerOptions() {
    QFETCH(QString, variant);
    QFETCH(QByteArray, text);
    QFETCH(QStringList, pieces);
    json tokenizer = fixture_json();
    json& byte_level = tokenizer["pre_tokenizer"];
    if (variant == "prefix") byte_level["add_prefix_space"] = true;
    if (variant == "no_regex") byte_level["use_regex"] = false;
    if (variant == "sequence") tokenizer["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {byte_level}}};
    if (variant == "digits") {
        const json digits = {{"type", "Digits"}, {"individual_digits", true}};
        tokenizer["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {digits, byte_level}}};
    }
    const Tokenizer variant_tokenizer = load_variant(tokenizer);
    const std::vector<int32_t> expected = expected_ids(pieces);
    const std::vector<int32_t> got = variant_tokenizer.encode(text.toStdString());
    QVERIFY2(got == expected, qPrintable("got " + format_ids(got) + "\nwant " + format_ids(expected)));
}

void TestTokenizer::refusals_data() {
    QTest::addColumn<QString>("pointer");  // JSON pointer of the value to replace
    QTest::addColumn<QByteArray>("value");  // JSON text
    QTest::addColumn<QStringList>("needles");
    QTest::newRow("pre_tokenizer Whitespace")
        << "/pre_tokenizer" << QByteArray(R"({"type":"Whitespace"})")
        << QStringList{"pre_tokenizer.type", "unsupported pre_tokenizer 'Whitespace'", "ByteLevel, Split, Metaspace"};
    QTest::newRow("pre_tokenizer without type") << "/pre_tokenizer" << QByteArray("{}")
                                                << QStringList{"pre_tokenizer.type", "without a \"type\""};
    QTest::newRow("Split with an unknown regex")
        << "/pre_tokenizer"
        << QByteArray(R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\s+|\\w+"},
                         "behavior":"Isolated","invert":false},{"type":"ByteLevel","use_regex":false}]})")
        << QStringList{"pre_tokenizer.pretokenizers[0].pattern.Regex", "unsupported Split regex", R"("\\s+|\\w+")"};
    QTest::newRow("Split without a pattern")
        << "/pre_tokenizer" << QByteArray(R"({"type":"Sequence","pretokenizers":[{"type":"Split"},{"type":"ByteLevel"}]})")
        << QStringList{"pre_tokenizer.pretokenizers[0].pattern"};
    QTest::newRow("Split with an unknown behavior")
        << "/pre_tokenizer" << QByteArray(R"({"type":"Split","pattern":{"String":" "},"behavior":"Shuffled"})")
        << QStringList{"pre_tokenizer.behavior", "Shuffled", "Isolated"};
    QTest::newRow("ByteLevel before Split")
        << "/pre_tokenizer"
        << QByteArray(R"({"type":"Sequence","pretokenizers":[{"type":"ByteLevel"},
                         {"type":"Split","pattern":{"String":" "},"behavior":"Isolated"}]})")
        << QStringList{"pre_tokenizer.pretokenizers[0].type", "ByteLevel must come last"};
    QTest::newRow("Metaspace replacement of two characters")
        << "/pre_tokenizer" << QByteArray(R"({"type":"Metaspace","replacement":"__","prepend_scheme":"first"})")
        << QStringList{"pre_tokenizer.replacement", "single character"};
    QTest::newRow("Metaspace prepend_scheme unknown")
        << "/pre_tokenizer" << QByteArray(R"({"type":"Metaspace","replacement":"\u2581","prepend_scheme":"sometimes"})")
        << QStringList{"pre_tokenizer.prepend_scheme", "sometimes"};
    QTest::newRow("normalizer NFKC inside a Sequence")
        << "/normalizer" << QByteArray(R"({"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"NFKC"}]})")
        << QStringList{"normalizer.normalizers[1].type", "unsupported normalizer 'NFKC'"};
    QTest::newRow("normalizer Lowercase") << "/normalizer" << QByteArray(R"({"type":"Lowercase"})")
                                          << QStringList{"normalizer.type", "Lowercase", "NFC, Prepend, Replace"};
    QTest::newRow("normalizer Replace with a regex")
        << "/normalizer" << QByteArray(R"({"type":"Replace","pattern":{"Regex":" +"},"content":"_"})")
        << QStringList{"normalizer.pattern.Regex", "\" +\""};
    QTest::newRow("model WordPiece") << "/model/type" << QByteArray(R"("WordPiece")")
                                     << QStringList{"model.type", "WordPiece", "BPE"};
    QTest::newRow("decoder WordPiece") << "/decoder" << QByteArray(R"({"type":"WordPiece"})")
                                       << QStringList{"decoder.type", "unsupported decoder 'WordPiece'"};
    QTest::newRow("decoder Strip without start")
        << "/decoder" << QByteArray(R"({"type":"Sequence","decoders":[{"type":"Fuse"},{"type":"Strip","content":" "}]})")
        << QStringList{"decoder.decoders[1].start", "non-negative integer"};
    QTest::newRow("post_processor BertProcessing")
        << "/post_processor" << QByteArray(R"({"type":"BertProcessing"})")
        << QStringList{"post_processor.type", "BertProcessing", "TemplateProcessing"};
    QTest::newRow("byte_fallback not a boolean") << "/model/byte_fallback" << QByteArray(R"("yes")")
                                                 << QStringList{"model.byte_fallback", "true or false"};
    QTest::newRow("continuing_subword_prefix") << "/model/continuing_subword_prefix" << QByteArray(R"("##")")
                                               << QStringList{"model.continuing_subword_prefix", "##"};
    QTest::newRow("truncation") << "/truncation" << QByteArray(R"({"max_length":8})") << QStringList{"truncation"};
    QTest::newRow("merge of unknown token") << "/model/merges/5" << QByteArray(R"(["zzqq","t"])")
                                            << QStringList{"model.merges[5]", "zzqq", "not in model.vocab"};
    QTest::newRow("merge of three parts") << "/model/merges/7" << QByteArray(R"("a b c")")
                                          << QStringList{"model.merges[7]"};
    QTest::newRow("added token without id") << "/added_tokens/0" << QByteArray(R"({"content":"x"})")
                                            << QStringList{"added_tokens[0]"};
}

void TestTokenizer::refusals() {
    QFETCH(QString, pointer);
    QFETCH(QByteArray, value);
    QFETCH(QStringList, needles);
    json tokenizer = fixture_json();
    tokenizer[json::json_pointer(pointer.toStdString())] = json::parse(value.toStdString());
    const std::string path = temp_path("refused.json");
    write_file(path, tokenizer.dump());
    std::vector<std::string> wanted{path};
    for (const QString& needle : needles) wanted.push_back(needle.toStdString());
    try {
        (void)Tokenizer::from_file(path);
        QFAIL("expected mlawb::Error");
    } catch (const Error& e) {
        for (const std::string& needle : wanted)
            QVERIFY2(std::string(e.what()).find(needle) != std::string::npos,
                     qPrintable(QString("error \"%1\" lacks \"%2\"").arg(e.what(), needle.c_str())));
    }
}

void TestTokenizer::malformedJson() {
    const std::string path = temp_path("malformed.json");
    const std::string text = read_file(fixture_tokenizer_path());
    write_file(path, text.substr(0, text.size() / 2));
    MLAWB_EXPECT_ERROR(Tokenizer::from_file(path), "malformed.json", "malformed JSON");
    write_file(path, "[1, 2]");
    MLAWB_EXPECT_ERROR(Tokenizer::from_file(path), "malformed.json", "JSON object");
    MLAWB_EXPECT_ERROR(Tokenizer::from_file(temp_path("absent.json")), "absent.json");
}

void TestTokenizer::invalidUtf8_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::newRow("stray continuation") << QByteArray("ab\x80\x80 cd");
    QTest::newRow("truncated 3-byte") << QByteArray("x\xE2\x82");
    QTest::newRow("truncated then letter") << QByteArray("\xE2\x82" "abc");
    QTest::newRow("overlong slash") << QByteArray("\xC0\xAF etc");
    QTest::newRow("surrogate") << QByteArray("\xED\xA0\x80 word");
    QTest::newRow("above U+10FFFF") << QByteArray("\xF4\x90\x80\x80 1");
    QTest::newRow("FF FE") << QByteArray("\xFF\xFE hello");
    QTest::newRow("lone lead at end") << QByteArray("it's \xF0");
    QTest::newRow("space before invalid") << QByteArray("a \xC3 b");
    QByteArray all_bytes;
    for (int b = 1; b < 256; ++b) all_bytes.append(char(b));
    QTest::newRow("every byte") << all_bytes;
}

void TestTokenizer::invalidUtf8() {
    QFETCH(QByteArray, text);
    const std::string input = text.toStdString();
    std::vector<int32_t> ids;
    try {
        ids = fixture_->encode(input);
    } catch (const std::exception& e) {
        QFAIL(e.what());
    }
    QVERIFY(!ids.empty());
    for (int32_t id : ids) QVERIFY(id >= 0 && id < fixture_->vocab_size());
    // Invalid bytes are kept as bytes, so even ill-formed text round-trips.
    QCOMPARE(QByteArray::fromStdString(fixture_->decode(ids)), text);
}

void TestTokenizer::longRuns_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::newRow("10k letters") << QByteArray(10000, 'a');
    QTest::newRow("10k mixed letters") << QByteArray("thequickbrownfox").repeated(700);
    QTest::newRow("10k digits") << QByteArray("0123456789").repeated(1000);
    QTest::newRow("10k spaces") << QByteArray(10000, ' ');
    QTest::newRow("10k spaces then word") << QByteArray(10000, ' ') + "word";
    QTest::newRow("10k punctuation") << QByteArray("=-").repeated(5000);
    QTest::newRow("5k CJK") << QByteArray("\xE6\x97\xA5\xE6\x9C\xAC").repeated(2500);
}

void TestTokenizer::longRuns() {
    QFETCH(QByteArray, text);
    QElapsedTimer timer;
    timer.start();
    const std::vector<int32_t> ids = fixture_->encode(text.toStdString());
    QVERIFY2(timer.elapsed() < 2000, "a long run must not take quadratic time");
    QVERIFY(!ids.empty() && ids.size() <= size_t(text.size()));
    QCOMPARE(QByteArray::fromStdString(fixture_->decode(ids)), text);
}

void TestTokenizer::concurrentEncoding() {
    const std::string path = test::fixtures_dir() + "/heldout.txt";
    MLAWB_REQUIRE_PATH(path);
    const std::string text = read_file(path);
    const std::vector<int32_t> expected = fixture_->encode(text);
    // A fresh tokenizer: all threads fill the shared word cache at once.
    const Tokenizer tokenizer = Tokenizer::from_file(fixture_tokenizer_path());
    constexpr int kThreads = 4;
    std::vector<std::vector<int32_t>> results(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] { results[t] = tokenizer.encode(text); });
    for (std::thread& thread : threads) thread.join();
    for (const auto& result : results) QVERIFY(result == expected);
}

// ---- Pipeline components ----------------------------------------------------------------
// Expected values follow tokenizers' source (normalizers/, pre_tokenizers/, decoders/,
// models/bpe) and were worked out by hand.

namespace {

std::string words_of(const tokenizer_pipeline::PreTokenizer& pre_tokenizer, const std::string& text, bool at_start) {
    std::string joined;
    pre_tokenizer.split(text, at_start, [&](std::string_view word) {
        if (!joined.empty()) joined += '|';
        joined.append(word);
    });
    return joined;
}

const std::string kPath = "tokenizer.json";

}  // namespace

void TestTokenizer::normalizers_data() {
    QTest::addColumn<QByteArray>("component");
    QTest::addColumn<QByteArray>("input");
    QTest::addColumn<QByteArray>("expected");
    QTest::newRow("null") << QByteArray("null") << QByteArray("a b") << QByteArray("a b");
    QTest::newRow("NFC composes") << QByteArray(R"({"type":"NFC"})") << QByteArray("e\xCC\x81 caf\xC3\xA9")
                                  << QByteArray("\xC3\xA9 caf\xC3\xA9");
    QTest::newRow("Prepend") << QByteArray(R"({"type":"Prepend","prepend":"\u2581"})") << QByteArray("ab")
                             << QByteArray("\xE2\x96\x81" "ab");
    QTest::newRow("Prepend leaves empty text") << QByteArray(R"({"type":"Prepend","prepend":"\u2581"})") << QByteArray("")
                                               << QByteArray("");
    QTest::newRow("Replace every occurrence")
        << QByteArray(R"({"type":"Replace","pattern":{"String":" "},"content":"\u2581"})") << QByteArray("  a b ")
        << QByteArray("\xE2\x96\x81\xE2\x96\x81" "a\xE2\x96\x81" "b\xE2\x96\x81");
    QTest::newRow("Replace longer pattern, non-overlapping")
        << QByteArray(R"({"type":"Replace","pattern":{"String":"aa"},"content":"b"})") << QByteArray("aaaaa")
        << QByteArray("bba");
    QTest::newRow("Llama-2 Sequence [Prepend, Replace]")
        << QByteArray(R"({"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"\u2581"},
                        {"type":"Replace","pattern":{"String":" "},"content":"\u2581"}]})")
        << QByteArray("Hi you") << QByteArray("\xE2\x96\x81Hi\xE2\x96\x81you");
}

void TestTokenizer::normalizers() {
    QFETCH(QByteArray, component);
    QFETCH(QByteArray, input);
    QFETCH(QByteArray, expected);
    const auto normalizer =
        tokenizer_pipeline::Normalizer::from_json(json::parse(component.toStdString()), {kPath, "normalizer"});
    QCOMPARE(QByteArray::fromStdString(normalizer.apply(input.toStdString())), expected);
}

// The hand-coded regex scanners, match by match ('|' between matches). The scanners were also
// checked against Python's `regex` module on 100,000 random strings while being written.
void TestTokenizer::splitRegexes_data() {
    QTest::addColumn<int>("regex");
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QByteArray>("matches");
    using R = tokenizer_regex::KnownRegex;
    const int gpt2 = int(R::kGpt2), llama3 = int(R::kLlama3), qwen2 = int(R::kQwen2);
    QTest::newRow("gpt2 words and spaces") << gpt2 << QByteArray("Hello  world 42!") << QByteArray("Hello| | world| 42|!");
    QTest::newRow("gpt2 contractions case-sensitive") << gpt2 << QByteArray("it's IT'S") << QByteArray("it|'s| IT|'|S");
    QTest::newRow("llama3 contractions any case") << llama3 << QByteArray("it's IT'S we'Ve")
                                                  << QByteArray("it|'s| IT|'S| we|'Ve");
    QTest::newRow("llama3 long s folds to s") << llama3 << QByteArray("x'\xC5\xBF") << QByteArray("x|'\xC5\xBF");
    QTest::newRow("llama3 one lead char before letters") << llama3 << QByteArray("(int \tab $$x")
                                                         << QByteArray("(int| |\tab| $$|x");
    QTest::newRow("llama3 digits in threes") << llama3 << QByteArray("1234567 x12") << QByteArray("123|456|7| x|12");
    QTest::newRow("qwen2 digits one by one") << qwen2 << QByteArray("2024") << QByteArray("2|0|2|4");
    QTest::newRow("llama3 punctuation takes line breaks") << llama3 << QByteArray("a:\n\n  b") << QByteArray("a|:\n\n| | b");
    QTest::newRow("llama3 spaces up to the last line break") << llama3 << QByteArray("a \n \n  b")
                                                             << QByteArray("a| \n \n| | b");
    QTest::newRow("llama3 trailing spaces") << llama3 << QByteArray("a   ") << QByteArray("a|   ");
    QTest::newRow("llama3 space then punctuation") << llama3 << QByteArray("x ..y") << QByteArray("x| ..|y");
    QTest::newRow("llama3 CR LF not a lead") << llama3 << QByteArray("\r\nab") << QByteArray("\r\n|ab");
    QTest::newRow("llama3 invalid byte is other") << llama3 << QByteArray("\xFF" "ab \xFF") << QByteArray("\xFF" "ab| \xFF");
    QTest::newRow("llama3 NBSP leads letters") << llama3 << QByteArray("a\xC2\xA0" "b") << QByteArray("a|\xC2\xA0" "b");
}

void TestTokenizer::splitRegexes() {
    QFETCH(int, regex);
    QFETCH(QByteArray, text);
    QFETCH(QByteArray, matches);
    const std::string input = text.toStdString();
    std::string joined;
    std::size_t covered = 0;
    for (const tokenizer_regex::Span& span : tokenizer_regex::find_all(tokenizer_regex::KnownRegex(regex), input)) {
        QCOMPARE(span.begin, covered);  // matches tile the text
        covered = span.end;
        if (!joined.empty()) joined += '|';
        joined += input.substr(span.begin, span.end - span.begin);
    }
    QCOMPARE(covered, input.size());
    QCOMPARE(QByteArray::fromStdString(joined), matches);
    QVERIFY(tokenizer_regex::known_regex(tokenizer_regex::pattern_text(tokenizer_regex::KnownRegex(regex))).has_value());
}

void TestTokenizer::preTokenizers_data() {
    QTest::addColumn<QByteArray>("component");
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<bool>("atStart");
    QTest::addColumn<QByteArray>("words");  // '|' between words
    const QByteArray meta = "\xE2\x96\x81";  // U+2581
    const auto metaspace = [](const char* scheme, bool split) {
        return QByteArray(R"({"type":"Metaspace","replacement":"\u2581","prepend_scheme":")") + scheme +
               R"(","split":)" + (split ? "true" : "false") + "}";
    };
    QTest::newRow("null: one word") << QByteArray("null") << QByteArray("a b") << true << QByteArray("a b");
    QTest::newRow("Metaspace first, at start") << metaspace("first", false) << QByteArray("Hi you") << true
                                               << meta + "Hi" + meta + "you";
    QTest::newRow("Metaspace first, after an added token") << metaspace("first", false) << QByteArray("Hi you") << false
                                                           << "Hi" + meta + "you";
    QTest::newRow("Metaspace first, starts with a space") << metaspace("first", false) << QByteArray(" x") << true
                                                          << meta + "x";
    QTest::newRow("Metaspace always") << metaspace("always", false) << QByteArray("x") << false << meta + "x";
    QTest::newRow("Metaspace never") << metaspace("never", false) << QByteArray("x y") << true << "x" + meta + "y";
    QTest::newRow("Metaspace split") << metaspace("always", true) << QByteArray("Hi  you ") << true
                                     << meta + "Hi|" + meta + "|" + meta + "you|" + meta;
    QTest::newRow("Metaspace legacy add_prefix_space false")
        << QByteArray(R"({"type":"Metaspace","replacement":"\u2581","add_prefix_space":false})") << QByteArray("x y")
        << true << "x|" + meta + "y";
    QTest::newRow("Split Llama-3 regex, Isolated")
        << QByteArray(R"({"type":"Split","pattern":{"Regex":"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false})")
        << QByteArray("I'M 12345!") << true << QByteArray("I|'M| |123|45|!");
    const QByteArray dash = R"({"type":"Split","pattern":{"String":"-"},"behavior":")";
    QTest::newRow("Split string Isolated") << dash + R"(Isolated"})" << QByteArray("a-b--c") << true
                                           << QByteArray("a|-|b|-|-|c");
    QTest::newRow("Split string Removed") << dash + R"(Removed"})" << QByteArray("a-b--c") << true << QByteArray("a|b|c");
    QTest::newRow("Split string MergedWithPrevious") << dash + R"(MergedWithPrevious"})" << QByteArray("a-b--c") << true
                                                     << QByteArray("a-|b-|-|c");
    QTest::newRow("Split string MergedWithNext") << dash + R"(MergedWithNext"})" << QByteArray("a-b--c") << true
                                                 << QByteArray("a|-b|-|-c");
    QTest::newRow("Split string Contiguous") << dash + R"(Contiguous"})" << QByteArray("a-b--c") << true
                                             << QByteArray("a|-|b|--|c");
    QTest::newRow("Split string inverted, Removed") << dash + R"(Removed","invert":true})" << QByteArray("a-b--c") << true
                                                    << QByteArray("-|-|-");
    QTest::newRow("Digits contiguous") << QByteArray(R"({"type":"Digits","individual_digits":false})")
                                       << QByteArray("ab123c4") << true << QByteArray("ab|123|c|4");
    QTest::newRow("ByteLevel without regex: one word")
        << QByteArray(R"({"type":"ByteLevel","add_prefix_space":false,"use_regex":false})") << QByteArray("it's 42")
        << true << QByteArray("it's 42");
    QTest::newRow("Sequence [Digits, ByteLevel with regex]")
        << QByteArray(R"({"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":true},
                        {"type":"ByteLevel","add_prefix_space":false}]})")
        << QByteArray("ab 12") << true << QByteArray("ab| |1|2");
}

void TestTokenizer::preTokenizers() {
    QFETCH(QByteArray, component);
    QFETCH(QByteArray, text);
    QFETCH(bool, atStart);
    QFETCH(QByteArray, words);
    const auto pre_tokenizer =
        tokenizer_pipeline::PreTokenizer::from_json(json::parse(component.toStdString()), {kPath, "pre_tokenizer"});
    QCOMPARE(QByteArray::fromStdString(words_of(pre_tokenizer, text.toStdString(), atStart)), words);
}

void TestTokenizer::decoders_data() {
    QTest::addColumn<QByteArray>("component");
    QTest::addColumn<QStringList>("tokens");
    QTest::addColumn<QByteArray>("expected");
    const QString m = QString::fromUtf8("\xE2\x96\x81");  // U+2581
    QTest::newRow("null joins with spaces") << QByteArray("null") << QStringList{"a", "b"} << QByteArray("a b");
    QTest::newRow("ByteLevel") << QByteArray(R"({"type":"ByteLevel"})")
                               << QStringList{QString::fromUtf8("\xC4\xA0hi"), QString::fromUtf8("\xC4\x8A")}
                               << QByteArray(" hi\n");
    QTest::newRow("ByteLevel keeps a token outside the alphabet")
        << QByteArray(R"({"type":"ByteLevel"})") << QStringList{"<x>", QString::fromUtf8("\xE2\x96\x81")}
        << QByteArray("<x>\xE2\x96\x81");
    QTest::newRow("ByteFallback runs of bytes")
        << QByteArray(R"({"type":"ByteFallback"})") << QStringList{"<0xE6>", "<0x97>", "<0xA5>", "x", "<0x41>", "<0x0a>"}
        << QByteArray("\xE6\x97\xA5xA\n");
    QTest::newRow("ByteFallback keeps raw bytes of a broken run")
        << QByteArray(R"({"type":"ByteFallback"})") << QStringList{"<0xE6>", "y"} << QByteArray("\xE6y");
    QTest::newRow("ByteFallback ignores look-alikes")
        << QByteArray(R"({"type":"ByteFallback"})") << QStringList{"<0xZZ>", "<0x4>", "<0x041>"}
        << QByteArray("<0xZZ><0x4><0x041>");
    QTest::newRow("Strip start 1 on each token")
        << QByteArray(R"({"type":"Strip","content":" ","start":1,"stop":0})") << QStringList{"  a", " b ", "c"}
        << QByteArray(" ab c");
    QTest::newRow("Strip stop 2") << QByteArray(R"({"type":"Strip","content":"x","start":0,"stop":2})")
                                  << QStringList{"axxx"} << QByteArray("ax");
    QTest::newRow("Metaspace first: drops replacements in the first token")
        << QByteArray(R"({"type":"Metaspace","replacement":"\u2581","prepend_scheme":"first","split":false})")
        << QStringList{m + m + "a", m + "b" + m} << QByteArray("a b ");
    QTest::newRow("Metaspace never: keeps them")
        << QByteArray(R"({"type":"Metaspace","replacement":"\u2581","prepend_scheme":"never"})")
        << QStringList{m + "a", m + "b"} << QByteArray(" a b");
    QTest::newRow("Llama-2 Sequence")
        << QByteArray(R"({"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"\u2581"},"content":" "},
                        {"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]})")
        << QStringList{m + "Hi", m, "<0xC3>", "<0xA9>", m + m + "x"} << QByteArray("Hi \xC3\xA9  x");
}

void TestTokenizer::decoders() {
    QFETCH(QByteArray, component);
    QFETCH(QStringList, tokens);
    QFETCH(QByteArray, expected);
    const auto decoder = tokenizer_pipeline::Decoder::from_json(json::parse(component.toStdString()), {kPath, "decoder"});
    std::vector<std::string> strings;
    for (const QString& token : tokens) strings.push_back(token.toStdString());
    QCOMPARE(QByteArray::fromStdString(decoder.decode(strings)), expected);
}

// BPE options on a character-level vocabulary with no pre-tokenizer (the whole text is one
// word): byte_fallback, unk_token with and without fuse_unk, ignore_merges.
void TestTokenizer::bpeModelOptions_data() {
    QTest::addColumn<QByteArray>("options");  // JSON members merged into model
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<std::vector<int32_t>>("ids");
    QTest::addColumn<QByteArray>("decoded");
    QTest::newRow("merges by rank") << QByteArray("{}") << QByteArray("abab") << std::vector<int32_t>{6}
                                    << QByteArray("abab");
    QTest::newRow("no merge for b a") << QByteArray("{}") << QByteArray("ba") << std::vector<int32_t>{2, 1}
                                      << QByteArray("ba");
    QTest::newRow("ignore_merges: a word in the vocabulary")
        << QByteArray(R"({"ignore_merges":true})") << QByteArray("ba") << std::vector<int32_t>{7} << QByteArray("ba");
    QTest::newRow("byte fallback") << QByteArray(R"({"byte_fallback":true,"unk_token":"<unk>"})")
                                   << QByteArray("a\xC3\xA9") << std::vector<int32_t>{1, 4, 5} << QByteArray("a\xC3\xA9");
    QTest::newRow("byte fallback incomplete: unk")
        << QByteArray(R"({"byte_fallback":true,"unk_token":"<unk>"})") << QByteArray("a\xE6\x97\xA5")
        << std::vector<int32_t>{1, 0} << QByteArray("a<unk>");
    QTest::newRow("unk fused") << QByteArray(R"({"unk_token":"<unk>","fuse_unk":true})")
                               << QByteArray("\xE6\x97\xA5\xE6\x9C\xAC" "a\xC3\xA9") << std::vector<int32_t>{0, 1, 0}
                               << QByteArray("<unk>a<unk>");
    QTest::newRow("unk not fused") << QByteArray(R"({"unk_token":"<unk>","fuse_unk":false})")
                                   << QByteArray("\xE6\x97\xA5\xE6\x9C\xAC" "a") << std::vector<int32_t>{0, 0, 1}
                                   << QByteArray("<unk><unk>a");
    QTest::newRow("no unk: unknown characters dropped") << QByteArray("{}") << QByteArray("\xE6\x97\xA5" "a")
                                                        << std::vector<int32_t>{1} << QByteArray("a");
}

void TestTokenizer::bpeModelOptions() {
    QFETCH(QByteArray, options);
    QFETCH(QByteArray, text);
    QFETCH(std::vector<int32_t>, ids);
    QFETCH(QByteArray, decoded);
    json tokenizer = {
        {"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", json::array()},
        {"normalizer", nullptr}, {"pre_tokenizer", nullptr}, {"post_processor", nullptr},
        {"decoder", {{"type", "Sequence"}, {"decoders", {{{"type", "ByteFallback"}}, {{"type", "Fuse"}}}}}},
        {"model",
         {{"type", "BPE"},
          {"dropout", nullptr},
          {"unk_token", nullptr},
          {"vocab", {{"<unk>", 0}, {"a", 1}, {"b", 2}, {"ab", 3}, {"<0xC3>", 4}, {"<0xA9>", 5}, {"abab", 6}, {"ba", 7}}},
          {"merges", json::array({json::array({"a", "b"}), json::array({"ab", "ab"})})}}}};
    tokenizer["model"].update(json::parse(options.toStdString()));
    const Tokenizer t = load_variant(tokenizer, "bpe_options.json");
    const std::vector<int32_t> got = t.encode(text.toStdString());
    QVERIFY2(got == ids, qPrintable("got " + format_ids(got) + "\nwant " + format_ids(ids)));
    QCOMPARE(QByteArray::fromStdString(t.decode(got)), decoded);
}

QTEST_APPLESS_MAIN(TestTokenizer)
#include "test_tokenizer.moc"
