// score: LongBench prediction files scored as LongBench's eval.py scores them.
#include "app/cli/commands.h"

#include "core/error.h"
#include "eval/metrics.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

namespace mlawb::cli {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr const char* kUsage = "mlawb score --pred DIR [--e] [--json] [--out FILE]";

// eval.py's result.json: {dataset: score}, or with --e {dataset: {"0-4k": s, "4-8k": s, "8k+": s}}.
// An empty LongBench-E bucket is NaN in eval.py (json.dump writes the non-JSON token NaN); here
// it is null.
json result_json(const std::vector<PredictionFileScore>& scores, bool longbench_e) {
    json out = json::object();
    for (const auto& s : scores) {
        if (!longbench_e) {
            out[s.dataset] = s.score;
            continue;
        }
        json buckets = json::object();
        for (const auto& [bucket, value] : s.length_scores) buckets[bucket] = std::isnan(value) ? json(nullptr) : json(value);
        out[s.dataset] = buckets;
    }
    return out;
}

std::string percent_text(double value) {
    if (std::isnan(value)) return "-";
    std::ostringstream s;
    s << std::fixed << std::setprecision(2) << value;
    return s.str();
}

void print_table(std::ostream& out, const std::vector<PredictionFileScore>& scores, bool longbench_e) {
    const std::vector<std::string> buckets = {"0-4k", "4-8k", "8k+"};
    out << std::left << std::setw(24) << "dataset" << std::setw(22) << "metric" << std::right << std::setw(8) << "records";
    if (longbench_e)
        for (const auto& b : buckets) out << std::setw(9) << b;
    else
        out << std::setw(9) << "score";
    out << "\n";
    std::map<std::string, double> dataset_scores;
    for (const auto& s : scores) {
        out << std::left << std::setw(24) << s.dataset << std::setw(22) << s.metric << std::right << std::setw(8) << s.records;
        if (longbench_e)
            for (const auto& b : buckets) out << std::setw(9) << percent_text(s.length_scores.at(b));
        else
            out << std::setw(9) << percent_text(s.score);
        out << "\n";
        dataset_scores[s.dataset] = s.score;
    }
    if (!longbench_e)
        out << std::left << std::setw(54) << "average over datasets" << std::right << std::setw(9)
            << percent_text(overall_score(dataset_scores)) << "\n";
}

// Written beside the target and renamed over it, so a reader never sees half a file.
void write_result_file(const std::string& path, const json& result) {
    const std::string temp = path + ".tmp";
    {
        std::ofstream out(temp, std::ios::binary | std::ios::trunc);
        if (!out) throw Error(temp, "", "cannot create");
        out << result.dump(4) << "\n";  // eval.py: json.dump(scores, f, ensure_ascii=False, indent=4)
        out.close();
        if (!out) throw Error(temp, "", "write failed");
    }
    std::error_code ec;
    fs::rename(temp, path, ec);
    if (ec) {
        fs::remove(temp, ec);
        throw Error(path, "", "cannot rename " + temp + " into place");
    }
}

int cmd_score(const ParsedArgs& a, Io& io) {
    require_positional(a, 0, kUsage);
    if (!a.has("--pred")) throw Error("", "--pred", "required (a folder of <dataset>.jsonl prediction files)");
    const bool longbench_e = a.flag("--e");
    const std::vector<PredictionFileScore> scores = score_prediction_folder(a.value("--pred"), longbench_e);
    const json result = result_json(scores, longbench_e);
    if (a.has("--out")) {
        write_result_file(a.value("--out"), result);
        io.err << "wrote " << a.value("--out") << "\n";
    }
    if (a.flag("--json")) io.out << result.dump(4) << "\n";
    else print_table(io.out, scores, longbench_e);
    return 0;
}

}  // namespace

std::vector<Command> score_commands() {
    return {
        {"score", kUsage,
         "scores LongBench prediction files DIR/<dataset>.jsonl (lines {pred, answers, all_classes, length}) as "
         "LongBench's eval.py does; --json/--out: its result.json, {dataset: score} or with --e {dataset: "
         "{\"0-4k\", \"4-8k\", \"8k+\"}} by the length field; metric per dataset: DIR/dataset2metric.json, else "
         "the official mapping (Chinese jieba metrics are refused)",
         {{"--pred", "--out"}, {"--e", "--json", "--help"}},
         cmd_score},
    };
}

}  // namespace mlawb::cli
