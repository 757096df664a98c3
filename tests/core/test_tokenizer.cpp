// tokenizer.json byte-level BPE: exact ids against the Hugging Face reference encodings,
// round trips (held-out text, invalid UTF-8, long runs), added-token rules, the refusals
// that name the component at fault, thread safety, and the Unicode helpers beneath.
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
#include "core/unicode.h"
#include "test_support.h"

using namespace mlawb;
using nlohmann::json;

Q_DECLARE_METATYPE(std::vector<int32_t>)
Q_DECLARE_METATYPE(std::u32string)

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
    void utf8Decoding_data();
    void utf8Decoding();
    void utf8Encoding();
    void backwardDecodingAndByteAlphabet();
    void characterClasses_data();
    void characterClasses();

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
    QTest::newRow("pre_tokenizer Metaspace")
        << "/pre_tokenizer" << QByteArray(R"({"type":"Metaspace","replacement":"\u2581"})")
        << QStringList{"pre_tokenizer", "Metaspace", "ByteLevel"};
    QTest::newRow("pre_tokenizer null") << "/pre_tokenizer" << QByteArray("null")
                                        << QStringList{"pre_tokenizer", "null"};
    QTest::newRow("Sequence with Split")
        << "/pre_tokenizer"
        << QByteArray(R"({"type":"Sequence","pretokenizers":[{"type":"Split"},{"type":"ByteLevel"}]})")
        << QStringList{"pre_tokenizer.pretokenizers[0]", "Split"};
    QTest::newRow("normalizer NFC") << "/normalizer" << QByteArray(R"({"type":"NFC"})")
                                    << QStringList{"normalizer", "NFC"};
    QTest::newRow("model WordPiece") << "/model/type" << QByteArray(R"("WordPiece")")
                                     << QStringList{"model.type", "WordPiece", "BPE"};
    QTest::newRow("decoder Metaspace") << "/decoder" << QByteArray(R"({"type":"Metaspace"})")
                                       << QStringList{"decoder", "Metaspace"};
    QTest::newRow("post_processor TemplateProcessing")
        << "/post_processor" << QByteArray(R"({"type":"TemplateProcessing"})")
        << QStringList{"post_processor", "TemplateProcessing"};
    QTest::newRow("byte_fallback") << "/model/byte_fallback" << QByteArray("true")
                                   << QStringList{"model.byte_fallback"};
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

void TestTokenizer::utf8Decoding_data() {
    // Replacement per maximal subpart, as Python's decode(errors="replace") gives.
    QTest::addColumn<QByteArray>("bytes");
    QTest::addColumn<std::u32string>("code_points");
    QTest::newRow("ascii") << QByteArray("Az") << std::u32string{U'A', U'z'};
    QTest::newRow("2,3,4 bytes") << QByteArray("\xC3\xA9\xE6\x97\xA5\xF0\x9F\x99\x82")
                                 << std::u32string{0xE9, 0x65E5, 0x1F642};
    QTest::newRow("truncated then a") << QByteArray("\xE2\x82" "a") << std::u32string{0xFFFD, U'a'};
    QTest::newRow("E0 80 overlong") << QByteArray("\xE0\x80") << std::u32string{0xFFFD, 0xFFFD};
    QTest::newRow("surrogate") << QByteArray("\xED\xA0\x80") << std::u32string{0xFFFD, 0xFFFD, 0xFFFD};
    QTest::newRow("C0 AF") << QByteArray("\xC0\xAF") << std::u32string{0xFFFD, 0xFFFD};
    QTest::newRow("F4 90") << QByteArray("\xF4\x90\x80\x80") << std::u32string(4, 0xFFFD);
    QTest::newRow("truncated 4-byte") << QByteArray("\xF0\x9F\x99") << std::u32string{0xFFFD};
    QTest::newRow("continuations") << QByteArray("\x80\x80") << std::u32string{0xFFFD, 0xFFFD};
    QTest::newRow("U+10FFFF") << QByteArray("\xF4\x8F\xBF\xBF") << std::u32string{0x10FFFF};
}

void TestTokenizer::utf8Decoding() {
    QFETCH(QByteArray, bytes);
    QFETCH(std::u32string, code_points);
    QVERIFY(unicode::decode_utf8(bytes.toStdString()) == code_points);
}

void TestTokenizer::utf8Encoding() {
    const std::u32string code_points{U'a', 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x10FFFF};
    const std::string bytes = unicode::encode_utf8(code_points);
    QCOMPARE(bytes.size(), size_t(1 + 1 + 2 + 2 + 3 + 3 + 4 + 4));
    QVERIFY(unicode::decode_utf8(bytes) == code_points);
    // Not encodable: surrogates and values past U+10FFFF become U+FFFD.
    QCOMPARE(unicode::encode_utf8(std::u32string{0xD800, 0x110000}), std::string("\xEF\xBF\xBD\xEF\xBF\xBD"));
    QCOMPARE(std::string(unicode::unicode_version()), std::string("14.0.0"));
}

void TestTokenizer::backwardDecodingAndByteAlphabet() {
    const std::string text = "a\xC3\xA9\xF0\x9F\x99\x82\x80";
    QCOMPARE(unicode::decode_before(text, 1).code_point, char32_t('a'));
    const unicode::DecodedChar e_acute = unicode::decode_before(text, 3);
    QVERIFY(e_acute.valid && e_acute.code_point == 0xE9 && e_acute.length == 2);
    const unicode::DecodedChar emoji = unicode::decode_before(text, 7);
    QVERIFY(emoji.valid && emoji.code_point == 0x1F642 && emoji.length == 4);
    const unicode::DecodedChar stray = unicode::decode_before(text, 8);
    QVERIFY(!stray.valid && stray.length == 1);
    QVERIFY(!unicode::decode_before(text, 2).valid);  // inside the e acute

    // GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100...
    QCOMPARE(unicode::byte_to_gpt2_char(0x00), char32_t(0x100));
    QCOMPARE(unicode::byte_to_gpt2_char(' '), char32_t(0x120));  // "Ġ"
    QCOMPARE(unicode::byte_to_gpt2_char('\n'), char32_t(0x10A));  // "Ċ"
    QCOMPARE(unicode::byte_to_gpt2_char('!'), char32_t('!'));
    QCOMPARE(unicode::byte_to_gpt2_char(0xAD), char32_t(0x143));  // soft hyphen, the last
    QCOMPARE(unicode::byte_to_gpt2_char(0xE9), char32_t(0xE9));
    for (int b = 0; b < 256; ++b) QCOMPARE(unicode::gpt2_char_to_byte(unicode::byte_to_gpt2_char(uint8_t(b))), b);
    QCOMPARE(unicode::gpt2_char_to_byte(' '), -1);
    QCOMPARE(unicode::gpt2_char_to_byte(0x144), -1);
    QCOMPARE(unicode::gpt2_char_to_byte(0x65E5), -1);
}

void TestTokenizer::characterClasses_data() {
    QTest::addColumn<uint>("code_point");
    QTest::addColumn<bool>("letter");
    QTest::addColumn<bool>("number");
    QTest::addColumn<bool>("space");
    QTest::newRow("A") << 0x41u << true << false << false;
    QTest::newRow("e acute (Ll)") << 0xE9u << true << false << false;
    QTest::newRow("modifier h (Lm)") << 0x2B0u << true << false << false;
    QTest::newRow("CJK (Lo)") << 0x65E5u << true << false << false;
    QTest::newRow("last CJK ext B (Lo)") << 0x2A6DFu << true << false << false;
    QTest::newRow("7") << 0x37u << false << true << false;
    QTest::newRow("Arabic-Indic 3 (Nd)") << 0x663u << false << true << false;
    QTest::newRow("roman eight (Nl)") << 0x2167u << false << true << false;
    QTest::newRow("one half (No)") << 0xBDu << false << true << false;
    QTest::newRow("tab") << 0x09u << false << false << true;
    QTest::newRow("NEL") << 0x85u << false << false << true;
    QTest::newRow("NBSP") << 0xA0u << false << false << true;
    QTest::newRow("ogham space") << 0x1680u << false << false << true;
    QTest::newRow("ideographic space") << 0x3000u << false << false << true;
    QTest::newRow("paragraph separator") << 0x2029u << false << false << true;
    QTest::newRow("U+001C is not White_Space") << 0x1Cu << false << false << false;
    QTest::newRow("zero width space (Cf)") << 0x200Bu << false << false << false;
    QTest::newRow("mongolian vowel sep (Cf)") << 0x180Eu << false << false << false;
    QTest::newRow("combining acute (Mn)") << 0x301u << false << false << false;
    QTest::newRow("emoji (So)") << 0x1F642u << false << false << false;
    QTest::newRow("apostrophe") << 0x27u << false << false << false;
    QTest::newRow("beyond Unicode") << 0x110000u << false << false << false;
}

void TestTokenizer::characterClasses() {
    QFETCH(uint, code_point);
    QFETCH(bool, letter);
    QFETCH(bool, number);
    QFETCH(bool, space);
    QCOMPARE(unicode::is_letter(code_point), letter);
    QCOMPARE(unicode::is_number(code_point), number);
    QCOMPARE(unicode::is_whitespace(code_point), space);
}

QTEST_APPLESS_MAIN(TestTokenizer)
#include "test_tokenizer.moc"
