// The results store: every evaluation number in one SQLite file, resumable and comparable,
// readable by the sqlite3 CLI. Default file: results.db in the current folder (--db FILE).
//
// Schema (version 3, in PRAGMA user_version; migrations in eval/store_schema.cpp):
//
//   models    id INTEGER PRIMARY KEY, path TEXT, content_hash TEXT UNIQUE, config_json TEXT
//             One row per checkpoint content; `path` is where it was seen last.
//             content_hash = SHA-256 (see model_content_hash) of the small JSON files, the
//             safetensors headers, the file sizes and sampled weight blocks; not of all weights.
//   settings  id, spec TEXT (canonical MlaSpec text, "strategy=full" for the original model),
//             kept_pairs_hash TEXT (SHA-256 of kept_pairs_json; '' when no mask),
//             kept_pairs_json TEXT ({"kept_pairs": [layer][kv_head][pairs]} or ''),
//             UNIQUE(spec, kept_pairs_hash)
//   runs      id, model_id -> models, setting_id -> settings, task TEXT ("longbench",
//             "perplexity", "multiple_choice", ...), dataset TEXT, options_json TEXT (canonical
//             JSON of every option that changes results), run_key TEXT UNIQUE (SHA-256 of model
//             hash, setting, task, dataset, options), status TEXT (running | finished | failed |
//             cancelled), started_at, finished_at TEXT (ISO 8601 UTC; finished_at NULL while
//             running), git_revision, host, device TEXT, threads INTEGER, malformed_lines
//             INTEGER (input lines skipped), error TEXT ('' unless failed).
//             host/device/threads/git_revision describe the latest process that worked on it.
//   samples   run_id -> runs, sample_id TEXT (the record's _id), prompt_tokens INTEGER (after
//             truncation), truncated INTEGER 0/1, prediction TEXT, score REAL (metric in [0, 1]),
//             latency_ms REAL, generated_tokens INTEGER, length INTEGER (the record's `length`
//             field, LongBench-E), details_json TEXT (task-specific, '{}' when none),
//             UNIQUE(run_id, sample_id)
//   metrics   run_id -> runs, name TEXT, bucket TEXT ('' = overall, else e.g. '0-512'),
//             value REAL, UNIQUE(run_id, name, bucket). The run's headline ("main") metric is
//             its first recorded overall one.
//   memory    run_id -> runs (PRIMARY KEY), kv_elements_per_token INTEGER (all layers),
//             bytes_formula REAL (KV bytes per token, all layers, by analysis/memory_model),
//             bytes_measured INTEGER (largest KV cache measured, bytes), measured_tokens INTEGER
//             (tokens that cache held), peak_rss_bytes, peak_gpu_bytes INTEGER (NULL = unknown),
//             [v2] kv_bits INTEGER (2/4/8/16: bits per cached value), kv_group INTEGER (values per
//             quantization group, 0 at 16 bits), kv_residual INTEGER (most recent tokens kept at
//             16 bits), bytes_real REAL (KV bytes per token, all layers, with the per-group scale
//             and zero point; = bytes_formula at 16 bits). bytes_formula is the nominal figure
//             papers quote (elements x bits / 8).
//   training_steps [v3] run_id -> runs (a run of task "finetune"), step INTEGER (updates done,
//             1-based), loss REAL (mean token cross-entropy of the update, nats), lr REAL (the
//             update's learning rate), grad_norm REAL (gradient 2-norm before clipping),
//             tokens_per_s REAL (scored tokens / the update's wall time), heldout_ppl REAL (NULL
//             unless held-out perplexity was measured after this update), UNIQUE(run_id, step).
//             A resumed run logs the steps after its checkpoint again: the rows are replaced.
//
// Journal mode WAL, foreign keys on, busy timeout 10 s (two processes writing one file both
// succeed), synchronous=NORMAL (a killed process loses at most its open transaction; only a
// power cut can lose the last commits). Every write is one BEGIN IMMEDIATE transaction.
//
// Example queries (sqlite3 results.db):
//
//   -- headline score of every finished run, best first per dataset
//   SELECT r.dataset, s.spec, m.path, x.name, round(x.value, 2) AS value
//   FROM runs r JOIN settings s ON s.id = r.setting_id JOIN models m ON m.id = r.model_id
//   JOIN metrics x ON x.run_id = r.id AND x.bucket = ''
//   WHERE r.status = 'finished' AND x.rowid = (SELECT min(rowid) FROM metrics
//                                              WHERE run_id = r.id AND bucket = '')
//   ORDER BY r.dataset, x.value DESC;
//
//   -- best setting per dataset (SQLite returns the row holding max(value))
//   SELECT r.dataset, s.spec, max(x.value) AS best
//   FROM runs r JOIN settings s ON s.id = r.setting_id JOIN metrics x ON x.run_id = r.id
//   WHERE x.bucket = '' AND r.status = 'finished' GROUP BY r.dataset;
//
//   -- accuracy against KV bytes per token (the Pareto view), one row per run
//   SELECT s.spec, r.dataset, x.value AS score, mem.bytes_formula AS kv_bytes_per_token
//   FROM runs r JOIN settings s ON s.id = r.setting_id JOIN memory mem ON mem.run_id = r.id
//   JOIN metrics x ON x.run_id = r.id AND x.bucket = ''
//   ORDER BY r.dataset, kv_bytes_per_token;
//
//   -- samples whose score differs between runs 1 and 2
//   SELECT a.sample_id, a.score, b.score FROM samples a
//   JOIN samples b ON b.sample_id = a.sample_id AND b.run_id = 2
//   WHERE a.run_id = 1 AND a.score <> b.score;
//
// Resume: a run is identified by its run_key. begin_or_resume_run() with the same inputs
// returns the same run id and the sample ids already recorded, so the runner skips them;
// a finished run is reported as finished. record_sample() is idempotent (a second row with
// the same sample id is ignored), so a sample recorded twice, by a retry or by two processes
// working on one run, stays one row.
//
// One ResultsStore is one SQLite connection: use it from one thread at a time (open another
// for another thread or process). Errors are mlawb::Error("<db file>", "<table>: <operation>",
// reason).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

struct sqlite3;

namespace mlawb {

inline constexpr const char* kDefaultResultsDb = "results.db";  // in the current folder
inline constexpr int kResultsSchemaVersion = 3;

enum class RunStatus { Running, Finished, Failed, Cancelled };
const char* run_status_name(RunStatus status);  // "running", "finished", "failed", "cancelled"

// What identifies a run (model, setting, task, dataset, options) and the environment of the
// process that runs it (recorded, not part of the identity).
struct RunRequest {
    int64_t model_id = 0;             // from upsert_model
    int64_t setting_id = 0;           // from upsert_setting
    std::string task;                 // "longbench", "perplexity", "multiple_choice", ...
    std::string dataset;              // "passkey", a text file's name, ...
    std::string options_json = "{}";  // a JSON object; stored and keyed in canonical form
    std::string git_revision, host, device;
    int64_t threads = 0;
    int64_t malformed_lines = 0;      // input lines skipped (bad JSON, missing fields)
};

struct RunHandle {
    int64_t run_id = 0;
    std::string run_key;
    bool resumed = false;   // the run existed before this call
    bool finished = false;  // it had finished: nothing left to do, its status is unchanged
    std::set<std::string> recorded_sample_ids;
};

struct SampleRow {
    std::string sample_id;  // the record's _id
    int64_t prompt_tokens = 0;
    bool truncated = false;
    std::string prediction;
    double score = 0;
    double latency_ms = 0;
    int64_t generated_tokens = 0;
    int64_t length = 0;                 // the record's `length` field
    std::string details_json = "{}";    // task-specific extras
};

struct MetricRow {
    std::string name;
    std::string bucket;  // "" = overall
    double value = 0;
};

// One optimizer update of a fine-tuning run (table training_steps).
struct TrainingStepRow {
    int64_t step = 0;          // updates done after this one (1-based)
    double loss = 0;           // nats per token
    double lr = 0;
    double grad_norm = 0;      // before clipping
    double tokens_per_s = 0;
    std::optional<double> heldout_ppl;  // measured after this update, when it was
};

struct MemoryRow {
    int64_t kv_elements_per_token = 0;
    double bytes_formula = 0;  // KV bytes per token, all layers
    std::optional<int64_t> bytes_measured, measured_tokens, peak_rss_bytes, peak_gpu_bytes;
    // Cache settings (schema v2). bytes_real: per token, all layers, with scales and zero points.
    int kv_bits = 16;
    int64_t kv_group = 0, kv_residual = 0;
    double bytes_real = 0;
};

struct RunSummary {
    int64_t id = 0;
    std::string model_path, model_hash, setting_spec, task, dataset;
    RunStatus status = RunStatus::Running;
    std::string started_at, finished_at;  // finished_at "" while running
    int64_t samples = 0;
    std::optional<MetricRow> main_metric;  // the first recorded overall metric
};

struct RunDetail {
    RunSummary summary;
    std::string run_key, options_json, kept_pairs_hash, git_revision, host, device, error;
    int64_t threads = 0, malformed_lines = 0;
    std::vector<MetricRow> metrics;  // in recording order
    std::optional<MemoryRow> memory;
};

// Two runs side by side. Deltas are b - a.
struct MetricDelta {
    std::string name, bucket;
    std::optional<double> a, b;  // absent when that run lacks the metric
};
struct SampleChange {
    enum class Kind { Gained, Lost, Changed };  // 0 -> >0, >0 -> 0, both non-zero but different
    Kind kind = Kind::Changed;
    std::string sample_id;
    double score_a = 0, score_b = 0;
    std::string prediction_a, prediction_b;
};
struct RunComparison {
    RunDetail a, b;
    std::vector<MetricDelta> metrics;   // a's order, then those only b has
    std::vector<SampleChange> changed;  // in a's sample order
    int64_t unchanged = 0;              // samples in both runs with equal scores
    std::vector<std::string> only_a, only_b;
};
const char* sample_change_name(SampleChange::Kind kind);  // "gained", "lost", "changed"

class ResultsStore {
public:
    enum class OpenMode {
        CreateIfMissing,  // evaluation: a new file gets the schema
        ExistingOnly,     // listing and export: a missing file is an error, not an empty DB
    };
    // Opens (or creates) the file, sets WAL, foreign keys and the busy timeout, and migrates
    // an older schema. Refuses with the file named: a file that is not an SQLite database, a
    // database of another program (tables but user_version 0), a schema newer than this program.
    static ResultsStore open(const std::string& path, OpenMode mode = OpenMode::CreateIfMissing);
    ~ResultsStore();
    ResultsStore(ResultsStore&& other) noexcept;
    ResultsStore& operator=(ResultsStore&& other) noexcept;
    ResultsStore(const ResultsStore&) = delete;
    ResultsStore& operator=(const ResultsStore&) = delete;

    const std::string& path() const { return path_; }

    // Writes. Each is one transaction.
    int64_t upsert_model(const std::string& path, const std::string& content_hash, const std::string& config_json);
    int64_t upsert_setting(const std::string& spec, const std::string& kept_pairs_json);
    RunHandle begin_or_resume_run(const RunRequest& request);
    bool record_sample(int64_t run_id, const SampleRow& sample);  // false: already recorded
    // Many samples in one transaction (imported predictions); returns how many were new.
    int64_t record_samples(int64_t run_id, const std::vector<SampleRow>& samples);
    void record_metrics(int64_t run_id, const std::vector<MetricRow>& metrics);  // replaces equal name+bucket
    void record_memory(int64_t run_id, const MemoryRow& memory);                 // replaces the run's row
    // Per-step log of a fine-tuning run, one transaction; replaces rows of the same step. Refuses
    // steps < 1, non-finite loss/lr/grad_norm/tokens_per_s/heldout_ppl and negative lr.
    void record_training_steps(int64_t run_id, const std::vector<TrainingStepRow>& steps);
    // status: finished, failed or cancelled (not running); sets finished_at.
    void finish_run(int64_t run_id, RunStatus status, const std::string& error = "");

    // Reads.
    std::vector<RunSummary> list_runs() const;  // by id
    RunDetail run(int64_t run_id) const;        // throws naming the id when absent
    std::vector<SampleRow> samples(int64_t run_id) const;  // in recording order
    std::vector<TrainingStepRow> training_steps(int64_t run_id) const;  // by step
    std::set<std::string> recorded_sample_ids(int64_t run_id) const;
    RunComparison compare(int64_t run_a, int64_t run_b) const;
    // CSV, one row per run x metric x bucket (a run without metrics: one row, metric empty):
    // run_id,model,model_hash,setting,task,dataset,status,metric,bucket,value.
    // Written to "<out>.tmp" and renamed, so a failed export leaves no partial file.
    // Returns the number of rows written (without the header).
    int64_t export_csv(const std::string& out_path) const;
    std::string integrity_check() const;  // "ok", or SQLite's list of problems
    int schema_version() const;           // PRAGMA user_version
    // This connection's setting, as text: journal_mode, foreign_keys, synchronous or
    // busy_timeout (for diagnostics and tests; other names are refused).
    std::string pragma(const std::string& name) const;

private:
    ResultsStore(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}
    void migrate();
    std::string path_;
    sqlite3* db_ = nullptr;
};

// Lower-case hex SHA-256 (FIPS 180-4) of the bytes.
std::string sha256_hex(const std::string& bytes);

// Content hash of a checkpoint folder, cheap for multi-GB checkpoints (reads a few MB):
// SHA-256 over, in this order and each prefixed by its name and byte count,
//   - config.json, generation_config.json, tokenizer.json, tokenizer_config.json,
//     special_tokens_map.json (those present; the tokenizer and eos change predictions),
//   - for each weight file (model.safetensors, or the shards of model.safetensors.index.json
//     sorted by name): its size, its 8-byte header length and JSON header (names, dtypes,
//     shapes, offsets), and 32 blocks of 64 KiB of the data area evenly spaced from its first
//     byte to its last (the whole data area when it is under 2 MiB).
// The blocks tell a fine-tuned checkpoint from its base (same header, every weight differs);
// an edit confined to bytes outside the blocks is not seen. Throws Error naming the folder
// when it holds no config.json or no safetensors weights.
std::string model_content_hash(const std::string& folder);

}  // namespace mlawb
