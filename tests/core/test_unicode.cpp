// The Unicode helpers beneath the tokenizer (core/unicode): UTF-8 decoding with one U+FFFD per
// maximal invalid subpart (as Python's errors="replace"), encoding, backward decoding, GPT-2's
// byte alphabet, the letter / number / White_Space classes and NFC, against values from the
// Unicode 14 tables and Python.
#include <QTest>

#include <string>

#include "core/unicode.h"

using namespace mlawb;

Q_DECLARE_METATYPE(std::u32string)

class TestUnicode : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void utf8Decoding_data();
    void utf8Decoding();
    void utf8Encoding();
    void backwardDecodingAndByteAlphabet();
    void characterClasses_data();
    void characterClasses();
    void nfc_data();
    void nfc();
};

void TestUnicode::utf8Decoding_data() {
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

void TestUnicode::utf8Decoding() {
    QFETCH(QByteArray, bytes);
    QFETCH(std::u32string, code_points);
    QVERIFY(unicode::decode_utf8(bytes.toStdString()) == code_points);
}

void TestUnicode::utf8Encoding() {
    const std::u32string code_points{U'a', 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x10FFFF};
    const std::string bytes = unicode::encode_utf8(code_points);
    QCOMPARE(bytes.size(), size_t(1 + 1 + 2 + 2 + 3 + 3 + 4 + 4));
    QVERIFY(unicode::decode_utf8(bytes) == code_points);
    // Not encodable: surrogates and values past U+10FFFF become U+FFFD.
    QCOMPARE(unicode::encode_utf8(std::u32string{0xD800, 0x110000}), std::string("\xEF\xBF\xBD\xEF\xBF\xBD"));
    QCOMPARE(std::string(unicode::unicode_version()), std::string("14.0.0"));
}

void TestUnicode::backwardDecodingAndByteAlphabet() {
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

void TestUnicode::characterClasses_data() {
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

void TestUnicode::characterClasses() {
    QFETCH(uint, code_point);
    QFETCH(bool, letter);
    QFETCH(bool, number);
    QFETCH(bool, space);
    QCOMPARE(unicode::is_letter(code_point), letter);
    QCOMPARE(unicode::is_number(code_point), number);
    QCOMPARE(unicode::is_whitespace(code_point), space);
}

void TestUnicode::nfc_data() {
    QTest::addColumn<QByteArray>("input");
    QTest::addColumn<QByteArray>("expected");
    QTest::newRow("ASCII unchanged") << QByteArray("plain text") << QByteArray("plain text");
    QTest::newRow("e + acute") << QByteArray("e\xCC\x81") << QByteArray("\xC3\xA9");
    QTest::newRow("already composed") << QByteArray("\xC3\xA9") << QByteArray("\xC3\xA9");
    QTest::newRow("marks reordered by class") << QByteArray("q\xCC\x87\xCC\xA3") << QByteArray("q\xCC\xA3\xCC\x87");
    QTest::newRow("dot below composes first") << QByteArray("s\xCC\x87\xCC\xA3") << QByteArray("\xE1\xB9\xA9");
    QTest::newRow("singleton: Angstrom sign") << QByteArray("\xE2\x84\xAB") << QByteArray("\xC3\x85");
    QTest::newRow("exclusion stays decomposed") << QByteArray("\xE0\xA5\x98") << QByteArray("\xE0\xA4\x95\xE0\xA4\xBC");
    QTest::newRow("Hangul L V T") << QByteArray("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8") << QByteArray("\xEA\xB0\x81");
    QTest::newRow("Hangul syllable kept") << QByteArray("\xEA\xB0\x81") << QByteArray("\xEA\xB0\x81");
    QTest::newRow("invalid byte is a barrier") << QByteArray("e\xFF\xCC\x81") << QByteArray("e\xFF\xCC\x81");
    QTest::newRow("blocked by a same-class mark")
        << QByteArray("a\xCC\x81\xCC\x81") << QByteArray("\xC3\xA1\xCC\x81");
}

void TestUnicode::nfc() {
    QFETCH(QByteArray, input);
    QFETCH(QByteArray, expected);
    QCOMPARE(QByteArray::fromStdString(unicode::nfc(input.toStdString())), expected);
    QCOMPARE(unicode::combining_class(0x301), uint8_t(230));
    QCOMPARE(unicode::combining_class(0x323), uint8_t(220));
    QCOMPARE(unicode::combining_class('a'), uint8_t(0));
}

QTEST_APPLESS_MAIN(TestUnicode)
#include "test_unicode.moc"
