// The results store's schema as a list of migrations. A database records its version in
// PRAGMA user_version; opening applies the missing migrations in one transaction. To change
// the schema, append migration N+1 (ALTER TABLE / CREATE ... / data moves), bump
// kResultsSchemaVersion in eval/store.h, and document the change at the top of store.h; never
// edit a migration that has shipped, since existing files already went through it.
#include "eval/store_sqlite.h"

namespace mlawb::store_detail {

namespace {

// Version 1. CHECK constraints keep hand-made rows (sqlite3 CLI) inside what the program reads.
// Times are ISO 8601 UTC text so the sqlite3 CLI shows and sorts them as they are.
const char* const kSchemaV1 = R"sql(
CREATE TABLE models (
    id           INTEGER PRIMARY KEY,
    path         TEXT NOT NULL,
    content_hash TEXT NOT NULL UNIQUE CHECK (content_hash <> ''),
    config_json  TEXT NOT NULL
);
CREATE TABLE settings (
    id              INTEGER PRIMARY KEY,
    spec            TEXT NOT NULL,
    kept_pairs_hash TEXT NOT NULL,
    kept_pairs_json TEXT NOT NULL,
    UNIQUE (spec, kept_pairs_hash)
);
CREATE TABLE runs (
    id              INTEGER PRIMARY KEY,
    model_id        INTEGER NOT NULL REFERENCES models (id),
    setting_id      INTEGER NOT NULL REFERENCES settings (id),
    task            TEXT NOT NULL CHECK (task <> ''),
    dataset         TEXT NOT NULL,
    options_json    TEXT NOT NULL,
    run_key         TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'cancelled')),
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    git_revision    TEXT NOT NULL,
    host            TEXT NOT NULL,
    device          TEXT NOT NULL,
    threads         INTEGER NOT NULL,
    malformed_lines INTEGER NOT NULL CHECK (malformed_lines >= 0),
    error           TEXT NOT NULL
);
CREATE INDEX runs_by_model_setting ON runs (model_id, setting_id);
CREATE TABLE samples (
    run_id           INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    sample_id        TEXT NOT NULL,
    prompt_tokens    INTEGER NOT NULL,
    truncated        INTEGER NOT NULL CHECK (truncated IN (0, 1)),
    prediction       TEXT NOT NULL,
    score            REAL NOT NULL,
    latency_ms       REAL NOT NULL,
    generated_tokens INTEGER NOT NULL,
    length           INTEGER NOT NULL,
    details_json     TEXT NOT NULL,
    UNIQUE (run_id, sample_id)
);
CREATE TABLE metrics (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name   TEXT NOT NULL CHECK (name <> ''),
    bucket TEXT NOT NULL,
    value  REAL NOT NULL,
    UNIQUE (run_id, name, bucket)
);
CREATE TABLE memory (
    run_id                INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    kv_elements_per_token INTEGER NOT NULL,
    bytes_formula         REAL NOT NULL,
    bytes_measured        INTEGER,
    measured_tokens       INTEGER,
    peak_rss_bytes        INTEGER,
    peak_gpu_bytes        INTEGER
);
)sql";

// Version 2. The KV cache settings a run used and the real bytes per token beside the nominal
// figure (bytes_formula): a quantized cache also stores a scale and a zero point per group and
// keeps its residual window at 16 bits, so the two differ. Rows written by version 1 used a
// 16-bit cache, where real = nominal.
const char* const kSchemaV2 = R"sql(
ALTER TABLE memory ADD COLUMN kv_bits INTEGER NOT NULL DEFAULT 16 CHECK (kv_bits IN (2, 4, 8, 16));
ALTER TABLE memory ADD COLUMN kv_group INTEGER NOT NULL DEFAULT 0 CHECK (kv_group >= 0);
ALTER TABLE memory ADD COLUMN kv_residual INTEGER NOT NULL DEFAULT 0 CHECK (kv_residual >= 0);
ALTER TABLE memory ADD COLUMN bytes_real REAL;
UPDATE memory SET bytes_real = bytes_formula;
)sql";

// Version 3. The per-step log of fine-tuning runs (task "finetune"): what the loss-curve plots
// read. One row per update; a resumed run rewrites the steps after its checkpoint.
const char* const kSchemaV3 = R"sql(
CREATE TABLE training_steps (
    run_id       INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step         INTEGER NOT NULL CHECK (step >= 1),
    loss         REAL NOT NULL,
    lr           REAL NOT NULL CHECK (lr >= 0),
    grad_norm    REAL NOT NULL CHECK (grad_norm >= 0),
    tokens_per_s REAL NOT NULL CHECK (tokens_per_s >= 0),
    heldout_ppl  REAL CHECK (heldout_ppl IS NULL OR heldout_ppl > 0),
    UNIQUE (run_id, step)
);
)sql";

}  // namespace

const std::vector<Migration>& schema_migrations() {
    static const std::vector<Migration> migrations = {
        {1, "models, settings, runs, samples, metrics, memory", kSchemaV1},
        {2, "memory: kv_bits, kv_group, kv_residual, bytes_real", kSchemaV2},
        {3, "training_steps", kSchemaV3},
    };
    return migrations;
}

}  // namespace mlawb::store_detail
