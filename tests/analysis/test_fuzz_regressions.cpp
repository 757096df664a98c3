// Inputs found by the fuzz targets (tests/fuzz, issue 12) for the MLA spec, the scores JSON and
// the custom mask, replayed: each must be refused with an mlawb::Error, never crash or hit
// undefined behaviour (the sanitizer build runs this too). Every case runs in a forked child
// (tests/fuzz/regression_support.h) so a regression fails one test, not the suite.
#include "analysis/mla_spec.h"
#include "analysis/rope_scores.h"
#include "analysis/strategies.h"
#include "core/config.h"
#include "core/error.h"
#include "fuzz/regression_support.h"
#include "test_support.h"

using namespace mlawb;

namespace {

ModelConfig gqa_config(int64_t head_dim = 16) {
    ModelConfig c;
    c.source = "config.json";
    c.model_type = "llama";
    c.n_layer = 2, c.n_head = 4, c.n_kv_head = 2, c.head_dim = head_dim;
    c.hidden = 64, c.ffn = 128, c.vocab = 100, c.max_position = 256;
    return c;
}

// A valid one-layer, one-head, three-pair scores file with `scores` spliced in.
std::string scores_json(const std::string& n_pairs, const std::string& scores) {
    return R"({"variant": "product", "n_layer": 1, "n_head": 1, "n_kv_head": 1, "n_pairs": )" + n_pairs +
           R"(, "scores": )" + scores + R"(, "q_norms": [[[1, 1, 1]]], "k_norms": [[[1, 1, 1]]]})";
}

}  // namespace

class TestFuzzRegressionsAnalysis : public QObject {
    Q_OBJECT

private Q_SLOTS:
    // fuzz_mla_spec artifact crash-b612ffd0: parse accepted d_kv = 3333333333333333316 and
    // validate() computed n_kv x d_kv (mla_spec.cpp:208): signed overflow (UBSan). Integer keys
    // are now capped at 2^30 when parsed.
    void mlaSpecHugeIntegers_data() {
        QTest::addColumn<QString>("spec");
        QTest::addColumn<QString>("key");
        QTest::newRow("fuzz artifact: d_kv") << "strategy=high,r=4,d_kv=3333333333333333316,svd=joint,kv_bits=8,kv_group=32,residual=16"
                                              << "d_kv";
        QTest::newRow("start past int64 arithmetic") << "strategy=uniform,r=2,start=9223372036854775807" << "start";
        QTest::newRow("r beyond int64") << "strategy=high,r=99999999999999999999" << "r";
        QTest::newRow("kv_group") << "strategy=high,r=2,kv_bits=4,kv_group=4611686018427387904" << "kv_group";
        QTest::newRow("residual") << "strategy=high,r=2,kv_bits=4,residual=1073741825" << "residual";
    }
    void mlaSpecHugeIntegers() {
        QFETCH(QString, spec);
        QFETCH(QString, key);
        const std::string text = spec.toStdString(), needle = key.toStdString() + ": ";
        MLAWB_EXPECT_REFUSAL_IN_CHILD(MlaSpec::parse(text).validate(gqa_config()), "--mla", needle.c_str(), "too large");
    }

    void mlaSpecAtTheCapStillValidates() {
        // 2^30 itself parses; validate() then refuses it for the model, without overflowing.
        const MlaSpec spec = MlaSpec::parse("strategy=high,r=4,d_kv=1073741824");
        QCOMPARE(spec.d_kv, int64_t(1) << 30);
        MLAWB_EXPECT_REFUSAL_IN_CHILD(spec.validate(gqa_config()), "--mla", "d_kv");
    }

    void mlaSpecAgainstAHugeModel() {
        // head_dim from a hostile config.json: refused before any size arithmetic.
        const MlaSpec spec = MlaSpec::parse("strategy=high,r=4,d_kv=16");
        MLAWB_EXPECT_REFUSAL_IN_CHILD(spec.validate(gqa_config(int64_t(1) << 40)), "config.json", "head_dim");
    }

    // fuzz_rope_scores artifact crash-6c486da5: "0.428571e4000000004" in a cube made nlohmann
    // throw out_of_range, which from_json_text did not catch (it caught parse_error).
    void ropeScoresNumberOverflow() {
        MLAWB_EXPECT_REFUSAL_IN_CHILD(
            RopeScores::from_json_text(scores_json("3", "[[[0.428571e4000000004, 1, 1]]]"), "scores.json"), "scores.json",
            "not valid JSON", "number overflow");
    }

    // Review of read_cube: it reserved n_layer x n_head x n_pairs doubles from the declared
    // sizes before checking any array, so n_pairs = 2^62 threw std::length_error.
    void ropeScoresHugeDeclaredPairs() {
        MLAWB_EXPECT_REFUSAL_IN_CHILD(
            RopeScores::from_json_text(scores_json("4611686018427387904", "[[[1, 1, 1]]]"), "scores.json"), "scores.json",
            "scores[0][0]", "expected 4611686018427387904 numbers");
    }

    void ropeScoresDeepNesting() {
        const std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
        MLAWB_EXPECT_REFUSAL_IN_CHILD(RopeScores::from_json_text(scores_json("3", deep), "scores.json"), "scores.json",
                                      "nested deeper than 256");
    }

    // fuzz_custom_mask artifact crash-94c0ec71 (shape 3 x 4 x 2 from its first bytes).
    void customMaskNumberOverflow() {
        const std::string mask =
            R"({"kept_pairs": [[[0], [0], [0], [0]], [[1e4000],[0]], [[0]?, [0], [0], [[0], [0]]]})";
        MLAWB_EXPECT_REFUSAL_IN_CHILD(KeptPairs::from_json_text(mask, "mask.json", 3, 4, 2), "mask.json", "not valid JSON");
        MLAWB_EXPECT_REFUSAL_IN_CHILD(KeptPairs::from_json_text(R"({"kept_pairs": [[[1e400]]]})", "mask.json", 1, 1, 2),
                                      "mask.json", "number overflow");
    }
};

QTEST_APPLESS_MAIN(TestFuzzRegressionsAnalysis)
#include "test_fuzz_regressions.moc"
