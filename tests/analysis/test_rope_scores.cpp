// 2-norm RoPE contribution scores (MHA2MLA sec. 3.1) on both fixture models: pair norms are
// the same before and after RoPE, Qn/Kn agree with an independent float64 forward written
// here from the weights, the GQA group sum, the score file's round trip and its refusals,
// window accounting and cancel.
#include "analysis/calibration.h"
#include "analysis/rope_scores.h"
#include "core/attention.h"
#include "core/error.h"
#include "core/llama_model.h"
#include "core/rope.h"
#include "test_support.h"

#include <QTemporaryDir>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

using namespace mlawb;
using json = nlohmann::json;

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
}

// Pair norms of x [.., d] in the rotate-half layout: sqrt(x[.., k]^2 + x[.., k + d/2]^2) -> [.., d/2].
torch::Tensor pair_norms(const torch::Tensor& x) {
    const int64_t half = x.size(-1) / 2;
    return (x.narrow(-1, 0, half).pow(2) + x.narrow(-1, half, half).pow(2)).sqrt();
}

// Largest |a - b| / (|b| + floor) over two tensors of equal shape.
double max_relative_diff(const torch::Tensor& a, const torch::Tensor& b, double floor = 1e-12) {
    return ((a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs() / (b.to(torch::kFloat64).abs() + floor)).max().item<double>();
}

torch::Tensor as_tensor(const std::vector<double>& v, int64_t a, int64_t b, int64_t c) {
    return torch::tensor(v, torch::kFloat64).view({a, b, c});
}

// A scores object with awkward doubles, for the file tests: 2 layers, 4 q heads, 2 KV heads, 3 pairs.
RopeScores synthetic_scores() {
    RopeScores s;
    s.n_layer = 2, s.n_head = 4, s.n_kv_head = 2, s.n_pairs = 3;
    const double awkward[] = {0.0, 1.0 / 3.0, 1e-300, 5e-324, 1.7976931348623157e308, 123456789.12345679, 0.1, 2.5};
    for (int i = 0; i < 24; ++i) s.q_norms.push_back(awkward[(5 * i) % 8]);
    for (int i = 0; i < 12; ++i) s.k_norms.push_back(awkward[(i + 3) % 8] / (1.0 + i));
    s.scores.assign(12, 0.0);
    for (int i = 0; i < 12; ++i) s.scores[i] = 1.0 / (7.0 + i);  // not combine(): a file may hold any scores
    s.provenance = {"models/x", "text with \"quotes\" and ünïcode.txt", 16, 2048, 32768};
    return s;
}

// Every field equal; doubles compared exactly (a saved file must read back bit for bit).
bool same_scores(const RopeScores& a, const RopeScores& b) {
    const CalibrationProvenance &p = a.provenance, &q = b.provenance;
    return a.n_layer == b.n_layer && a.n_head == b.n_head && a.n_kv_head == b.n_kv_head && a.n_pairs == b.n_pairs &&
           a.variant == b.variant && a.scores == b.scores && a.q_norms == b.q_norms && a.k_norms == b.k_norms &&
           p.model == q.model && p.text_file == q.text_file && p.windows == q.windows && p.seq_len == q.seq_len &&
           p.tokens == q.tokens;
}

// Used to pretend a layer was converted: an attention that is not LlamaAttention.
class OpaqueAttention : public AttentionBase {
public:
    torch::Tensor forward(const torch::Tensor& x, const RotaryEmbedding&, LayerCache&) override { return x; }
    std::unique_ptr<LayerCache> make_cache() const override { return std::make_unique<StandardLayerCache>(); }
};

}  // namespace

class TestRopeScores : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void preRopeNormsEqualPostRope_data();
    void preRopeNormsEqualPostRope();
    void normsMatchIndependentForward_data();
    void normsMatchIndependentForward();
    void groupSum_data();
    void groupSum();
    void topPairsBreakTiesToLowerPair();
    void fileRoundTrips();
    void calibratedFileRoundTrips();
    void malformedFilesRefused_data();
    void malformedFilesRefused();
    void missingFileNamed();
    void windowAccounting_data();
    void windowAccounting();
    void tooShortTextRefused_data();
    void tooShortTextRefused();
    void fromFileFillsProvenance();
    void badOptionsRefused();
    void cancel_data();
    void cancel();
    void refusesConvertedModel();

private:
    LoadedModel& model(const std::string& name);
    const std::vector<int64_t>& heldout_ids(const std::string& name);
    std::map<std::string, LoadedModel> models_;
    std::map<std::string, std::vector<int64_t>> heldout_ids_;
};

void TestRopeScores::initTestCase() {
    for (const char* m : {"wb-tiny-mha", "wb-tiny-gqa"}) MLAWB_REQUIRE_PATH(test::model_dir(m) + "/model.safetensors");
    MLAWB_REQUIRE_PATH(test::fixtures_dir() + "/heldout.txt");
}

LoadedModel& TestRopeScores::model(const std::string& name) {
    auto it = models_.find(name);
    if (it == models_.end()) it = models_.emplace(name, load_model(test::model_dir(name))).first;
    return it->second;
}

const std::vector<int64_t>& TestRopeScores::heldout_ids(const std::string& name) {
    auto it = heldout_ids_.find(name);
    if (it == heldout_ids_.end()) {
        // The first 40 kB are ample for every window used here, and quick to tokenize.
        const std::vector<int32_t> ids = model(name).tokenizer.encode(read_file(test::fixtures_dir() + "/heldout.txt").substr(0, 40000));
        it = heldout_ids_.emplace(name, std::vector<int64_t>(ids.begin(), ids.end())).first;
    }
    return it->second;
}

void TestRopeScores::preRopeNormsEqualPostRope_data() {
    QTest::addColumn<QString>("model");
    QTest::addColumn<int>("start");  // first position: 1500 turns the slow pairs by large angles too
    for (const char* m : {"wb-tiny-mha", "wb-tiny-gqa"})
        for (int start : {0, 1500}) QTest::addRow("%s from %d", m, start) << QString(m) << start;
}

void TestRopeScores::preRopeNormsEqualPostRope() {
    QFETCH(QString, model);
    QFETCH(int, start);
    torch::NoGradGuard no_grad;
    LlamaForCausalLMImpl& m = *this->model(model.toStdString()).model;
    const ModelConfig& c = m.config();
    const std::vector<int64_t> ids(heldout_ids(model.toStdString()).begin(), heldout_ids(model.toStdString()).begin() + 64);
    const int64_t t = 64;
    const RopeTables tables = m.rope().tables(start, t);
    KVCache cache = m.make_cache();
    torch::Tensor h = m.model->embed_tokens->forward(torch::tensor(ids, torch::kInt64).unsqueeze(0));
    double worst = 0;
    for (int64_t l = 0; l < c.n_layer; ++l) {
        auto attention = std::dynamic_pointer_cast<LlamaAttention>(m.layer(l)->self_attn);
        QVERIFY(attention);
        torch::Tensor x = m.layer(l)->input_layernorm->forward(h);
        // Real activations [1, H, T, d], as the attention lays them out before RoPE.
        torch::Tensor q = attention->q_proj->forward(x).view({1, t, c.n_head, c.head_dim}).transpose(1, 2);
        torch::Tensor k = attention->k_proj->forward(x).view({1, t, c.n_kv_head, c.head_dim}).transpose(1, 2);
        worst = std::max(worst, max_relative_diff(pair_norms(apply_rope(q, tables)), pair_norms(q)));
        worst = std::max(worst, max_relative_diff(pair_norms(apply_rope(k, tables)), pair_norms(k)));
        // RoPE must really have moved the vectors, or the comparison proves nothing.
        QVERIFY((apply_rope(q, tables) - q).abs().max().item<double>() > 1e-2);
        h = m.layer(l)->forward(h, m.rope(), cache.layer(l));
    }
    qInfo("%s: post- vs pre-RoPE pair norms, max relative diff %.2e", qPrintable(model), worst);
    QVERIFY2(worst < 1e-5, qPrintable(QString("pair norms changed by RoPE: %1").arg(worst)));
}

void TestRopeScores::normsMatchIndependentForward_data() {
    QTest::addColumn<QString>("model");
    QTest::newRow("mha") << "wb-tiny-mha";
    QTest::newRow("gqa") << "wb-tiny-gqa";
}

// Qn/Kn from a float64 forward written here from the weights alone (embedding, RMSNorm,
// projections, RoPE from theta, causal softmax with repeat_kv, SwiGLU), taking norms after
// RoPE, against calibrate_rope_scores (float32 engine, norms before RoPE).
void TestRopeScores::normsMatchIndependentForward() {
    QFETCH(QString, model);
    torch::NoGradGuard no_grad;
    LlamaForCausalLMImpl& m = *this->model(model.toStdString()).model;
    const ModelConfig& c = m.config();
    QCOMPARE(int(c.rope_scaling.type), int(RopeScaling::Type::Default));  // the RoPE below is plain
    const int64_t t = 64, d = c.head_dim, group = c.n_head / c.n_kv_head;
    const std::vector<int64_t> ids(heldout_ids(model.toStdString()).begin(), heldout_ids(model.toStdString()).begin() + t);

    std::map<std::string, torch::Tensor> w;
    for (const auto& p : m.named_parameters()) w[p.key()] = p.value().to(torch::kFloat64);
    auto linear = [&](const torch::Tensor& x, const std::string& name) {
        torch::Tensor y = x.matmul(w.at(name + ".weight").t());
        return w.count(name + ".bias") ? y + w.at(name + ".bias") : y;
    };
    auto rms_norm = [&](const torch::Tensor& x, const std::string& name) {
        return w.at(name + ".weight") * x * torch::rsqrt(x.pow(2).mean(-1, true) + c.rms_eps);
    };
    // angle[p, k] = p * theta^(-2k/d); rotate_half(x) = (-x2, x1).
    torch::Tensor inv_freq = torch::pow(c.rope_theta, -torch::arange(0, d, 2, torch::kFloat64) / double(d));
    torch::Tensor angles = torch::arange(0, t, torch::kFloat64).unsqueeze(1) * inv_freq.unsqueeze(0);
    torch::Tensor cos = torch::cat({angles, angles}, 1).cos(), sin = torch::cat({angles, angles}, 1).sin();
    auto rope = [&](const torch::Tensor& x) {  // x [heads, T, d]
        torch::Tensor x1 = x.narrow(-1, 0, d / 2), x2 = x.narrow(-1, d / 2, d / 2);
        return x * cos + torch::cat({-x2, x1}, -1) * sin;
    };
    torch::Tensor causal = torch::ones({t, t}, torch::kBool).triu(1);

    torch::Tensor h = w.at("model.embed_tokens.weight").index_select(0, torch::tensor(ids, torch::kInt64));  // [T, hidden]
    torch::Tensor q_ref = torch::zeros({c.n_layer, c.n_head, d / 2}, torch::kFloat64);
    torch::Tensor k_ref = torch::zeros({c.n_layer, c.n_kv_head, d / 2}, torch::kFloat64);
    for (int64_t l = 0; l < c.n_layer; ++l) {
        const std::string p = "model.layers." + std::to_string(l);
        torch::Tensor x = rms_norm(h, p + ".input_layernorm");
        torch::Tensor q = rope(linear(x, p + ".self_attn.q_proj").view({t, c.n_head, d}).transpose(0, 1));    // [H, T, d]
        torch::Tensor k = rope(linear(x, p + ".self_attn.k_proj").view({t, c.n_kv_head, d}).transpose(0, 1)); // [G, T, d]
        torch::Tensor v = linear(x, p + ".self_attn.v_proj").view({t, c.n_kv_head, d}).transpose(0, 1);
        q_ref[l] = pair_norms(q).mean(1);
        k_ref[l] = pair_norms(k).mean(1);
        torch::Tensor scores = q.matmul(k.repeat_interleave(group, 0).transpose(1, 2)) / std::sqrt(double(d));
        torch::Tensor probs = torch::softmax(scores.masked_fill(causal, -INFINITY), -1);
        torch::Tensor attended = probs.matmul(v.repeat_interleave(group, 0)).transpose(0, 1).reshape({t, c.n_head * d});
        h = h + linear(attended, p + ".self_attn.o_proj");
        torch::Tensor y = rms_norm(h, p + ".post_attention_layernorm");
        h = h + linear(torch::silu(linear(y, p + ".mlp.gate_proj")) * linear(y, p + ".mlp.up_proj"), p + ".mlp.down_proj");
    }

    CalibrationOptions options;
    options.windows = 1;
    options.seq_len = t;
    RopeScores s = calibrate_rope_scores(m, ids, options);
    QCOMPARE(s.n_layer, c.n_layer);
    QCOMPARE(s.n_head, c.n_head);
    QCOMPARE(s.n_kv_head, c.n_kv_head);
    QCOMPARE(s.n_pairs, d / 2);
    const double q_err = max_relative_diff(as_tensor(s.q_norms, c.n_layer, c.n_head, d / 2), q_ref);
    const double k_err = max_relative_diff(as_tensor(s.k_norms, c.n_layer, c.n_kv_head, d / 2), k_ref);
    qInfo("%s: Qn max relative diff %.2e, Kn %.2e vs float64 reference", qPrintable(model), q_err, k_err);
    QVERIFY2(q_err < 1e-4, qPrintable(QString("Qn differs by %1").arg(q_err)));
    QVERIFY2(k_err < 1e-4, qPrintable(QString("Kn differs by %1").arg(k_err)));
}

void TestRopeScores::groupSum_data() {
    QTest::addColumn<QString>("model");
    QTest::addColumn<QString>("variant");
    QTest::addColumn<int>("group");
    for (const char* v : {"product", "sum"}) {
        QTest::addRow("gqa %s", v) << "wb-tiny-gqa" << QString(v) << 2;
        QTest::addRow("mha %s", v) << "wb-tiny-mha" << QString(v) << 1;
    }
}

void TestRopeScores::groupSum() {
    QFETCH(QString, model);
    QFETCH(QString, variant);
    QFETCH(int, group);
    CalibrationOptions options;
    options.windows = 2;
    options.seq_len = 128;
    options.variant = variant.toStdString();
    RopeScores s = calibrate_rope_scores(*this->model(model.toStdString()).model, heldout_ids(model.toStdString()), options);
    QCOMPARE(s.variant, variant.toStdString());
    QCOMPARE(s.n_head / s.n_kv_head, int64_t(group));
    const bool product = variant == "product";
    for (int64_t l = 0; l < s.n_layer; ++l)
        for (int64_t g = 0; g < s.n_kv_head; ++g)
            for (int64_t k = 0; k < s.n_pairs; ++k) {
                // Query heads g*G .. g*G+G-1 read KV head g (transformers' repeat_kv order);
                // for wb-tiny-gqa: heads 2g and 2g+1.
                double expected = 0;
                for (int64_t h = g * group; h < (g + 1) * group; ++h)
                    expected += product ? s.q_norm(l, h, k) * s.k_norm(l, g, k) : s.q_norm(l, h, k) + s.k_norm(l, g, k);
                QVERIFY(s.q_norm(l, g * group, k) > 0 && s.k_norm(l, g, k) > 0);
                QVERIFY2(std::abs(s.score(l, g, k) - expected) <= 1e-12 * expected,
                         qPrintable(QString("S[%1,%2,%3] = %4, expected %5").arg(l).arg(g).arg(k).arg(s.score(l, g, k)).arg(expected)));
            }
    // Switching variants afterwards gives what calibrating with the other variant gives.
    RopeScores other = s;
    other.combine(product ? "sum" : "product");
    options.variant = product ? "sum" : "product";
    RopeScores direct = calibrate_rope_scores(*this->model(model.toStdString()).model, heldout_ids(model.toStdString()), options);
    QCOMPARE(other.variant, direct.variant);
    QCOMPARE(other.scores, direct.scores);
}

void TestRopeScores::topPairsBreakTiesToLowerPair() {
    RopeScores s;
    s.n_layer = 1, s.n_head = 1, s.n_kv_head = 1, s.n_pairs = 6;
    s.scores = {1.0, 3.0, 2.0, 3.0, 0.5, 2.0};
    QCOMPARE(s.top_pairs(0, 0, 4), (std::vector<int64_t>{1, 3, 2, 5}));
    QCOMPARE(s.top_pairs(0, 0, 1), (std::vector<int64_t>{1}));
    QCOMPARE(s.top_pairs(0, 0, 10).size(), size_t(6));
}

void TestRopeScores::fileRoundTrips() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string path = dir.filePath("scores.json").toStdString();
    const RopeScores s = synthetic_scores();
    write_file(path, "an older file that save() replaces");
    s.save(path);
    QVERIFY(same_scores(RopeScores::load(path), s));
    QCOMPARE(RopeScores::load(path).to_json_text(), s.to_json_text());
    // The temporary file was renamed over the target, not left beside it.
    QCOMPARE(QDir(dir.path()).entryList(QDir::Files), QStringList{"scores.json"});
}

void TestRopeScores::calibratedFileRoundTrips() {
    CalibrationOptions options;
    options.windows = 2;
    options.seq_len = 64;
    options.variant = "sum";
    LoadedModel& m = model("wb-tiny-gqa");
    RopeScores s = calibrate_rope_scores_from_file(m, test::fixtures_dir() + "/heldout.txt", options);
    QTemporaryDir dir;
    const std::string path = dir.filePath("gqa.json").toStdString();
    s.save(path);
    QVERIFY(same_scores(RopeScores::load(path), s));
    QCOMPARE(s.variant, std::string("sum"));
    QCOMPARE(s.provenance.model, m.folder);
    QCOMPARE(s.provenance.tokens, int64_t(128));
    // The file holds the documented arrays with their shapes.
    const json j = json::parse(read_file(path));
    QCOMPARE(j["scores"].size(), size_t(6));
    QCOMPARE(j["scores"][0].size(), size_t(2));
    QCOMPARE(j["q_norms"][5].size(), size_t(4));
    QCOMPARE(j["k_norms"][5][1].size(), size_t(32));
}

void TestRopeScores::malformedFilesRefused_data() {
    QTest::addColumn<QString>("pointer");      // JSON pointer to replace; "" replaces the whole text
    QTest::addColumn<QString>("replacement");  // JSON text; "<delete>" removes the member
    QTest::addColumn<QString>("expected");     // the message after "scores.json: "
    QTest::newRow("short head") << "/q_norms/1/1" << "[1, 2]" << "q_norms[1][1]: expected 3 numbers";
    QTest::newRow("missing layer") << "/scores" << "[[[1,2,3],[1,2,3]]]" << "scores: expected an array of 2 layers";
    QTest::newRow("missing head") << "/k_norms/0" << "[[1,2,3]]" << "k_norms[0]: expected an array of 2 heads";
    QTest::newRow("string") << "/k_norms/0/1/2" << "\"x\"" << "k_norms[0][1][2]: expected a non-negative number";
    QTest::newRow("negative") << "/scores/1/0/0" << "-1" << "scores[1][0][0]: expected a non-negative number";
    QTest::newRow("null") << "/q_norms/0/0/0" << "null" << "q_norms[0][0][0]: expected a non-negative number";
    QTest::newRow("bad variant") << "/variant" << "\"max\"" << "variant: unknown variant 'max'; valid values: product, sum";
    QTest::newRow("variant type") << "/variant" << "3" << "variant: expected a string";
    QTest::newRow("no variant") << "/variant" << "<delete>" << "variant: missing";
    QTest::newRow("no n_pairs") << "/n_pairs" << "<delete>" << "n_pairs: missing";
    QTest::newRow("zero layers") << "/n_layer" << "0" << "n_layer: expected a positive integer";
    QTest::newRow("fractional heads") << "/n_head" << "4.5" << "n_head: expected a positive integer";
    QTest::newRow("kv does not divide") << "/n_kv_head" << "3" << "n_kv_head: 3 does not divide n_head (4)";
    QTest::newRow("no k_norms") << "/k_norms" << "<delete>" << "k_norms: missing";
    QTest::newRow("calibration type") << "/calibration/windows" << "\"16\"" << "calibration.windows: expected a non-negative integer";
    QTest::newRow("calibration model") << "/calibration/model" << "7" << "calibration.model: expected a string";
    QTest::newRow("calibration not object") << "/calibration" << "[]" << "calibration: expected an object";
    QTest::newRow("not an object") << "" << "[1, 2]" << "expected a JSON object";
    QTest::newRow("not JSON") << "" << "{\"scores\": [" << "not valid JSON";
}

void TestRopeScores::malformedFilesRefused() {
    QFETCH(QString, pointer);
    QFETCH(QString, replacement);
    QFETCH(QString, expected);
    std::string text = replacement.toStdString();
    if (!pointer.isEmpty()) {
        json j = json::parse(synthetic_scores().to_json_text());
        const json::json_pointer at(pointer.toStdString());
        if (replacement == "<delete>") j[at.parent_pointer()].erase(at.back());
        else j[at] = json::parse(replacement.toStdString());
        text = j.dump();
    }
    QTemporaryDir dir;
    const std::string path = dir.filePath("scores.json").toStdString();
    write_file(path, text);
    try {
        RopeScores::load(path);
        QFAIL("malformed scores file accepted");
    } catch (const Error& e) {
        const std::string message = e.what();
        QVERIFY2(message.find("scores.json: " + expected.toStdString()) != std::string::npos,
                 qPrintable(QString("message \"%1\" lacks \"scores.json: %2\"").arg(QString::fromStdString(message), expected)));
    }
}

void TestRopeScores::missingFileNamed() {
    MLAWB_EXPECT_ERROR(RopeScores::load("/nonexistent/dir/scores.json"), "/nonexistent/dir/scores.json", "cannot open");
    QTemporaryDir dir;
    MLAWB_EXPECT_ERROR(synthetic_scores().save(dir.path().toStdString() + "/no/such/dir/s.json"), "/no/such/dir/s.json");
}

void TestRopeScores::windowAccounting_data() {
    QTest::addColumn<int>("available");  // tokens of text
    QTest::addColumn<int>("windows");
    QTest::addColumn<int>("seq_len");
    QTest::addColumn<int>("used_windows");
    QTest::addColumn<int>("used_tokens");
    QTest::newRow("3 x 128") << 5000 << 3 << 128 << 3 << 384;
    QTest::newRow("exact fit") << 200 << 2 << 100 << 2 << 200;
    QTest::newRow("partial last window") << 250 << 4 << 100 << 3 << 250;
    QTest::newRow("remainder of 1 dropped") << 201 << 4 << 100 << 2 << 200;
    QTest::newRow("shorter than a window") << 50 << 2 << 100 << 1 << 50;
    QTest::newRow("two tokens") << 2 << 16 << 2048 << 1 << 2;
}

void TestRopeScores::windowAccounting() {
    QFETCH(int, available);
    QFETCH(int, windows);
    QFETCH(int, seq_len);
    QFETCH(int, used_windows);
    QFETCH(int, used_tokens);
    const std::vector<int64_t>& all = heldout_ids("wb-tiny-mha");
    QVERIFY(int(all.size()) >= available);
    const std::vector<int64_t> ids(all.begin(), all.begin() + available);

    const std::vector<CalibrationWindow> plan = calibration_windows(available, windows, seq_len);
    QCOMPARE(int(plan.size()), used_windows);
    for (int w = 0; w < used_windows; ++w) QCOMPARE(plan[w].begin, int64_t(w) * seq_len);  // non-overlapping, from the start

    CalibrationOptions options;
    options.windows = windows;
    options.seq_len = seq_len;
    std::vector<std::pair<int64_t, int64_t>> progress;
    options.progress = [&](int64_t done, int64_t total) { progress.emplace_back(done, total); };
    RopeScores s = calibrate_rope_scores(*model("wb-tiny-mha").model, ids, options);
    QCOMPARE(s.provenance.windows, int64_t(used_windows));
    QCOMPARE(s.provenance.tokens, int64_t(used_tokens));
    QCOMPARE(s.provenance.seq_len, int64_t(seq_len));
    QCOMPARE(int(progress.size()), used_windows);
    for (int w = 0; w < used_windows; ++w) QCOMPARE(progress[w], std::make_pair(int64_t(w + 1), int64_t(used_windows)));
}

void TestRopeScores::tooShortTextRefused_data() {
    QTest::addColumn<int>("available");
    QTest::newRow("empty") << 0;
    QTest::newRow("one token") << 1;
}

void TestRopeScores::tooShortTextRefused() {
    QFETCH(int, available);
    const std::vector<int64_t> ids(heldout_ids("wb-tiny-mha").begin(), heldout_ids("wb-tiny-mha").begin() + available);
    MLAWB_EXPECT_ERROR(calibrate_rope_scores(*model("wb-tiny-mha").model, ids, CalibrationOptions{}), "too short",
                       "at least 2 tokens");
    QTemporaryDir dir;
    const std::string path = dir.filePath("short.txt").toStdString();
    write_file(path, available ? "a" : "");
    MLAWB_EXPECT_ERROR(calibrate_rope_scores_from_file(model("wb-tiny-mha"), path, CalibrationOptions{}), "short.txt",
                       "too short");
}

void TestRopeScores::fromFileFillsProvenance() {
    CalibrationOptions options;
    options.windows = 3;
    options.seq_len = 128;
    const std::string text = test::fixtures_dir() + "/heldout.txt";
    LoadedModel& m = model("wb-tiny-mha");
    RopeScores s = calibrate_rope_scores_from_file(m, text, options);
    QCOMPARE(s.provenance.model, m.folder);
    QCOMPARE(s.provenance.text_file, text);
    QCOMPARE(s.provenance.windows, int64_t(3));
    QCOMPARE(s.provenance.seq_len, int64_t(128));
    QCOMPARE(s.provenance.tokens, int64_t(384));
    // The file's first tokens are the heldout ids the other tests use: same norms.
    RopeScores direct = calibrate_rope_scores(*m.model, heldout_ids("wb-tiny-mha"), options);
    QCOMPARE(s.q_norms, direct.q_norms);
    MLAWB_EXPECT_ERROR(calibrate_rope_scores_from_file(m, "/nonexistent/calib.txt", options), "/nonexistent/calib.txt",
                       "cannot open");
}

void TestRopeScores::badOptionsRefused() {
    const std::vector<int64_t>& ids = heldout_ids("wb-tiny-mha");
    LlamaForCausalLMImpl& m = *model("wb-tiny-mha").model;
    CalibrationOptions options;
    options.windows = 0;
    MLAWB_EXPECT_ERROR(calibrate_rope_scores(m, ids, options), "windows", "at least 1");
    options = CalibrationOptions{};
    options.seq_len = 1;
    MLAWB_EXPECT_ERROR(calibrate_rope_scores(m, ids, options), "seq_len", "at least 2");
    options = CalibrationOptions{};
    options.variant = "max";
    MLAWB_EXPECT_ERROR(calibrate_rope_scores(m, ids, options), "variant", "'max'", "product, sum");
    RopeScores s = synthetic_scores();
    MLAWB_EXPECT_ERROR(s.combine("mean"), "variant", "product, sum");
}

void TestRopeScores::cancel_data() {
    QTest::addColumn<int>("polls_before_cancel");
    QTest::addColumn<int>("windows_finished");
    // Polls: once per window, then once per layer (6 layers): window w starts at poll 7w.
    QTest::newRow("before the first window") << 0 << 0;
    QTest::newRow("inside the first window") << 3 << 0;
    QTest::newRow("at the second window") << 7 << 1;
    QTest::newRow("inside the third window") << 16 << 2;
}

void TestRopeScores::cancel() {
    QFETCH(int, polls_before_cancel);
    QFETCH(int, windows_finished);
    CalibrationOptions options;
    options.windows = 4;
    options.seq_len = 32;
    int polls = 0, finished = 0;
    options.cancelled = [&] { return polls++ >= polls_before_cancel; };
    options.progress = [&](int64_t done, int64_t) { finished = int(done); };
    bool cancelled = false;
    try {
        calibrate_rope_scores(*model("wb-tiny-mha").model, heldout_ids("wb-tiny-mha"), options);
    } catch (const Cancelled&) {
        cancelled = true;
    }
    QVERIFY(cancelled);
    QCOMPARE(finished, windows_finished);
    QCOMPARE(polls, polls_before_cancel + 1);
}

void TestRopeScores::refusesConvertedModel() {
    // A model of its own: the layer swap must not leak into the other tests' model.
    LoadedModel m = load_model(test::model_dir("wb-tiny-gqa"));
    m.model->layer(1)->replace_attention(std::make_shared<OpaqueAttention>());
    MLAWB_EXPECT_ERROR(calibrate_rope_scores(*m.model, heldout_ids("wb-tiny-gqa"), CalibrationOptions{}), "layer 1",
                       "converted");
}

QTEST_APPLESS_MAIN(TestRopeScores)
#include "test_rope_scores.moc"
