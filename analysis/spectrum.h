// Singular-value spectra of the key/value projections, per layer: what low-rank SVD of MHA2MLA
// (sec. 3.2) can keep. Matrices are in nn.Linear orientation [out, in] with un-repeated GQA
// heads, hidden = in:
//   W_k        [n_kv d, hidden]        every row of k_proj
//   W_k,nope   [n_kv (d - 2r), hidden]  the rows whose pair does not keep RoPE: for KV head g and
//                                       kept pair k, rows g d + k and g d + k + d/2 are removed
//   W_v        [n_kv d, hidden]
//   joint      [W_k,nope ; W_v]         stacked on the output axis (SVD_joint)
// SVD_joint factorizes the joint matrix at rank n_kv x d_kv; SVD_split factorizes W_k,nope and
// W_v separately at rank n_kv x (d_kv/2) each. By Eckart-Young the best rank-k approximation
// keeps the first k singular values, so with sigma descending:
//   energy captured  = sum_{i<k} sigma_i^2 / sum_i sigma_i^2
//   relative error   = ||W - W_k||_F / ||W||_F = sqrt(sum_{i>=k} sigma_i^2 / sum_i sigma_i^2)
// Split combines its two parts: sqrt((dropped_k + dropped_v) / (total_k + total_v)).
// Plain data: no LibTorch in this header (the GUI's SpectrumPanel includes it).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace mlawb {

class Checkpoint;
struct ModelConfig;
struct KeptPairs;

enum class SpectrumMatrix { K, KNope, V, Joint };
const char* spectrum_matrix_name(SpectrumMatrix matrix);  // "k", "k_nope", "v", "joint"
const std::vector<SpectrumMatrix>& spectrum_matrices();  // K, KNope, V, Joint

// curve[i] = sum_{j<=i} sigma_j^2 / sum_j sigma_j^2 for sigma descending; the last value is 1
// (an all-zero spectrum gives all ones: nothing to lose). Empty in, empty out.
std::vector<double> cumulative_energy(const std::vector<double>& sigma);

// The rank-k truncation of one spectrum: sums of the kept and dropped sigma^2.
struct Truncation {
    double kept = 0.0;     // sum_{i<k} sigma_i^2
    double dropped = 0.0;  // sum_{i>=k} sigma_i^2, summed from the smallest up
    double total() const { return kept + dropped; }
    double energy() const { return total() > 0.0 ? kept / total() : 1.0; }
    double error() const;  // sqrt(dropped / total), 0 for an all-zero spectrum
};
// rank < 0 keeps every value; rank >= sigma.size() drops none.
Truncation truncate_spectrum(const std::vector<double>& sigma, int64_t rank);

struct LayerSpectrum {
    int64_t layer = 0;
    // Singular values, descending, min(rows, hidden) of each (empty when the matrix has no rows:
    // W_k,nope when every pair keeps RoPE).
    std::vector<double> sigma_k;
    std::vector<double> sigma_k_nope;
    std::vector<double> sigma_v;
    std::vector<double> sigma_joint;
    // At rank n_kv x d_kv of the joint matrix.
    double energy_joint = 1.0;
    double error_joint = 0.0;
    // At rank n_kv x (d_kv/2) for each of W_k,nope and W_v.
    double energy_split_k_nope = 1.0;
    double energy_split_v = 1.0;
    double energy_split = 1.0;  // (kept_k + kept_v) / (total_k + total_v)
    double error_split = 0.0;   // sqrt((dropped_k + dropped_v) / (total_k + total_v))
    // Wall time from the previous layer's results to this layer's (reading the weights
    // included; layers are pipelined, so these sum to the report's total).
    double seconds = 0.0;

    const std::vector<double>& sigma(SpectrumMatrix matrix) const;
    std::vector<double> cumulative_energy(SpectrumMatrix matrix) const;  // for the GUI's curves
};

struct SpectrumReport {
    int64_t n_kv_head = 0, head_dim = 0, hidden = 0;
    int64_t d_kv = -1;        // latent width per KV head; -1: no latent, figures at full rank
    int64_t rank = -1;        // joint rank n_kv x d_kv; -1 with no latent
    int64_t split_rank = -1;  // n_kv x (d_kv/2) per part; -1 with no latent
    std::vector<LayerSpectrum> layers;  // in the order of SpectrumOptions::layers
    double seconds = 0.0;
};

struct SpectrumOptions {
    std::vector<int64_t> layers;  // layers to analyse; empty: all, in order
    std::function<void(int64_t layers_done, int64_t layers_total)> progress;
    std::function<bool()> cancelled;  // polled before each of the four spectra of a layer
};

// Reads k_proj and v_proj of each layer from `checkpoint` and computes the four spectra and the
// truncation figures at rank n_kv x d_kv (d_kv <= 0: no latent, energies 1 and errors 0).
// `kept` is the kept-pair mask [n_layer][n_kv][d/2] (analysis/strategies.h).
// Singular values agree with a double-precision SVD to 1e-6 of the largest singular value of
// the same matrix (see spectrum.cpp for the method and the bound).
// Throws Error for a mask or weights of the wrong shape and for a bad layer index (field
// "--layers"); Cancelled when `cancelled` returns true.
SpectrumReport compute_spectra(const Checkpoint& checkpoint, const ModelConfig& config, const KeptPairs& kept,
                               int64_t d_kv, const SpectrumOptions& options = {});

}  // namespace mlawb
