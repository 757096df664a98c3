// LongBench metrics: hand cases whose expected values follow from the official formulas
// (THUDM/LongBench metrics.py and eval.py, the `rouge` package 1.0.1, difflib/fuzzywuzzy), the
// fixtures' reference predictions re-scored record by record, and a hand-written folder of
// predictions in the official layout scored as eval.py does.
#include "test_support.h"

#include "core/error.h"
#include "eval/metrics.h"
#include "eval/sequence_matcher.h"
#include "eval/text_normalize.h"

#include <QTemporaryDir>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

using json = nlohmann::json;
using namespace mlawb;

// Bit-exact comparison (QCOMPARE on doubles is fuzzy): the metrics must equal the Python values.
#define EXPECT_EXACT(got, want)                                                                         \
    do {                                                                                                \
        const double got_ = (got), want_ = (want);                                                      \
        if (!(got_ == want_))                                                                           \
            QFAIL(qPrintable(QStringLiteral("got %1, expected %2").arg(got_, 0, 'g', 17).arg(want_, 0, 'g', 17))); \
    } while (0)

namespace {

std::string utf8(const QString& s) { return s.toStdString(); }

std::vector<std::string> split_bar(const QString& s) {
    std::vector<std::string> out;
    if (s.isEmpty()) return out;
    for (const QString& part : s.split('|')) out.push_back(utf8(part));
    return out;
}

// ROUGE-L F of the rouge package from its precision and recall: 2 * (p * r) / (p + r + 1e-8).
double rouge_f(double p, double r) { return 2.0 * ((p * r) / (p + r + 1e-8)); }

json read_json(const std::string& path) {
    std::ifstream in(path);
    return json::parse(in);
}

void write_file(const QString& path, const std::string& text) {
    std::ofstream out(path.toStdString(), std::ios::binary);
    out << text;
}

}  // namespace

class TestMetrics : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void normalizeAnswer_data() {
        QTest::addColumn<QString>("text");
        QTest::addColumn<QString>("expected");
        // lower, drop string.punctuation, \b(a|an|the)\b -> " ", " ".join(split()).
        QTest::newRow("articles and period") << "The Eiffel Tower." << "eiffel tower";
        QTest::newRow("every article") << "An apple, a pear & the plum!" << "apple pear plum";
        QTest::newRow("articles only as words") << "Theatre and anathema" << "theatre and anathema";
        QTest::newRow("punctuation removed first") << "U.S.A." << "usa";
        QTest::newRow("underscore is punctuation") << "the_a" << "thea";  // "the_a" -> "thea", one word
        QTest::newRow("whitespace runs") << "  Multiple\t\nspaces  " << "multiple spaces";
        QTest::newRow("only an article") << "an" << "";
        QTest::newRow("unicode lowercase") << QString::fromUtf8("ÉCOLE") << QString::fromUtf8("école");
        QTest::newRow("non-ascii letter is a word char") << QString::fromUtf8("éa café a") << QString::fromUtf8("éa café");
        QTest::newRow("no-break space is whitespace") << QString::fromUtf8("a\u00a0b") << "b";
        // str.lower(): final sigma at the end of a word, U+0130 -> "i" + U+0307.
        QTest::newRow("final sigma") << QString::fromUtf8("ΟΔΟΣ ΣΑ") << QString::fromUtf8("οδος σα");
        QTest::newRow("dotted capital I") << QString::fromUtf8("İ") << QString::fromUtf8("i\u0307");
    }
    void normalizeAnswer() {
        QFETCH(QString, text);
        QFETCH(QString, expected);
        QCOMPARE(QString::fromStdString(pytext::encode_utf8(pytext::normalize_answer(utf8(text)))), expected);
    }

    void qaF1_data() {
        QTest::addColumn<QString>("prediction");
        QTest::addColumn<QString>("truth");
        QTest::addColumn<double>("expected");
        QTest::newRow("equal after normalization") << "Eiffel Tower" << "the Eiffel tower." << 1.0;
        // [paris, france] vs [paris]: same 1, p = 1/2, r = 1, f1 = 2pr/(p+r) = 2/3.
        QTest::newRow("extra word") << "Paris, France" << "Paris" << (2 * 0.5 * 1.0) / (0.5 + 1.0);
        // Counter intersection: y appears 2 and 3 times -> same 2; p = r = 2/4, f1 = 1/2.
        QTest::newRow("multiset overlap") << "x y y z" << "y y y w" << 0.5;
        QTest::newRow("disjoint") << "Lyon" << "Paris" << 0.0;
        QTest::newRow("empty prediction") << "" << "Paris" << 0.0;
        QTest::newRow("both normalize to nothing") << "The." << "the" << 0.0;  // num_same == 0 -> 0
    }
    void qaF1() {
        QFETCH(QString, prediction);
        QFETCH(QString, truth);
        QFETCH(double, expected);
        EXPECT_EXACT(qa_f1_score(utf8(prediction), utf8(truth)), expected);
        EXPECT_EXACT(find_metric("qa_f1_score")(utf8(prediction), utf8(truth), {}), expected);
    }

    void rouge_data() {
        QTest::addColumn<QString>("prediction");
        QTest::addColumn<QString>("truth");
        QTest::addColumn<double>("expected");
        // m, n: distinct words of reference and hypothesis; llcs: distinct words of the union of
        // the LCSs of every (reference, hypothesis) sentence pair; r = llcs/m, p = llcs/n.
        QTest::newRow("identical") << "the cat sat" << "the cat sat" << rouge_f(1.0, 1.0);
        // LCS "the cat on the mat" -> words {the, cat, on, mat}: llcs 4, m = n = 5.
        QTest::newRow("one word differs") << "the cat sat on the mat" << "the cat lay on the mat"
                                          << rouge_f(4.0 / 5, 4.0 / 5);
        // Sentences split on '.': hyp {Budget, rose, Costs, fell} (n 4), ref {Costs, fell, sharply}
        // (m 3); LCS with "Costs fell" = {Costs, fell}: llcs 2, p = 2/4, r = 2/3.
        QTest::newRow("two sentences") << "Budget rose. Costs fell." << "Costs fell sharply." << rouge_f(2.0 / 4, 2.0 / 3);
        // Sets, not counts: hyp {a, b} n 2, ref {a, b} m 2, LCS {a, b}.
        QTest::newRow("repeated words count once") << "a a a b" << "a b" << rouge_f(1.0, 1.0);
        // ref x = [a b a], hyp y = [a a b]: both "a b" and "a a" are LCSs. The package's backtrack
        // from (3,3): x3 != y3 and table[2][3] = 2 is not > table[3][2] = 2, so left; then a == a,
        // up (1 > 0), a == a: LCS "a a" -> {a}, llcs 1, p = r = 1/2.
        QTest::newRow("backtracking tie picks a a") << "a a b" << "a b a" << rouge_f(0.5, 0.5);
        // Union over sentence pairs: {a, b} from one pair, {c, d} from the other -> llcs 4 = m = n.
        QTest::newRow("sentence order") << "c d. a b" << "a b. c d" << rouge_f(1.0, 1.0);
        // rouge raises ValueError("Hypothesis is empty.") / ("Reference is empty."): LongBench -> 0.
        QTest::newRow("only periods") << "..." << "A summary." << 0.0;
        QTest::newRow("empty prediction") << "" << "x" << 0.0;
        // A blank piece between periods is kept as the single word "": hyp {x}, ref {""}.
        QTest::newRow("blank sentence is a word") << "x" << " . " << 0.0;
    }
    void rouge() {
        QFETCH(QString, prediction);
        QFETCH(QString, truth);
        QFETCH(double, expected);
        EXPECT_EXACT(rouge_score(utf8(prediction), utf8(truth)), expected);
    }

    void rougeRecursionLimit_data() {
        QTest::addColumn<int>("words");
        QTest::addColumn<double>("expected");
        // ref [x], hyp [x y y ... y] of L words: the backtrack walks left L-1 times and takes x
        // once, L + 1 calls of _recon on top of eval.py's 9 frames. 9 + L + 1 <= 1000 for
        // L = 990 (n = 2 distinct words, llcs 1: p = 1/2, r = 1); L = 991 raises RecursionError.
        QTest::newRow("990 words") << 990 << rouge_f(0.5, 1.0);
        QTest::newRow("991 words") << 991 << 0.0;
    }
    void rougeRecursionLimit() {
        QFETCH(int, words);
        QFETCH(double, expected);
        std::string prediction = "x";
        for (int i = 1; i < words; ++i) prediction += " y";
        EXPECT_EXACT(rouge_score(prediction, "x"), expected);
    }

    void classification_data() {
        QTest::addColumn<QString>("prediction");
        QTest::addColumn<QString>("truth");
        QTest::addColumn<QString>("classes");  // '|'-separated
        QTest::addColumn<double>("expected");
        QTest::newRow("single match") << "Animal" << "Animal" << "Animal|Color" << 1.0;
        QTest::newRow("two matches") << "Color or Animal" << "Animal" << "Animal|Color" << 0.5;
        QTest::newRow("truth not matched") << "Color" << "Animal" << "Animal|Color" << 0.0;
        QTest::newRow("no match") << "unsure" << "Animal" << "Animal|Color" << 0.0;
        // "Description" is inside the truth and differs from it: dropped, leaving 1 match.
        QTest::newRow("substring of truth dropped") << "Description of something" << "Description of something"
                                                    << "Description|Description of something|Reason" << 1.0;
        // Equal to the truth: kept; "Color" is not inside the truth: kept -> 1/2.
        QTest::newRow("equal class kept") << "Color or Description" << "Description"
                                          << "Color|Description|Description of something" << 0.5;
        // matches [ab, bc, abc]; removing "ab" during the loop slides "bc" into its slot and the
        // iterator skips it, so [bc, abc] remain -> 1/2 (not 1, as a clean filter would give).
        QTest::newRow("removal skips the next match") << "abc" << "abc" << "ab|bc|abc" << 0.5;
    }
    void classification() {
        QFETCH(QString, prediction);
        QFETCH(QString, truth);
        QFETCH(QString, classes);
        QFETCH(double, expected);
        EXPECT_EXACT(classification_score(utf8(prediction), utf8(truth), split_bar(classes)), expected);
    }

    void digitMetrics_data() {
        QTest::addColumn<QString>("metric");
        QTest::addColumn<QString>("prediction");
        QTest::addColumn<QString>("truth");
        QTest::addColumn<double>("expected");
        // right_num / len(re.findall(r"\d+", prediction)), 0 without digits.
        QTest::newRow("retrieval exact") << "retrieval_score" << "Paragraph 12" << "Paragraph 12" << 1.0;
        QTest::newRow("retrieval two numbers") << "retrieval_score" << "Paragraph 3 or Paragraph 12" << "Paragraph 12" << 0.5;
        QTest::newRow("retrieval prefix only") << "retrieval_score" << "Paragraph 1" << "Paragraph 12" << 0.0;
        QTest::newRow("retrieval no digits") << "retrieval_score" << "I don't know" << "Paragraph 4" << 0.0;
        QTest::newRow("retrieval first Paragraph N of truth") << "retrieval_score" << "5" << "see Paragraph 5, not Paragraph 6" << 1.0;
        // \d matches Arabic-Indic digits, but "١٢" != "12" as strings.
        QTest::newRow("retrieval other digits") << "retrieval_score" << QString::fromUtf8("Paragraph ١٢") << "Paragraph 12" << 0.0;
        QTest::newRow("retrieval zh") << "retrieval_zh_score" << QString::fromUtf8("答案是段落3") << QString::fromUtf8("段落3") << 1.0;
        QTest::newRow("count exact") << "count_score" << "There are 7 unique paragraphs." << "7" << 1.0;
        QTest::newRow("count leading zero") << "count_score" << "07" << "7" << 0.0;
        QTest::newRow("count two of three") << "count_score" << "8, maybe 8 or 9" << "8" << 2.0 / 3;
        QTest::newRow("passkey digits") << "retrieval_score_digits" << " 17684" << "17684" << 1.0;
        QTest::newRow("passkey partial") << "retrieval_score_digits" << " 1768 4" << "17684" << 0.0;
        QTest::newRow("passkey repeated") << "retrieval_score_digits" << "17684, 17684 or 1" << "17684" << 2.0 / 3;
    }
    void digitMetrics() {
        QFETCH(QString, metric);
        QFETCH(QString, prediction);
        QFETCH(QString, truth);
        QFETCH(double, expected);
        EXPECT_EXACT(find_metric(utf8(metric))(utf8(prediction), utf8(truth), {}), expected);
    }

    void retrievalNeedsParagraph() {
        MLAWB_EXPECT_ERROR(retrieval_score("Paragraph 1", "the first one"), "retrieval_score", "Paragraph N");
    }

    void sequenceMatcher_data() {
        QTest::addColumn<QString>("a");
        QTest::addColumn<QString>("b");
        QTest::addColumn<double>("expected");
        // ratio = 2 * matched / (len(a) + len(b)).
        QTest::newRow("shifted") << "abcd" << "bcde" << 2.0 * 3 / 8;            // block "bcd"
        QTest::newRow("two blocks") << "print(b)" << "print(a)" << 2.0 * 7 / 16;  // "print(" then ")"
        QTest::newRow("inserted char") << "abxcd" << "abcd" << 2.0 * 4 / 9;       // "ab", "cd"
        QTest::newRow("both empty") << "" << "" << 1.0;
        const QString c = QStringLiteral("c");
        // len(b) = 200: autojunk on, popular = count > 200 // 100 + 1 = 3: 'c' (195) and 'a' (4).
        // Only 'b' is indexed and a has none: nothing matches, ratio 0 (8/204 without autojunk).
        QTest::newRow("autojunk hides popular block") << "aaaa" << "b" + c.repeated(99) + "aaaa" + c.repeated(96) << 0.0;
        // len(b) = 199: no autojunk, "aaaa" matches: 8 / 203.
        QTest::newRow("autojunk needs 200") << "aaaa" << "b" + c.repeated(98) + "aaaa" + c.repeated(96) << 8.0 / 203;
        // 'a' three times is not > 3: indexed, "aaa" matches: 6 / 203.
        QTest::newRow("autojunk threshold") << "aaa" << "b" + c.repeated(99) + "aaa" + c.repeated(97) << 6.0 / 203;
    }
    void sequenceMatcher() {
        QFETCH(QString, a);
        QFETCH(QString, b);
        QFETCH(double, expected);
        SequenceMatcher m(pytext::decode_utf8(utf8(a)), pytext::decode_utf8(utf8(b)));
        EXPECT_EXACT(m.ratio(), expected);
    }

    void sequenceMatcherBlocks() {
        // difflib's docstring examples: earliest-in-a longest block, then blocks on both sides.
        SequenceMatcher docs(U" abcd", U"abcd abcd");
        QVERIFY((docs.find_longest_match(0, 5, 0, 9) == SequenceMatcher::Match{0, 4, 5}));
        SequenceMatcher m(U"abxcd", U"abcd");
        const std::vector<SequenceMatcher::Match> expected{{0, 0, 2}, {3, 2, 2}, {5, 4, 0}};
        QVERIFY(m.matching_blocks() == expected);
        SequenceMatcher popular(U"aaaa", std::u32string(1, U'b') + std::u32string(99, U'c') + U"aaaa" + std::u32string(96, U'c'));
        QCOMPARE(popular.popular().size(), size_t(2));
    }

    void fuzzRatio_data() {
        QTest::addColumn<QString>("a");
        QTest::addColumn<QString>("b");
        QTest::addColumn<int>("expected");
        QTest::newRow("equal") << "x = 1" << "x = 1" << 100;
        QTest::newRow("one empty") << "" << "x = 1" << 0;
        QTest::newRow("tie rounds up to even") << "print(b)" << "print(a)" << 88;  // 87.5 -> 88
        QTest::newRow("tie rounds down to even") << "abcdefgh" << "aijklmno" << 12;  // 2*1/16 = 12.5 -> 12
        QTest::newRow("tie 62.5") << "abcdefgh" << "abcdeXYZ" << 62;  // 2*5/16 = 62.5 -> 62
    }
    void fuzzRatio() {
        QFETCH(QString, a);
        QFETCH(QString, b);
        QFETCH(int, expected);
        QCOMPARE(fuzz_ratio(utf8(a), utf8(b)), expected);
    }

    void codeSim_data() {
        QTest::addColumn<QString>("prediction");
        QTest::addColumn<QString>("truth");
        QTest::addColumn<double>("expected");
        // First line of prediction.lstrip('\n') without '`', '#', "//" anywhere; fuzz.ratio / 100.
        QTest::newRow("skips comment line") << "\n# comment\nreturn x + 1\n" << "return x + 1" << 1.0;
        QTest::newRow("only a fence") << "```python" << "print(a)" << 0.0;
        QTest::newRow("ratio") << "print(b)" << "print(a)" << 0.88;
        QTest::newRow("// anywhere in the line") << "x = 1 // one\ny = 2" << "y = 2" << 1.0;
    }
    void codeSim() {
        QFETCH(QString, prediction);
        QFETCH(QString, truth);
        QFETCH(double, expected);
        EXPECT_EXACT(code_sim_score(utf8(prediction), utf8(truth)), expected);
    }

    void scoreRecord_data() {
        QTest::addColumn<QString>("dataset");
        QTest::addColumn<double>("expected");
        // pred "\n\nParis\nLondon", answers [Berlin, London]. First-line datasets score "Paris": 0.
        // Others: tokens [paris, london] vs [london]: f1 2/3; max over answers.
        QTest::newRow("triviaqa first line") << "triviaqa" << 0.0;
        QTest::newRow("hotpotqa whole text") << "hotpotqa" << 2.0 / 3;
    }
    void scoreRecord() {
        QFETCH(QString, dataset);
        QFETCH(double, expected);
        const double s = score_record(find_metric("qa_f1_score"), utf8(dataset), "\n\nParis\nLondon", {"Berlin", "London"}, {});
        EXPECT_EXACT(s, expected);
    }

    void registry() {
        const std::vector<std::string> names = metric_names();
        for (const char* name : {"qa_f1_score", "qa_f1_zh_score", "rouge_score", "rouge_zh_score", "classification_score",
                                 "retrieval_score", "retrieval_zh_score", "count_score", "code_sim_score",
                                 "retrieval_score_digits"})
            QVERIFY2(std::count(names.begin(), names.end(), name) == 1, name);
        QCOMPARE(names.size(), size_t(10));
        MLAWB_EXPECT_ERROR(find_metric("bleu"), "bleu", "unknown metric");
        MLAWB_EXPECT_ERROR(find_metric("qa_f1_zh_score"), "qa_f1_zh_score", "jieba");
        MLAWB_EXPECT_ERROR(find_metric("rouge_zh_score"), "rouge_zh_score", "jieba");
        QCOMPARE(official_dataset_metrics().size(), size_t(21));
        for (const auto& [dataset, metric] : official_dataset_metrics())
            QVERIFY2(std::count(names.begin(), names.end(), metric) == 1, dataset.c_str());
        QCOMPARE(official_metric_name("lcc"), std::string("code_sim_score"));
        QCOMPARE(official_metric_name("passkey"), std::string());
        QVERIFY(uses_first_line_rule("lsht") && uses_first_line_rule("samsum") && !uses_first_line_rule("qmsum"));
    }

    void aggregation() {
        // eval.py scorer: round(100 * total / n, 2), ties to even on the exact binary value.
        EXPECT_EXACT(longbench_dataset_score({1.0, 2.0 / 3, 0.0}), 55.56);  // 55.555... -> 55.56
        EXPECT_EXACT(pytext::round_half_even(0.125, 2), 0.12);             // exact tie -> even
        EXPECT_EXACT(pytext::round_half_even(0.375, 2), 0.38);
        EXPECT_EXACT(pytext::round_half_even(2.675, 2), 2.67);             // binary 2.67499999...
        MLAWB_EXPECT_ERROR(longbench_dataset_score({}), "no records");
        // numpy pairwise sum, 9 values: r[k] = a[k] for k < 8, ((1e16+1)+(1+1)) + ((1+1)+(1+1))
        // = 1e16 + 6 (1e16+1 ties to 1e16), then + a[8] = -1e16 -> 6. A running sum gives 0.
        const std::vector<double> v{1e16, 1, 1, 1, 1, 1, 1, 1, -1e16};
        EXPECT_EXACT(numpy_mean(v), 6.0 / 9);
        QVERIFY(std::isnan(numpy_mean({})));
        // scorer_e: length < 4000, < 8000, else; round(100 * mean, 2); empty bucket NaN.
        const auto e = longbench_e_scores({1.0, 0.5, 0.0, 1.0}, {3999, 4000, 7999, 8000});
        QCOMPARE(e.at("0-4k"), 100.0);
        QCOMPARE(e.at("4-8k"), 25.0);
        QCOMPARE(e.at("8k+"), 100.0);
        QVERIFY(std::isnan(longbench_e_scores({1.0}, {10}).at("8k+")));
        QCOMPARE(overall_score({{"a", 50.0}, {"b", 45.71}}), 47.86);  // (50 + 45.71) / 2 = 47.855000000000004
    }

    void tokenBuckets_data() {
        QTest::addColumn<int>("tokens");
        QTest::addColumn<QString>("bucket");
        QTest::newRow("zero") << 0 << "0-512";
        QTest::newRow("below edge") << 511 << "0-512";
        QTest::newRow("on edge goes up") << 512 << "512-1024";  // [lo, hi)
        QTest::newRow("last bucket") << 2047 << "1024-2048";
        QTest::newRow("beyond") << 2048 << "2048+";
    }
    void tokenBuckets() {
        QFETCH(int, tokens);
        QFETCH(QString, bucket);
        QCOMPARE(QString::fromStdString(token_bucket(tokens, {0, 512, 1024, 2048})), bucket);
        MLAWB_EXPECT_ERROR(token_bucket(tokens, {0, 512, 512}), "increase");
        MLAWB_EXPECT_ERROR(token_bucket(tokens, {100, 512}), "start at 0");
    }

    void referencePredictions_data() {
        QTest::addColumn<QString>("model");
        QTest::newRow("mha") << "wb-tiny-mha";
        QTest::newRow("gqa") << "wb-tiny-gqa";
    }
    void referencePredictions() {
        QFETCH(QString, model);
        const std::string tasks = test::fixtures_dir() + "/longbench-syn";
        const std::string reference_path = test::fixtures_dir() + "/reference/" + utf8(model) + ".json";
        MLAWB_REQUIRE_PATH(reference_path);
        MLAWB_REQUIRE_PATH(tasks + "/dataset2metric.json");
        const json reference = read_json(reference_path);
        const json metrics = read_json(tasks + "/dataset2metric.json");
        std::map<std::string, json> records;  // _id -> record
        for (const auto& [dataset, metric] : metrics.items()) {
            MLAWB_REQUIRE_PATH(tasks + "/" + dataset + ".jsonl");
            std::ifstream in(tasks + "/" + dataset + ".jsonl");
            for (std::string line; std::getline(in, line);)
                if (!line.empty()) records[json::parse(line)["_id"].get<std::string>()] = json::parse(line);
        }
        std::map<std::string, std::vector<double>> scores;
        std::map<std::string, std::vector<int64_t>> tokens;
        for (const json& p : reference["longbench_syn_predictions"]) {
            const json& record = records.at(p["_id"].get<std::string>());
            const std::string dataset = record["dataset"];
            std::vector<std::string> classes;
            if (!record["all_classes"].is_null()) classes = record["all_classes"].get<std::vector<std::string>>();
            const double s = score_record(find_metric(metrics[dataset]), dataset, p["pred"],
                                          record["answers"].get<std::vector<std::string>>(), classes);
            QVERIFY2(s == p["score"].get<double>(), p["_id"].get<std::string>().c_str());
            scores[dataset].push_back(s);
            tokens[dataset].push_back(p["prompt_tokens"].get<int64_t>());
        }
        QCOMPARE(scores.size(), size_t(4));
        std::map<std::string, double> ours;
        for (const auto& [dataset, s] : scores)
            for (const auto& [key, value] : dataset_and_bucket_scores(dataset, s, tokens[dataset], {0, 512, 1024, 2048}))
                ours[key] = value;
        const json& expected = reference["longbench_syn_scores"];
        QCOMPARE(ours.size(), expected.size());
        for (const auto& [key, value] : expected.items()) EXPECT_EXACT(ours.at(key), value.get<double>());
        // No prompt sits on an inner edge, so these references cannot tell [lo, hi) from
        // (lo, hi]; [lo, hi) is LongBench-E's convention (length < 4000 -> "0-4k").
        for (const auto& [dataset, t] : tokens)
            for (int64_t n : t) QVERIFY(n != 512 && n != 1024 && n < 2048);
    }

    void officialFolder() {
        const std::string folder = test::source_dir() + "/tests/data/longbench-official/pred";
        MLAWB_REQUIRE_PATH(folder + "/hotpotqa.jsonl");
        // Per-record scores derived in the cases above (same predictions):
        // hotpotqa [1, 2/3, 0] -> 55.56; trec (first line) [1, 1, 1/2, 0] -> 62.5;
        // gov_report [rouge_f(.8,.8), rouge_f(.5,2/3), 0] -> 45.71; passage_retrieval_en
        // [1, 1/2, 0] -> 50; passage_count [1, 1/2, 0, 2/3] -> 54.17; lcc [1, 0, .88, 1] -> 72.
        const std::map<std::string, double> expected{{"gov_report", 45.71},          {"hotpotqa", 55.56},
                                                     {"lcc", 72.0},                   {"passage_count", 54.17},
                                                     {"passage_retrieval_en", 50.0}, {"trec", 62.5}};
        const auto plain = score_prediction_folder(folder, false);
        QCOMPARE(plain.size(), expected.size());
        for (const auto& s : plain) EXPECT_EXACT(s.score, expected.at(s.dataset));
        // --e, by `length`: e.g. gov_report lengths 4500, 7999, 8000 -> 0-4k empty (NaN),
        // 4-8k mean(0.79999, 0.57142) -> 68.57, 8k+ 0; lcc 1500, 2500 | 5000, 6000 -> 50 | 94.
        const double nan = std::nan("");
        const std::map<std::string, std::vector<double>> expected_e{
            {"gov_report", {nan, 68.57, 0.0}}, {"hotpotqa", {100.0, 66.67, 0.0}},
            {"lcc", {50.0, 94.0, nan}},       {"passage_count", {50.0, nan, 66.67}},
            {"passage_retrieval_en", {75.0, 0.0, nan}}, {"trec", {100.0, 50.0, 0.0}}};
        for (const auto& s : score_prediction_folder(folder, true)) {
            const std::vector<double>& want = expected_e.at(s.dataset);
            const std::vector<double> got{s.length_scores.at("0-4k"), s.length_scores.at("4-8k"), s.length_scores.at("8k+")};
            for (size_t b = 0; b < 3; ++b)
                QVERIFY2(std::isnan(want[b]) ? std::isnan(got[b]) : got[b] == want[b], s.dataset.c_str());
        }
    }

    void folderQuirksAndOverrides() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        // eval.py scores every line with the all_classes of the file's last line: ["Color"] here,
        // so line 1 ("Animal") has no match (0) and line 2 scores 1 -> 50.
        write_file(dir.filePath("trec.jsonl"),
                   R"({"pred": "Animal", "answers": ["Animal"], "all_classes": ["Animal", "Color"], "length": 1})" "\n"
                   R"({"pred": "Color", "answers": ["Color"], "all_classes": ["Color"], "length": 1})" "\n");
        // Not an official dataset: scored through the folder's dataset2metric.json.
        write_file(dir.filePath("mystery.jsonl"), R"({"pred": "3 or 4", "answers": ["4"], "all_classes": null})" "\n");
        write_file(dir.filePath("dataset2metric.json"), R"({"mystery": "count_score"})");
        write_file(dir.filePath("result.json"), "{}");  // not a jsonl file: ignored
        const auto scores = score_prediction_folder(dir.path().toStdString(), false);
        QCOMPARE(scores.size(), size_t(2));
        QCOMPARE(scores[0].dataset, std::string("mystery"));
        QCOMPARE(scores[0].score, 50.0);
        QCOMPARE(scores[1].score, 50.0);
    }

    void folderErrors_data() {
        QTest::addColumn<QString>("file");
        QTest::addColumn<QString>("content");
        QTest::addColumn<bool>("longbench_e");
        QTest::addColumn<QString>("needle1");
        QTest::addColumn<QString>("needle2");
        const QString good = R"({"pred": "x", "answers": ["x"], "all_classes": null, "length": 5})";
        QTest::newRow("bad json") << "hotpotqa.jsonl" << good + "\n{\"pred\": \n" << false << "hotpotqa.jsonl:2" << "malformed JSON";
        QTest::newRow("missing pred") << "hotpotqa.jsonl" << R"({"answers": ["x"], "all_classes": null})" << false << "hotpotqa.jsonl:1" << "pred";
        QTest::newRow("answers not a list") << "hotpotqa.jsonl" << good + "\n" + R"({"pred": "x", "answers": "x", "all_classes": null})"
                                            << false << "hotpotqa.jsonl:2" << "answers";
        QTest::newRow("answer not a string") << "hotpotqa.jsonl" << R"({"pred": "x", "answers": [3], "all_classes": null})" << false << ":1" << "answers";
        QTest::newRow("all_classes missing") << "hotpotqa.jsonl" << R"({"pred": "x", "answers": ["x"]})" << false << ":1" << "all_classes";
        QTest::newRow("length not integer") << "hotpotqa.jsonl" << R"({"pred": "x", "answers": ["x"], "all_classes": null, "length": "5"})" << false << ":1" << "length";
        QTest::newRow("length missing with --e") << "hotpotqa.jsonl" << R"({"pred": "x", "answers": ["x"], "all_classes": null})" << true << ":1" << "length";
        QTest::newRow("empty line") << "hotpotqa.jsonl" << good + "\n\n" + good + "\n" << false << "hotpotqa.jsonl:2" << "empty line";
        QTest::newRow("unknown dataset") << "mystery.jsonl" << good << false << "mystery" << "no metric";
        QTest::newRow("chinese dataset") << "dureader.jsonl" << good << false << "dureader" << "jieba";
        QTest::newRow("retrieval truth") << "passage_retrieval_en.jsonl" << good << false << "passage_retrieval_en.jsonl:1" << "Paragraph N";
    }
    void folderErrors() {
        QFETCH(QString, file);
        QFETCH(QString, content);
        QFETCH(bool, longbench_e);
        QFETCH(QString, needle1);
        QFETCH(QString, needle2);
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        write_file(dir.filePath(file), utf8(content) + "\n");
        const std::string n1 = utf8(needle1), n2 = utf8(needle2);
        MLAWB_EXPECT_ERROR(score_prediction_folder(dir.path().toStdString(), longbench_e), n1.c_str(), n2.c_str());
    }

    void folderDuplicateDataset() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const std::string line = R"({"pred": "x", "answers": ["x"], "all_classes": null})" "\n";
        write_file(dir.filePath("hotpotqa.jsonl"), line);
        write_file(dir.filePath("hotpotqa.old.jsonl"), line);
        MLAWB_EXPECT_ERROR(score_prediction_folder(dir.path().toStdString(), false), "hotpotqa", "second prediction file");
        MLAWB_EXPECT_ERROR(score_prediction_folder(dir.filePath("absent").toStdString(), false), "not a folder");
    }
};

QTEST_APPLESS_MAIN(TestMetrics)
#include "test_metrics.moc"
