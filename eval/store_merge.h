// Merging results stores (`mlawb merge A.db B.db ... -o ALL.db`): the per-shard databases of a
// sweep, or results from several machines, into one file.
//
// Identity, as the store defines it (eval/store.h): models by content_hash, settings by
// (spec, kept_pairs_hash), runs by run_key; samples by (run, sample_id), metrics by
// (run, name, bucket), memory by run, training_steps by (run, step). Surrogate ids are
// renumbered into the output.
//
// Rules for a run present in both the output so far and a source (same run_key):
//   - a source row that disagrees with the output's on a result (a sample's score or
//     prediction, a metric's value, a training step's loss), or two finished runs with
//     different sample sets, is a conflict: reported, and the output's run is left as it was
//     (the first source wins);
//   - otherwise, a finished source run completes an unfinished output run (run row, samples,
//     metrics, memory and training steps taken from the source), and an unfinished output
//     run gains the source's samples and steps it lacks; a finished output run is left as is.
// So merging is idempotent (merging the same sources again changes nothing) and never makes
// two runs of one run_key.
//
// Safety: every source must have the schema version this program writes (PRAGMA user_version;
// a mismatch is refused naming both versions) and exactly the tables and columns merge knows,
// copied by explicit column lists: a table or column added by a later schema makes merge fail
// loudly instead of dropping its data. Sources are ATTACHed read-only (mode=ro). When the
// output exists it is the base (its runs keep their ids). The result is written to a temporary
// file beside the output and renamed over it, so a failed merge leaves the output untouched.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mlawb {

struct MergeConflict {
    std::string source;   // the source file
    std::string run_key;
    std::string setting, task, dataset;
    std::string reason;   // "sample passkey-3: score 1 here, 0 in the output", ...
};

struct MergeSourceReport {
    std::string path;
    int64_t runs = 0;             // runs in the source
    int64_t runs_added = 0;       // new run_keys
    int64_t runs_completed = 0;   // finished here, unfinished in the output: taken from here
    int64_t runs_extended = 0;    // unfinished in the output: gained samples from here
    int64_t runs_unchanged = 0;   // already in the output with the same results
    int64_t runs_conflicting = 0;
    int64_t models_added = 0, settings_added = 0, samples_added = 0;
    int64_t steps_added = 0;      // training_steps rows written
};

struct MergeReport {
    std::string output;
    bool output_existed = false;
    std::vector<MergeSourceReport> sources;
    std::vector<MergeConflict> conflicts;
    int64_t runs_total = 0;  // runs in the output after the merge
};

// The tables merge copies, each with its full column list (for the CLI's messages and tests).
struct MergeTable {
    const char* name;
    std::vector<std::string> columns;
};
const std::vector<MergeTable>& merge_tables();

// Merges `sources` (in order) into `output`. Throws mlawb::Error naming the file at fault:
// a missing or non-mlawb source, a schema version other than this program's, unknown tables or
// columns, a failed write. Conflicts do not throw: they are in the report.
MergeReport merge_result_stores(const std::vector<std::string>& sources, const std::string& output);

}  // namespace mlawb
