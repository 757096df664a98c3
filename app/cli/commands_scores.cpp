// Scores command: rope-scores (2-norm RoPE contribution scores from a calibration text).
#include "app/cli/commands.h"
#include "app/cli/progress.h"

#include "analysis/calibration.h"
#include "analysis/rope_scores.h"
#include "core/error.h"
#include "core/llama_model.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <ostream>

namespace mlawb::cli {

namespace fs = std::filesystem;

namespace {

const char* const kUsage =
    "mlawb rope-scores MODEL --calib FILE [--windows 16] [--seq-len 2048] [--variant product|sum] "
    "[--out scores.json] [--json|--csv] [--threads N]";

// Pairs listed per KV head in the plain-text table: the paper's SmolLM setting r = 4.
constexpr int64_t kShownPairs = 4;

std::string format_number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", v);
    return buf;
}

// One row per layer, KV head and pair. The q_norm_i columns are the query heads of that KV
// head's group, head kv_head * G + i (G = n_head / n_kv_head), so the group sum behind the
// score can be redone from the row alone.
void print_csv(std::ostream& out, const RopeScores& s) {
    const int64_t group = s.n_head / s.n_kv_head;
    out << "layer,kv_head,pair,score,k_norm";
    for (int64_t i = 0; i < group; ++i) out << ",q_norm_" << i;
    out << "\n";
    char buf[32];
    auto exact = [&](double v) {
        std::snprintf(buf, sizeof buf, "%.17g", v);
        return std::string(buf);
    };
    for (int64_t l = 0; l < s.n_layer; ++l)
        for (int64_t g = 0; g < s.n_kv_head; ++g)
            for (int64_t k = 0; k < s.n_pairs; ++k) {
                out << l << "," << g << "," << k << "," << exact(s.score(l, g, k)) << "," << exact(s.k_norm(l, g, k));
                for (int64_t i = 0; i < group; ++i) out << "," << exact(s.q_norm(l, g * group + i, k));
                out << "\n";
            }
}

void print_table(std::ostream& out, const RopeScores& s) {
    const CalibrationProvenance& p = s.provenance;
    out << "2-norm RoPE scores (" << s.variant << ") of " << p.model << "\n"
        << "calibrated on " << p.text_file << ": " << p.windows << " window(s) of up to " << p.seq_len << " tokens, "
        << p.tokens << " tokens\n"
        << "pair k = dims (k, k+" << s.n_pairs << "), k = 0 the highest frequency; top " << kShownPairs
        << " pairs = what strategy 2-norm keeps at r = " << kShownPairs << "\n\n";
    char line[256];
    std::snprintf(line, sizeof line, "%5s %7s  %-44s  %s\n", "layer", "kv_head", "top pairs (score)", "score min .. max");
    out << line;
    for (int64_t l = 0; l < s.n_layer; ++l)
        for (int64_t g = 0; g < s.n_kv_head; ++g) {
            std::string top;
            for (int64_t k : s.top_pairs(l, g, kShownPairs))
                top += (top.empty() ? "" : "  ") + std::to_string(k) + " (" + format_number(s.score(l, g, k)) + ")";
            const auto first = s.scores.begin() + (l * s.n_kv_head + g) * s.n_pairs;
            const auto [low, high] = std::minmax_element(first, first + s.n_pairs);
            std::snprintf(line, sizeof line, "%5lld %7lld  %-44s  %s .. %s\n", static_cast<long long>(l),
                          static_cast<long long>(g), top.c_str(), format_number(*low).c_str(),
                          format_number(*high).c_str());
            out << line;
        }
}

int cmd_rope_scores(const ParsedArgs& a, Io& io) {
    require_positional(a, 1, kUsage);
    if (!a.has("--calib")) throw Error("", "--calib", "required: the calibration text file");
    if (a.flag("--json") && a.flag("--csv")) throw Error("", "--csv", "choose one of --json and --csv");
    CalibrationOptions options;
    options.windows = a.integer("--windows", 16, 1, 1LL << 30);
    options.seq_len = a.integer("--seq-len", 2048, 2, 1 << 24);
    options.variant = a.value("--variant", "product");
    const auto& variants = RopeScores::variant_names();
    if (std::find(variants.begin(), variants.end(), options.variant) == variants.end())
        throw Error("", "--variant", "unknown value '" + options.variant + "'; valid values: product, sum");

    // A bad --out folder is found now, not after the calibration has run.
    if (a.has("--out")) {
        const fs::path parent = fs::path(a.value("--out")).parent_path();
        if (!parent.empty() && !fs::is_directory(parent)) throw Error(a.value("--out"), "--out", "no such folder");
    }

    LoadedModel m = load_model(a.positional[0]);
    apply_device_option(m, a);
    ProgressLine progress(io.err, "calibration");
    // Windows before the last are whole, so done x seq_len counts the tokens run (the final
    // one may be shorter; the summary line below gives the exact count).
    options.progress = [&](int64_t done, int64_t total) {
        progress.update(done, total, done * options.seq_len, "tok/s");
    };
    const auto start = std::chrono::steady_clock::now();
    RopeScores s = calibrate_rope_scores_from_file(m, a.value("--calib"), options);
    progress.finish();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    io.err << "calibrated on " << s.provenance.tokens << " tokens in " << s.provenance.windows << " window(s), "
           << format_number(seconds) << " s\n";

    if (a.has("--out")) {
        s.save(a.value("--out"));
        io.err << "wrote " << a.value("--out") << "\n";
    }
    if (a.flag("--json")) io.out << s.to_json_text();
    else if (a.flag("--csv")) print_csv(io.out, s);
    else print_table(io.out, s);
    return 0;
}

}  // namespace

std::vector<Command> scores_commands() {
    return {
        {"rope-scores", kUsage,
         "2-norm RoPE contribution scores per layer, KV head and pair (MHA2MLA) from the first N windows of L "
         "tokens of FILE; plain: top 4 pairs per KV head; --out/--json: {scores [L][n_kv][d/2], q_norms "
         "[L][n_h][d/2], k_norms [L][n_kv][d/2], variant, calibration}; --csv rows: layer,kv_head,pair,score,"
         "k_norm,q_norm_0..q_norm_{G-1} (query head kv_head*G+i, G = n_head/n_kv_head)",
         with_device_options({{"--calib", "--windows", "--seq-len", "--variant", "--out", "--threads"}, {"--json", "--csv", "--help"}}),
         cmd_rope_scores},
    };
}

}  // namespace mlawb::cli
