// Results-store commands: runs, compare, export. All read the store named by --db
// (default results.db in the current folder) and never create one.
#include "app/cli/commands.h"

#include "core/error.h"
#include "eval/store.h"

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>

namespace mlawb::cli {

using json = nlohmann::json;

namespace {

ResultsStore open_existing_store(const ParsedArgs& a) {
    return ResultsStore::open(a.value("--db", kDefaultResultsDb), ResultsStore::OpenMode::ExistingOnly);
}

int64_t parse_run_id(const std::string& text, const std::string& which) {
    int64_t id = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec != std::errc() || end != text.data() + text.size() || id < 1)
        throw Error("", which, "'" + text + "' is not a run id (mlawb runs lists them)");
    return id;
}

// Up to 4 decimals, trailing zeros dropped: "71.11", "0.3333", "100".
std::string display_number(double value) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.4f", value);
    std::string text = buffer;
    text.erase(text.find_last_not_of('0') + 1);
    if (text.back() == '.') text.pop_back();
    return text == "-0" ? "0" : text;
}

// The model's folder name: enough to tell models apart in a table; --json has the full path.
std::string model_name(const std::string& path) {
    std::filesystem::path p(path);
    if (!p.has_filename()) p = p.parent_path();  // "folder/" -> "folder"
    return p.filename().empty() ? path : p.filename().string();
}

// Columns as wide as their widest cell, two spaces apart; numbers (right_aligned) line up
// on their last digit.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows,
                 const std::set<size_t>& right_aligned = {}) {
    std::vector<size_t> widths;
    for (const auto& row : rows)
        for (size_t c = 0; c < row.size(); ++c) {
            if (widths.size() <= c) widths.push_back(0);
            widths[c] = std::max(widths[c], row[c].size());
        }
    for (const auto& row : rows) {
        std::string line;
        for (size_t c = 0; c < row.size(); ++c) {
            const std::string pad(widths[c] - row[c].size(), ' ');
            line += right_aligned.count(c) ? pad + row[c] : row[c] + (c + 1 < row.size() ? pad : "");
            if (c + 1 < row.size()) line += "  ";
        }
        out << line << "\n";
    }
}

json optional_json(const std::optional<int64_t>& value) { return value ? json(*value) : json(nullptr); }
json optional_json(const std::optional<double>& value) { return value ? json(*value) : json(nullptr); }

json summary_json(const RunSummary& r) {
    return {{"id", r.id},
            {"model", r.model_path},
            {"model_hash", r.model_hash},
            {"setting", r.setting_spec},
            {"task", r.task},
            {"dataset", r.dataset},
            {"status", run_status_name(r.status)},
            {"started_at", r.started_at},
            {"finished_at", r.finished_at.empty() ? json(nullptr) : json(r.finished_at)},
            {"samples", r.samples},
            {"main_metric", r.main_metric ? json{{"name", r.main_metric->name}, {"value", r.main_metric->value}}
                                          : json(nullptr)}};
}

json detail_json(const RunDetail& d) {
    json j = summary_json(d.summary);
    j["run_key"] = d.run_key;
    j["options"] = json::parse(d.options_json.empty() ? "{}" : d.options_json, nullptr, false);
    j["kept_pairs_hash"] = d.kept_pairs_hash;
    j["git_revision"] = d.git_revision;
    j["host"] = d.host;
    j["device"] = d.device;
    j["threads"] = d.threads;
    j["malformed_lines"] = d.malformed_lines;
    j["error"] = d.error;
    json metrics = json::array();
    for (const auto& m : d.metrics) metrics.push_back({{"name", m.name}, {"bucket", m.bucket}, {"value", m.value}});
    j["metrics"] = metrics;
    if (d.memory)
        j["memory"] = {{"kv_elements_per_token", d.memory->kv_elements_per_token},
                       {"bytes_formula", d.memory->bytes_formula},
                       {"bytes_measured", optional_json(d.memory->bytes_measured)},
                       {"measured_tokens", optional_json(d.memory->measured_tokens)},
                       {"peak_rss_bytes", optional_json(d.memory->peak_rss_bytes)},
                       {"peak_gpu_bytes", optional_json(d.memory->peak_gpu_bytes)},
                       {"kv_bits", d.memory->kv_bits},
                       {"kv_group", d.memory->kv_group},
                       {"kv_residual", d.memory->kv_residual},
                       {"bytes_real", d.memory->bytes_real}};
    else
        j["memory"] = nullptr;
    return j;
}

int cmd_runs(const ParsedArgs& a, Io& io) {
    require_positional(a, 0, "mlawb runs [--db FILE] [--json]");
    const ResultsStore store = open_existing_store(a);
    const std::vector<RunSummary> runs = store.list_runs();
    if (a.flag("--json")) {
        json list = json::array();
        for (const auto& r : runs) list.push_back(summary_json(r));
        io.out << json{{"db", store.path()}, {"runs", list}}.dump(2) << "\n";
        return 0;
    }
    if (runs.empty()) {
        io.out << "no runs in " << store.path() << "\n";
        return 0;
    }
    std::vector<std::vector<std::string>> rows = {
        {"id", "model", "setting", "task", "dataset", "status", "samples", "main metric"}};
    for (const auto& r : runs)
        rows.push_back({std::to_string(r.id), model_name(r.model_path), r.setting_spec, r.task, r.dataset,
                        run_status_name(r.status), std::to_string(r.samples),
                        r.main_metric ? r.main_metric->name + " " + display_number(r.main_metric->value) : "-"});
    print_table(io.out, rows, {0, 6});
    return 0;
}

std::string run_line(const RunDetail& d) {
    const RunSummary& r = d.summary;
    return "run " + std::to_string(r.id) + ": " + model_name(r.model_path) + "  " + r.setting_spec + "  " + r.task + "/" +
           r.dataset + "  " + run_status_name(r.status) + ", " + std::to_string(r.samples) + " samples";
}

int cmd_compare(const ParsedArgs& a, Io& io) {
    require_positional(a, 2, "mlawb compare RUN_A RUN_B [--db FILE] [--json]");
    const int64_t run_a = parse_run_id(a.positional[0], "RUN_A");
    const int64_t run_b = parse_run_id(a.positional[1], "RUN_B");
    const ResultsStore store = open_existing_store(a);
    const RunComparison c = store.compare(run_a, run_b);
    // Comparing across datasets or tasks is allowed (e.g. one setting against itself on two
    // task files) but usually a slip, so say so where it does not disturb the JSON.
    if (c.a.summary.task != c.b.summary.task || c.a.summary.dataset != c.b.summary.dataset)
        io.err << "note: runs " << run_a << " and " << run_b << " differ in task/dataset (" << c.a.summary.task << "/"
               << c.a.summary.dataset << " vs " << c.b.summary.task << "/" << c.b.summary.dataset
               << "); samples are matched by _id\n";

    if (a.flag("--json")) {
        json metrics = json::array();
        for (const auto& m : c.metrics)
            metrics.push_back({{"name", m.name},
                               {"bucket", m.bucket},
                               {"a", optional_json(m.a)},
                               {"b", optional_json(m.b)},
                               {"delta", m.a && m.b ? json(*m.b - *m.a) : json(nullptr)}});
        json changed = json::array();
        for (const auto& s : c.changed)
            changed.push_back({{"id", s.sample_id},
                               {"kind", sample_change_name(s.kind)},
                               {"score_a", s.score_a},
                               {"score_b", s.score_b},
                               {"prediction_a", s.prediction_a},
                               {"prediction_b", s.prediction_b}});
        io.out << json{{"a", detail_json(c.a)},
                       {"b", detail_json(c.b)},
                       {"metrics", metrics},
                       {"samples", {{"unchanged", c.unchanged}, {"changed", changed}, {"only_a", c.only_a}, {"only_b", c.only_b}}}}
                      .dump(2)
               << "\n";
        return 0;
    }

    io.out << run_line(c.a) << "\n" << run_line(c.b) << "\n\n";
    const std::string col_a = "run " + std::to_string(run_a), col_b = "run " + std::to_string(run_b);
    std::vector<std::vector<std::string>> rows = {{"metric", "bucket", col_a, col_b, "delta"}};
    auto cell = [](const std::optional<double>& v) { return v ? display_number(*v) : std::string("-"); };
    for (const auto& m : c.metrics) {
        std::string delta = "-";
        if (m.a && m.b) delta = (*m.b >= *m.a ? "+" : "") + display_number(*m.b - *m.a);
        rows.push_back({m.name, m.bucket.empty() ? "all" : m.bucket, cell(m.a), cell(m.b), delta});
    }
    if (c.metrics.empty()) io.out << "no metrics recorded in either run\n";
    else print_table(io.out, rows, {2, 3, 4});

    int64_t counts[3] = {0, 0, 0};
    for (const auto& s : c.changed) ++counts[static_cast<int>(s.kind)];
    io.out << "\nsamples: " << c.unchanged << " unchanged, " << counts[0] << " gained, " << counts[1] << " lost, "
           << counts[2] << " changed, " << c.only_a.size() << " only in " << col_a << ", " << c.only_b.size()
           << " only in " << col_b << "\n";
    std::vector<std::vector<std::string>> changes;
    for (const auto& s : c.changed)
        changes.push_back({"  " + std::string(sample_change_name(s.kind)), s.sample_id,
                           display_number(s.score_a) + " -> " + display_number(s.score_b)});
    print_table(io.out, changes);
    for (const auto& id : c.only_a) io.out << "  only in " << col_a << "  " << id << "\n";
    for (const auto& id : c.only_b) io.out << "  only in " << col_b << "  " << id << "\n";
    return 0;
}

int cmd_export(const ParsedArgs& a, Io& io) {
    require_positional(a, 0, "mlawb export --csv OUT [--db FILE]");
    if (!a.has("--csv")) throw Error("", "--csv", "required (the CSV file to write)");
    const ResultsStore store = open_existing_store(a);
    const std::string out = a.value("--csv");
    const int64_t rows = store.export_csv(out);
    io.err << "wrote " << rows << " rows (run x metric x bucket) from " << store.path() << " to " << out << "\n";
    return 0;
}

}  // namespace

std::vector<Command> runs_commands() {
    return {
        {"runs", "mlawb runs [--db FILE] [--json]",
         "evaluation runs in the results store (default results.db here): model, setting, task, dataset, status, "
         "samples, main metric",
         {{"--db"}, {"--json", "--help"}}, cmd_runs},
        {"compare", "mlawb compare RUN_A RUN_B [--db FILE] [--json]",
         "two runs side by side: every metric and bucket with the delta (B - A), and the samples whose score changed",
         {{"--db"}, {"--json", "--help"}}, cmd_compare},
        {"export", "mlawb export --csv OUT [--db FILE]",
         "one CSV row per run x metric x bucket, with model, setting, task and dataset (written whole or not at all)",
         {{"--db", "--csv"}, {"--help"}}, cmd_export},
    };
}

}  // namespace mlawb::cli
