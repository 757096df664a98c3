// Pipeline by layer (issue 13): `--device a,b[,c...]` splits the decoder layers into contiguous
// ranges, one per device (balanced, or `--layer-split`), on the CPU here (cpu,cpu,...): the
// placement string and layer -> stage map are what was asked, logits and greedy decoding equal
// the single-device model exactly (original attention and MLA, float and quantized KV caches,
// both fixture models: tied and untied output weights), each layer's cache is of its layer's kind
// and device, and malformed lists fail naming the option. The CUDA half (cuda:0,cpu and
// cpu,cuda:0) is tests/gpu/test_pipeline_gpu.cpp.
#include "analysis/convert.h"
#include "analysis/mla_spec.h"
#include "analysis/setting.h"
#include "app/cli/commands.h"
#include "core/batched_decode.h"
#include "core/error.h"
#include "core/generate.h"
#include "core/kv_cache.h"
#include "core/llama_model.h"
#include "core/mla_attention.h"
#include "eval/store.h"
#include "test_support.h"

#include <QTemporaryDir>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

using namespace mlawb;
using json = nlohmann::json;

namespace {

// The fixture model, converted in memory when `mla` is a spec ("" = original attention), with
// the cache options of the spec's kv_bits (or `cache_bits` for the original model).
LoadedModel load(const std::string& name, const std::string& mla, int cache_bits) {
    LoadedModel m = load_model(test::model_dir(name));
    CacheOptions cache;
    if (!mla.empty()) {
        ResolvedSetting s = resolve_setting(MlaSpec::parse(mla), m.config, nullptr);
        convert_to_mla(*m.model, s.spec, s.kept);
        cache = CacheOptions{s.spec.kv_bits, s.spec.kv_group, s.spec.residual};
    } else if (cache_bits < 16) {
        cache = CacheOptions{cache_bits, 64, 16};
    }
    m.model->set_cache_options(cache);
    return m;
}

std::vector<int64_t> prompt_ids(const LoadedModel& m) {
    std::ifstream in(test::fixtures_dir() + "/heldout.txt");
    std::string text(2000, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
    std::vector<int32_t> ids = m.tokenizer.encode(text);
    ids.resize(std::min<size_t>(ids.size(), 48));
    return std::vector<int64_t>(ids.begin(), ids.end());
}

// The prompt's logits [T, vocab], then `steps` greedy steps (one token each through the cache):
// their logits [steps, vocab] and the chosen ids.
struct Decoded {
    torch::Tensor prompt_logits, step_logits;
    std::vector<int64_t> ids;
};

Decoded decode(LlamaForCausalLMImpl& model, const std::vector<int64_t>& prompt, int64_t steps, KVCache& cache) {
    torch::NoGradGuard no_grad;
    Decoded d;
    d.prompt_logits = model.forward(torch::tensor(prompt, torch::kInt64).unsqueeze(0), cache)[0];
    torch::Tensor last = d.prompt_logits[-1];
    std::vector<torch::Tensor> rows;
    for (int64_t s = 0; s < steps; ++s) {
        const int64_t next = last.argmax().item<int64_t>();
        d.ids.push_back(next);
        last = model.forward(torch::full({1, 1}, next, torch::kInt64), cache, LogitsFor::Last).view({-1});
        rows.push_back(last);
    }
    d.step_logits = torch::stack(rows);
    return d;
}

// The stage of every layer for a resolved placement: {0, 0, 0, 1, 1, 1} for cpu[0-2] cpu[3-5].
std::vector<int64_t> stage_map(const Placement& p) {
    std::vector<int64_t> out;
    for (size_t s = 0; s < p.split.size(); ++s)
        for (int64_t i = 0; i < p.split[s]; ++i) out.push_back(static_cast<int64_t>(s));
    return out;
}

int run_mlawb(const std::vector<std::string>& args, std::string* out = nullptr, std::string* err = nullptr) {
    std::ostringstream o, e;
    const int status = cli::run_cli(args, o, e);
    if (out) *out = o.str();
    if (err) *err = e.str();
    return status;
}

}  // namespace

class TestPipeline : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void placementString_data();
    void placementString();
    void badLists_data();
    void badLists();
    void placingRefusesSplitThatDoesNotFit();
    void equalsSingleDevice_data();
    void equalsSingleDevice();
    void cliPerplexityAndGenerateEqualSingleDevice();
    void cliErrorsNameTheOption_data();
    void cliErrorsNameTheOption();
    void evalRecordsThePlacement();
    void batchedDecodeRefusesSplitModel();
};

void TestPipeline::initTestCase() {
    for (const char* m : {"wb-tiny-mha", "wb-tiny-gqa"}) MLAWB_REQUIRE_PATH(test::model_dir(m) + "/model.safetensors");
    MLAWB_REQUIRE_PATH(test::fixtures_dir() + "/heldout.txt");
}

void TestPipeline::placementString_data() {
    QTest::addColumn<QString>("device");
    QTest::addColumn<QString>("split");
    QTest::addColumn<QString>("dtype");
    QTest::addColumn<QString>("expected");  // for a 6-layer model
    QTest::addColumn<QString>("stages");    // stage of each layer
    QTest::newRow("one device") << "cpu" << "" << "f32" << "cpu f32" << "000000";
    QTest::newRow("one device, split of all layers") << "cpu" << "6" << "bf16" << "cpu bf16" << "000000";
    QTest::newRow("two balanced") << "cpu,cpu" << "" << "f32" << "cpu[0-2] cpu[3-5] f32" << "000111";
    QTest::newRow("two 1+5") << "cpu,cpu" << "1,5" << "bf16" << "cpu[0] cpu[1-5] bf16" << "011111";
    QTest::newRow("two 5+1") << "cpu,cpu" << "5,1" << "f16" << "cpu[0-4] cpu[5] f16" << "000001";
    QTest::newRow("three balanced") << "cpu,cpu,cpu" << "" << "f32" << "cpu[0-1] cpu[2-3] cpu[4-5] f32" << "001122";
    QTest::newRow("four: first stages take the remainder") << "cpu,cpu,cpu,cpu" << "" << "f32"
                                                          << "cpu[0-1] cpu[2-3] cpu[4] cpu[5] f32" << "001123";
    QTest::newRow("one layer per device") << "cpu,cpu,cpu,cpu,cpu,cpu" << "" << "f32"
                                          << "cpu[0] cpu[1] cpu[2] cpu[3] cpu[4] cpu[5] f32" << "012345";
}

void TestPipeline::placementString() {
    QFETCH(QString, device);
    QFETCH(QString, split);
    QFETCH(QString, dtype);
    QFETCH(QString, expected);
    QFETCH(QString, stages);
    const Placement parsed = parse_placement(device.toStdString(), dtype.toStdString(), split.toStdString());
    const Placement p = parsed.resolved(6);
    QCOMPARE(QString::fromStdString(p.to_string()), expected);
    if (p.pipelined()) {
        QCOMPARE(p.split.size(), p.stages.size());
        QString map;
        for (int64_t s : stage_map(p)) map += QString::number(s);
        QCOMPARE(map, stages);
        // Unresolved, the list is shown as given.
        QCOMPARE(QString::fromStdString(parsed.to_string()).section(' ', 0, 0),
                 split.isEmpty() ? device : QString::fromStdString(parsed.to_string()).section(' ', 0, 0));
    }
    QCOMPARE(static_cast<int>(p.layer_devices(6).size()), 6);
}

void TestPipeline::badLists_data() {
    QTest::addColumn<QString>("device");
    QTest::addColumn<QString>("split");
    QTest::addColumn<QString>("option");
    QTest::addColumn<QString>("needle");
    QTest::newRow("empty item") << "cuda:0,,cpu" << "" << "--device" << "empty device in 'cuda:0,,cpu'";
    QTest::newRow("leading comma") << ",cpu" << "" << "--device" << "empty device";
    QTest::newRow("trailing comma") << "cpu," << "" << "--device" << "empty device";
    QTest::newRow("unknown device in a list") << "cpu,gpu" << "" << "--device" << "'gpu' in 'cpu,gpu'";
    QTest::newRow("more devices than layers") << "cpu,cpu,cpu,cpu,cpu,cpu,cpu" << "" << "--device" << "7 devices for a model of 6 layers";
    QTest::newRow("split sums short") << "cpu,cpu" << "2,2" << "--layer-split" << "sum to 4, but the model has 6 layers";
    QTest::newRow("split sums over") << "cpu,cpu" << "4,4" << "--layer-split" << "sum to 8";
    QTest::newRow("split count != devices") << "cpu,cpu" << "6" << "--layer-split" << "1 layer count(s) for 2 device(s)";
    QTest::newRow("split too long") << "cpu,cpu" << "2,2,2" << "--layer-split" << "3 layer count(s) for 2 device(s)";
    QTest::newRow("split zero") << "cpu,cpu" << "0,6" << "--layer-split" << "positive layer counts";
    QTest::newRow("split not a number") << "cpu,cpu" << "3,x" << "--layer-split" << "positive layer counts";
    QTest::newRow("split empty item") << "cpu,cpu" << "3,,3" << "--layer-split" << "positive layer counts";
    QTest::newRow("split negative") << "cpu,cpu" << "-1,7" << "--layer-split" << "positive layer counts";
    QTest::newRow("one device, split short") << "cpu" << "5" << "--layer-split" << "sum to 5";
}

void TestPipeline::badLists() {
    QFETCH(QString, device);
    QFETCH(QString, split);
    QFETCH(QString, option);
    QFETCH(QString, needle);
    const std::string opt = option.toStdString(), what = needle.toStdString();
    MLAWB_EXPECT_ERROR(parse_placement(device.toStdString(), "f32", split.toStdString()).resolved(6), opt.c_str(),
                       what.c_str());
}

void TestPipeline::placingRefusesSplitThatDoesNotFit() {
    LoadedModel m = load_model(test::model_dir("wb-tiny-mha"));
    MLAWB_EXPECT_ERROR(m.model->place(parse_placement("cpu,cpu", "f32", "3,4")), "--layer-split", "sum to 7");
    MLAWB_EXPECT_ERROR(m.model->place(parse_placement("cpu,cpu,cpu,cpu,cpu,cpu,cpu", "f32")), "--device", "7 devices");
    // Nothing moved: still one device.
    QVERIFY(!m.model->placement().pipelined());
}

void TestPipeline::equalsSingleDevice_data() {
    QTest::addColumn<QString>("model");
    QTest::addColumn<QString>("mla");  // "" = original attention
    QTest::addColumn<int>("cacheBits");
    QTest::addColumn<QString>("device");
    QTest::addColumn<QString>("split");
    QTest::addColumn<QString>("dtype");
    QTest::addColumn<QString>("expected");
    struct Case {
        const char* device;
        const char* split;
        const char* expected;
    };
    const Case places[] = {{"cpu,cpu", "", "cpu[0-2] cpu[3-5]"},
                           {"cpu,cpu", "1,5", "cpu[0] cpu[1-5]"},
                           {"cpu,cpu,cpu", "2,3,1", "cpu[0-1] cpu[2-4] cpu[5]"}};
    struct Variant {
        const char* label;
        const char* mla;
        int bits;
    };
    const Variant variants[] = {{"original", "", 16},
                                {"original 4-bit cache", "", 4},
                                {"mla joint", "strategy=high,r=4,d_kv=16,svd=joint", 16},
                                {"mla split", "strategy=uniform,r=4,d_kv=16,svd=split", 16},
                                {"mla partial rope", "strategy=low,r=8,svd=none", 16},
                                {"mla joint 4-bit cache", "strategy=high,r=4,d_kv=16,svd=joint,kv_bits=4,kv_group=16,residual=16", 16},
                                {"mla joint 2-bit cache", "strategy=high,r=4,d_kv=16,svd=joint,kv_bits=2,kv_group=16,residual=8", 16}};
    for (const char* m : {"wb-tiny-mha", "wb-tiny-gqa"})
        for (const Variant& v : variants)
            for (const Case& c : places)
                QTest::newRow(qPrintable(QString("%1 %2 %3 %4").arg(m, v.label, c.device, c.split)))
                    << QString(m) << QString(v.mla) << v.bits << QString(c.device) << QString(c.split) << "f32"
                    << QString(c.expected) + " f32";
    // Casting per module gives the same weights as casting the whole model.
    QTest::newRow("wb-tiny-gqa original bf16 cpu,cpu") << "wb-tiny-gqa" << "" << 16 << "cpu,cpu" << "" << "bf16"
                                                      << "cpu[0-2] cpu[3-5] bf16";
    QTest::newRow("wb-tiny-mha mla joint bf16 cpu,cpu 4,2")
        << "wb-tiny-mha" << "strategy=high,r=4,d_kv=16,svd=joint" << 16 << "cpu,cpu" << "4,2" << "bf16"
        << "cpu[0-3] cpu[4-5] bf16";
}

void TestPipeline::equalsSingleDevice() {
    QFETCH(QString, model);
    QFETCH(QString, mla);
    QFETCH(int, cacheBits);
    QFETCH(QString, device);
    QFETCH(QString, split);
    QFETCH(QString, dtype);
    QFETCH(QString, expected);
    const int64_t steps = 5;
    // The single-device model and the pipelined one, loaded and converted alike.
    LoadedModel single = load(model.toStdString(), mla.toStdString(), cacheBits);
    LoadedModel piped = load(model.toStdString(), mla.toStdString(), cacheBits);
    single.model->place(parse_placement("cpu", dtype.toStdString()));
    const Placement asked = parse_placement(device.toStdString(), dtype.toStdString(), split.toStdString());
    piped.model->place(asked);

    // The layer -> device map is what was asked.
    const Placement where = piped.model->placement();
    QVERIFY(where.pipelined());
    QCOMPARE(QString::fromStdString(where.to_string()), expected);
    const int64_t n_layer = piped.config.n_layer;
    const std::vector<torch::Device> devices = asked.layer_devices(n_layer);
    const std::vector<int64_t> stages = stage_map(where);
    QCOMPARE(static_cast<int64_t>(stages.size()), n_layer);
    if (!split.isEmpty()) {
        // Layers 0 .. c0-1 on stage 0, the next c1 on stage 1, ...
        int64_t l = 0, stage = 0;
        for (const QString& count : split.split(',')) {
            for (int i = 0; i < count.toInt(); ++i, ++l) QCOMPARE(stages[static_cast<size_t>(l)], stage);
            ++stage;
        }
        QCOMPARE(l, n_layer);
        std::vector<int64_t> given;
        for (const QString& count : split.split(',')) given.push_back(count.toLongLong());
        QCOMPARE(where.split, given);
    }
    for (int64_t l = 0; l < n_layer; ++l) {
        QVERIFY(piped.model->layer_device(l) == devices[static_cast<size_t>(l)]);
        for (const auto& p : piped.model->layer(l)->parameters()) {
            QVERIFY(p.device() == devices[static_cast<size_t>(l)]);
            QVERIFY(p.scalar_type() == asked.dtype);
        }
    }
    QVERIFY(piped.model->device() == asked.first_device());
    QVERIFY(piped.model->dtype() == asked.dtype);

    // Logits and greedy steps equal the single-device model's exactly.
    const std::vector<int64_t> prompt = prompt_ids(single);
    QVERIFY(prompt.size() >= 32);
    KVCache single_cache = single.model->make_cache();
    KVCache piped_cache = piped.model->make_cache();
    const Decoded a = decode(*single.model, prompt, steps, single_cache);
    const Decoded b = decode(*piped.model, prompt, steps, piped_cache);
    QVERIFY(b.prompt_logits.device().is_cpu());
    QVERIFY(b.prompt_logits.scalar_type() == torch::kFloat32);
    QVERIFY2(torch::equal(a.prompt_logits, b.prompt_logits),
             qPrintable(QString("prompt logits differ by %1").arg((a.prompt_logits - b.prompt_logits).abs().max().item<double>())));
    QVERIFY2(torch::equal(a.step_logits, b.step_logits),
             qPrintable(QString("decode logits differ by %1").arg((a.step_logits - b.step_logits).abs().max().item<double>())));
    QCOMPARE(a.ids, b.ids);

    // Each layer's cache is of its layer's kind, holds every token, quantized as asked.
    const int64_t tokens = static_cast<int64_t>(prompt.size()) + steps;
    QCOMPARE(static_cast<int64_t>(piped_cache.layer_count()), n_layer);
    QCOMPARE(piped_cache.bytes(), single_cache.bytes());
    const bool quantized = piped.model->cache_options().quantized();
    QCOMPARE(quantized, cacheBits < 16 || mla.contains("kv_bits"));
    for (int64_t l = 0; l < n_layer; ++l) {
        LayerCache& c = piped_cache.layer(static_cast<size_t>(l));
        QCOMPARE(c.length(), tokens);
        if (mla.isEmpty()) {
            auto* s = dynamic_cast<StandardLayerCache*>(&c);
            QVERIFY(s);
            QCOMPARE(s->keys.quantized(), quantized);
        } else {
            auto* s = dynamic_cast<MlaLayerCache*>(&c);
            QVERIFY(s);
            QCOMPARE(s->k_rope.quantized(), quantized);
            if (!mla.contains("svd=none")) QCOMPARE(s->latent.length(), tokens);
        }
    }

    // greedy_generate (ids on the model's first device) agrees too.
    GenerateOptions options;
    options.max_new_tokens = steps;
    options.stop_at_eos = false;
    QCOMPARE(greedy_generate(*piped.model, prompt, options).ids, greedy_generate(*single.model, prompt, options).ids);
}

// The CLI: --device cpu,cpu with a split prints exactly the single-device perplexity and
// continuation, original and converted with a quantized cache.
void TestPipeline::cliPerplexityAndGenerateEqualSingleDevice() {
    const std::string model = test::model_dir("wb-tiny-gqa");
    const std::string text = test::fixtures_dir() + "/heldout.txt";
    for (const std::string mla : {"", "strategy=high,r=4,d_kv=16,kv_bits=4,kv_group=16,residual=16"}) {
        std::vector<std::string> ppl = {"perplexity", model, "--text", text, "--window", "96", "--max-windows", "3", "--json"};
        std::vector<std::string> gen = {"generate", model, "--prompt", "The package manager", "--max-new", "8", "--json"};
        if (!mla.empty())
            for (auto* v : {&ppl, &gen}) {
                v->push_back("--mla");
                v->push_back(mla);
            }
        std::string out, err;
        QCOMPARE(run_mlawb(ppl, &out, &err), 0);
        const double one = json::parse(out)["perplexity"].get<double>();
        std::vector<std::string> ppl2 = ppl;
        for (const char* a : {"--device", "cpu,cpu", "--layer-split", "2,4"}) ppl2.push_back(a);
        QVERIFY2(run_mlawb(ppl2, &out, &err) == 0, err.c_str());
        const double two = json::parse(out)["perplexity"].get<double>();
        qInfo("perplexity %s: cpu %.6f, cpu,cpu 2+4 %.6f", mla.empty() ? "original" : mla.c_str(), one, two);
        QCOMPARE(two, one);

        QCOMPARE(run_mlawb(gen, &out, &err), 0);
        const json g1 = json::parse(out);
        std::vector<std::string> gen2 = gen;
        for (const char* a : {"--device", "cpu,cpu,cpu"}) gen2.push_back(a);
        QVERIFY2(run_mlawb(gen2, &out, &err) == 0, err.c_str());
        const json g2 = json::parse(out);
        QCOMPARE(g2["ids"], g1["ids"]);
        QCOMPARE(g2["kv_cache_bytes"], g1["kv_cache_bytes"]);
    }
}

void TestPipeline::cliErrorsNameTheOption_data() {
    QTest::addColumn<QStringList>("args");  // after MODEL
    QTest::addColumn<QString>("needle");
    QTest::newRow("empty device") << QStringList{"--device", "cuda:0,,cpu"} << "error: --device: empty device";
    QTest::newRow("split not summing") << QStringList{"--device", "cpu,cpu", "--layer-split", "2,2"}
                                       << "error: --layer-split: the counts sum to 4, but the model has 6 layers";
    QTest::newRow("more devices than layers") << QStringList{"--device", "cpu,cpu,cpu,cpu,cpu,cpu,cpu"}
                                              << "error: --device: 7 devices for a model of 6 layers";
    QTest::newRow("split without a list") << QStringList{"--layer-split", "3,3"} << "error: --layer-split: 2 layer count(s) for 1 device(s)";
}

void TestPipeline::cliErrorsNameTheOption() {
    QFETCH(QStringList, args);
    QFETCH(QString, needle);
    const std::string model = test::model_dir("wb-tiny-mha");
    std::vector<std::string> base[] = {
        {"perplexity", model, "--text", test::fixtures_dir() + "/heldout.txt", "--window", "64", "--max-windows", "1"},
        {"generate", model, "--prompt", "x", "--max-new", "1"},
        {"info", model}};
    for (auto& command : base) {
        for (const QString& a : args) command.push_back(a.toStdString());
        std::string out, err;
        QCOMPARE(run_mlawb(command, &out, &err), 2);
        QVERIFY2(err.find(needle.toStdString()) != std::string::npos, qPrintable(QString::fromStdString(err)));
    }
    // finetune trains on one device: a list is refused by name.
    std::string out, err;
    QCOMPARE(run_mlawb({"finetune", model, "--data", test::fixtures_dir() + "/heldout.txt", "--steps", "1", "--batch", "1",
                  "--seq-len", "8", "--out", "/nonexistent/out", "--device", "cpu,cpu"},
                 &out, &err),
             2);
    QVERIFY2(err.find("error: --device: finetune trains on one device") != std::string::npos, err.c_str());
}

// `mlawb eval` records where the run computed: the placement with its layer ranges.
void TestPipeline::evalRecordsThePlacement() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string text = dir.path().toStdString() + "/short.txt";
    {
        std::ifstream in(test::fixtures_dir() + "/heldout.txt");
        std::string head(3000, '\0');
        in.read(head.data(), static_cast<std::streamsize>(head.size()));
        head.resize(static_cast<size_t>(in.gcount()));
        std::ofstream(text) << head;
    }
    const std::string db = dir.path().toStdString() + "/results.db";
    const std::string model = test::model_dir("wb-tiny-mha");
    std::string out, err;
    QVERIFY2(run_mlawb({"eval", model, "--perplexity", text, "--db", db, "--json"}, &out, &err) == 0, err.c_str());
    const double one = json::parse(out)["scores"]["perplexity"].get<double>();
    const std::string db2 = dir.path().toStdString() + "/results2.db";
    QVERIFY2(run_mlawb({"eval", model, "--perplexity", text, "--db", db2, "--json", "--device", "cpu,cpu", "--layer-split", "5,1"},
                 &out, &err) == 0,
             err.c_str());
    const json j = json::parse(out);
    QCOMPARE(j["scores"]["perplexity"].get<double>(), one);
    ResultsStore store = ResultsStore::open(db2);
    const RunDetail run = store.run(j["runs"]["perplexity"].get<int64_t>());
    QCOMPARE(QString::fromStdString(run.device), QString("cpu[0-4] cpu[5] f32"));
}

// The fused batched decode runs on one device: a model placed on a device list is refused with an
// error naming --device; the same model on one device is taken.
void TestPipeline::batchedDecodeRefusesSplitModel() {
    LoadedModel m = load_model(test::model_dir("wb-tiny-mha"));
    m.model->place(parse_placement("cpu,cpu", "f32", "4,2"));
    MLAWB_EXPECT_ERROR(BatchedDecoder(*m.model, BatchedDecodeOptions{}), "--device", "one device", "cpu[0-3] cpu[4-5] f32");
    m.model->place(parse_placement("cpu", "f32"));
    QVERIFY(!m.model->placement().pipelined());
    BatchedDecoder dec(*m.model, BatchedDecodeOptions{});
    QCOMPARE(dec.batch(), int64_t(1));
}

QTEST_GUILESS_MAIN(TestPipeline)
#include "test_pipeline.moc"
