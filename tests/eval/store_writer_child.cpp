// A separate process that writes to a results store, for test_store's multi-process tests
// (two writers at once; a writer killed with SIGKILL mid-run). Not a user tool.
//
//   store_writer_child DB concurrent TAG COUNT START_AT_MS
//       waits until START_AT_MS (ms since the epoch) so two children collide, then writes
//       COUNT samples "TAG-i" to its own run (dataset TAG) and to the run both share (dataset
//       "shared"), plus "common-i" (i < COUNT/4) to the shared run, which both children write.
//   store_writer_child DB loop COUNT
//       resumes run "loop" and records samples "sample-000000" .. up to COUNT, skipping those
//       already recorded; prints "resumed N" first and "recorded N" after every commit.
// Exit status 0 on success, 2 with the error on stderr.
#include "core/error.h"
#include "eval/store.h"

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

using namespace mlawb;

namespace {

// The model and setting both modes use, so the tests find the same runs.
RunRequest request_for(ResultsStore& store, const std::string& dataset) {
    RunRequest request;
    request.model_id = store.upsert_model("/models/child", "child-model-hash", "{}");
    request.setting_id = store.upsert_setting("strategy=full", "");
    request.task = "longbench";
    request.dataset = dataset;
    request.options_json = R"({"limit": -1})";
    request.host = "test";
    request.device = "cpu";
    request.threads = 1;
    return request;
}

SampleRow sample(const std::string& id, size_t prediction_bytes) {
    SampleRow row;
    row.sample_id = id;
    row.prompt_tokens = 100;
    row.prediction = std::string(prediction_bytes, 'p');  // makes each commit carry real pages
    row.score = id.back() % 2 == 0 ? 1.0 : 0.0;
    row.latency_ms = 1.5;
    return row;
}

int concurrent(const std::string& db, const std::string& tag, int count, long long start_at_ms) {
    const auto start = std::chrono::system_clock::time_point(std::chrono::milliseconds(start_at_ms));
    std::this_thread::sleep_until(start);
    ResultsStore store = ResultsStore::open(db);  // both children may create the schema at once
    const int64_t own = store.begin_or_resume_run(request_for(store, tag)).run_id;
    const int64_t shared = store.begin_or_resume_run(request_for(store, "shared")).run_id;
    for (int i = 0; i < count; ++i) {
        const std::string id = tag + "-" + std::to_string(i);
        store.record_sample(own, sample(id, 200));
        store.record_sample(shared, sample(id, 200));
        if (i < count / 4) store.record_sample(shared, sample("common-" + std::to_string(i), 200));
    }
    store.record_metrics(own, {{"score", "", 50.0}});
    store.finish_run(own, RunStatus::Finished);
    std::cout << "done " << tag << std::endl;
    return 0;
}

int loop(const std::string& db, int count) {
    ResultsStore store = ResultsStore::open(db);
    const RunHandle run = store.begin_or_resume_run(request_for(store, "loop"));
    std::cout << "resumed " << run.recorded_sample_ids.size() << std::endl;
    size_t recorded = run.recorded_sample_ids.size();
    char id[32];
    for (int i = 0; i < count; ++i) {
        std::snprintf(id, sizeof id, "sample-%06d", i);
        if (run.recorded_sample_ids.count(id)) continue;
        if (store.record_sample(run.run_id, sample(id, 2048))) ++recorded;
        std::cout << "recorded " << recorded << std::endl;  // endl: the test reads it at once
    }
    store.record_metrics(run.run_id, {{"score", "", 50.0}});
    store.finish_run(run.run_id, RunStatus::Finished);
    std::cout << "finished" << std::endl;
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::string mode = argc > 2 ? argv[2] : "";
        if (mode == "concurrent" && argc == 6) return concurrent(argv[1], argv[3], std::stoi(argv[4]), std::stoll(argv[5]));
        if (mode == "loop" && argc == 4) return loop(argv[1], std::stoi(argv[3]));
        std::cerr << "usage: store_writer_child DB concurrent TAG COUNT START_AT_MS | DB loop COUNT\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 2;
    }
}
