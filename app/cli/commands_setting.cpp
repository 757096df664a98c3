// Setting commands: strategy (which RoPE pairs each KV head keeps) and memory (the KV cache a
// setting needs). Both read only config.json, except strategy with calib=FILE, which loads the
// model to calibrate 2-norm scores.
#include "app/cli/commands.h"
#include "app/cli/progress.h"

#include "analysis/calibration.h"
#include "analysis/memory_model.h"
#include "analysis/setting.h"
#include "core/config.h"
#include "core/error.h"
#include "core/llama_model.h"

#include <cmath>
#include <filesystem>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

namespace mlawb::cli {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const char* const kStrategyUsage = "mlawb strategy MODEL --mla SPEC [--json]";
const char* const kMemoryUsage = "mlawb memory MODEL --mla SPEC [--ctx N] [--batch B] [--json] [--config-only]";

MlaSpec spec_option(const ParsedArgs& a) {
    if (!a.has("--mla"))
        throw Error("", "--mla", "required, e.g. --mla \"strategy=2-norm,r=4,d_kv=16,svd=joint,scores=FILE\"");
    return MlaSpec::parse(a.value("--mla"));
}

// MODEL is a folder holding config.json; a bare config.json is accepted where `allow_file`.
std::string config_path(const std::string& target, bool allow_file) {
    if (fs::is_directory(target)) return (fs::path(target) / "config.json").string();
    if (!fs::exists(target)) throw Error(target, "", "no such model folder or file");
    if (!allow_file) throw Error(target, "", "is a file; pass a model folder, or --config-only with a bare config.json");
    return target;
}

std::string join_pairs(const std::vector<int64_t>& pairs) {
    std::ostringstream s;
    for (size_t i = 0; i < pairs.size(); ++i) s << (i ? " " : "") << pairs[i];
    return s.str();
}

// Kept pairs of a head that are among its `r` highest-frequency pairs {0..r-1} (strategy high).
int64_t among_high(const std::vector<int64_t>& pairs, int64_t r) {
    int64_t n = 0;
    for (int64_t k : pairs) n += k < r ? 1 : 0;
    return n;
}

int cmd_strategy(const ParsedArgs& a, Io& io) {
    require_positional(a, 1, kStrategyUsage);
    const MlaSpec spec = spec_option(a);
    const std::string& target = a.positional[0];
    const ModelConfig config = ModelConfig::from_file(config_path(target, true));
    const ResolvedSetting setting = resolve_setting(spec, config, folder_calibrator(target, spec.variant, io));
    const KeptPairs& kept = setting.kept;

    int64_t kept_total = 0, high_total = 0;
    for (int64_t l = 0; l < kept.n_layer; ++l)
        for (int64_t g = 0; g < kept.n_kv_head; ++g) {
            const std::vector<int64_t> pairs = kept.pairs(l, g);
            kept_total += static_cast<int64_t>(pairs.size());
            high_total += among_high(pairs, static_cast<int64_t>(pairs.size()));
        }

    if (a.flag("--json")) {
        json j = json::parse(kept.to_json_text());
        j["spec"] = setting.spec.to_string();
        j["strategy"] = setting.spec.strategy;
        j["r"] = setting.spec.r;
        j["n_layer"] = kept.n_layer;
        j["n_kv_head"] = kept.n_kv_head;
        j["n_pairs"] = kept.n_pairs;
        j["kept_total"] = kept_total;
        j["among_high"] = high_total;  // kept pairs among each head's r highest-frequency pairs
        if (setting.scores) {
            const CalibrationProvenance& p = setting.scores->provenance;
            j["scores"] = {{"variant", setting.scores->variant}, {"file", spec.scores_file}, {"text_file", p.text_file},
                           {"windows", p.windows},           {"seq_len", p.seq_len},   {"tokens", p.tokens}};
        }
        io.out << j.dump() << "\n";
        return 0;
    }

    const int64_t r = setting.spec.r;
    io.out << "setting   " << setting.spec.to_string() << "\n"
           << "model     " << config.source << ": " << config.n_layer << " layers, " << config.n_kv_head
           << " KV heads, head_dim "
           << config.head_dim << " (" << kept.n_pairs << " pairs; pair 0 = highest frequency)\n";
    if (r > 0)
        io.out << "kept      " << r << " pairs per KV head (" << 2 * r << " of " << config.head_dim
               << " dims keep RoPE); query heads use their KV head's pairs\n";
    else
        io.out << "kept      pairs per KV head as the mask lists them; query heads use their KV head's pairs\n";
    if (setting.scores)
        io.out << "scores    " << setting.scores->variant << " variant"
               << (spec.scores_file.empty() ? ", calibrated on " + spec.calib_file : ", from " + spec.scores_file) << "\n";
    size_t width = std::string("kept pairs").size();
    for (int64_t l = 0; l < kept.n_layer; ++l)
        for (int64_t g = 0; g < kept.n_kv_head; ++g) width = std::max(width, join_pairs(kept.pairs(l, g)).size());
    io.out << "\nlayer  kv head  " << std::left << std::setw(static_cast<int>(width)) << "kept pairs" << std::right
           << "  among high\n";
    for (int64_t l = 0; l < kept.n_layer; ++l)
        for (int64_t g = 0; g < kept.n_kv_head; ++g) {
            const std::vector<int64_t> pairs = kept.pairs(l, g);
            io.out << std::setw(5) << l << std::setw(9) << g << "  " << std::left << std::setw(static_cast<int>(width))
                   << join_pairs(pairs) << std::right << "  " << among_high(pairs, static_cast<int64_t>(pairs.size()))
                   << "/" << pairs.size() << "\n";
        }
    const double share = kept_total > 0 ? 100.0 * high_total / kept_total : 0.0;
    io.out << "\ncompared with high: " << high_total << " of " << kept_total << " kept pairs (" << std::fixed
           << std::setprecision(1) << share << "%) are among each head's " << (r > 0 ? std::to_string(r) : "count of")
           << " highest-frequency pairs" << (r > 0 ? " (0.." + std::to_string(r - 1) + ")" : "") << "\n";
    return 0;
}

std::string human_bytes(double bytes) {
    static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int unit = 0;
    double value = bytes;
    // Below 10 KiB in plain bytes, so the per-token figures stay exact.
    while (value >= (unit == 0 ? 10240.0 : 1024.0) && unit < 4) {
        value /= 1024.0;
        ++unit;
    }
    std::ostringstream s;
    const bool whole = unit == 0 && value == std::floor(value);
    s << std::fixed << std::setprecision(whole ? 0 : 2) << value << " " << units[unit];
    return s.str();
}

std::string change(double reduction_percent) {
    std::ostringstream s;
    s << std::fixed << std::setprecision(2) << (reduction_percent > 0 ? "-" : "+") << std::abs(reduction_percent) << "%";
    return s.str();
}

json memory_json(const ModelConfig& config, const MlaSpec& spec, const MemoryEstimate& m) {
    json parts = json::array();
    for (const CachedPart& p : m.parts)
        parts.push_back({{"name", p.name},
                         {"elements_per_token_layer", p.elements_per_token_layer},
                         {"groups_per_token_layer", p.groups_per_token_layer}});
    return {{"model", config.source},
            {"spec", spec.to_string()},
            {"layout", m.layout},
            {"n_layer", m.n_layer},
            {"kept_pairs", m.kept_pairs},
            {"d_kv", spec.d_kv > 0 ? json(spec.d_kv) : json(nullptr)},
            {"kv_bits", m.kv_bits},
            {"kv_group", m.kv_group},
            {"context_tokens", m.context_tokens},
            {"batch", m.batch},
            {"residual_tokens", m.residual_tokens},
            {"parts", parts},
            {"original_elements_per_token_layer", m.original_elements_per_token_layer},
            {"elements_per_token_layer", m.elements_per_token_layer},
            {"original_elements_per_token", m.original_elements_per_token},
            {"elements_per_token", m.elements_per_token},
            {"groups_per_token_layer", m.groups_per_token_layer},
            {"original_bytes_per_token_layer", m.original_bytes_per_token_layer},
            {"nominal_bytes_per_token_layer", m.nominal_bytes_per_token_layer},
            {"real_bytes_per_token_layer", m.real_bytes_per_token_layer},
            {"original_bytes_per_token", m.original_bytes_per_token},
            {"nominal_bytes_per_token", m.nominal_bytes_per_token},
            {"real_bytes_per_token", m.real_bytes_per_token},
            {"original_total_bytes", m.original_total_bytes},
            {"nominal_total_bytes", m.nominal_total_bytes},
            {"real_total_bytes", m.real_total_bytes},
            {"reduction_percent", m.reduction_percent},
            {"reduction_percent_real", m.reduction_percent_real},
            {"total_reduction_percent_real", m.total_reduction_percent_real}};
}

void print_memory(std::ostream& out, const ModelConfig& config, const MlaSpec& spec, const MemoryEstimate& m) {
    out << "model     " << config.source << ": " << config.n_layer << " layers, " << config.n_kv_head
        << " KV heads x head_dim "
        << config.head_dim << " (" << (config.is_mha() ? "MHA" : "GQA") << ")\n"
        << "setting   " << spec.to_string() << "\n"
        << "layout    " << m.layout << ":";
    for (int i = 0; i < MemoryEstimate::part_count; ++i)
        out << (i ? " +" : "") << " " << m.parts[i].name << " " << m.parts[i].elements_per_token_layer;
    out << " values per token per layer\n";
    if (m.kv_bits < 16)
        out << "cache     " << m.kv_bits << "-bit values; fp16 scale + zero point per group of " << m.kv_group << " values ("
            << m.groups_per_token_layer << " groups per token per layer); last " << m.residual_tokens
            << " tokens at 16 bits\n";
    else
        out << "cache     16-bit values (unquantized)\n";

    out << std::fixed << std::setprecision(2) << "\n"
        << std::left << std::setw(28) << "" << std::right << std::setw(18) << "original 16-bit" << std::setw(18)
        << "this setting" << std::setw(10) << "change" << "\n";
    auto row = [&](const std::string& label, const std::string& original, const std::string& now, double reduction,
                   const std::string& note) {
        out << std::left << std::setw(28) << label << std::right << std::setw(18) << original << std::setw(18) << now
            << std::setw(10) << change(reduction) << (note.empty() ? "" : "  " + note) << "\n";
    };
    const double values_reduction =
        100.0 * (1.0 - static_cast<double>(m.elements_per_token_layer) / m.original_elements_per_token_layer);
    row("values / token / layer", std::to_string(m.original_elements_per_token_layer),
        std::to_string(m.elements_per_token_layer), values_reduction, "");
    const std::string bits = std::to_string(m.kv_bits) + "-bit";
    row("bytes / token / layer", human_bytes(m.original_bytes_per_token_layer), human_bytes(m.nominal_bytes_per_token_layer),
        m.reduction_percent, "nominal (" + bits + ")");
    if (m.kv_bits < 16)
        row("", "", human_bytes(m.real_bytes_per_token_layer), m.reduction_percent_real, "real (+ scales, zero points)");
    row("bytes / token, " + std::to_string(m.n_layer) + " layers", human_bytes(m.original_bytes_per_token),
        human_bytes(m.nominal_bytes_per_token), m.reduction_percent, "nominal");
    if (m.kv_bits < 16) row("", "", human_bytes(m.real_bytes_per_token), m.reduction_percent_real, "real");
    row("total, ctx " + std::to_string(m.context_tokens) + " x batch " + std::to_string(m.batch),
        human_bytes(m.original_total_bytes), human_bytes(m.nominal_total_bytes),
        100.0 * (1.0 - m.nominal_total_bytes / m.original_total_bytes), "nominal");
    if (m.kv_bits < 16)
        row("", "", human_bytes(m.real_total_bytes), m.total_reduction_percent_real, "real (residual window at 16 bits)");
}

int cmd_memory(const ParsedArgs& a, Io& io) {
    require_positional(a, 1, kMemoryUsage);
    const MlaSpec spec = spec_option(a);
    const ModelConfig config = ModelConfig::from_file(config_path(a.positional[0], a.flag("--config-only")));
    if (!a.has("--ctx") && config.max_position < 1)
        throw Error(config.source, "max_position_embeddings", "missing; give --ctx");
    const int64_t ctx = a.integer("--ctx", config.max_position, 1, 1LL << 40);
    const int64_t batch = a.integer("--batch", 1, 1, 1LL << 30);
    const MemoryEstimate m = estimate_memory(config, spec, ctx, batch);
    if (a.flag("--json")) io.out << memory_json(config, spec, m).dump(2) << "\n";
    else print_memory(io.out, config, spec, m);
    return 0;
}

}  // namespace

std::vector<Command> setting_commands() {
    return {
        {"strategy", kStrategyUsage,
         "RoPE pairs each KV head keeps under a partial-RoPE strategy (config.json; scores=FILE or calib=FILE for 2-norm)",
         {{"--mla"}, {"--json", "--help"}}, cmd_strategy},
        {"memory", kMemoryUsage,
         "KV-cache values and bytes per token and in total for a setting vs the original (MODEL: folder, or config.json with --config-only; ctx: model context)",
         {{"--mla", "--ctx", "--batch"}, {"--json", "--config-only", "--help"}}, cmd_memory},
    };
}

}  // namespace mlawb::cli
