// Spectra of W_k, W_k,nope, W_v and [W_k,nope ; W_v] against a direct double-precision SVD
// (torch::linalg_svdvals on kFloat64, LAPACK dgesdd) of the explicitly stacked matrices, built
// here independently of analysis/spectrum.cpp from the mask.
//
// Tolerances (see the bound in analysis/spectrum.cpp):
//   singular values   |sigma - sigma_ref| <= 1e-6 sigma_ref_max   (the acceptance; observed 4e-9)
//   energy at rank    |energy - energy_ref| <= 1e-10               (sums of sigma^2)
//   truncation error  |error - error_ref| <= 1e-8                  (sqrt of a ratio of sums)
#include "test_support.h"

#include "analysis/spectrum.h"
#include "analysis/strategies.h"
#include "core/config.h"
#include "core/error.h"
#include "core/llama_model.h"
#include "core/safetensors.h"

#include <torch/torch.h>

#include <QTemporaryDir>
#include <algorithm>
#include <cmath>

using namespace mlawb;

namespace {

constexpr double kSigmaTolerance = 1e-6;   // relative to the largest reference singular value
constexpr double kEnergyTolerance = 1e-10;
constexpr double kErrorTolerance = 1e-8;

// Masks built here rather than through the strategy registry, so these tests depend only on
// the spectrum code: high {0..r-1}, low {P-r..P-1}, full (every pair), staggered (head- and
// layer-dependent pairs {(l + g + 7 j) mod P}, which catches a wrong head or layer offset).
KeptPairs make_mask(const ModelConfig& c, const std::string& kind, int64_t r) {
    const int64_t pairs = c.head_dim / 2;
    KeptPairs kept(c.n_layer, c.n_kv_head, pairs);
    for (int64_t l = 0; l < c.n_layer; ++l)
        for (int64_t g = 0; g < c.n_kv_head; ++g) {
            if (kind == "full")
                for (int64_t k = 0; k < pairs; ++k) kept.set(l, g, k);
            for (int64_t j = 0; j < r && kind != "full"; ++j) {
                const int64_t k = kind == "high" ? j : kind == "low" ? pairs - r + j : (l + g + 7 * j) % pairs;
                kept.set(l, g, k);
            }
        }
    return kept;
}

torch::Tensor read_double(const Checkpoint& ckpt, int64_t layer, const char* projection) {
    const std::string name = "model.layers." + std::to_string(layer) + ".self_attn." + projection + ".weight";
    return to_float_tensor(ckpt.get(name)).to(torch::kFloat64);
}

// The four matrices of one layer, stacked explicitly: W_k,nope keeps the rows j of each head
// whose pair (j mod d/2) does not keep RoPE.
struct ReferenceLayer {
    torch::Tensor k, k_nope, v, joint;
};

ReferenceLayer reference_matrices(const Checkpoint& ckpt, const ModelConfig& c, const KeptPairs& kept, int64_t layer) {
    ReferenceLayer ref;
    ref.k = read_double(ckpt, layer, "k_proj");
    ref.v = read_double(ckpt, layer, "v_proj");
    std::vector<torch::Tensor> nope_rows;
    for (int64_t g = 0; g < c.n_kv_head; ++g)
        for (int64_t j = 0; j < c.head_dim; ++j)
            if (!kept.kept(layer, g, j % (c.head_dim / 2))) nope_rows.push_back(ref.k[g * c.head_dim + j]);
    ref.k_nope = nope_rows.empty() ? torch::zeros({0, c.hidden}, torch::kFloat64) : torch::stack(nope_rows);
    ref.joint = torch::cat({ref.k_nope, ref.v}, 0);
    return ref;
}

std::vector<double> reference_sigma(const torch::Tensor& matrix) {
    if (matrix.size(0) == 0) return {};
    torch::Tensor s = torch::linalg_svdvals(matrix).contiguous();
    return std::vector<double>(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
}

// max_i |got_i - ref_i| / max(ref); infinite when the counts differ (the caller's message
// then names the matrix).
double worst_relative_to_max(const std::vector<double>& got, const std::vector<double>& ref) {
    if (got.size() != ref.size()) return INFINITY;
    if (ref.empty()) return 0.0;
    double worst = 0.0;
    for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(got[i] - ref[i]));
    return worst / ref.front();
}

struct ReferenceTruncation {
    double kept = 0, dropped = 0;
};
ReferenceTruncation reference_truncation(const std::vector<double>& sigma, int64_t rank) {
    ReferenceTruncation t;
    for (size_t i = 0; i < sigma.size(); ++i) (static_cast<int64_t>(i) < rank ? t.kept : t.dropped) += sigma[i] * sigma[i];
    return t;
}

struct Fixture {
    ModelConfig config;
    Checkpoint checkpoint;
};
Fixture open_fixture(const std::string& name) {
    Fixture f;
    f.config = ModelConfig::from_file(test::model_dir(name) + "/config.json");
    f.checkpoint = Checkpoint::open_folder(test::model_dir(name));
    return f;
}

// Worst differences over every comparison, printed at the end.
double observed_worst_sigma_error = 0.0;  // relative to sigma_max
double observed_worst_energy_error = 0.0;
double observed_worst_error_error = 0.0;

// |got - want| <= tolerance, remembering the worst difference seen.
bool close(double got, double want, double tolerance, double& worst) {
    worst = std::max(worst, std::abs(got - want));
    return std::abs(got - want) <= tolerance;
}
bool energy_close(double got, double want) { return close(got, want, kEnergyTolerance, observed_worst_energy_error); }
bool error_close(double got, double want) { return close(got, want, kErrorTolerance, observed_worst_error_error); }

}  // namespace

class TestSpectrum : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void spectra_match_direct_svd_data();
    void spectra_match_direct_svd();
    void error_vanishes_when_rank_covers_hidden_data();
    void error_vanishes_when_rank_covers_hidden();
    void full_mask_leaves_k_nope_empty_data();
    void full_mask_leaves_k_nope_empty();
    void tail_accuracy_on_ill_conditioned_weights_data();
    void tail_accuracy_on_ill_conditioned_weights();
    void cumulative_energy_curve();
    void truncation_of_a_known_spectrum_data();
    void truncation_of_a_known_spectrum();
    void layer_subset_and_progress();
    void cancel_stops_between_layers();
    void bad_layer_and_mask_refused();
    void cleanupTestCase();
};

void TestSpectrum::spectra_match_direct_svd_data() {
    QTest::addColumn<QString>("model");
    QTest::addColumn<QString>("mask");
    QTest::addColumn<int>("r");
    QTest::addColumn<int>("d_kv");
    for (const char* model : {"wb-tiny-mha", "wb-tiny-gqa"})
        for (const char* mask : {"high", "low", "staggered", "full"})
            for (int d_kv : {8, 16, 64})
                QTest::newRow(qPrintable(QStringLiteral("%1 %2 d_kv=%3").arg(model, mask).arg(d_kv)))
                    << QString(model) << QString(mask) << (QString(mask) == "full" ? 32 : 4) << d_kv;
}

// Every layer: the four spectra against dgesdd, and energy and error at rank n_kv x d_kv
// (joint) and n_kv x d_kv/2 (split) recomputed from the reference values.
void TestSpectrum::spectra_match_direct_svd() {
    QFETCH(QString, model);
    QFETCH(QString, mask);
    QFETCH(int, r);
    QFETCH(int, d_kv);
    MLAWB_REQUIRE_PATH(test::model_dir(model.toStdString()) + "/model.safetensors");
    const Fixture f = open_fixture(model.toStdString());
    const KeptPairs kept = make_mask(f.config, mask.toStdString(), r);
    const SpectrumReport report = compute_spectra(f.checkpoint, f.config, kept, d_kv);

    const int64_t rank = f.config.n_kv_head * d_kv, split_rank = f.config.n_kv_head * (d_kv / 2);
    QCOMPARE(report.rank, rank);
    QCOMPARE(report.split_rank, split_rank);
    QCOMPARE(static_cast<int64_t>(report.layers.size()), f.config.n_layer);
    for (const LayerSpectrum& layer : report.layers) {
        const ReferenceLayer m = reference_matrices(f.checkpoint, f.config, kept, layer.layer);
        const std::vector<double> ref_k = reference_sigma(m.k), ref_nope = reference_sigma(m.k_nope),
                                  ref_v = reference_sigma(m.v), ref_joint = reference_sigma(m.joint);
        const std::pair<const std::vector<double>*, const std::vector<double>*> pairs[] = {
            {&layer.sigma_k, &ref_k}, {&layer.sigma_k_nope, &ref_nope}, {&layer.sigma_v, &ref_v}, {&layer.sigma_joint, &ref_joint}};
        const char* names[] = {"W_k", "W_k,nope", "W_v", "joint"};
        for (int i = 0; i < 4; ++i) {
            const double worst = worst_relative_to_max(*pairs[i].first, *pairs[i].second);
            observed_worst_sigma_error = std::max(observed_worst_sigma_error, worst);
            QVERIFY2(worst <= kSigmaTolerance, qPrintable(QStringLiteral("layer %1 %2: %3 values (reference %4), off by %5 of sigma_max")
                                                              .arg(layer.layer)
                                                              .arg(names[i])
                                                              .arg(pairs[i].first->size())
                                                              .arg(pairs[i].second->size())
                                                              .arg(worst)));
        }
        QCOMPARE(static_cast<int64_t>(layer.sigma_joint.size()), std::min<int64_t>(m.joint.size(0), f.config.hidden));

        const ReferenceTruncation joint = reference_truncation(ref_joint, rank);
        const double joint_total = joint.kept + joint.dropped;
        QVERIFY(energy_close(layer.energy_joint, joint.kept / joint_total));
        QVERIFY(error_close(layer.error_joint, std::sqrt(joint.dropped / joint_total)));

        const ReferenceTruncation k = reference_truncation(ref_nope, split_rank), v = reference_truncation(ref_v, split_rank);
        const double split_total = k.kept + k.dropped + v.kept + v.dropped;
        QVERIFY(error_close(layer.error_split, std::sqrt((k.dropped + v.dropped) / split_total)));
        QVERIFY(energy_close(layer.energy_split, (k.kept + v.kept) / split_total));
        QVERIFY(energy_close(layer.energy_split_v, v.kept / (v.kept + v.dropped)));
        QVERIFY(energy_close(layer.energy_split_k_nope, ref_nope.empty() ? 1.0 : k.kept / (k.kept + k.dropped)));
        QVERIFY(layer.seconds >= 0.0);
    }
}

void TestSpectrum::error_vanishes_when_rank_covers_hidden_data() {
    QTest::addColumn<QString>("mask");
    QTest::newRow("high r=4") << "high";
    QTest::newRow("low r=4") << "low";
    QTest::newRow("full") << "full";
}

// wb-tiny-mha: n_kv x d_kv = 4 x 64 = 256 = hidden, so the joint matrix (at most 256 singular
// values) is kept whole: nothing dropped.
void TestSpectrum::error_vanishes_when_rank_covers_hidden() {
    QFETCH(QString, mask);
    MLAWB_REQUIRE_PATH(test::model_dir("wb-tiny-mha") + "/model.safetensors");
    const Fixture f = open_fixture("wb-tiny-mha");
    QVERIFY(f.config.n_kv_head * 64 >= f.config.hidden);
    const SpectrumReport report =
        compute_spectra(f.checkpoint, f.config, make_mask(f.config, mask.toStdString(), mask == "full" ? 32 : 4), 64);
    for (const LayerSpectrum& layer : report.layers) {
        QVERIFY2(layer.error_joint <= 1e-12, qPrintable(QString::number(layer.error_joint)));
        QVERIFY(std::abs(layer.energy_joint - 1.0) <= 1e-12);
    }
}

void TestSpectrum::full_mask_leaves_k_nope_empty_data() {
    QTest::addColumn<QString>("model");
    QTest::newRow("mha") << "wb-tiny-mha";
    QTest::newRow("gqa") << "wb-tiny-gqa";
}

// Every pair keeps RoPE: W_k,nope has no rows, its spectrum is empty, the joint matrix is W_v
// and split is W_v alone.
void TestSpectrum::full_mask_leaves_k_nope_empty() {
    QFETCH(QString, model);
    MLAWB_REQUIRE_PATH(test::model_dir(model.toStdString()) + "/model.safetensors");
    const Fixture f = open_fixture(model.toStdString());
    const SpectrumReport report = compute_spectra(f.checkpoint, f.config, make_mask(f.config, "full", 0), 16);
    for (const LayerSpectrum& layer : report.layers) {
        QVERIFY(layer.sigma_k_nope.empty());
        QVERIFY(layer.cumulative_energy(SpectrumMatrix::KNope).empty());
        QCOMPARE(layer.energy_split_k_nope, 1.0);
        QCOMPARE(layer.sigma_joint.size(), layer.sigma_v.size());
        for (size_t i = 0; i < layer.sigma_v.size(); ++i)
            QVERIFY(std::abs(layer.sigma_joint[i] - layer.sigma_v[i]) <= 1e-12 * layer.sigma_v.front());
        QVERIFY(std::abs(layer.energy_split - layer.energy_split_v) <= 1e-12);
        QCOMPARE(layer.sigma_k.size(), static_cast<size_t>(std::min(f.config.n_kv_head * f.config.head_dim, f.config.hidden)));
    }
}

void TestSpectrum::tail_accuracy_on_ill_conditioned_weights_data() {
    QTest::addColumn<int>("hidden");
    QTest::newRow("hidden 24 (Grams on the hidden side)") << 24;
    QTest::newRow("hidden 80 (Grams on the row side)") << 80;
}

// W = U diag(s) V^T with s from 1 down to 1e-10 (stored as F32, so the tail ends near F32
// rounding, ~1e-8): the Gram squares the condition number, and the tail still meets 1e-6 of
// sigma_max. Through the row side and the hidden side.
void TestSpectrum::tail_accuracy_on_ill_conditioned_weights() {
    QFETCH(int, hidden);
    ModelConfig c;
    c.source = "synthetic";
    c.n_layer = 1;
    c.n_head = c.n_kv_head = 2;
    c.head_dim = 16;
    c.hidden = hidden;
    const int64_t rows = c.n_kv_head * c.head_dim, n = std::min<int64_t>(rows, hidden);
    torch::manual_seed(5);
    std::vector<torch::Tensor> weights;
    for (int i = 0; i < 2; ++i) {
        const torch::Tensor u = std::get<0>(torch::linalg_qr(torch::randn({rows, n}, torch::kFloat64)));
        const torch::Tensor v = std::get<0>(torch::linalg_qr(torch::randn({hidden, n}, torch::kFloat64)));
        const torch::Tensor s = torch::pow(10.0, -torch::linspace(0, 10, n, torch::kFloat64));
        weights.push_back(u.matmul(torch::diag(s)).matmul(v.t()).to(torch::kFloat32).contiguous());
    }
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string folder = dir.path().toStdString();
    write_safetensors(folder + "/model.safetensors",
                      {{"model.layers.0.self_attn.k_proj.weight", DType::F32, {rows, hidden}, weights[0].data_ptr()},
                       {"model.layers.0.self_attn.v_proj.weight", DType::F32, {rows, hidden}, weights[1].data_ptr()}});
    const Checkpoint ckpt = Checkpoint::open_folder(folder);
    const KeptPairs kept = make_mask(c, "high", 2);
    const LayerSpectrum layer = compute_spectra(ckpt, c, kept, 4).layers.at(0);
    const ReferenceLayer m = reference_matrices(ckpt, c, kept, 0);
    const std::vector<double> ref_k = reference_sigma(m.k);
    QVERIFY2(ref_k.back() < 1e-6 * ref_k.front(), "the fixture is meant to be ill-conditioned");
    const double worst = std::max({worst_relative_to_max(layer.sigma_k, ref_k),
                                   worst_relative_to_max(layer.sigma_k_nope, reference_sigma(m.k_nope)),
                                   worst_relative_to_max(layer.sigma_v, reference_sigma(m.v)),
                                   worst_relative_to_max(layer.sigma_joint, reference_sigma(m.joint))});
    observed_worst_sigma_error = std::max(observed_worst_sigma_error, worst);
    QVERIFY2(worst <= kSigmaTolerance, qPrintable(QString::number(worst)));
}

void TestSpectrum::cumulative_energy_curve() {
    MLAWB_REQUIRE_PATH(test::model_dir("wb-tiny-gqa") + "/model.safetensors");
    const Fixture f = open_fixture("wb-tiny-gqa");
    const SpectrumReport report = compute_spectra(f.checkpoint, f.config, make_mask(f.config, "high", 4), 16, {{1}, {}, {}});
    const LayerSpectrum& layer = report.layers.at(0);
    for (SpectrumMatrix matrix : spectrum_matrices()) {
        const std::vector<double> curve = layer.cumulative_energy(matrix);
        QCOMPARE(curve.size(), layer.sigma(matrix).size());
        QCOMPARE(curve.back(), 1.0);
        for (size_t i = 1; i < curve.size(); ++i) QVERIFY(curve[i] >= curve[i - 1]);
    }
    // The curve at the rank is the energy the report gives.
    QVERIFY(std::abs(layer.cumulative_energy(SpectrumMatrix::Joint).at(report.rank - 1) - layer.energy_joint) <= 1e-12);
    QVERIFY(std::abs(layer.cumulative_energy(SpectrumMatrix::V).at(report.split_rank - 1) - layer.energy_split_v) <= 1e-12);
    QCOMPARE(QString(spectrum_matrix_name(SpectrumMatrix::KNope)), QString("k_nope"));
}

void TestSpectrum::truncation_of_a_known_spectrum_data() {
    QTest::addColumn<int>("rank");
    QTest::addColumn<double>("energy");
    QTest::addColumn<double>("error");
    // sigma = {3, 2, 1, 0}: sigma^2 = {9, 4, 1, 0}, total 14.
    QTest::newRow("rank 0") << 0 << 0.0 << 1.0;
    QTest::newRow("rank 1") << 1 << 9.0 / 14 << std::sqrt(5.0 / 14);
    QTest::newRow("rank 2") << 2 << 13.0 / 14 << std::sqrt(1.0 / 14);
    QTest::newRow("rank 3 (drops only a zero)") << 3 << 1.0 << 0.0;
    QTest::newRow("rank past the end") << 9 << 1.0 << 0.0;
    QTest::newRow("no latent (-1)") << -1 << 1.0 << 0.0;
}

void TestSpectrum::truncation_of_a_known_spectrum() {
    QFETCH(int, rank);
    QFETCH(double, energy);
    QFETCH(double, error);
    const Truncation t = truncate_spectrum({3, 2, 1, 0}, rank);
    QVERIFY(std::abs(t.energy() - energy) <= 1e-15);
    QVERIFY(std::abs(t.error() - error) <= 1e-15);
    QCOMPARE(t.total(), 14.0);
    QCOMPARE(truncate_spectrum({}, rank).error(), 0.0);
}

// Layers in the order asked, each equal to the same layer of a full run; progress per layer.
void TestSpectrum::layer_subset_and_progress() {
    MLAWB_REQUIRE_PATH(test::model_dir("wb-tiny-mha") + "/model.safetensors");
    const Fixture f = open_fixture("wb-tiny-mha");
    const KeptPairs kept = make_mask(f.config, "low", 4);
    std::vector<std::pair<int64_t, int64_t>> calls;
    SpectrumOptions options;
    options.layers = {5, 0, 3};
    options.progress = [&](int64_t done, int64_t total) { calls.emplace_back(done, total); };
    const SpectrumReport subset = compute_spectra(f.checkpoint, f.config, kept, -1, options);
    const SpectrumReport all = compute_spectra(f.checkpoint, f.config, kept, -1);
    QCOMPARE(subset.layers.size(), size_t(3));
    QCOMPARE(calls, (std::vector<std::pair<int64_t, int64_t>>{{1, 3}, {2, 3}, {3, 3}}));
    for (size_t i = 0; i < 3; ++i) {
        const LayerSpectrum& got = subset.layers[i];
        QCOMPARE(got.layer, options.layers[i]);
        const LayerSpectrum& same = all.layers[got.layer];
        QCOMPARE(got.sigma_joint.size(), same.sigma_joint.size());
        for (size_t j = 0; j < got.sigma_joint.size(); ++j)
            QVERIFY(std::abs(got.sigma_joint[j] - same.sigma_joint[j]) <= 1e-12 * same.sigma_joint.front());
    }
    // No latent (d_kv -1): figures at full rank.
    QCOMPARE(subset.rank, int64_t(-1));
    QCOMPARE(subset.layers[0].error_joint, 0.0);
    QCOMPARE(subset.layers[0].energy_split, 1.0);
}

void TestSpectrum::cancel_stops_between_layers() {
    MLAWB_REQUIRE_PATH(test::model_dir("wb-tiny-mha") + "/model.safetensors");
    const Fixture f = open_fixture("wb-tiny-mha");
    int64_t layers_done = 0;
    SpectrumOptions options;
    options.progress = [&](int64_t done, int64_t) { layers_done = done; };
    options.cancelled = [&] { return layers_done >= 2; };
    bool cancelled = false;
    try {
        compute_spectra(f.checkpoint, f.config, make_mask(f.config, "high", 4), 16, options);
    } catch (const Cancelled&) {
        cancelled = true;
    }
    QVERIFY(cancelled);
    QCOMPARE(layers_done, int64_t(2));
}

void TestSpectrum::bad_layer_and_mask_refused() {
    MLAWB_REQUIRE_PATH(test::model_dir("wb-tiny-gqa") + "/model.safetensors");
    const Fixture f = open_fixture("wb-tiny-gqa");
    SpectrumOptions options;
    options.layers = {6};
    MLAWB_EXPECT_ERROR(compute_spectra(f.checkpoint, f.config, make_mask(f.config, "high", 4), 16, options), "--layers",
                       "layer 6 out of range", "0..5");
    const KeptPairs mha_shaped(f.config.n_layer, 4, 32);  // wb-tiny-gqa has 2 KV heads
    MLAWB_EXPECT_ERROR(compute_spectra(f.checkpoint, f.config, mha_shaped, 16), "kept_pairs", "[6][4][32]", "[6][2][32]");
}

void TestSpectrum::cleanupTestCase() {
    qInfo("worst difference against dgesdd: singular values %.3g of sigma_max, energy %.3g, error %.3g",
          observed_worst_sigma_error, observed_worst_energy_error, observed_worst_error_error);
    QVERIFY(observed_worst_sigma_error <= kSigmaTolerance);
}

QTEST_APPLESS_MAIN(TestSpectrum)
#include "test_spectrum.moc"
