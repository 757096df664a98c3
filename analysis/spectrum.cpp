// Singular values of W_k, W_k,nope, W_v and [W_k,nope ; W_v] per layer, from the eigenvalues of
// a Gram matrix in double precision (LAPACK through the BLAS/LAPACK that LibTorch links).
//
// Why the Gram route: only singular values are needed. For a matrix X [m, n] the eigenvalues
// of X^T X [n, n] or X X^T [m, m] are sigma^2 (plus |m - n| zeros on the larger side), and
//   - the Gram costs one dsyrk (BLAS3, m n^2 flops), and a values-only symmetric eigensolver
//     is much cheaper than a values-only SVD (dgesdd jobz=N bidiagonalizes X with half of its
//     flops in memory-bound BLAS2; measured 5x slower per Llama-2-7B layer, bench_spectrum);
//   - on the hidden side the Grams add up: the joint matrix [W_k,nope ; W_v] has
//     G_joint = G_k,nope + G_v and W_k has G_k = G_k,nope + G_rope, so no stacking and no
//     second pass over the weights. Each matrix takes the side a flop estimate says is cheaper
//     (cheaper_by_rows): for Llama-2-7B every matrix goes through [4096, 4096] hidden-side
//     Grams; for GQA models with few KV heads through the smaller row-side Grams.
// The eigensolver is LAPACK's two-stage reduction (dsytrd_sy2sb: dense -> band of width kd,
// BLAS3 on both cores; dsbtrd: band -> tridiagonal, cache-resident, one core) and dsterf
// (root-free QL/QR, values only). One-stage dsytrd (what torch::linalg_eigvalsh runs) spends
// half its flops in dsymv over the whole trailing matrix, memory-bound at 4096 (128 MB): on an
// idle machine 6.8 s against 2.2 s for the two-stage path at n = 4096. The one-core band
// stage runs on a worker thread, overlapping the next Gram and first stage (~7% per layer).
//
// Cost: a Llama-2-7B layer needs four dense eigensolves of size 4096 (4 x 4/3 n^3 flops) and
// Grams over 8192 rows (n^2 8192): ~5e11 flops, ~10 s at the ~50 GFLOP/s dgemm rate of two
// idle cores, so all 32 layers take minutes, not the 2 minutes hoped for; bench_spectrum
// reports the measured figures.
//
// Accuracy (what the tests check): forming G in double and a backward-stable eigensolver give
// |lambda_i - sigma_i^2| <= c eps sigma_max^2 with c a small multiple of the dimension, so
//   |sigma_i - sigma_ref_i| <= min(sqrt(c eps), c eps sigma_max / (2 sigma_i)) sigma_max.
// Observed against dgesdd: at most 4e-9 of sigma_max (on a matrix with singular values over 10
// decades; 5e-13 on random Llama-2-7B-shaped weights), far inside the acceptance of 1e-6
// relative to sigma_max. Values below ~1e-4 sigma_max are not accurate to 1e-6 of themselves
// (the Gram squares the condition number); the energy and error figures are sums of sigma^2
// and agree with dgesdd's to ~1e-15.
#include "analysis/spectrum.h"

#include "analysis/strategies.h"
#include "core/checkpoint_layout.h"
#include "core/config.h"
#include "core/error.h"
#include "core/llama_model.h"
#include "core/safetensors.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <future>
#include <optional>

// Fortran BLAS/LAPACK (the library LibTorch links). The trailing size_t arguments are the
// hidden lengths of the CHARACTER arguments that gfortran-compiled routines expect.
extern "C" {
void dsyrk_(const char* uplo, const char* trans, const int* n, const int* k, const double* alpha, const double* a,
            const int* lda, const double* beta, double* c, const int* ldc, size_t uplo_len, size_t trans_len);
void dsytrd_sy2sb_(const char* uplo, const int* n, const int* kd, double* a, const int* lda, double* ab,
                   const int* ldab, double* tau, double* work, const int* lwork, int* info, size_t uplo_len);
void dsbtrd_(const char* vect, const char* uplo, const int* n, const int* kd, double* ab, const int* ldab, double* d,
             double* e, double* q, const int* ldq, double* work, int* info, size_t vect_len, size_t uplo_len);
void dsterf_(const int* n, double* d, double* e, int* info);
}

namespace mlawb {

namespace {

// Bandwidth of the first stage: wider makes the BLAS3 stage faster and the band stage slower
// (its flops grow as n^2 kd); 64 was the fastest at n = 4096 on the development machine.
constexpr int kBandWidth = 64;

int lapack_int(int64_t value, const char* what) {
    if (value < 0 || value > INT32_MAX) throw Error("", "spectrum", std::string(what) + " out of LAPACK's int range");
    return static_cast<int>(value);
}

// Which Gram a matrix X [m, n] is reduced through.
enum class GramSide {
    Columns,  // X^T X [n, n]
    Rows,     // X X^T [m, m]
};

// Gram of a contiguous double matrix X [m, n] (row-major). LAPACK is column-major, so the same
// memory is X^T [n, m] with leading dimension n. Only the lower triangle (column-major) is
// written; `accumulate` adds into an existing Gram of the right size instead of a new one.
torch::Tensor gram(const torch::Tensor& x, GramSide side, torch::Tensor accumulate = {}) {
    TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat64 && x.is_contiguous());
    const int m = lapack_int(x.size(0), "rows"), n = lapack_int(x.size(1), "columns");
    const int size = side == GramSide::Columns ? n : m;
    const int inner = side == GramSide::Columns ? m : n;
    const bool add = accumulate.defined();
    torch::Tensor g = add ? accumulate : torch::zeros({size, size}, torch::kFloat64);
    if (size == 0 || inner == 0) return g;
    const double alpha = 1.0, beta = add ? 1.0 : 0.0;
    const int lda = std::max(n, 1);
    // Columns: C = A A^T with A = X^T [n, m] ("N"); Rows: C = A^T A ("T").
    dsyrk_("L", side == GramSide::Columns ? "N" : "T", &size, &inner, &alpha, x.data_ptr<double>(), &lda, &beta,
           g.data_ptr<double>(), &size, 1, 1);
    return g;
}

// A symmetric matrix after the first stage: lower band of width kd in LAPACK band storage
// (band[j (kd+1) + i - j] = A(i, j) for j <= i <= j + kd).
struct BandMatrix {
    int n = 0, kd = 0;
    std::vector<double> band;  // [n][kd + 1]
};

// First stage (BLAS3, both cores): the symmetric matrix whose column-major lower triangle is
// held by `a` [n, n] to band form; `a` is overwritten.
BandMatrix reduce_to_band(torch::Tensor a) {
    BandMatrix out;
    out.n = lapack_int(a.size(0), "Gram size");
    const int n = out.n;
    out.kd = std::max(0, std::min(kBandWidth, n - 1));
    const int ldab = out.kd + 1;
    out.band.assign(static_cast<size_t>(ldab) * n, 0.0);
    if (n <= 1) {
        if (n == 1) out.band[0] = a.data_ptr<double>()[0];
        return out;
    }
    std::vector<double> tau(n);
    int info = 0, lwork = -1;
    double work_size = 0.0;
    dsytrd_sy2sb_("L", &n, &out.kd, a.data_ptr<double>(), &n, out.band.data(), &ldab, tau.data(), &work_size, &lwork,
                  &info, 1);
    lwork = std::max(1, static_cast<int>(work_size));
    std::vector<double> work(lwork);
    dsytrd_sy2sb_("L", &n, &out.kd, a.data_ptr<double>(), &n, out.band.data(), &ldab, tau.data(), work.data(), &lwork,
                  &info, 1);
    if (info != 0) throw Error("", "spectrum", "dsytrd_sy2sb failed (info " + std::to_string(info) + ")");
    return out;
}

// Second stage (one core): band -> tridiagonal (dsbtrd, no vectors), eigenvalues (dsterf),
// then sigma = sqrt(lambda), descending, the largest `count` = min(rows, columns) of them: a
// Gram larger than that (the hidden side of a matrix with fewer rows than hidden) has
// count..n-1 eigenvalues that are zero up to rounding. Rounding can also leave eigenvalues
// slightly negative (|lambda| ~ eps sigma_max^2): they are singular values of 0.
std::vector<double> band_singular_values(BandMatrix m, int64_t count) {
    const int n = m.n, ldab = m.kd + 1, ldq = 1;
    std::vector<double> lambda(n), off_diagonal(std::max(n, 1)), work(std::max(n, 1));
    int info = 0;
    if (n > 1) {
        dsbtrd_("N", "L", &n, &m.kd, m.band.data(), &ldab, lambda.data(), off_diagonal.data(), nullptr, &ldq, work.data(),
                &info, 1, 1);
        if (info != 0) throw Error("", "spectrum", "dsbtrd failed (info " + std::to_string(info) + ")");
        dsterf_(&n, lambda.data(), off_diagonal.data(), &info);
        if (info != 0) throw Error("", "spectrum", "dsterf did not converge (info " + std::to_string(info) + ")");
    } else if (n == 1) {
        lambda[0] = m.band[0];
    }
    std::vector<double> sigma(n);
    for (int i = 0; i < n; ++i) sigma[n - 1 - i] = std::sqrt(std::max(lambda[i], 0.0));
    sigma.resize(std::min<int64_t>(count, n));
    return sigma;
}

// Runs the first stage here and the second on a worker thread, so the caller's next Gram and
// first stage overlap the single-threaded band stage (it would otherwise leave a core idle;
// measured 9.8 against 10.6 s per Llama-2-7B layer).
// `count` = min(rows, columns) of the matrix whose Gram this is.
std::future<std::vector<double>> singular_values_from_gram(torch::Tensor gram_matrix, int64_t count) {
    return std::async(std::launch::async, band_singular_values, reduce_to_band(std::move(gram_matrix)), count);
}

std::string layer_tensor(int64_t layer, const char* projection) {
    return "model.layers." + std::to_string(layer) + ".self_attn." + projection + ".weight";
}

// k_proj or v_proj of a layer as a contiguous double tensor [n_kv d, hidden]. Biases (Qwen2)
// stay outside the low-rank factorization of the weight, so they are not read.
torch::Tensor read_projection(const Checkpoint& checkpoint, const ModelConfig& config, int64_t layer,
                              const char* projection) {
    const TensorView& view = checkpoint.get(layer_tensor(layer, projection));
    const std::vector<int64_t> expected = {config.n_kv_head * config.head_dim, config.hidden};
    if (view.shape != expected)
        throw Error(view.file, view.name, "shape " + shape_string(view.shape) + ", expected " + shape_string(expected) +
                                              " (n_kv_head x head_dim, hidden) from " + config.source);
    return to_float_tensor(view).to(torch::kFloat64).contiguous();
}

// Row indices of W_k [n_kv d, hidden] whose pair keeps RoPE (`keep_rope` true) or not: pair k
// of KV head g is rows g d + k and g d + k + d/2 (rotate-half layout).
torch::Tensor pair_rows(const KeptPairs& kept, int64_t layer, int64_t head_dim, bool keep_rope) {
    const int64_t half = head_dim / 2;
    std::vector<int64_t> rows;
    for (int64_t g = 0; g < kept.n_kv_head; ++g)
        for (int64_t part = 0; part < 2; ++part)
            for (int64_t k = 0; k < half; ++k)
                if (kept.kept(layer, g, k) == keep_rope) rows.push_back(g * head_dim + part * half + k);
    std::sort(rows.begin(), rows.end());
    return torch::tensor(rows, torch::kInt64);
}

void check_mask(const KeptPairs& kept, const ModelConfig& config) {
    if (kept.n_layer != config.n_layer || kept.n_kv_head != config.n_kv_head || kept.n_pairs != config.head_dim / 2 ||
        static_cast<int64_t>(kept.mask.size()) != kept.n_layer * kept.n_kv_head * kept.n_pairs)
        throw Error("", "kept_pairs",
                    "mask is [" + std::to_string(kept.n_layer) + "][" + std::to_string(kept.n_kv_head) + "][" +
                        std::to_string(kept.n_pairs) + "], the model (" + config.source + ") needs [" +
                        std::to_string(config.n_layer) + "][" + std::to_string(config.n_kv_head) + "][" +
                        std::to_string(config.head_dim / 2) + "]");
}

std::vector<int64_t> layers_to_run(const SpectrumOptions& options, const ModelConfig& config) {
    if (options.layers.empty()) {
        std::vector<int64_t> all(config.n_layer);
        for (int64_t l = 0; l < config.n_layer; ++l) all[l] = l;
        return all;
    }
    for (int64_t l : options.layers)
        if (l < 0 || l >= config.n_layer)
            throw Error("", "--layers",
                        "layer " + std::to_string(l) + " out of range; the model has layers 0.." +
                            std::to_string(config.n_layer - 1));
    return options.layers;
}

struct Ranks {
    int64_t joint = -1;  // n_kv x d_kv, -1: all
    int64_t split = -1;  // n_kv x (d_kv/2) per part, -1: all
};

// Rough cost of a spectrum through each Gram, in flops: forming an m-row Gram of width h costs
// m^2 h (dsyrk); a values-only eigensolve of size n about 2 n^3 (4/3 n^3 in the first stage,
// which runs below gemm speed, plus the band stage). `hidden_rows_to_add` counts the rows whose
// hidden-side Gram is not formed yet (0 when it is a sum of Grams already there).
bool cheaper_by_rows(int64_t rows, int64_t hidden, int64_t hidden_rows_to_add) {
    const double m = static_cast<double>(rows), h = static_cast<double>(hidden);
    const double by_rows = m * m * h + 2 * m * m * m;
    const double by_columns = static_cast<double>(hidden_rows_to_add) * h * h + 2 * h * h * h;
    return by_rows < by_columns;
}

// A layer whose band stages may still be running.
struct PendingLayer {
    LayerSpectrum spectrum;
    std::future<std::vector<double>> k, k_nope, v, joint;
};

PendingLayer start_layer(const Checkpoint& checkpoint, const ModelConfig& config, const KeptPairs& kept, int64_t layer,
                         const std::function<void()>& check_cancel) {
    PendingLayer pending;
    pending.spectrum.layer = layer;
    const torch::Tensor w_k = read_projection(checkpoint, config, layer, "k_proj");  // [n_kv d, hidden]
    const torch::Tensor w_v = read_projection(checkpoint, config, layer, "v_proj");  // [n_kv d, hidden]
    const torch::Tensor w_k_nope = w_k.index_select(0, pair_rows(kept, layer, config.head_dim, false)).contiguous();
    const torch::Tensor w_k_rope = w_k.index_select(0, pair_rows(kept, layer, config.head_dim, true)).contiguous();
    const int64_t hidden = config.hidden;
    const int64_t rows_k = w_k.size(0), rows_nope = w_k_nope.size(0), rows_rope = w_k_rope.size(0),
                  rows_v = w_v.size(0), rows_joint = rows_nope + rows_v;

    // The joint matrix has the most rows; when it goes through the hidden side, its Grams
    // G_k,nope and G_v [hidden, hidden] are there for the others: G_k = G_k,nope + G_rope.
    const bool joint_by_rows = cheaper_by_rows(rows_joint, hidden, rows_joint);
    torch::Tensor g_k_nope, g_v;
    if (joint_by_rows) {
        pending.joint = singular_values_from_gram(gram(torch::cat({w_k_nope, w_v}, 0).contiguous(), GramSide::Rows),
                                                  std::min(rows_joint, hidden));
    } else {
        g_k_nope = gram(w_k_nope, GramSide::Columns);
        g_v = gram(w_v, GramSide::Columns);
        check_cancel();
        pending.joint = singular_values_from_gram(g_k_nope + g_v, std::min(rows_joint, hidden));
    }
    const bool shared = !joint_by_rows;
    check_cancel();
    pending.k = singular_values_from_gram(cheaper_by_rows(rows_k, hidden, shared ? rows_rope : rows_k)
                                              ? gram(w_k, GramSide::Rows)
                                          : shared ? gram(w_k_rope, GramSide::Columns, g_k_nope.clone())
                                                   : gram(w_k, GramSide::Columns),
                                          std::min(rows_k, hidden));
    check_cancel();
    pending.k_nope = singular_values_from_gram(cheaper_by_rows(rows_nope, hidden, shared ? 0 : rows_nope)
                                                   ? gram(w_k_nope, GramSide::Rows)
                                               : shared ? g_k_nope
                                                        : gram(w_k_nope, GramSide::Columns),
                                               std::min(rows_nope, hidden));
    check_cancel();
    pending.v = singular_values_from_gram(cheaper_by_rows(rows_v, hidden, shared ? 0 : rows_v) ? gram(w_v, GramSide::Rows)
                                          : shared ? g_v
                                                   : gram(w_v, GramSide::Columns),
                                          std::min(rows_v, hidden));
    return pending;
}

LayerSpectrum finish_layer(PendingLayer& pending, const Ranks& ranks) {
    LayerSpectrum out = std::move(pending.spectrum);
    out.sigma_k = pending.k.get();
    out.sigma_k_nope = pending.k_nope.get();
    out.sigma_v = pending.v.get();
    out.sigma_joint = pending.joint.get();
    const Truncation joint = truncate_spectrum(out.sigma_joint, ranks.joint);
    const Truncation split_k = truncate_spectrum(out.sigma_k_nope, ranks.split);
    const Truncation split_v = truncate_spectrum(out.sigma_v, ranks.split);
    out.energy_joint = joint.energy();
    out.error_joint = joint.error();
    out.energy_split_k_nope = split_k.energy();
    out.energy_split_v = split_v.energy();
    Truncation split;
    split.kept = split_k.kept + split_v.kept;
    split.dropped = split_k.dropped + split_v.dropped;
    out.energy_split = split.energy();
    out.error_split = split.error();
    return out;
}

}  // namespace

const char* spectrum_matrix_name(SpectrumMatrix matrix) {
    switch (matrix) {
    case SpectrumMatrix::K: return "k";
    case SpectrumMatrix::KNope: return "k_nope";
    case SpectrumMatrix::V: return "v";
    case SpectrumMatrix::Joint: return "joint";
    }
    return "?";
}

const std::vector<SpectrumMatrix>& spectrum_matrices() {
    static const std::vector<SpectrumMatrix> all = {SpectrumMatrix::K, SpectrumMatrix::KNope, SpectrumMatrix::V,
                                                    SpectrumMatrix::Joint};
    return all;
}

std::vector<double> cumulative_energy(const std::vector<double>& sigma) {
    std::vector<double> curve(sigma.size());
    double total = 0.0;
    for (double s : sigma) total += s * s;
    double running = 0.0;
    for (size_t i = 0; i < sigma.size(); ++i) {
        running += sigma[i] * sigma[i];
        curve[i] = total > 0.0 ? running / total : 1.0;
    }
    if (!curve.empty()) curve.back() = 1.0;  // exact, whatever the rounding of the running sum
    return curve;
}

double Truncation::error() const { return total() > 0.0 ? std::sqrt(dropped / total()) : 0.0; }

Truncation truncate_spectrum(const std::vector<double>& sigma, int64_t rank) {
    const size_t keep = rank < 0 ? sigma.size() : std::min(sigma.size(), static_cast<size_t>(rank));
    Truncation t;
    for (size_t i = 0; i < keep; ++i) t.kept += sigma[i] * sigma[i];
    // Smallest first, so the tail's sum is not lost against the large values.
    for (size_t i = sigma.size(); i > keep; --i) t.dropped += sigma[i - 1] * sigma[i - 1];
    return t;
}

const std::vector<double>& LayerSpectrum::sigma(SpectrumMatrix matrix) const {
    switch (matrix) {
    case SpectrumMatrix::K: return sigma_k;
    case SpectrumMatrix::KNope: return sigma_k_nope;
    case SpectrumMatrix::V: return sigma_v;
    case SpectrumMatrix::Joint: return sigma_joint;
    }
    return sigma_joint;
}

std::vector<double> LayerSpectrum::cumulative_energy(SpectrumMatrix matrix) const {
    return mlawb::cumulative_energy(sigma(matrix));
}

SpectrumReport compute_spectra(const Checkpoint& checkpoint, const ModelConfig& config, const KeptPairs& kept,
                               int64_t d_kv, const SpectrumOptions& options) {
    const auto start = std::chrono::steady_clock::now();
    check_mask(kept, config);
    const std::vector<int64_t> layers = layers_to_run(options, config);
    SpectrumReport report;
    report.n_kv_head = config.n_kv_head;
    report.head_dim = config.head_dim;
    report.hidden = config.hidden;
    Ranks ranks;
    if (d_kv > 0) {
        report.d_kv = d_kv;
        report.rank = ranks.joint = config.n_kv_head * d_kv;
        report.split_rank = ranks.split = config.n_kv_head * (d_kv / 2);
    }
    const auto check_cancel = [&] {
        if (options.cancelled && options.cancelled()) throw Cancelled();
    };
    // Layer i's last band stages finish while layer i + 1 is read and its Grams formed, so a
    // layer's `seconds` is the time from the previous layer's results to its own (they sum to
    // the total).
    const int64_t total = static_cast<int64_t>(layers.size());
    using Clock = std::chrono::steady_clock;
    std::optional<PendingLayer> previous;
    Clock::time_point last_finish = Clock::now();
    const auto finish_previous = [&](int64_t done) {
        report.layers.push_back(finish_layer(*previous, ranks));
        const Clock::time_point now = Clock::now();
        report.layers.back().seconds = std::chrono::duration<double>(now - last_finish).count();
        last_finish = now;
        previous.reset();
        if (options.progress) options.progress(done, total);
    };
    for (int64_t i = 0; i < total; ++i) {
        check_cancel();
        PendingLayer pending = start_layer(checkpoint, config, kept, layers[i], check_cancel);
        if (previous) finish_previous(i);
        previous = std::move(pending);
    }
    if (previous) finish_previous(total);
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return report;
}

}  // namespace mlawb
