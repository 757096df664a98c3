// Results store: the reads (runs, samples, comparison) and the CSV export.
#include "eval/store.h"

#include "eval/store_sqlite.h"

#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

namespace mlawb {

using store_detail::Statement;

namespace {

RunStatus parse_status(const std::string& text, const std::string& db_path, int64_t run_id) {
    for (RunStatus s : {RunStatus::Running, RunStatus::Finished, RunStatus::Failed, RunStatus::Cancelled})
        if (text == run_status_name(s)) return s;
    throw Error(db_path, "runs: read", "run " + std::to_string(run_id) + " has unknown status '" + text + "'");
}

// One query for both the list and the detail. The main metric is the run's first recorded
// overall metric: metrics rows are upserted in place, so rowid order is first-recorded order.
constexpr const char* kRunColumnsSql =
    "SELECT r.id, m.path, m.content_hash, s.spec, r.task, r.dataset, r.status, r.started_at, "
    "COALESCE(r.finished_at, ''), (SELECT count(*) FROM samples x WHERE x.run_id = r.id), "
    "main.name, main.value, r.run_key, r.options_json, s.kept_pairs_hash, r.git_revision, r.host, r.device, "
    "r.error, r.threads, r.malformed_lines "
    "FROM runs r JOIN models m ON m.id = r.model_id JOIN settings s ON s.id = r.setting_id "
    "LEFT JOIN metrics main ON main.rowid = (SELECT min(rowid) FROM metrics WHERE run_id = r.id AND bucket = '') ";

RunDetail read_run_row(const Statement& s, const std::string& db_path) {
    RunDetail d;
    RunSummary& r = d.summary;
    r.id = s.integer(0);
    r.model_path = s.text(1);
    r.model_hash = s.text(2);
    r.setting_spec = s.text(3);
    r.task = s.text(4);
    r.dataset = s.text(5);
    r.status = parse_status(s.text(6), db_path, r.id);
    r.started_at = s.text(7);
    r.finished_at = s.text(8);
    r.samples = s.integer(9);
    if (!s.is_null(10)) r.main_metric = MetricRow{s.text(10), "", s.real(11)};
    d.run_key = s.text(12);
    d.options_json = s.text(13);
    d.kept_pairs_hash = s.text(14);
    d.git_revision = s.text(15);
    d.host = s.text(16);
    d.device = s.text(17);
    d.error = s.text(18);
    d.threads = s.integer(19);
    d.malformed_lines = s.integer(20);
    return d;
}

// Shortest text that reads back as the same double (CSV consumers get every bit).
std::string exact_number(double value) {
    char buffer[64];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
    return std::string(buffer, result.ptr);
}

// RFC 4180: quote fields holding a comma, quote or line break; double the quotes inside.
std::string csv_field(const std::string& text) {
    if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
    std::string out = "\"";
    for (char c : text) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

}  // namespace

const char* sample_change_name(SampleChange::Kind kind) {
    switch (kind) {
    case SampleChange::Kind::Gained: return "gained";
    case SampleChange::Kind::Lost: return "lost";
    case SampleChange::Kind::Changed: return "changed";
    }
    return "changed";
}

std::vector<RunSummary> ResultsStore::list_runs() const {
    Statement s(db_, path_, "runs: list", (std::string(kRunColumnsSql) + "ORDER BY r.id").c_str());
    std::vector<RunSummary> runs;
    while (s.step()) runs.push_back(read_run_row(s, path_).summary);
    return runs;
}

RunDetail ResultsStore::run(int64_t run_id) const {
    Statement s(db_, path_, "runs: read", (std::string(kRunColumnsSql) + "WHERE r.id = ?1").c_str());
    if (!s.bind(1, run_id).step()) throw Error(path_, "runs: read", "no run with id " + std::to_string(run_id));
    RunDetail d = read_run_row(s, path_);

    Statement metrics(db_, path_, "metrics: read", "SELECT name, bucket, value FROM metrics WHERE run_id = ?1 ORDER BY rowid");
    metrics.bind(1, run_id);
    while (metrics.step()) d.metrics.push_back({metrics.text(0), metrics.text(1), metrics.real(2)});

    Statement memory(db_, path_, "memory: read",
                     "SELECT kv_elements_per_token, bytes_formula, bytes_measured, measured_tokens, peak_rss_bytes, "
                     "peak_gpu_bytes, kv_bits, kv_group, kv_residual, bytes_real FROM memory WHERE run_id = ?1");
    if (memory.bind(1, run_id).step())
        d.memory = MemoryRow{memory.integer(0),          memory.real(1),
                             memory.optional_integer(2), memory.optional_integer(3),
                             memory.optional_integer(4), memory.optional_integer(5),
                             static_cast<int>(memory.integer(6)), memory.integer(7),
                             memory.integer(8),          memory.real(9)};
    return d;
}

std::vector<SampleRow> ResultsStore::samples(int64_t run_id) const {
    Statement s(db_, path_, "samples: read",
                "SELECT sample_id, prompt_tokens, truncated, prediction, score, latency_ms, generated_tokens, length, "
                "details_json FROM samples WHERE run_id = ?1 ORDER BY rowid");
    s.bind(1, run_id);
    std::vector<SampleRow> rows;
    while (s.step())
        rows.push_back({s.text(0), s.integer(1), s.integer(2) != 0, s.text(3), s.real(4), s.real(5), s.integer(6),
                        s.integer(7), s.text(8)});
    return rows;
}

std::vector<TrainingStepRow> ResultsStore::training_steps(int64_t run_id) const {
    Statement s(db_, path_, "training_steps: read",
                "SELECT step, loss, lr, grad_norm, tokens_per_s, heldout_ppl FROM training_steps WHERE run_id = ?1 "
                "ORDER BY step");
    s.bind(1, run_id);
    std::vector<TrainingStepRow> rows;
    while (s.step()) {
        TrainingStepRow r{s.integer(0), s.real(1), s.real(2), s.real(3), s.real(4), std::nullopt};
        if (!s.is_null(5)) r.heldout_ppl = s.real(5);
        rows.push_back(r);
    }
    return rows;
}

std::set<std::string> ResultsStore::recorded_sample_ids(int64_t run_id) const {
    Statement s(db_, path_, "samples: read", "SELECT sample_id FROM samples WHERE run_id = ?1");
    s.bind(1, run_id);
    std::set<std::string> ids;
    while (s.step()) ids.insert(s.text(0));
    return ids;
}

RunComparison ResultsStore::compare(int64_t run_a, int64_t run_b) const {
    RunComparison c;
    c.a = run(run_a);
    c.b = run(run_b);

    std::map<std::pair<std::string, std::string>, double> b_metrics;
    for (const auto& m : c.b.metrics) b_metrics[{m.name, m.bucket}] = m.value;
    for (const auto& m : c.a.metrics) {
        MetricDelta d{m.name, m.bucket, m.value, std::nullopt};
        auto it = b_metrics.find({m.name, m.bucket});
        if (it != b_metrics.end()) {
            d.b = it->second;
            b_metrics.erase(it);
        }
        c.metrics.push_back(d);
    }
    for (const auto& m : c.b.metrics)  // b's order for those a lacks
        if (b_metrics.count({m.name, m.bucket})) c.metrics.push_back({m.name, m.bucket, std::nullopt, m.value});

    const std::vector<SampleRow> a_samples = samples(run_a);
    std::map<std::string, const SampleRow*> b_by_id;
    const std::vector<SampleRow> b_samples = samples(run_b);
    for (const auto& s : b_samples) b_by_id[s.sample_id] = &s;
    for (const auto& s : a_samples) {
        auto it = b_by_id.find(s.sample_id);
        if (it == b_by_id.end()) {
            c.only_a.push_back(s.sample_id);
            continue;
        }
        const SampleRow& other = *it->second;
        b_by_id.erase(it);
        // Scores come from the same metric code on the same answers: equal work gives equal
        // doubles, so any difference is a real change, not rounding.
        if (s.score == other.score) {
            ++c.unchanged;
            continue;
        }
        SampleChange change;
        change.kind = s.score == 0 ? SampleChange::Kind::Gained
                    : other.score == 0 ? SampleChange::Kind::Lost
                                       : SampleChange::Kind::Changed;
        change.sample_id = s.sample_id;
        change.score_a = s.score;
        change.score_b = other.score;
        change.prediction_a = s.prediction;
        change.prediction_b = other.prediction;
        c.changed.push_back(std::move(change));
    }
    for (const auto& s : b_samples)
        if (b_by_id.count(s.sample_id)) c.only_b.push_back(s.sample_id);
    return c;
}

int64_t ResultsStore::export_csv(const std::string& out_path) const {
    namespace fs = std::filesystem;
    Statement s(db_, path_, "export: read",
                "SELECT r.id, m.path, m.content_hash, s.spec, r.task, r.dataset, r.status, x.name, x.bucket, x.value "
                "FROM runs r JOIN models m ON m.id = r.model_id JOIN settings s ON s.id = r.setting_id "
                "LEFT JOIN metrics x ON x.run_id = r.id ORDER BY r.id, x.rowid");
    const std::string temp = out_path + ".tmp";
    std::error_code ec;
    int64_t rows = 0;
    try {
        std::ofstream out(temp, std::ios::binary | std::ios::trunc);
        if (!out) throw Error(out_path, "", "cannot create " + temp);
        out << "run_id,model,model_hash,setting,task,dataset,status,metric,bucket,value\r\n";
        while (s.step()) {
            out << s.integer(0);
            ++rows;
            for (int column = 1; column <= 8; ++column) out << ',' << csv_field(s.text(column));
            out << ',' << (s.is_null(9) ? "" : exact_number(s.real(9))) << "\r\n";
        }
        out.close();
        if (!out) throw Error(out_path, "", "write failed (disk full?)");
        fs::rename(temp, out_path, ec);
        if (ec) throw Error(out_path, "", "cannot rename " + temp + " into place: " + ec.message());
    } catch (...) {
        fs::remove(temp, ec);  // never leave a partial export behind
        throw;
    }
    return rows;
}

std::string ResultsStore::integrity_check() const {
    Statement s(db_, path_, "integrity_check", "PRAGMA integrity_check");
    std::string report;
    while (s.step()) report += (report.empty() ? "" : "\n") + s.text(0);
    return report;
}

}  // namespace mlawb
