// Recovery fine-tuning: the learning-rate schedule, the packed token stream, the gradient of our
// forward through MLA attention against finite differences (float64), resume equal to an
// uninterrupted run, and `--train attn` leaving the other weights bit for bit.
//
// Built twice: test_trainer (CPU, Qt Test) and, with MLAWB_GPU_TESTS, test_trainer_gpu (label
// gpu): a plain executable without Qt, since GPU servers (pip's LibTorch) have no Qt, that trains
// on CUDA under bf16 autocast and checks the curve against the CPU's, the frozen weights and a
// resume.
#include "analysis/convert.h"
#include "analysis/mla_spec.h"
#include "analysis/strategies.h"
#include "core/error.h"
#include "core/llama_model.h"
#include "core/mla_attention.h"
#include "core/safetensors.h"
#include "core/tokenizer.h"
#include "eval/lr_schedule.h"
#include "eval/train_data.h"
#include "eval/trainer.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#ifdef MLAWB_GPU_TESTS
#include <torch/cuda.h>

#include <cstdio>
#include <unistd.h>
#else
#include "test_support.h"

#include <QTemporaryDir>
#endif

using namespace mlawb;
namespace fs = std::filesystem;

namespace {

std::string fixtures() { return std::string(MLAWB_SHARED_DIR) + "/fixtures"; }
std::string model_path(const std::string& name) { return fixtures() + "/models/" + name; }

[[maybe_unused]] void write_file(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// A tiny Llama in memory: 2 layers, 4 query heads of 8 dims, n_kv KV heads, vocab 64.
[[maybe_unused]] ModelConfig tiny_config(int n_kv, bool tied) {
    const std::string text = R"({"model_type":"llama","hidden_size":32,"intermediate_size":48,"num_hidden_layers":2,
        "num_attention_heads":4,"num_key_value_heads":)" + std::to_string(n_kv) + R"(,"vocab_size":64,
        "max_position_embeddings":64,"rms_norm_eps":1e-5,"rope_theta":10000.0,"tie_word_embeddings":)" +
                             std::string(tied ? "true" : "false") + "}";
    return ModelConfig::from_json_text(text, "tiny-config");
}

// Random weights (LibTorch's default init) with norms away from 1, so every parameter matters.
[[maybe_unused]] LlamaForCausalLM tiny_model(int n_kv, bool tied, uint64_t seed) {
    torch::manual_seed(seed);
    LlamaForCausalLM m(tiny_config(n_kv, tied));
    torch::NoGradGuard no_grad;
    for (auto& p : m->named_parameters())
        if (p.key().find("norm") != std::string::npos) p.value().copy_(1.0 + 0.2 * torch::randn_like(p.value()));
    return m;
}

// Pairs {1, 3} of every KV head keep RoPE (r = 2 of 4): a non-contiguous partial RoPE.
[[maybe_unused]] KeptPairs pairs_1_3(const ModelConfig& c) {
    KeptPairs kept(c.n_layer, c.n_kv_head, c.head_dim / 2);
    for (int64_t l = 0; l < c.n_layer; ++l)
        for (int64_t g = 0; g < c.n_kv_head; ++g) {
            kept.set(l, g, 1);
            kept.set(l, g, 3);
        }
    return kept;
}

LoadedModel load_fixture(const std::string& name) { return load_model(model_path(name)); }

std::vector<int32_t> fixture_stream(const Tokenizer& tokenizer, size_t bytes) {
    const std::string text = read_file(fixtures() + "/finetune/text.txt").substr(0, bytes);
    std::vector<int32_t> ids = tokenizer.encode(text);
    ids.push_back(0);
    return ids;
}

ModelFolderSource source_of(const LoadedModel& m) {
    return ModelFolderSource{model_config_json(*m.model, read_file(m.folder + "/config.json"), "", ""), m.folder};
}

TrainOptions small_run(int64_t steps) {
    TrainOptions o;
    o.steps = steps;
    o.batch = 2;
    o.accum = 1;
    o.seq_len = 32;
    o.lr = 3e-4;
    o.warmup = 5;
    o.decay_fraction = 0.2;
    o.seed = 11;
    return o;
}

}  // namespace

#ifndef MLAWB_GPU_TESTS

class TestTrainer : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void lrSchedule_data();
    void lrSchedule();
    void lrScheduleRefusals_data();
    void lrScheduleRefusals();
    void streamPacksDocumentsWithEos();
    void tokenCacheKeyedByContent();
    void malformedJsonlNamesFileAndLine_data();
    void malformedJsonlNamesFileAndLine();
    void windowSamplerStateRoundTrips();
    void gradientMatchesFiniteDifferences_data();
    void gradientMatchesFiniteDifferences();
    void resumeContinuesTheSameCurve();
    void resumeRefusesAnotherRun();
    void attnLeavesOtherWeightsBitIdentical();
    void accumulationKeepsTheCurve();
};

void TestTrainer::lrSchedule_data() {
    QTest::addColumn<double>("peak");
    QTest::addColumn<qlonglong>("warmup");
    QTest::addColumn<qlonglong>("total");
    QTest::addColumn<double>("fraction");
    QTest::addColumn<qlonglong>("step");
    QTest::addColumn<double>("expected");
    // The issue's recipe: 245 steps, warmup 24, 1-sqrt over the last 10% (25 steps from 220).
    const double p = 1e-4;
    QTest::newRow("recipe first step") << p << 24LL << 245LL << 0.1 << 0LL << p / 24;
    QTest::newRow("recipe mid warmup") << p << 24LL << 245LL << 0.1 << 11LL << p * 12 / 24;
    QTest::newRow("recipe warmup end") << p << 24LL << 245LL << 0.1 << 23LL << p;
    QTest::newRow("recipe stable") << p << 24LL << 245LL << 0.1 << 100LL << p;
    QTest::newRow("recipe last stable") << p << 24LL << 245LL << 0.1 << 219LL << p;
    QTest::newRow("recipe decay start") << p << 24LL << 245LL << 0.1 << 220LL << p;
    QTest::newRow("recipe decay middle") << p << 24LL << 245LL << 0.1 << 232LL << p * (1 - std::sqrt(12.0 / 25));
    QTest::newRow("recipe last step") << p << 24LL << 245LL << 0.1 << 244LL << p * (1 - std::sqrt(24.0 / 25));
    QTest::newRow("no warmup") << 2e-4 << 0LL << 10LL << 0.5 << 0LL << 2e-4;
    QTest::newRow("half decay, step 6") << 1.0 << 2LL << 10LL << 0.5 << 6LL << 1 - std::sqrt(0.2);
    QTest::newRow("half decay, step 9") << 1.0 << 2LL << 10LL << 0.5 << 9LL << 1 - std::sqrt(0.8);
    QTest::newRow("no decay, last step") << 1.0 << 2LL << 10LL << 0.0 << 9LL << 1.0;
    QTest::newRow("all decay, step 0") << 1.0 << 0LL << 4LL << 1.0 << 0LL << 1.0;
    QTest::newRow("all decay, step 3") << 1.0 << 0LL << 4LL << 1.0 << 3LL << 1 - std::sqrt(0.75);
}

void TestTrainer::lrSchedule() {
    QFETCH(double, peak);
    QFETCH(qlonglong, warmup);
    QFETCH(qlonglong, total);
    QFETCH(double, fraction);
    QFETCH(qlonglong, step);
    QFETCH(double, expected);
    LrSchedule s{peak, warmup, total, fraction};
    s.validate();
    const double got = learning_rate(s, step);
    QVERIFY2(std::abs(got - expected) <= 1e-15 * std::max(1.0, peak), qPrintable(QString("%1 vs %2").arg(got).arg(expected)));
}

void TestTrainer::lrScheduleRefusals_data() {
    QTest::addColumn<double>("peak");
    QTest::addColumn<qlonglong>("warmup");
    QTest::addColumn<qlonglong>("total");
    QTest::addColumn<double>("fraction");
    QTest::addColumn<QString>("field");
    QTest::newRow("warmup + decay too long") << 1e-4 << 10LL << 12LL << 0.5 << "--warmup";
    QTest::newRow("negative warmup") << 1e-4 << -1LL << 12LL << 0.1 << "--warmup";
    QTest::newRow("fraction above 1") << 1e-4 << 0LL << 12LL << 1.5 << "--decay-frac";
    QTest::newRow("no steps") << 1e-4 << 0LL << 0LL << 0.1 << "--steps";
    QTest::newRow("zero lr") << 0.0 << 0LL << 12LL << 0.1 << "--lr";
}

void TestTrainer::lrScheduleRefusals() {
    QFETCH(double, peak);
    QFETCH(qlonglong, warmup);
    QFETCH(qlonglong, total);
    QFETCH(double, fraction);
    QFETCH(QString, field);
    LrSchedule s{peak, warmup, total, fraction};
    const std::string name = field.toStdString();
    MLAWB_EXPECT_ERROR(s.validate(), name.c_str());
}

// Plain text: the file as it is plus one eos; JSONL: prompt + completion + eos per record;
// files in the order given.
void TestTrainer::streamPacksDocumentsWithEos() {
    MLAWB_REQUIRE_PATH(test::model_dir("wb-tiny-mha") + "/tokenizer.json");
    const Tokenizer tok = Tokenizer::from_file(test::model_dir("wb-tiny-mha") + "/tokenizer.json");
    QTemporaryDir dir;
    const std::string text = "First document.\n\nSecond one, after a blank line.\n";
    write_file(dir.filePath("a.txt").toStdString(), text);
    write_file(dir.filePath("b.jsonl").toStdString(),
               "{\"prompt\": \"What is the pass key? The pass key is\", \"completion\": \" 77822\", \"dataset\": \"passkey\"}\n"
               "\n"
               "{\"prompt\": \"Q: 2+2?\\nA:\", \"completion\": \" 4\"}\n");
    const int32_t eos = 0;
    std::vector<int32_t> expected = tok.encode(text);
    expected.push_back(eos);
    for (const char* doc : {"What is the pass key? The pass key is 77822", "Q: 2+2?\nA: 4"}) {
        std::vector<int32_t> ids = tok.encode(doc);
        expected.insert(expected.end(), ids.begin(), ids.end());
        expected.push_back(eos);
    }
    TrainDataOptions options;
    options.eos_id = eos;
    TokenStream s = load_token_stream({dir.filePath("a.txt").toStdString(), dir.filePath("b.jsonl").toStdString()}, tok, options);
    QCOMPARE(s.ids, expected);
    QCOMPARE(s.files.size(), size_t(2));
    QCOMPARE(s.files[0].tokens + s.files[1].tokens, int64_t(expected.size()));
    // eos only at document ends: the two record ends and the end of the text file.
    QCOMPARE(std::count(s.ids.begin(), s.ids.end(), eos), 3L);
    QCOMPARE(s.ids[s.files[0].tokens - 1], eos);
}

void TestTrainer::tokenCacheKeyedByContent() {
    MLAWB_REQUIRE_PATH(test::model_dir("wb-tiny-mha") + "/tokenizer.json");
    const std::string tok_file = test::model_dir("wb-tiny-mha") + "/tokenizer.json";
    const Tokenizer tok = Tokenizer::from_file(tok_file);
    QTemporaryDir dir;
    const std::string data = dir.filePath("t.txt").toStdString();
    write_file(data, "Some text to tokenize once.\n");
    TrainDataOptions options;
    options.tokenizer_file = tok_file;
    options.cache_dir = dir.filePath("cache").toStdString();
    TokenStream first = load_token_stream({data}, tok, options);
    QVERIFY(!first.files[0].from_cache);
    TokenStream second = load_token_stream({data}, tok, options);
    QVERIFY(second.files[0].from_cache);
    QCOMPARE(second.ids, first.ids);
    write_file(data, "Other text now.\n");  // new content: a new key, never the stale tokens
    TokenStream third = load_token_stream({data}, tok, options);
    QVERIFY(!third.files[0].from_cache);
    std::vector<int32_t> expected = tok.encode("Other text now.\n");
    expected.push_back(0);
    QCOMPARE(third.ids, expected);
    // A damaged cache file is ignored and rewritten.
    for (const auto& e : fs::directory_iterator(options.cache_dir)) fs::resize_file(e.path(), 12);
    TokenStream fourth = load_token_stream({data}, tok, options);
    QVERIFY(!fourth.files[0].from_cache);
    QCOMPARE(fourth.ids, expected);
}

void TestTrainer::malformedJsonlNamesFileAndLine_data() {
    QTest::addColumn<QString>("content");
    QTest::addColumn<QString>("where");
    QTest::addColumn<QString>("reason");
    const QString good = R"({"prompt": "a", "completion": "b"})";
    QTest::newRow("broken JSON on line 3") << good + "\n" + good + "\n{\"prompt\": \"a\", \n" << ":3" << "malformed JSON";
    QTest::newRow("missing completion on line 2") << good + "\n{\"prompt\": \"a\"}\n" << ":2" << "completion";
    QTest::newRow("completion not a string") << R"({"prompt": "a", "completion": 5})" << ":1" << "completion";
    QTest::newRow("an array, not an object") << good + "\n\n[1, 2]\n" << ":3" << "expected a JSON object";
}

void TestTrainer::malformedJsonlNamesFileAndLine() {
    QFETCH(QString, content);
    QFETCH(QString, where);
    QFETCH(QString, reason);
    MLAWB_REQUIRE_PATH(test::model_dir("wb-tiny-mha") + "/tokenizer.json");
    const Tokenizer tok = Tokenizer::from_file(test::model_dir("wb-tiny-mha") + "/tokenizer.json");
    QTemporaryDir dir;
    const std::string path = dir.filePath("tasks.jsonl").toStdString();
    write_file(path, content.toStdString());
    const std::string at = path + where.toStdString(), why = reason.toStdString();
    MLAWB_EXPECT_ERROR(tokenize_training_file(path, tok, 0), at.c_str(), why.c_str());
}

void TestTrainer::windowSamplerStateRoundTrips() {
    WindowSampler a(1000, 65, 7);
    for (int i = 0; i < 10; ++i) a.next();
    const std::string state = a.state();
    std::vector<int64_t> next_a;
    for (int i = 0; i < 20; ++i) {
        const int64_t o = a.next();
        QVERIFY(o >= 0 && o <= 1000 - 65);
        next_a.push_back(o);
    }
    WindowSampler b(1000, 65, 12345);  // another seed: the state overrides it
    b.set_state(state);
    QCOMPARE(b.drawn(), int64_t(10));
    for (int i = 0; i < 20; ++i) QCOMPARE(b.next(), next_a[i]);
    WindowSampler c(1000, 65, 7);
    WindowSampler d(1000, 65, 8);
    int same = 0;
    for (int i = 0; i < 10; ++i) same += c.next() == d.next();
    QVERIFY(same < 10);
    MLAWB_EXPECT_ERROR(WindowSampler(64, 65, 0), "--seq-len", "64 tokens");
    MLAWB_EXPECT_ERROR(b.set_state("garbage"), "sampler_state");
    // Windows are copied from the stream at the drawn offsets.
    std::vector<int32_t> stream(300);
    for (int i = 0; i < 300; ++i) stream[i] = i;
    WindowSampler e(300, 9, 3), f(300, 9, 3);
    std::vector<int64_t> w = draw_windows(stream, e, 4);
    for (int b2 = 0; b2 < 4; ++b2) {
        const int64_t start = f.next();
        for (int j = 0; j < 9; ++j) QCOMPARE(w[b2 * 9 + j], start + j);
    }
}

void TestTrainer::gradientMatchesFiniteDifferences_data() {
    QTest::addColumn<int>("n_kv");
    QTest::addColumn<bool>("tied");
    QTest::addColumn<QString>("spec");
    QTest::newRow("MHA original") << 4 << true << "";
    QTest::newRow("MHA joint r2 d_kv4") << 4 << true << "strategy=high,r=2,d_kv=4,svd=joint";
    QTest::newRow("MHA split r2 d_kv4") << 4 << true << "strategy=high,r=2,d_kv=4,svd=split";
    QTest::newRow("GQA joint r2 d_kv6") << 2 << false << "strategy=high,r=2,d_kv=6,svd=joint";
    QTest::newRow("GQA split r2 d_kv6") << 2 << false << "strategy=high,r=2,d_kv=6,svd=split";
    QTest::newRow("GQA partial RoPE only") << 2 << false << "strategy=high,r=2";
}

// d loss / d w from our backward against central differences (h = 1e-6) in float64, at a few
// entries of every parameter tensor (the MLA projections included).
void TestTrainer::gradientMatchesFiniteDifferences() {
    QFETCH(int, n_kv);
    QFETCH(bool, tied);
    QFETCH(QString, spec);
    LlamaForCausalLM m = tiny_model(n_kv, tied, 21);
    if (!spec.isEmpty()) convert_to_mla(*m, MlaSpec::parse(spec.toStdString()), pairs_1_3(m->config()));
    m->to(torch::kFloat64);
    for (auto& p : m->parameters()) p.set_requires_grad(true);
    torch::manual_seed(4);
    torch::Tensor windows = torch::randint(0, 64, {2, 13}, torch::kInt64);

    torch::Tensor loss = causal_lm_loss(*m, windows);
    QCOMPARE(loss.scalar_type(), torch::kFloat64);
    loss.backward();
    auto loss_at = [&] {
        torch::NoGradGuard no_grad;
        return causal_lm_loss(*m, windows).item<double>();
    };
    const double h = 1e-6;
    double worst = 0;
    int checked = 0;
    bool saw_latent = spec.isEmpty() || spec.indexOf("d_kv") < 0;
    std::mt19937_64 pick(99);
    for (auto& item : m->named_parameters()) {
        torch::Tensor p = item.value();
        QVERIFY2(p.grad().defined(), qPrintable(QString::fromStdString(item.key())));
        torch::Tensor flat = p.detach().view(-1), grad = p.grad().view(-1);
        if (item.key().find("kv_down_proj") != std::string::npos) saw_latent = true;
        for (int k = 0; k < 4; ++k) {
            const int64_t i = static_cast<int64_t>(pick() % static_cast<uint64_t>(flat.numel()));
            const double w = flat[i].item<double>();
            flat[i].fill_(w + h);
            const double up = loss_at();
            flat[i].fill_(w - h);
            const double down = loss_at();
            flat[i].fill_(w);
            const double numeric = (up - down) / (2 * h);
            const double analytic = grad[i].item<double>();
            const double err = std::abs(numeric - analytic) / std::max(1e-3, std::abs(numeric));
            worst = std::max(worst, err);
            ++checked;
            QVERIFY2(std::abs(numeric - analytic) <= 1e-7 + 1e-5 * std::abs(numeric),
                     qPrintable(QString("%1[%2]: analytic %3, finite difference %4")
                                    .arg(QString::fromStdString(item.key()))
                                    .arg(i)
                                    .arg(analytic, 0, 'g', 12)
                                    .arg(numeric, 0, 'g', 12)));
        }
    }
    QVERIFY(saw_latent);
    qInfo("%s: %d entries, worst relative error %.2e", qPrintable(spec.isEmpty() ? "original" : spec), checked, worst);
}

// 2 x 50 updates with a checkpoint, a fresh process-like reload and a resume in between equal
// 100 updates straight, on a converted fixture model (the checkpoint is an MLA folder).
void TestTrainer::resumeContinuesTheSameCurve() {
    MLAWB_REQUIRE_PATH(test::model_dir("wb-tiny-mha") + "/model.safetensors");
    MLAWB_REQUIRE_PATH(test::fixtures_dir() + "/finetune/text.txt");
    const MlaSpec spec = MlaSpec::parse("strategy=high,r=4,d_kv=16,svd=joint");
    auto converted = [&] {
        LoadedModel m = load_fixture("wb-tiny-mha");
        KeptPairs kept(m.config.n_layer, m.config.n_kv_head, m.config.head_dim / 2);
        for (int64_t l = 0; l < m.config.n_layer; ++l)
            for (int64_t g = 0; g < m.config.n_kv_head; ++g)
                for (int64_t k = 0; k < 4; ++k) kept.set(l, g, k);
        convert_to_mla(*m.model, spec, kept);
        return m;
    };
    LoadedModel straight = converted();
    const std::vector<int32_t> stream = fixture_stream(straight.tokenizer, 40000);
    const ModelFolderSource source{
        model_config_json(*straight.model, read_file(straight.folder + "/config.json"), spec.strategy, spec.to_string()),
        straight.folder};
    TrainOptions options = small_run(100);
    Trainer a(*straight.model, stream, options, source);
    a.run({});
    QCOMPARE(a.step(), int64_t(100));

    QTemporaryDir dir;
    options.checkpoint_dir = dir.filePath("ckpt").toStdString();
    options.save_every = 20;  // step-20, step-40 (removed: keep 2), then the stop at 50
    LoadedModel first_half = converted();
    Trainer b(*first_half.model, stream, options, source);
    b.run({}, /*stop_after=*/50);
    QCOMPARE(b.step(), int64_t(50));
    const std::string ckpt = find_checkpoint(options.checkpoint_dir);
    QCOMPARE(fs::path(ckpt).filename().string(), std::string("step-000050"));
    QVERIFY(!fs::exists(fs::path(options.checkpoint_dir) / "step-000020"));
    QVERIFY(fs::exists(fs::path(options.checkpoint_dir) / "step-000040"));

    LoadedModel reloaded = load_model(ckpt);  // opens as an MLA model from the folder alone
    QVERIFY(reloaded.config.mla.present);
    QCOMPARE(reloaded.config.mla.d_kv, int64_t(16));
    Trainer c(*reloaded.model, stream, options, source);
    c.resume(ckpt, /*weights_loaded=*/true);
    QCOMPARE(c.step(), int64_t(50));
    c.run({});
    QCOMPARE(c.step(), int64_t(100));
    QCOMPARE(c.log().size(), size_t(100));

    const double final_straight = a.log().back().loss, final_resumed = c.log().back().loss;
    qInfo("loss at step 1 %.4f, at 100: straight %.8f, resumed %.8f", a.log().front().loss, final_straight, final_resumed);
    QVERIFY2(std::abs(final_straight - final_resumed) <= 1e-5, qPrintable(QString::number(final_resumed - final_straight)));
    for (int i = 50; i < 100; ++i) QVERIFY(std::abs(a.log()[i].loss - c.log()[i].loss) <= 1e-5);
    QVERIFY(a.log().back().loss < a.log().front().loss);
    auto pa = straight.model->named_parameters(), pc = reloaded.model->named_parameters();
    for (const auto& item : pa) {
        const double diff = (item.value() - pc[item.key()]).abs().max().item<double>();
        QVERIFY2(diff <= 1e-5, qPrintable(QString::fromStdString(item.key())));
    }

    // The final folder loads and computes what the trained model computes.
    const std::string out = dir.filePath("out").toStdString();
    c.save_model(out);
    LoadedModel final_model = load_model(out);
    torch::Tensor ids = torch::tensor(std::vector<int64_t>(stream.begin(), stream.begin() + 40)).unsqueeze(0);
    torch::NoGradGuard no_grad;
    KVCache c1 = reloaded.model->make_cache(), c2 = final_model.model->make_cache();
    const double diff = (reloaded.model->forward(ids, c1) - final_model.model->forward(ids, c2)).abs().max().item<double>();
    QCOMPARE(diff, 0.0);
    MLAWB_EXPECT_ERROR(c.save_model(out), "already exists");
}

void TestTrainer::resumeRefusesAnotherRun() {
    MLAWB_REQUIRE_PATH(test::model_dir("wb-tiny-mha") + "/model.safetensors");
    LoadedModel m = load_fixture("wb-tiny-mha");
    const std::vector<int32_t> stream = fixture_stream(m.tokenizer, 8000);
    QTemporaryDir dir;
    TrainOptions options = small_run(10);
    options.checkpoint_dir = dir.filePath("ckpt").toStdString();
    Trainer a(*m.model, stream, options, source_of(m));
    a.run({}, 2);
    const std::string ckpt = find_checkpoint(options.checkpoint_dir);
    options.batch = 4;
    Trainer b(*m.model, stream, options, source_of(m));
    MLAWB_EXPECT_ERROR(b.resume(ckpt), "trainer_state.json", "run.batch", "trained with 2");
    MLAWB_EXPECT_ERROR(find_checkpoint(dir.path().toStdString()), "holds no checkpoint");
}

// --train attn: only attention and norm weights move; embeddings, MLPs and lm_head keep every bit.
void TestTrainer::attnLeavesOtherWeightsBitIdentical() {
    MLAWB_REQUIRE_PATH(test::model_dir("wb-tiny-gqa") + "/model.safetensors");
    LoadedModel m = load_fixture("wb-tiny-gqa");  // untied: lm_head.weight is its own tensor
    const std::vector<int32_t> stream = fixture_stream(m.tokenizer, 8000);
    std::map<std::string, torch::Tensor> before;
    for (const auto& p : m.model->named_parameters()) before[p.key()] = p.value().detach().clone();
    TrainOptions options = small_run(3);
    options.warmup = 0;
    options.params = TrainParams::Attention;
    Trainer t(*m.model, stream, options, source_of(m));
    t.run({});
    int frozen = 0, moved = 0;
    for (const auto& p : m.model->named_parameters()) {
        const bool same = torch::equal(p.value(), before[p.key()]);
        if (is_trained(TrainParams::Attention, p.key())) {
            QVERIFY2(!same, qPrintable("did not train: " + QString::fromStdString(p.key())));
            ++moved;
        } else {
            QVERIFY2(same, qPrintable("changed: " + QString::fromStdString(p.key())));
            ++frozen;
        }
    }
    QCOMPARE(frozen, 1 + 1 + 6 * 3);  // embed_tokens, lm_head, 3 MLP matrices per layer
    QCOMPARE(moved, 6 * (4 + 2) + 1);  // q/k/v/o and two norms per layer, the final norm
    QVERIFY(is_trained(TrainParams::Attention, "model.layers.0.self_attn.kv_down_proj.weight"));
    QVERIFY(!is_trained(TrainParams::Attention, "model.layers.0.mlp.up_proj.weight"));
}

// Two micro-batches of one window each draw the same windows as one batch of two: the curve
// changes only by float rounding.
void TestTrainer::accumulationKeepsTheCurve() {
    MLAWB_REQUIRE_PATH(test::model_dir("wb-tiny-mha") + "/model.safetensors");
    std::vector<double> losses[2];
    for (int accum = 1; accum <= 2; ++accum) {
        LoadedModel m = load_fixture("wb-tiny-mha");
        const std::vector<int32_t> stream = fixture_stream(m.tokenizer, 8000);
        TrainOptions options = small_run(6);
        options.accum = accum;
        Trainer t(*m.model, stream, options, source_of(m));
        t.run({});
        for (const StepLog& s : t.log()) losses[accum - 1].push_back(s.loss);
    }
    for (size_t i = 0; i < losses[0].size(); ++i) QVERIFY(std::abs(losses[0][i] - losses[1][i]) < 1e-4);
    TrainOptions bad = small_run(6);
    bad.accum = 3;
    MLAWB_EXPECT_ERROR(bad.validate(), "--accum");
}

QTEST_GUILESS_MAIN(TestTrainer)
#include "test_trainer.moc"

#else  // MLAWB_GPU_TESTS

namespace {

int g_failures = 0;

void check(bool ok, const std::string& what) {
    std::printf("%s: %s\n", ok ? "PASS" : "FAIL", what.c_str());
    if (!ok) ++g_failures;
}

std::vector<double> curve(bool cuda, int64_t steps, TrainParams params, LoadedModel* keep = nullptr) {
    LoadedModel m = load_fixture("wb-tiny-mha");
    if (cuda) m.model->place(parse_placement("cuda", "f32"));
    const std::vector<int32_t> stream = fixture_stream(m.tokenizer, 200000);
    TrainOptions options = small_run(steps);
    options.batch = 4;
    options.seq_len = 256;
    options.params = params;
    Trainer t(*m.model, stream, options, source_of(m));
    t.run({});
    std::vector<double> losses;
    for (const StepLog& s : t.log()) losses.push_back(s.loss);
    std::printf("%s: loss %.4f -> %.4f, %.0f tok/s\n", cuda ? "cuda bf16 autocast" : "cpu f32", losses.front(), losses.back(),
                t.log().back().tokens_per_s);
    if (keep) *keep = std::move(m);
    return losses;
}

}  // namespace

// The same 30 updates on CUDA (bf16 autocast, float32 master weights) and on the CPU (float32):
// the curves agree to bf16 accuracy and go down; --train attn keeps the other weights bit for
// bit on the GPU too; a checkpoint written on the GPU resumes there.
int main() {
    if (!torch::cuda::is_available()) {
        std::printf("FAIL: no CUDA device (this test carries the gpu label)\n");
        return 1;
    }
    if (!std::ifstream(model_path("wb-tiny-mha") + "/model.safetensors")) {
        std::printf("FAIL: test data missing: %s\n", model_path("wb-tiny-mha").c_str());
        return 1;
    }
    const std::vector<double> cpu = curve(false, 30, TrainParams::All), gpu = curve(true, 30, TrainParams::All);
    check(gpu.back() < gpu.front() - 0.1, "the CUDA loss goes down");
    double worst = 0;
    for (size_t i = 0; i < cpu.size(); ++i) worst = std::max(worst, std::abs(cpu[i] - gpu[i]) / cpu[i]);
    char buf[96];
    std::snprintf(buf, sizeof(buf), "CUDA curve within 5%% of the CPU curve at every step (worst %.2f%%)", 100 * worst);
    check(worst < 0.05, buf);

    LoadedModel m = load_fixture("wb-tiny-mha");
    std::map<std::string, torch::Tensor> before;
    for (const auto& p : m.model->named_parameters()) before[p.key()] = p.value().detach().clone();
    LoadedModel trained;
    curve(true, 10, TrainParams::Attention, &trained);  // small_run: 5 warmup + 2 decay steps fit
    bool frozen_same = true, trained_moved = true;
    for (const auto& p : trained.model->named_parameters()) {
        const bool same = torch::equal(p.value().cpu(), before[p.key()]);
        if (is_trained(TrainParams::Attention, p.key())) trained_moved = trained_moved && !same;
        else frozen_same = frozen_same && same;
    }
    check(frozen_same, "--train attn on CUDA: embeddings and MLPs bit-identical");
    check(trained_moved, "--train attn on CUDA: attention and norm weights moved");

    const std::string dir = "/tmp/test_trainer_gpu-" + std::to_string(getpid());
    fs::remove_all(dir);
    {
        LoadedModel a = load_fixture("wb-tiny-mha");
        a.model->place(parse_placement("cuda", "f32"));
        const std::vector<int32_t> stream = fixture_stream(a.tokenizer, 200000);
        TrainOptions options = small_run(20);
        options.batch = 4;
        options.seq_len = 256;
        options.checkpoint_dir = dir;
        Trainer first(*a.model, stream, options, source_of(a));
        first.run({}, 10);
        const std::string ckpt = find_checkpoint(dir);
        LoadedModel b = load_model(ckpt);
        b.model->place(parse_placement("cuda", "f32"));
        Trainer second(*b.model, stream, options, source_of(b));
        second.resume(ckpt, true);
        second.run({});
        const double resumed = second.log().back().loss;
        LoadedModel c = load_fixture("wb-tiny-mha");
        c.model->place(parse_placement("cuda", "f32"));
        TrainOptions straight_options = options;
        straight_options.checkpoint_dir.clear();
        Trainer straight(*c.model, stream, straight_options, source_of(c));
        straight.run({});
        const double straight_loss = straight.log().back().loss;
        // cuBLAS and autocast are not bit-reproducible across processes: a tolerance, not equality.
        std::snprintf(buf, sizeof(buf), "CUDA resume at step 10 ends at the straight run's loss (%.5f vs %.5f)", resumed,
                      straight_loss);
        check(std::abs(resumed - straight_loss) < 1e-2, buf);
    }
    // std::filesystem::remove_all crashed here in the pip-torch CUDA build (2026-11-23, H100
    // machine, GCC there; not understood yet, see the session note); rm -rf does the cleanup.
    if (std::system(("rm -rf '" + dir + "'").c_str()) != 0) std::printf("note: could not remove %s\n", dir.c_str());
    std::printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "PASSED", g_failures);
    std::fflush(stdout);
    return g_failures ? 1 : 0;
}

#endif
