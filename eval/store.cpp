// Results store: opening, schema migration and the writes. Reads are in store_query.cpp.
#include "eval/store.h"

#include "eval/store_sqlite.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

namespace mlawb {

using json = nlohmann::json;
using store_detail::exec;
using store_detail::Statement;
using store_detail::Transaction;

namespace {

// Long enough to outlast another process's transaction (one sample or one metric table is
// milliseconds; a checkpoint of a large WAL can take longer), short enough that a stuck
// writer is reported instead of hanging the evaluation.
constexpr int kBusyTimeoutMs = 10000;

// ISO 8601 UTC with milliseconds, computed by SQLite so every writer uses the same clock format.
constexpr const char* kNowSql = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

std::string canonical_json_object(const std::string& text, const std::string& db_path, const std::string& where,
                                  const std::string& what) {
    json parsed;
    try {
        parsed = json::parse(text.empty() ? "{}" : text);
    } catch (const json::parse_error& e) {
        throw Error(db_path, where, what + " is not JSON: " + e.what());
    }
    if (!parsed.is_object()) throw Error(db_path, where, what + " must be a JSON object");
    return parsed.dump();  // nlohmann's objects keep keys sorted: equal options, equal text
}

void require_json(const std::string& text, const std::string& db_path, const std::string& where, const std::string& what) {
    if (!json::accept(text)) throw Error(db_path, where, what + " is not JSON");
}

// Switching a file to WAL takes an exclusive lock, and SQLite answers SQLITE_BUSY at once,
// without the busy handler, while another process holds any lock on it (two evaluations that
// create one new file together meet here). So wait here, for as long as the busy timeout.
// On a file that is WAL already this is a no-op read of the header.
std::string switch_to_wal(sqlite3* db, const std::string& db_path) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kBusyTimeoutMs);
    for (;;) {
        sqlite3_stmt* stmt = nullptr;
        int code = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &stmt, nullptr);
        std::string mode;
        if (code == SQLITE_OK) {
            code = sqlite3_step(stmt);
            if (code == SQLITE_ROW) {
                const unsigned char* text = sqlite3_column_text(stmt, 0);
                mode = text ? reinterpret_cast<const char*>(text) : "";
                code = SQLITE_OK;
            }
        }
        sqlite3_finalize(stmt);
        if (code == SQLITE_OK) return mode;
        if ((code & 0xff) != SQLITE_BUSY || std::chrono::steady_clock::now() > deadline)
            store_detail::throw_sqlite(db, code, db_path, "open: journal_mode");
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

}  // namespace

const char* run_status_name(RunStatus status) {
    switch (status) {
    case RunStatus::Running: return "running";
    case RunStatus::Finished: return "finished";
    case RunStatus::Failed: return "failed";
    case RunStatus::Cancelled: return "cancelled";
    }
    return "running";
}

ResultsStore ResultsStore::open(const std::string& path, OpenMode mode) {
    namespace fs = std::filesystem;
    if (path.empty()) throw Error("", "--db", "empty results database path");
    std::error_code ec;
    if (fs::is_directory(path, ec)) throw Error(path, "open", "is a folder, not a results database file");
    if (mode == OpenMode::ExistingOnly && !fs::exists(path, ec))
        throw Error(path, "open", "no such results database (mlawb eval --db FILE creates one; results.db is the default)");

    sqlite3* db = nullptr;
    const int flags = SQLITE_OPEN_READWRITE | (mode == OpenMode::CreateIfMissing ? SQLITE_OPEN_CREATE : 0);
    const int code = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    ResultsStore store(path, db);  // closes the handle on every path out, as SQLite requires
    if (code != SQLITE_OK) store_detail::throw_sqlite(db, code, path, "open");
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, kBusyTimeoutMs);

    // The first statement that reads the file: a file that is not a database fails here.
    const std::string journal_mode = switch_to_wal(db, path);
    if (journal_mode != "wal")
        throw Error(path, "open: journal_mode",
                    "could not switch to WAL (got '" + journal_mode + "'); is the file on a network or read-only filesystem?");
    // Per connection, not stored in the file: set on every open.
    exec(db, path, "open: foreign_keys", "PRAGMA foreign_keys = ON");
    exec(db, path, "open: synchronous", "PRAGMA synchronous = NORMAL");
    store.migrate();
    return store;
}

ResultsStore::~ResultsStore() {
    if (db_) sqlite3_close_v2(db_);
}

ResultsStore::ResultsStore(ResultsStore&& other) noexcept : path_(std::move(other.path_)), db_(other.db_) {
    other.db_ = nullptr;
}

ResultsStore& ResultsStore::operator=(ResultsStore&& other) noexcept {
    if (this != &other) {
        if (db_) sqlite3_close_v2(db_);
        path_ = std::move(other.path_);
        db_ = other.db_;
        other.db_ = nullptr;
    }
    return *this;
}

int ResultsStore::schema_version() const {
    Statement s(db_, path_, "schema: user_version", "PRAGMA user_version");
    return s.step() ? static_cast<int>(s.integer(0)) : 0;
}

std::string ResultsStore::pragma(const std::string& name) const {
    // PRAGMA names cannot be bound parameters, hence the fixed list.
    static const std::set<std::string> allowed = {"journal_mode", "foreign_keys", "synchronous", "busy_timeout"};
    if (!allowed.count(name))
        throw Error(path_, "pragma", "'" + name + "' is not one of journal_mode, foreign_keys, synchronous, busy_timeout");
    Statement s(db_, path_, "pragma: " + name, ("PRAGMA " + name).c_str());
    return s.step() ? s.text(0) : "";
}

void ResultsStore::migrate() {
    const auto& migrations = store_detail::schema_migrations();
    const int latest = migrations.back().version;
    static_assert(kResultsSchemaVersion >= 1, "schema versions start at 1");
    if (latest != kResultsSchemaVersion)
        throw Error(path_, "schema", "internal: the migration list ends at " + std::to_string(latest) +
                                         " but kResultsSchemaVersion is " + std::to_string(kResultsSchemaVersion));
    auto refuse_newer = [&](int version) {
        throw Error(path_, "schema: user_version",
                    "database schema version " + std::to_string(version) + " is newer than this program's (" +
                        std::to_string(latest) + "); use a newer mlawb or another --db file");
    };
    int version = schema_version();
    if (version > latest) refuse_newer(version);
    if (version == latest) return;  // the common case takes no write lock

    Transaction transaction(db_, path_, "schema: migrate");
    version = schema_version();  // another process may have migrated while we waited for the lock
    if (version > latest) refuse_newer(version);
    if (version == 0) {
        Statement tables(db_, path_, "schema: migrate",
                         "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'");
        tables.step();
        const int64_t count = tables.integer(0);
        tables.reset();  // a statement left on a row would block the COMMIT below
        if (count > 0)
            throw Error(path_, "schema: user_version",
                        "an SQLite database of another program (it has " + std::to_string(count) +
                            " tables or indexes but no mlawb schema version); use another --db file");
    }
    for (const auto& m : migrations) {
        if (m.version <= version) continue;
        const std::string where = "schema: migrate to version " + std::to_string(m.version) + " (" + m.description + ")";
        exec(db_, path_, where, m.sql);
        // PRAGMA takes no bound parameters; the value is our own integer, not user input.
        exec(db_, path_, where, ("PRAGMA user_version = " + std::to_string(m.version)).c_str());
    }
    transaction.commit();
}

int64_t ResultsStore::upsert_model(const std::string& path, const std::string& content_hash,
                                   const std::string& config_json) {
    const std::string where = "models: upsert";
    if (content_hash.empty()) throw Error(path_, where, "empty content hash for model " + path);
    Transaction transaction(db_, path_, where);
    // One row per content: a model seen at a new path keeps its id and history.
    Statement s(db_, path_, where,
                "INSERT INTO models (path, content_hash, config_json) VALUES (?1, ?2, ?3) "
                "ON CONFLICT (content_hash) DO UPDATE SET path = excluded.path RETURNING id");
    s.bind(1, path).bind(2, content_hash).bind(3, config_json);
    s.step();
    const int64_t id = s.integer(0);
    s.reset();
    transaction.commit();
    return id;
}

int64_t ResultsStore::upsert_setting(const std::string& spec, const std::string& kept_pairs_json) {
    const std::string where = "settings: upsert";
    if (spec.empty()) throw Error(path_, where, "empty setting spec (the original model's is \"strategy=full\")");
    if (!kept_pairs_json.empty()) require_json(kept_pairs_json, path_, where, "kept_pairs_json");
    const std::string kept_pairs_hash = kept_pairs_json.empty() ? "" : sha256_hex(kept_pairs_json);
    Transaction transaction(db_, path_, where);
    // DO UPDATE (a no-op) rather than DO NOTHING, so RETURNING yields the existing row's id.
    Statement s(db_, path_, where,
                "INSERT INTO settings (spec, kept_pairs_hash, kept_pairs_json) VALUES (?1, ?2, ?3) "
                "ON CONFLICT (spec, kept_pairs_hash) DO UPDATE SET spec = excluded.spec RETURNING id");
    s.bind(1, spec).bind(2, kept_pairs_hash).bind(3, kept_pairs_json);
    s.step();
    const int64_t id = s.integer(0);
    s.reset();
    transaction.commit();
    return id;
}

RunHandle ResultsStore::begin_or_resume_run(const RunRequest& request) {
    const std::string where = "runs: begin";
    if (request.task.empty()) throw Error(path_, where, "empty task name");
    const std::string options = canonical_json_object(request.options_json, path_, where, "options_json");

    Transaction transaction(db_, path_, where);
    Statement model(db_, path_, where, "SELECT content_hash FROM models WHERE id = ?1");
    if (!model.bind(1, request.model_id).step())
        throw Error(path_, where, "no model with id " + std::to_string(request.model_id) + " (upsert_model first)");
    Statement setting(db_, path_, where, "SELECT spec, kept_pairs_hash FROM settings WHERE id = ?1");
    if (!setting.bind(1, request.setting_id).step())
        throw Error(path_, where, "no setting with id " + std::to_string(request.setting_id) + " (upsert_setting first)");

    RunHandle handle;
    // A JSON array keeps the fields apart (no "a"+"bc" == "ab"+"c"); the tag versions the key.
    handle.run_key = sha256_hex(json::array({"mlawb-run-v1", model.text(0), setting.text(0), setting.text(1),
                                             request.task, request.dataset, options})
                                    .dump());
    model.reset();  // statements left on a row would hold the read open past COMMIT
    setting.reset();

    Statement existing(db_, path_, where, "SELECT id, status FROM runs WHERE run_key = ?1");
    if (existing.bind(1, handle.run_key).step()) {
        handle.run_id = existing.integer(0);
        handle.resumed = true;
        handle.finished = existing.text(1) == run_status_name(RunStatus::Finished);
        existing.reset();
        if (!handle.finished) {
            Statement resume(db_, path_, "runs: resume",
                             "UPDATE runs SET status = 'running', finished_at = NULL, error = '', git_revision = ?2, "
                             "host = ?3, device = ?4, threads = ?5, malformed_lines = ?6 WHERE id = ?1");
            resume.bind(1, handle.run_id).bind(2, request.git_revision).bind(3, request.host).bind(4, request.device);
            resume.bind(5, request.threads).bind(6, request.malformed_lines).run();
        }
        Statement ids(db_, path_, "samples: list", "SELECT sample_id FROM samples WHERE run_id = ?1");
        ids.bind(1, handle.run_id);
        while (ids.step()) handle.recorded_sample_ids.insert(ids.text(0));
    } else {
        Statement insert(db_, path_, "runs: insert",
                         (std::string("INSERT INTO runs (model_id, setting_id, task, dataset, options_json, run_key, "
                                      "status, started_at, git_revision, host, device, threads, malformed_lines, error) "
                                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ") +
                          kNowSql + ", ?7, ?8, ?9, ?10, ?11, '') RETURNING id")
                             .c_str());
        insert.bind(1, request.model_id).bind(2, request.setting_id).bind(3, request.task).bind(4, request.dataset);
        insert.bind(5, options).bind(6, handle.run_key).bind(7, request.git_revision).bind(8, request.host);
        insert.bind(9, request.device).bind(10, request.threads).bind(11, request.malformed_lines);
        insert.step();
        handle.run_id = insert.integer(0);
        insert.reset();
    }
    transaction.commit();
    return handle;
}

namespace {

void require_run(sqlite3* db, const std::string& db_path, const std::string& where, int64_t run_id) {
    Statement s(db, db_path, where, "SELECT 1 FROM runs WHERE id = ?1");
    if (!s.bind(1, run_id).step()) throw Error(db_path, where, "no run with id " + std::to_string(run_id));
}

// Inserts one sample unless the run already has its id; returns whether a row was added.
bool insert_sample(sqlite3* db, Statement& insert, int64_t run_id, const SampleRow& sample, const std::string& db_path,
                   const std::string& where) {
    if (sample.sample_id.empty()) throw Error(db_path, where, "empty sample id in run " + std::to_string(run_id));
    if (!std::isfinite(sample.score))
        throw Error(db_path, where, "score of sample " + sample.sample_id + " is not a finite number");
    require_json(sample.details_json, db_path, where, "details_json of sample " + sample.sample_id);
    insert.reset();
    insert.bind(1, run_id).bind(2, sample.sample_id).bind(3, sample.prompt_tokens);
    insert.bind(4, static_cast<int64_t>(sample.truncated ? 1 : 0)).bind(5, sample.prediction).bind(6, sample.score);
    insert.bind(7, sample.latency_ms).bind(8, sample.generated_tokens).bind(9, sample.length);
    insert.bind(10, sample.details_json);
    insert.run();
    return sqlite3_changes(db) > 0;
}

// ON CONFLICT names the unique key, so only a repeated sample id is ignored; NOT NULL and
// CHECK violations still fail (INSERT OR IGNORE would swallow those too).
constexpr const char* kInsertSampleSql =
    "INSERT INTO samples (run_id, sample_id, prompt_tokens, truncated, prediction, score, latency_ms, "
    "generated_tokens, length, details_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
    "ON CONFLICT (run_id, sample_id) DO NOTHING";

}  // namespace

bool ResultsStore::record_sample(int64_t run_id, const SampleRow& sample) {
    const std::string where = "samples: insert";
    Transaction transaction(db_, path_, where);
    require_run(db_, path_, where, run_id);
    Statement insert(db_, path_, where, kInsertSampleSql);
    const bool added = insert_sample(db_, insert, run_id, sample, path_, where);
    insert.reset();
    transaction.commit();
    return added;
}

int64_t ResultsStore::record_samples(int64_t run_id, const std::vector<SampleRow>& samples) {
    const std::string where = "samples: insert";
    Transaction transaction(db_, path_, where);
    require_run(db_, path_, where, run_id);
    Statement insert(db_, path_, where, kInsertSampleSql);
    int64_t added = 0;
    for (const auto& sample : samples) added += insert_sample(db_, insert, run_id, sample, path_, where) ? 1 : 0;
    insert.reset();
    transaction.commit();
    return added;
}

void ResultsStore::record_metrics(int64_t run_id, const std::vector<MetricRow>& metrics) {
    const std::string where = "metrics: upsert";
    Transaction transaction(db_, path_, where);
    require_run(db_, path_, where, run_id);
    Statement upsert(db_, path_, where,
                     "INSERT INTO metrics (run_id, name, bucket, value) VALUES (?1, ?2, ?3, ?4) "
                     "ON CONFLICT (run_id, name, bucket) DO UPDATE SET value = excluded.value");
    for (const auto& m : metrics) {
        if (m.name.empty()) throw Error(path_, where, "empty metric name in run " + std::to_string(run_id));
        if (!std::isfinite(m.value))
            throw Error(path_, where, "metric " + m.name + (m.bucket.empty() ? "" : "@" + m.bucket) + " is not a finite number");
        upsert.reset();
        upsert.bind(1, run_id).bind(2, m.name).bind(3, m.bucket).bind(4, m.value).run();
    }
    upsert.reset();
    transaction.commit();
}

void ResultsStore::record_memory(int64_t run_id, const MemoryRow& memory) {
    const std::string where = "memory: upsert";
    Transaction transaction(db_, path_, where);
    require_run(db_, path_, where, run_id);
    Statement upsert(db_, path_, where,
                     "INSERT INTO memory (run_id, kv_elements_per_token, bytes_formula, bytes_measured, measured_tokens, "
                     "peak_rss_bytes, peak_gpu_bytes, kv_bits, kv_group, kv_residual, bytes_real) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) "
                     "ON CONFLICT (run_id) DO UPDATE SET kv_elements_per_token = excluded.kv_elements_per_token, "
                     "bytes_formula = excluded.bytes_formula, bytes_measured = excluded.bytes_measured, "
                     "measured_tokens = excluded.measured_tokens, peak_rss_bytes = excluded.peak_rss_bytes, "
                     "peak_gpu_bytes = excluded.peak_gpu_bytes, kv_bits = excluded.kv_bits, "
                     "kv_group = excluded.kv_group, kv_residual = excluded.kv_residual, bytes_real = excluded.bytes_real");
    upsert.bind(1, run_id).bind(2, memory.kv_elements_per_token).bind(3, memory.bytes_formula);
    upsert.bind(4, memory.bytes_measured).bind(5, memory.measured_tokens).bind(6, memory.peak_rss_bytes);
    upsert.bind(7, memory.peak_gpu_bytes).bind(8, static_cast<int64_t>(memory.kv_bits)).bind(9, memory.kv_group);
    upsert.bind(10, memory.kv_residual).bind(11, memory.bytes_real).run();
    transaction.commit();
}

void ResultsStore::record_training_steps(int64_t run_id, const std::vector<TrainingStepRow>& steps) {
    const std::string where = "training_steps: upsert";
    Transaction transaction(db_, path_, where);
    require_run(db_, path_, where, run_id);
    Statement upsert(db_, path_, where,
                     "INSERT INTO training_steps (run_id, step, loss, lr, grad_norm, tokens_per_s, heldout_ppl) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                     "ON CONFLICT (run_id, step) DO UPDATE SET loss = excluded.loss, lr = excluded.lr, "
                     "grad_norm = excluded.grad_norm, tokens_per_s = excluded.tokens_per_s, heldout_ppl = excluded.heldout_ppl");
    for (const TrainingStepRow& s : steps) {
        const std::string at = "step " + std::to_string(s.step) + " of run " + std::to_string(run_id);
        if (s.step < 1) throw Error(path_, where, at + ": steps count from 1");
        for (const auto& [name, value] : {std::pair<const char*, double>{"loss", s.loss}, {"lr", s.lr},
                                          {"grad_norm", s.grad_norm}, {"tokens_per_s", s.tokens_per_s}})
            if (!std::isfinite(value)) throw Error(path_, where, at + ": " + name + " is not a finite number");
        if (s.lr < 0) throw Error(path_, where, at + ": lr is negative");
        if (s.heldout_ppl && !(std::isfinite(*s.heldout_ppl) && *s.heldout_ppl > 0))
            throw Error(path_, where, at + ": heldout_ppl is not a positive finite number");
        upsert.reset();
        upsert.bind(1, run_id).bind(2, s.step).bind(3, s.loss).bind(4, s.lr).bind(5, s.grad_norm).bind(6, s.tokens_per_s);
        if (s.heldout_ppl) upsert.bind(7, *s.heldout_ppl);
        else upsert.bind_null(7);
        upsert.run();
    }
    upsert.reset();
    transaction.commit();
}

void ResultsStore::finish_run(int64_t run_id, RunStatus status, const std::string& error) {
    const std::string where = "runs: finish";
    if (status == RunStatus::Running) throw Error(path_, where, "a run ends as finished, failed or cancelled, not running");
    Transaction transaction(db_, path_, where);
    Statement update(db_, path_, where,
                     (std::string("UPDATE runs SET status = ?2, error = ?3, finished_at = ") + kNowSql + " WHERE id = ?1")
                         .c_str());
    update.bind(1, run_id).bind(2, std::string(run_status_name(status))).bind(3, error).run();
    if (sqlite3_changes(db_) == 0) throw Error(path_, where, "no run with id " + std::to_string(run_id));
    transaction.commit();
}

}  // namespace mlawb
