// spectrum: per-layer singular values of W_k, W_k,nope, W_v and [W_k,nope ; W_v] under a setting,
// with the energy captured and the relative Frobenius error of the rank-n_kv x d_kv truncation
// (joint) and of the two rank-n_kv x d_kv/2 truncations (split). See analysis/spectrum.h.
#include "app/cli/commands.h"
#include "app/cli/progress.h"

#include "analysis/calibration.h"
#include "analysis/setting.h"
#include "analysis/spectrum.h"
#include "core/config.h"
#include "core/error.h"
#include "core/llama_model.h"
#include "core/safetensors.h"

#include <filesystem>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

namespace mlawb::cli {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const char* const kSpectrumUsage =
    "mlawb spectrum MODEL --mla SPEC [--json | --csv] [--layers 0,3,5] [--top N] [--threads N]";

// "0,3,5" -> {0, 3, 5}; the range is checked by compute_spectra against the model.
std::vector<int64_t> parse_layers(const std::string& text) {
    std::vector<int64_t> layers;
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ',')) {
        size_t used = 0;
        long long value = -1;
        try {
            value = std::stoll(item, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (item.empty() || used != item.size() || value < 0)
            throw Error("", "--layers", "expected layer indices separated by commas (e.g. 0,3,5), got '" + text + "'");
        layers.push_back(value);
    }
    if (layers.empty()) throw Error("", "--layers", "no layer given");
    return layers;
}

// Rows of W_k,nope in a layer: two per pair that does not keep RoPE, over the KV heads.
int64_t k_nope_rows(const KeptPairs& kept, int64_t layer, const ModelConfig& config) {
    int64_t kept_pairs = 0;
    for (int64_t g = 0; g < kept.n_kv_head; ++g) kept_pairs += kept.count(layer, g);
    return config.n_kv_head * config.head_dim - 2 * kept_pairs;
}

json nullable(int64_t value) { return value < 0 ? json(nullptr) : json(value); }

json spectrum_json(const SpectrumReport& report, const ResolvedSetting& setting, const ModelConfig& config,
                   const std::string& folder) {
    json layers = json::array();
    const int64_t rows = config.n_kv_head * config.head_dim;
    for (const LayerSpectrum& l : report.layers) {
        const int64_t nope = k_nope_rows(setting.kept, l.layer, config);
        layers.push_back({{"layer", l.layer},
                          {"rank", nullable(report.rank)},
                          {"split_rank", nullable(report.split_rank)},
                          {"rows", {{"k", rows}, {"k_nope", nope}, {"v", rows}, {"joint", nope + rows}}},
                          {"sigma_k", l.sigma_k},
                          {"sigma_k_nope", l.sigma_k_nope},
                          {"sigma_v", l.sigma_v},
                          {"sigma_joint", l.sigma_joint},
                          {"energy_joint", l.energy_joint},
                          {"error_joint", l.error_joint},
                          {"energy_split", l.energy_split},
                          {"error_split", l.error_split},
                          {"energy_split_k_nope", l.energy_split_k_nope},
                          {"energy_split_v", l.energy_split_v},
                          {"seconds", l.seconds}});
    }
    return {{"model", folder},
            {"spec", setting.spec.to_string()},
            {"svd", svd_mode_name(setting.spec.svd)},
            {"d_kv", nullable(report.d_kv)},
            {"rank", nullable(report.rank)},
            {"split_rank", nullable(report.split_rank)},
            {"n_kv_head", report.n_kv_head},
            {"head_dim", report.head_dim},
            {"hidden", report.hidden},
            {"seconds", report.seconds},
            {"layers", layers}};
}

// Long format: one row per singular value.
void print_csv(std::ostream& out, const SpectrumReport& report) {
    out << "layer,matrix,index,sigma,cumulative_energy\n" << std::setprecision(17);
    for (const LayerSpectrum& l : report.layers)
        for (SpectrumMatrix matrix : spectrum_matrices()) {
            const std::vector<double>& sigma = l.sigma(matrix);
            const std::vector<double> curve = l.cumulative_energy(matrix);
            for (size_t i = 0; i < sigma.size(); ++i)
                out << l.layer << "," << spectrum_matrix_name(matrix) << "," << i << "," << sigma[i] << "," << curve[i]
                    << "\n";
        }
}

std::string shape(int64_t rows, int64_t columns) {
    return "[" + std::to_string(rows) + " x " + std::to_string(columns) + "]";
}

void print_text(std::ostream& out, const SpectrumReport& report, const ResolvedSetting& setting,
                const ModelConfig& config, const std::string& folder, int64_t top) {
    const int64_t rows = config.n_kv_head * config.head_dim;
    const int64_t nope = report.layers.empty() ? 0 : k_nope_rows(setting.kept, report.layers.front().layer, config);
    bool same_rows = true;  // 2-norm-layer and custom masks may keep different counts per layer
    for (const LayerSpectrum& l : report.layers) same_rows = same_rows && k_nope_rows(setting.kept, l.layer, config) == nope;
    out << "model     " << folder << "\n"
        << "setting   " << setting.spec.to_string() << "\n"
        << "matrices  W_k " << shape(rows, config.hidden) << ", W_k,nope " << shape(nope, config.hidden) << ", W_v "
        << shape(rows, config.hidden) << ", joint [W_k,nope; W_v] " << shape(nope + rows, config.hidden)
        << (same_rows ? "" : " (W_k,nope rows of the first layer shown; they differ per layer)") << "\n";
    if (report.rank < 0) {
        out << "rank      no latent (svd=none): spectra only; give d_kv (svd=joint or split) for energy and error\n";
    } else {
        out << "rank      joint n_kv x d_kv = " << config.n_kv_head << " x " << report.d_kv << " = " << report.rank
            << "; split n_kv x d_kv/2 = " << report.split_rank << " each for W_k,nope and W_v (the setting uses "
            << svd_mode_name(setting.spec.svd) << ")\n\n"
            << "         energy at rank     relative error\n"
            << "layer    joint    split     joint    split\n";
        out << std::fixed << std::setprecision(4);
        for (const LayerSpectrum& l : report.layers)
            out << std::setw(5) << l.layer << std::setw(9) << l.energy_joint << std::setw(9) << l.energy_split
                << std::setw(10) << l.error_joint << std::setw(9) << l.error_split << "\n";
    }
    if (top <= 0) return;
    out << "\ntop " << top << " singular values\nlayer  matrix\n" << std::defaultfloat << std::setprecision(5);
    for (const LayerSpectrum& l : report.layers)
        for (SpectrumMatrix matrix : spectrum_matrices()) {
            const std::vector<double>& sigma = l.sigma(matrix);
            out << std::setw(5) << l.layer << "  " << std::left << std::setw(7) << spectrum_matrix_name(matrix)
                << std::right;
            if (sigma.empty()) out << "  (no rows: every pair keeps RoPE)";
            for (size_t i = 0; i < std::min<size_t>(sigma.size(), static_cast<size_t>(top)); ++i)
                out << std::setw(11) << sigma[i];
            out << "\n";
        }
}

int cmd_spectrum(const ParsedArgs& a, Io& io) {
    require_positional(a, 1, kSpectrumUsage);
    if (!a.has("--mla")) throw Error("", "--mla", "required, e.g. --mla \"strategy=high,r=4,d_kv=16,svd=joint\"");
    if (a.flag("--json") && a.flag("--csv")) throw Error("", "--csv", "give one of --json and --csv");
    const std::string& folder = a.positional[0];
    if (!fs::is_directory(folder)) throw Error(folder, "", "not a model folder (spectra need the weights)");
    const MlaSpec spec = MlaSpec::parse(a.value("--mla"));
    const ModelConfig config = ModelConfig::from_file((fs::path(folder) / "config.json").string());
    const ResolvedSetting setting = resolve_setting(spec, config, folder_calibrator(folder, spec.variant, io));
    const Checkpoint checkpoint = Checkpoint::open_folder(folder);

    SpectrumOptions options;
    if (a.has("--layers")) options.layers = parse_layers(a.value("--layers"));
    ProgressLine progress(io.err, "spectrum");
    options.progress = [&](int64_t done, int64_t total) { progress.update(done, total, done, "layers/s"); };
    const SpectrumReport report = compute_spectra(checkpoint, config, setting.kept, setting.spec.d_kv, options);
    progress.finish();

    if (a.flag("--json")) io.out << spectrum_json(report, setting, config, folder).dump() << "\n";
    else if (a.flag("--csv")) print_csv(io.out, report);
    else print_text(io.out, report, setting, config, folder, a.integer("--top", 4, 0, 1 << 20));
    return 0;
}

}  // namespace

std::vector<Command> spectrum_commands() {
    return {
        {"spectrum", kSpectrumUsage,
         "per-layer singular values of W_k, W_k,nope, W_v and [W_k,nope; W_v]; energy and relative error at rank "
         "n_kv x d_kv (joint) and n_kv x d_kv/2 each (split)",
         {{"--mla", "--layers", "--top", "--threads"}, {"--json", "--csv", "--help"}},
         cmd_spectrum},
    };
}

}  // namespace mlawb::cli
