// `mlawb eval`: LongBench-style evaluation of a model (optionally converted with --mla) on a
// task folder, every sample recorded in the SQLite results store as soon as it is scored, so
// Ctrl-C or a killed process loses nothing and the same command resumes.
#include "app/cli/commands.h"
#include "app/cli/progress.h"

#include "analysis/memory_model.h"
#include "core/error.h"
#include "core/llama_model.h"
#include "eval/longbench.h"
#include "eval/longbench_run.h"
#include "eval/metrics.h"
#include "eval/multiple_choice.h"
#include "eval/perplexity.h"
#include "eval/runner.h"
#include "eval/store.h"

#include <ATen/Parallel.h>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>
#include <sys/resource.h>
#include <unistd.h>

namespace mlawb::cli {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) { g_interrupted.store(true); }

std::vector<int64_t> bucket_edges(const ParsedArgs& a, int64_t context) {
    if (!a.has("--buckets")) return {0, 512, 1024, 2048};  // the fixtures' buckets by prompt tokens
    std::vector<int64_t> edges;
    for (const std::string& s : split_list(a.value("--buckets"))) {
        try {
            edges.push_back(std::stoll(s));
        } catch (const std::exception&) {
            throw Error("", "--buckets", "expected comma-separated token counts, got '" + s + "'");
        }
        if (edges.size() > 1 && edges.back() <= edges[edges.size() - 2])
            throw Error("", "--buckets", "edges must increase");
    }
    (void)context;
    return edges;
}

// results.db beside the data when that folder is writable, else in the current folder.
std::string default_db(const std::string& tasks_folder, Io& io) {
    if (access(tasks_folder.c_str(), W_OK) == 0) return tasks_folder + "/" + kDefaultResultsDb;
    io.err << "note: " << tasks_folder << " is read-only; recording results in ./" << kDefaultResultsDb << "\n";
    return kDefaultResultsDb;
}

// What every evaluation task shares: the model (converted if --mla), the store and its ids.
struct EvalContext {
    LoadedModel& model;
    MlaSpec spec;
    ResultsStore& store;
    int64_t model_id = 0, setting_id = 0;
    std::string db_path;
    MemoryEstimate memory;
};

RunRequest base_request(const EvalContext& ctx, const std::string& task, const std::string& dataset, json options) {
    RunRequest req;
    req.model_id = ctx.model_id;
    req.setting_id = ctx.setting_id;
    req.task = task;
    req.dataset = dataset;
    req.options_json = options.dump();
    req.git_revision = MLAWB_GIT_REVISION;
    req.host = host_name();
    req.device = ctx.model.model->placement().to_string();  // "cuda:0 bf16", "cuda:0[0-15] cuda:1[16-31] bf16"
    req.threads = at::get_num_threads();
    return req;
}

void record_memory_row(const EvalContext& ctx, int64_t run_id) {
    ctx.store.record_memory(run_id, memory_row(ctx.memory, ctx.spec));
}

// --perplexity FILE: one run whose metric is the held-out perplexity.
json run_perplexity_task(EvalContext& ctx, const ParsedArgs& a, Io& io) {
    const std::string path = a.value("--perplexity");
    const std::string text = read_text_file(path);
    PerplexityOptions options;
    options.window = a.integer("--window", 2048, 2, 1 << 20);
    RunHandle run = ctx.store.begin_or_resume_run(
        base_request(ctx, "perplexity", fs::path(path).filename().string(),
                     json{{"window", options.window}, {"text", fs::absolute(path).string()}}));
    if (!run.finished) {
        std::vector<int32_t> ids32 = ctx.model.tokenizer.encode(text);
        ProgressLine progress(io.err, "perplexity");
        options.progress = [&](int64_t done, int64_t total, int64_t tokens) { progress.update(done, total, tokens, "tok/s"); };
        options.cancelled = [] { return g_interrupted.load(); };
        PerplexityResult r = compute_perplexity(*ctx.model.model, std::vector<int64_t>(ids32.begin(), ids32.end()), options);
        progress.finish();
        ctx.store.record_metrics(run.run_id, {{"perplexity", "", r.perplexity}, {"tokens_scored", "", double(r.tokens_scored)},
                                              {"nll_nats", "", r.total_nll}});
        record_memory_row(ctx, run.run_id);
        ctx.store.finish_run(run.run_id, RunStatus::Finished);
    }
    const RunDetail detail = ctx.store.run(run.run_id);
    double ppl = 0;
    for (const MetricRow& m : detail.metrics)
        if (m.name == "perplexity") ppl = m.value;
    return json{{"runs", {{"perplexity", run.run_id}}}, {"scores", {{"perplexity", ppl}}}};
}

// --mc FILE: multiple choice by log-likelihood; acc and acc_norm in percent.
json run_multiple_choice_task(EvalContext& ctx, const ParsedArgs& a, Io& io) {
    const std::string path = a.value("--mc");
    std::vector<std::string> malformed;
    std::vector<MultipleChoiceItem> items = load_multiple_choice(path, a.flag("--strict"), malformed);
    for (const std::string& bad : malformed) io.err << "warning: skipped " << bad << "\n";
    const int64_t limit = a.integer("--limit", -1, -1, 1LL << 40);
    if (limit >= 0 && static_cast<int64_t>(items.size()) > limit) items.resize(limit);
    RunRequest req = base_request(ctx, "multiple_choice", fs::path(path).stem().string(),
                                  json{{"limit", limit}, {"file", fs::absolute(path).string()}});
    req.malformed_lines = static_cast<int64_t>(malformed.size());
    RunHandle run = ctx.store.begin_or_resume_run(req);
    if (!run.finished) {
        ProgressLine progress(io.err, "multiple choice");
        int64_t done = 0;
        for (const MultipleChoiceItem& item : items) {
            ++done;
            if (run.recorded_sample_ids.count(item.id)) continue;
            if (g_interrupted.load()) {
                ctx.store.finish_run(run.run_id, RunStatus::Cancelled, "interrupted");
                throw Cancelled();
            }
            MultipleChoiceResult r = score_multiple_choice(ctx.model, item);
            SampleRow row;
            row.sample_id = r.id;
            row.prompt_tokens = r.prompt_tokens;
            row.prediction = item.choices[r.predicted];
            row.score = r.correct ? 1.0 : 0.0;
            row.details_json = json{{"loglikelihoods", r.loglikelihoods}, {"predicted", r.predicted},
                                    {"predicted_norm", r.predicted_norm}, {"correct_norm", r.correct_norm}}.dump();
            ctx.store.record_sample(run.run_id, row);
            progress.update(done, static_cast<int64_t>(items.size()), done, "items/s");
        }
        progress.finish();
        double acc = 0, acc_norm = 0;
        const std::vector<SampleRow> rows = ctx.store.samples(run.run_id);
        for (const SampleRow& row : rows) {
            acc += row.score;
            acc_norm += json::parse(row.details_json).value("correct_norm", false) ? 1.0 : 0.0;
        }
        const double n = std::max<size_t>(1, rows.size());
        ctx.store.record_metrics(run.run_id, {{"acc", "", 100.0 * acc / n}, {"acc_norm", "", 100.0 * acc_norm / n}});
        record_memory_row(ctx, run.run_id);
        ctx.store.finish_run(run.run_id, RunStatus::Finished);
    }
    json scores = json::object();
    for (const MetricRow& m : ctx.store.run(run.run_id).metrics) scores[m.name] = m.value;
    return json{{"runs", {{"multiple_choice", run.run_id}}}, {"scores", scores}};
}

int cmd_eval(const ParsedArgs& a, Io& io) {
    const std::string usage = "mlawb eval MODEL --tasks DIR [--datasets a,b] [--mla SPEC] [--limit N] [--max-prompt N] [--db FILE]";
    require_positional(a, 1, usage);
    const int task_kinds = a.has("--tasks") + a.has("--perplexity") + a.has("--mc");
    if (task_kinds != 1)
        throw Error("", "--tasks", "give exactly one of --tasks DIR (LongBench), --perplexity FILE, --mc FILE.jsonl");
    if (!a.has("--tasks")) {
        LoadedModel m = load_model(a.positional[0]);
        std::optional<ResolvedSetting> setting = apply_mla_option(m, a, io);
        apply_device_option(m, a);
        const bool original = !setting || setting->spec.is_original();
        const std::string data_folder = fs::path(a.has("--mc") ? a.value("--mc") : a.value("--perplexity")).parent_path().string();
        const std::string db_path = a.has("--db") ? a.value("--db") : default_db(data_folder.empty() ? "." : data_folder, io);
        ResultsStore store = ResultsStore::open(db_path);
        EvalContext ctx{m, setting ? setting->spec : MlaSpec::parse("strategy=full"), store, 0, 0, db_path, {}};
        ctx.model_id = store.upsert_model(fs::absolute(m.folder).string(), model_content_hash(m.folder),
                                          read_small_file(m.folder + "/config.json"));
        ctx.setting_id = store.upsert_setting(m.config.mla.present ? m.config.mla.spec : ctx.spec.to_string(),
                                              original ? "" : setting->kept.to_json_text());
        ctx.memory = estimate_memory(m.config, ctx.spec, m.config.max_position, 1);
        g_interrupted.store(false);
        auto previous = std::signal(SIGINT, on_sigint);
        json result;
        try {
            result = a.has("--mc") ? run_multiple_choice_task(ctx, a, io) : run_perplexity_task(ctx, a, io);
        } catch (const Cancelled&) {
            std::signal(SIGINT, previous);
            io.err << "stopped; recorded in " << db_path << "; run the same command again to resume\n";
            return 130;
        }
        std::signal(SIGINT, previous);
        result["db"] = db_path;
        result["mla"] = ctx.spec.to_string();
        if (a.flag("--json")) {
            io.out << result.dump(2) << "\n";
        } else {
            for (const auto& [key, value] : result["scores"].items())
                io.out << std::left << std::setw(24) << key << std::right << std::fixed << std::setprecision(4)
                       << value.get<double>() << "\n";
            io.out << "recorded in " << db_path << "\n";
        }
        return 0;
    }
    const LongBenchTaskSet tasks = LongBenchTaskSet::open(a.value("--tasks"));
    std::vector<std::string> datasets = a.has("--datasets") ? split_list(a.value("--datasets")) : tasks.datasets();
    for (const std::string& d : datasets)
        if (std::find(tasks.datasets().begin(), tasks.datasets().end(), d) == tasks.datasets().end())
            throw Error(tasks.folder(), d, "no such dataset (no " + d + ".jsonl)");

    LoadedModel m = load_model(a.positional[0]);
    std::optional<ResolvedSetting> setting = apply_mla_option(m, a, io);
    apply_device_option(m, a);
    const MlaSpec spec = setting ? setting->spec : MlaSpec::parse("strategy=full");
    const std::string db_path = a.has("--db") ? a.value("--db") : default_db(tasks.folder(), io);
    ResultsStore store = ResultsStore::open(db_path);
    const int64_t model_id = store.upsert_model(fs::absolute(m.folder).string(), model_content_hash(m.folder),
                                                read_small_file(m.folder + "/config.json"));
    // The original model (no --mla, or strategy=full without SVD) is one setting: empty kept pairs.
    const bool original = !setting || setting->spec.is_original();
    const std::string kept_json = original ? "" : setting->kept.to_json_text();
    const int64_t setting_id = store.upsert_setting(m.config.mla.present ? m.config.mla.spec : spec.to_string(), kept_json);
    const std::vector<int64_t> edges = bucket_edges(a, m.config.max_position);
    const int64_t limit = a.integer("--limit", -1, -1, 1LL << 40);
    const int64_t max_prompt = a.integer("--max-prompt", -1, -1, 1LL << 30);
    const bool strict = a.flag("--strict");
    const MemoryEstimate memory = estimate_memory(m.config, spec, m.config.max_position, 1);

    g_interrupted.store(false);
    auto previous = std::signal(SIGINT, on_sigint);
    json runs = json::object(), scores = json::object();
    std::map<std::string, double> dataset_scores;
    int status = 0;
    LongBenchRunOptions run_options;
    run_options.limit = limit;
    run_options.max_prompt = max_prompt;
    run_options.bucket_edges = edges;
    run_options.stop_reason = "interrupted";
    for (const std::string& name : datasets) {
        LongBenchDataset data = tasks.load(name, strict);
        for (const std::string& bad : data.malformed) io.err << "warning: skipped " << bad << "\n";
        RunRequest req;
        req.model_id = model_id;
        req.setting_id = setting_id;
        req.options_json =
            longbench_run_options_json(limit, max_prompt, edges, tasks.folder(), dtype_name(m.model->dtype()));
        req.git_revision = MLAWB_GIT_REVISION;
        req.host = host_name();
        req.device = m.model->placement().to_string();
        req.threads = at::get_num_threads();
        ProgressLine progress(io.err, name);
        LongBenchRunEvents events;
        int64_t run_id = 0;
        events.started = [&](const RunHandle& run, int64_t recorded, double) {
            run_id = run.run_id;
            runs[name] = run.run_id;
            if (!run.finished && run.resumed && recorded > 0)
                io.err << name << ": resuming run " << run.run_id << " (" << recorded << " samples already recorded)\n";
        };
        events.progress = [&](int64_t done, int64_t total, int64_t tokens) { progress.update(done, total, tokens, "prompt tok/s"); };
        events.cancelled = [] { return g_interrupted.load(); };
        LongBenchRunOutcome outcome;
        try {
            outcome = run_longbench_dataset(m, tasks, data, store, req, memory, spec, run_options, events);
            progress.finish();
        } catch (const Cancelled&) {
            progress.finish();
            std::signal(SIGINT, previous);
            io.err << "stopped: " << store.recorded_sample_ids(run_id).size() << " samples of " << name
                   << " recorded in " << db_path << "; run the same command again to resume\n";
            return 130;
        } catch (...) {
            progress.finish();
            std::signal(SIGINT, previous);
            throw;
        }
        for (const auto& [key, value] : outcome.scores) scores[key] = value;
        dataset_scores[name] = outcome.scores[name];
    }
    std::signal(SIGINT, previous);
    const double overall = overall_score(dataset_scores);
    if (a.flag("--json")) {
        io.out << json{{"runs", runs}, {"scores", scores}, {"overall", overall}, {"db", db_path},
                       {"mla", spec.to_string()}}.dump(2) << "\n";
    } else {
        for (const auto& [key, value] : scores.items())
            io.out << std::left << std::setw(32) << key << std::right << std::fixed << std::setprecision(2)
                   << value.get<double>() << "\n";
        io.out << std::left << std::setw(32) << "overall (mean of datasets)" << std::right << overall << "\n"
               << "recorded in " << db_path << "\n";
    }
    return status;
}

}  // namespace

std::vector<Command> eval_commands() {
    return {
        {"eval",
         "mlawb eval MODEL (--tasks DIR [--datasets a,b] [--max-prompt N] [--buckets 0,512,1024,2048] | --perplexity FILE "
         "[--window N] | --mc FILE.jsonl) [--mla SPEC] [--limit N] [--db FILE] [--strict] [--json] [--threads N] "
         "[--device D[,D...]] [--layer-split N,M] [--dtype T]",
         "LongBench-style evaluation with greedy decoding; every sample recorded in SQLite; Ctrl-C stops and the same "
         "command resumes",
         with_device_options({{"--tasks", "--datasets", "--mla", "--limit", "--max-prompt", "--db", "--buckets", "--threads",
                               "--perplexity", "--window", "--mc"},
                              {"--strict", "--json", "--help"}}),
         cmd_eval},
    };
}

}  // namespace mlawb::cli
