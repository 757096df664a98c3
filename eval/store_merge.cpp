// Merging results stores (see eval/store_merge.h). The output is built in a temporary SQLite
// file; each source is ATTACHed read-only as `src` and copied table by table with INSERT ...
// SELECT statements generated from merge_tables()' column lists, through id maps held in
// TEMP tables. Comparisons of runs present on both sides are done here, row by row.
#include "eval/store_merge.h"

#include "eval/store.h"
#include "eval/store_sqlite.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <unistd.h>

namespace mlawb {

using store_detail::exec;
using store_detail::Statement;
using store_detail::Transaction;
namespace fs = std::filesystem;

const std::vector<MergeTable>& merge_tables() {
    // Schema version 3 (eval/store_schema.cpp). A new table or column needs an entry here and
    // a rule below; until then merge refuses stores that have it (test_sweep checks the list
    // against a store this build creates).
    static const std::vector<MergeTable> tables = {
        {"models", {"id", "path", "content_hash", "config_json"}},
        {"settings", {"id", "spec", "kept_pairs_hash", "kept_pairs_json"}},
        {"runs",
         {"id", "model_id", "setting_id", "task", "dataset", "options_json", "run_key", "status", "started_at",
          "finished_at", "git_revision", "host", "device", "threads", "malformed_lines", "error"}},
        {"samples",
         {"run_id", "sample_id", "prompt_tokens", "truncated", "prediction", "score", "latency_ms", "generated_tokens",
          "length", "details_json"}},
        {"metrics", {"run_id", "name", "bucket", "value"}},
        {"memory",
         {"run_id", "kv_elements_per_token", "bytes_formula", "bytes_measured", "measured_tokens", "peak_rss_bytes",
          "peak_gpu_bytes", "kv_bits", "kv_group", "kv_residual", "bytes_real"}},
        {"training_steps", {"run_id", "step", "loss", "lr", "grad_norm", "tokens_per_s", "heldout_ppl"}},
    };
    return tables;
}

namespace {

const MergeTable& table(const std::string& name) {
    for (const MergeTable& t : merge_tables())
        if (name == t.name) return t;
    throw Error("", "merge", "internal: no table " + name);
}

std::string join(const std::vector<std::string>& items, const std::string& sep = ", ") {
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
    return out;
}

// The table's columns except `skip`, each optionally prefixed ("s.col").
std::vector<std::string> columns_except(const MergeTable& t, const std::set<std::string>& skip, const std::string& prefix = "") {
    std::vector<std::string> out;
    for (const std::string& c : t.columns)
        if (!skip.count(c)) out.push_back(prefix + c);
    return out;
}

// "file:" URI of a path, percent-encoding what URIs reserve, opened read-only.
std::string readonly_uri(const std::string& path) {
    const std::string abs = fs::absolute(path).string();
    std::ostringstream uri;
    uri << "file:";
    for (unsigned char c : abs) {
        if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') uri << c;
        else {
            static const char* hex = "0123456789ABCDEF";
            uri << '%' << hex[c >> 4] << hex[c & 15];
        }
    }
    uri << "?mode=ro";
    return uri.str();
}

// Version, tables and columns of schema `schema` ("main" or "src") of `db`; `file` names it.
void check_schema(sqlite3* db, const std::string& work_path, const std::string& schema, const std::string& file) {
    {
        Statement v(db, work_path, "schema: user_version", ("PRAGMA " + schema + ".user_version").c_str());
        const int version = v.step() ? static_cast<int>(v.integer(0)) : 0;
        if (version != kResultsSchemaVersion)
            throw Error(file, "schema: user_version",
                        "results store schema version " + std::to_string(version) + ", but this mlawb merges version " +
                            std::to_string(kResultsSchemaVersion) + " stores only" +
                            (version == 0 ? std::string(" (not an mlawb results store?)")
                             : version < kResultsSchemaVersion
                                 ? " (open it once with `mlawb runs --db FILE` to migrate it)"
                                 : " (merge it with a newer mlawb)"));
    }
    std::set<std::string> known;
    for (const MergeTable& t : merge_tables()) known.insert(t.name);
    std::set<std::string> present;
    Statement tables(db, work_path, "schema: tables",
                     ("SELECT name FROM " + schema +
                      ".sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
                         .c_str());
    while (tables.step()) {
        const std::string name = tables.text(0);
        if (!known.count(name))
            throw Error(file, "schema: " + name,
                        "table '" + name + "' is unknown to merge (it copies " + join({known.begin(), known.end()}) +
                            "); merging would drop its rows, so it stops here: add the table to eval/store_merge.cpp");
        present.insert(name);
    }
    for (const MergeTable& t : merge_tables()) {
        if (!present.count(t.name)) throw Error(file, std::string("schema: ") + t.name, "table missing");
        std::set<std::string> columns;
        Statement info(db, work_path, "schema: columns", "SELECT name FROM pragma_table_info(?1, ?2)");
        info.bind(1, std::string(t.name)).bind(2, schema);
        while (info.step()) columns.insert(info.text(0));
        for (const std::string& c : columns)
            if (std::find(t.columns.begin(), t.columns.end(), c) == t.columns.end())
                throw Error(file, std::string("schema: ") + t.name + "." + c,
                            "column unknown to merge; merging would drop it, so it stops here: add it to "
                            "eval/store_merge.cpp");
        for (const std::string& c : t.columns)
            if (!columns.count(c)) throw Error(file, std::string("schema: ") + t.name + "." + c, "column missing");
    }
}

struct SampleResultRow {
    double score = 0;
    std::string prediction;
};
std::map<std::string, SampleResultRow> load_samples(sqlite3* db, const std::string& work, const std::string& schema,
                                                    int64_t run_id) {
    std::map<std::string, SampleResultRow> out;
    Statement s(db, work, "samples: read",
                ("SELECT sample_id, score, prediction FROM " + schema + ".samples WHERE run_id = ?1").c_str());
    s.bind(1, run_id);
    while (s.step()) out[s.text(0)] = {s.real(1), s.text(2)};
    return out;
}
std::map<std::pair<std::string, std::string>, double> load_metrics(sqlite3* db, const std::string& work,
                                                                   const std::string& schema, int64_t run_id) {
    std::map<std::pair<std::string, std::string>, double> out;
    Statement s(db, work, "metrics: read",
                ("SELECT name, bucket, value FROM " + schema + ".metrics WHERE run_id = ?1").c_str());
    s.bind(1, run_id);
    while (s.step()) out[{s.text(0), s.text(1)}] = s.real(2);
    return out;
}

std::map<int64_t, double> load_step_losses(sqlite3* db, const std::string& work, const std::string& schema,
                                           int64_t run_id) {
    std::map<int64_t, double> out;
    Statement s(db, work, "training_steps: read",
                ("SELECT step, loss FROM " + schema + ".training_steps WHERE run_id = ?1").c_str());
    s.bind(1, run_id);
    while (s.step()) out[s.integer(0)] = s.real(1);
    return out;
}

std::string number(double v) {
    std::ostringstream s;
    s.precision(17);
    s << v;
    return s.str();
}

// Why two runs of one run_key disagree, or "" when they agree on every result both hold.
std::string disagreement(sqlite3* db, const std::string& work, int64_t src_run, int64_t dst_run, bool both_finished) {
    const auto src_samples = load_samples(db, work, "src", src_run), dst_samples = load_samples(db, work, "main", dst_run);
    int64_t differing = 0;
    std::string first;
    for (const auto& [id, s] : src_samples) {
        auto it = dst_samples.find(id);
        if (it == dst_samples.end() || (it->second.score == s.score && it->second.prediction == s.prediction)) continue;
        if (differing++ == 0)
            first = "sample " + id + ": score " + number(s.score) + " / prediction \"" + s.prediction.substr(0, 40) +
                    "\" here, score " + number(it->second.score) + " / \"" + it->second.prediction.substr(0, 40) +
                    "\" in the output";
    }
    if (differing > 0) return std::to_string(differing) + " sample(s) differ; " + first;
    const auto src_steps = load_step_losses(db, work, "src", src_run), dst_steps = load_step_losses(db, work, "main", dst_run);
    for (const auto& [step, loss] : src_steps) {
        auto it = dst_steps.find(step);
        if (it != dst_steps.end() && it->second != loss)
            return "training step " + std::to_string(step) + ": loss " + number(loss) + " here, " + number(it->second) +
                   " in the output";
    }
    const auto src_metrics = load_metrics(db, work, "src", src_run), dst_metrics = load_metrics(db, work, "main", dst_run);
    for (const auto& [key, value] : src_metrics) {
        auto it = dst_metrics.find(key);
        if (it != dst_metrics.end() && it->second != value)
            return "metric " + key.first + (key.second.empty() ? "" : "@" + key.second) + ": " + number(value) +
                   " here, " + number(it->second) + " in the output";
    }
    if (both_finished) {
        if (src_samples.size() != dst_samples.size())
            return "both finished, with " + std::to_string(src_samples.size()) + " samples here and " +
                   std::to_string(dst_samples.size()) + " in the output";
        for (const auto& [id, s] : src_samples)
            if (!dst_samples.count(id)) return "both finished, but sample " + id + " is only here";
        if (src_metrics.size() != dst_metrics.size())
            return "both finished, with " + std::to_string(src_metrics.size()) + " metrics here and " +
                   std::to_string(dst_metrics.size()) + " in the output";
    }
    return "";
}

// The statements that copy one source run's rows into the output, generated from the lists.
struct CopyStatements {
    std::string insert_run, complete_run, copy_samples, replace_metrics_delete, copy_metrics, copy_memory;
    std::string add_steps, replace_steps;  // training_steps: missing steps only / every step
};

CopyStatements copy_statements() {
    CopyStatements c;
    const MergeTable& runs = table("runs");
    // runs: identity columns stay; the rest describe the process and its outcome.
    const std::set<std::string> run_identity = {"id", "model_id", "setting_id", "task", "dataset", "options_json", "run_key"};
    std::vector<std::string> run_cols = columns_except(runs, {"id"}), run_select;
    for (const std::string& col : run_cols) {
        if (col == "model_id") run_select.push_back("(SELECT dst FROM temp.model_map WHERE src = r.model_id)");
        else if (col == "setting_id") run_select.push_back("(SELECT dst FROM temp.setting_map WHERE src = r.setting_id)");
        else run_select.push_back("r." + col);
    }
    c.insert_run = "INSERT INTO main.runs (" + join(run_cols) + ") SELECT " + join(run_select) +
                   " FROM src.runs r WHERE r.id = ?1 RETURNING id";
    const std::vector<std::string> outcome = columns_except(runs, run_identity);
    c.complete_run = "UPDATE main.runs SET (" + join(outcome) + ") = (SELECT " + join(columns_except(runs, run_identity, "r.")) +
                     " FROM src.runs r WHERE r.id = ?1) WHERE id = ?2";

    // Child tables: run_id mapped to ?2, the other columns as they are, in recording order.
    auto child = [](const char* name, const std::string& conflict) {
        const MergeTable& t = table(name);
        const std::vector<std::string> rest = columns_except(t, {"run_id"});
        return "INSERT INTO main." + std::string(name) + " (run_id, " + join(rest) + ") SELECT ?2, " +
               join(columns_except(t, {"run_id"}, "x.")) + " FROM src." + name +
               " x WHERE x.run_id = ?1 ORDER BY x.rowid " + conflict;
    };
    c.copy_samples = child("samples", "ON CONFLICT (run_id, sample_id) DO NOTHING");
    c.replace_metrics_delete = "DELETE FROM main.metrics WHERE run_id = ?1";
    c.copy_metrics = child("metrics", "ON CONFLICT (run_id, name, bucket) DO UPDATE SET value = excluded.value");
    std::vector<std::string> updates;
    for (const std::string& col : columns_except(table("memory"), {"run_id"})) updates.push_back(col + " = excluded." + col);
    c.copy_memory = child("memory", "ON CONFLICT (run_id) DO UPDATE SET " + join(updates));
    c.add_steps = child("training_steps", "ON CONFLICT (run_id, step) DO NOTHING");
    updates.clear();
    for (const std::string& col : columns_except(table("training_steps"), {"run_id", "step"}))
        updates.push_back(col + " = excluded." + col);
    c.replace_steps = child("training_steps", "ON CONFLICT (run_id, step) DO UPDATE SET " + join(updates));
    return c;
}

int64_t changes(sqlite3* db) { return sqlite3_changes(db); }

// ATTACHes `source` read-only as `src` for the guard's lifetime (detached on every path out).
class AttachedSource {
public:
    AttachedSource(sqlite3* db, const std::string& work, const std::string& source) : db_(db), work_(work) {
        std::error_code ec;
        if (!fs::is_regular_file(source, ec)) throw Error(source, "open", "no such results database");
        Statement attach(db, work, "merge: attach " + source, "ATTACH DATABASE ?1 AS src");
        attach.bind(1, readonly_uri(source)).run();
    }
    ~AttachedSource() {
        if (db_) sqlite3_exec(db_, "DETACH DATABASE src", nullptr, nullptr, nullptr);
    }
    AttachedSource(const AttachedSource&) = delete;
    AttachedSource& operator=(const AttachedSource&) = delete;
    // Detaches now, reporting failure (every statement on `src` must be finalized first).
    void detach() {
        sqlite3* db = db_;
        db_ = nullptr;
        exec(db, work_, "merge: detach", "DETACH DATABASE src");
    }

private:
    sqlite3* db_;
    std::string work_;
};

// Copies the attached source `src` into main in one transaction; counts into `r`.
void copy_source(sqlite3* db, const std::string& work, const std::string& source, MergeReport& report,
                 MergeSourceReport& r) {
    Transaction transaction(db, work, "merge: " + source);
    exec(db, work, "merge: maps",
         "CREATE TEMP TABLE IF NOT EXISTS model_map (src INTEGER PRIMARY KEY, dst INTEGER NOT NULL);"
         "CREATE TEMP TABLE IF NOT EXISTS setting_map (src INTEGER PRIMARY KEY, dst INTEGER NOT NULL);"
         "DELETE FROM temp.model_map; DELETE FROM temp.setting_map;");
    const MergeTable& models = table("models");
    const MergeTable& settings = table("settings");
    {
        const auto cols = columns_except(models, {"id"});
        Statement add(db, work, "models: merge",
                      ("INSERT INTO main.models (" + join(cols) + ") SELECT " + join(columns_except(models, {"id"}, "m.")) +
                       " FROM src.models m WHERE m.content_hash NOT IN (SELECT content_hash FROM main.models) ORDER BY m.id")
                          .c_str());
        add.run();
        r.models_added = changes(db);
        exec(db, work, "models: map",
             "INSERT INTO temp.model_map (src, dst) SELECT s.id, d.id FROM src.models s "
             "JOIN main.models d ON d.content_hash = s.content_hash");
    }
    {
        const auto cols = columns_except(settings, {"id"});
        Statement add(db, work, "settings: merge",
                      ("INSERT INTO main.settings (" + join(cols) + ") SELECT " +
                       join(columns_except(settings, {"id"}, "s.")) +
                       " FROM src.settings s WHERE NOT EXISTS (SELECT 1 FROM main.settings d WHERE d.spec = s.spec AND "
                       "d.kept_pairs_hash = s.kept_pairs_hash) ORDER BY s.id")
                          .c_str());
        add.run();
        r.settings_added = changes(db);
        exec(db, work, "settings: map",
             "INSERT INTO temp.setting_map (src, dst) SELECT s.id, d.id FROM src.settings s "
             "JOIN main.settings d ON d.spec = s.spec AND d.kept_pairs_hash = s.kept_pairs_hash");
    }

    const CopyStatements sql = copy_statements();
    Statement insert_run(db, work, "runs: merge", sql.insert_run.c_str());
    Statement complete_run(db, work, "runs: complete", sql.complete_run.c_str());
    Statement copy_samples(db, work, "samples: merge", sql.copy_samples.c_str());
    Statement delete_metrics(db, work, "metrics: replace", sql.replace_metrics_delete.c_str());
    Statement copy_metrics(db, work, "metrics: merge", sql.copy_metrics.c_str());
    Statement copy_memory(db, work, "memory: merge", sql.copy_memory.c_str());
    Statement add_steps(db, work, "training_steps: merge", sql.add_steps.c_str());
    Statement replace_steps(db, work, "training_steps: merge", sql.replace_steps.c_str());
    Statement find(db, work, "runs: find", "SELECT id, status FROM main.runs WHERE run_key = ?1");

    struct SourceRun {
        int64_t id;
        std::string run_key, status, spec, task, dataset;
    };
    std::vector<SourceRun> runs;
    {
        Statement list(db, work, "runs: list",
                       "SELECT r.id, r.run_key, r.status, s.spec, r.task, r.dataset FROM src.runs r "
                       "JOIN src.settings s ON s.id = r.setting_id ORDER BY r.id");
        while (list.step())
            runs.push_back({list.integer(0), list.text(1), list.text(2), list.text(3), list.text(4), list.text(5)});
    }
    // Samples missing from the output; with `whole`, also the run's metrics, memory and
    // training steps as the source has them. Counts what it adds into r; returns whether it
    // added anything.
    auto copy_children = [&](int64_t src_id, int64_t dst_id, bool whole) {
        copy_samples.reset();
        copy_samples.bind(1, src_id).bind(2, dst_id).run();
        const int64_t samples = changes(db);
        Statement& steps = whole ? replace_steps : add_steps;
        steps.reset();
        steps.bind(1, src_id).bind(2, dst_id).run();
        const int64_t step_rows = changes(db);  // with `whole`: rows written, new or replaced
        r.samples_added += samples;
        r.steps_added += step_rows;
        if (whole) {
            copy_metrics.reset();
            copy_metrics.bind(1, src_id).bind(2, dst_id).run();
            copy_memory.reset();
            copy_memory.bind(1, src_id).bind(2, dst_id).run();
        }
        return samples + step_rows > 0;
    };
    for (const SourceRun& run : runs) {
        ++r.runs;
        find.reset();
        if (!find.bind(1, run.run_key).step()) {
            insert_run.reset();
            insert_run.bind(1, run.id);
            insert_run.step();
            const int64_t dst = insert_run.integer(0);
            insert_run.reset();
            copy_children(run.id, dst, true);
            ++r.runs_added;
            continue;
        }
        const int64_t dst = find.integer(0);
        const bool dst_finished = find.text(1) == "finished";
        find.reset();
        const bool src_finished = run.status == "finished";
        const std::string why = disagreement(db, work, run.id, dst, src_finished && dst_finished);
        if (!why.empty()) {
            report.conflicts.push_back({source, run.run_key, run.spec, run.task, run.dataset, why});
            ++r.runs_conflicting;
            continue;
        }
        if (dst_finished) {
            ++r.runs_unchanged;
        } else if (src_finished) {
            complete_run.reset();
            complete_run.bind(1, run.id).bind(2, dst).run();
            delete_metrics.reset();
            delete_metrics.bind(1, dst).run();
            copy_children(run.id, dst, true);
            ++r.runs_completed;
        } else {
            ++(copy_children(run.id, dst, false) ? r.runs_extended : r.runs_unchanged);
        }
    }
    insert_run.reset();
    find.reset();
    transaction.commit();
}

void merge_one(sqlite3* db, const std::string& work, const std::string& source, MergeReport& report) {
    MergeSourceReport r;
    r.path = source;
    AttachedSource attached(db, work, source);
    check_schema(db, work, "src", source);
    copy_source(db, work, source, report, r);  // its statements are finalized before DETACH
    attached.detach();
    report.sources.push_back(r);
}

}  // namespace

MergeReport merge_result_stores(const std::vector<std::string>& sources, const std::string& output) {
    if (sources.empty()) throw Error("", "merge", "no source databases given");
    if (output.empty()) throw Error("", "-o", "no output file given");
    MergeReport report;
    report.output = output;
    std::error_code ec;
    if (fs::is_directory(output, ec)) throw Error(output, "-o", "is a folder, not a results database file");
    report.output_existed = fs::exists(output, ec);
    const fs::path out_path = fs::absolute(output);
    const std::string work = (out_path.parent_path() / ("." + out_path.filename().string() + ".merge-" +
                                                        std::to_string(::getpid()) + ".tmp"))
                                 .string();
    // Removes the temporary file (and its journal) on every path that does not rename it.
    struct TempFile {
        std::string path;
        bool keep = false;
        ~TempFile() {
            if (keep) return;
            std::error_code e;
            for (const char* suffix : {"", "-journal", "-wal", "-shm"}) fs::remove(path + suffix, e);
        }
    } temp{work};
    for (const char* suffix : {"", "-journal", "-wal", "-shm"}) fs::remove(work + suffix, ec);

    if (report.output_existed) {
        // The base: a page-by-page copy of the output (its ids kept), read through SQLite so a
        // WAL the output still has is included.
        sqlite3* from = nullptr;
        sqlite3* to = nullptr;
        int code = sqlite3_open_v2(readonly_uri(output).c_str(), &from, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr);
        struct Close {
            sqlite3*& a;
            sqlite3*& b;
            ~Close() {
                sqlite3_close_v2(a);
                sqlite3_close_v2(b);
            }
        } close{from, to};
        if (code != SQLITE_OK) store_detail::throw_sqlite(from, code, output, "merge: open output");
        code = sqlite3_open_v2(work.c_str(), &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
        if (code != SQLITE_OK) store_detail::throw_sqlite(to, code, work, "merge: create temporary file");
        sqlite3_busy_timeout(from, 10000);
        sqlite3_backup* backup = sqlite3_backup_init(to, "main", from, "main");
        if (!backup) store_detail::throw_sqlite(to, sqlite3_errcode(to), output, "merge: copy output");
        code = sqlite3_backup_step(backup, -1);
        sqlite3_backup_finish(backup);
        if (code != SQLITE_DONE) store_detail::throw_sqlite(to, code, output, "merge: copy output");
    } else {
        // A new store, made by the store itself so its schema is exactly what `eval` creates.
        ResultsStore::open(work, ResultsStore::OpenMode::CreateIfMissing);
    }

    sqlite3* db = nullptr;
    int code = sqlite3_open_v2(work.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, nullptr);
    struct CloseDb {
        sqlite3*& db;
        ~CloseDb() { sqlite3_close_v2(db); }
    } close_db{db};
    if (code != SQLITE_OK) store_detail::throw_sqlite(db, code, work, "merge: open temporary file");
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 10000);
    // A plain rollback journal for the private temporary file: nothing beside it to leave behind;
    // the next ResultsStore::open switches the merged file to WAL.
    exec(db, work, "merge: journal_mode", "PRAGMA journal_mode = DELETE");
    exec(db, work, "merge: foreign_keys", "PRAGMA foreign_keys = ON");
    check_schema(db, work, "main", report.output_existed ? output : work);

    // Every source's version, tables and columns first, so a refused one stops the merge
    // before any work.
    for (const std::string& source : sources) {
        AttachedSource attached(db, work, source);
        check_schema(db, work, "src", source);
        attached.detach();
    }
    for (const std::string& source : sources) merge_one(db, work, source, report);

    {
        Statement fk(db, work, "merge: foreign_key_check", "PRAGMA foreign_key_check");
        if (fk.step()) throw Error(output, "merge", "internal: the merged file fails its foreign key check");
        Statement count(db, work, "runs: count", "SELECT count(*) FROM runs");
        count.step();
        report.runs_total = count.integer(0);
    }
    exec(db, work, "merge: temp", "DROP TABLE IF EXISTS temp.model_map; DROP TABLE IF EXISTS temp.setting_map;");
    code = sqlite3_close(db);
    if (code != SQLITE_OK) store_detail::throw_sqlite(db, code, work, "merge: close");
    db = nullptr;
    fs::rename(work, output, ec);
    if (ec) throw Error(output, "merge", "could not rename the merged file into place: " + ec.message());
    temp.keep = true;
    return report;
}

}  // namespace mlawb
