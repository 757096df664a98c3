// `mlawb sweep`: a grid of MLA settings x LongBench-style datasets, sharded deterministically
// (eval/sweep.h), each setting evaluated through `mlawb eval` itself so sweeps record exactly
// what eval records (same run keys: a sweep resumes an eval and the other way round).
// `mlawb merge`: per-shard result stores into one (eval/store_merge.h).
#include "app/cli/commands.h"

#include "core/config.h"
#include "core/error.h"
#include "core/llama_model.h"  // parse_placement, dtype_name: --dtype enters the run key
#include "core/tokenizer.h"
#include "eval/longbench.h"
#include "eval/runner.h"
#include "eval/store.h"
#include "eval/store_merge.h"
#include "eval/sweep.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace mlawb::cli {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string join(const std::vector<std::string>& items, const std::string& sep) {
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
    return out;
}

// --buckets as `eval` reads it (they are part of the run's identity).
std::vector<int64_t> bucket_edges(const ParsedArgs& a) {
    if (!a.has("--buckets")) return {0, 512, 1024, 2048};
    std::vector<int64_t> edges;
    for (const std::string& s : split_list(a.value("--buckets"))) {
        try {
            size_t used = 0;
            edges.push_back(std::stoll(s, &used));
            if (used != s.size()) throw std::invalid_argument(s);
        } catch (const std::exception&) {
            throw Error("", "--buckets", "expected comma-separated token counts, got '" + s + "'");
        }
        if (edges.size() > 1 && edges.back() <= edges[edges.size() - 2]) throw Error("", "--buckets", "edges must increase");
    }
    return edges;
}

// The eval options a sweep passes through unchanged.
const std::vector<std::string> kPassValued = {"--limit",  "--max-prompt", "--buckets",
                                              "--device", "--dtype",      "--layer-split"};
const std::vector<std::string> kPassFlags = {"--strict"};

const char* const kSweepUsage =
    "mlawb sweep MODEL --grid \"strategy=high,2-norm;r=2,4,8;d_kv=8,16,32\" --tasks DIR [--datasets a,b] [--limit N] "
    "[--max-prompt N] [--buckets E] --db FILE [--shard i/N | --workers N | --devices 0,1] [--device D[,D...]] "
    "[--layer-split N,M] [--dtype T] "
    "[--plan] [--json]";

// Everything the sweep decided before running anything.
struct SweepPlan {
    std::string model, tasks_folder, db;
    GridExpansion expansion;
    std::vector<SweepItem> all;       // the grid's items
    ShardSpec shard;
    std::vector<SweepItem> mine;      // this shard's, in dealing order
    std::vector<SweepItem> pending;   // mine minus the finished ones
    std::vector<int64_t> shard_loads; // cost per shard
};

SweepPlan make_plan(const ParsedArgs& a, Io& io) {
    SweepPlan p;
    p.model = a.positional[0];
    if (!a.has("--grid")) throw Error("", "--grid", "required, e.g. --grid \"strategy=high,2-norm;r=2,4;d_kv=8,16\"");
    if (!a.has("--tasks")) throw Error("", "--tasks", "required: a LongBench-style task folder");
    const ModelConfig config = ModelConfig::from_file((fs::path(p.model) / "config.json").string());
    if (config.mla.present)
        throw Error(p.model + "/config.json", "mla",
                    "this model is already converted to MLA (" + config.mla.spec + "); sweep the original model");
    p.expansion = expand_grid(SweepGrid::parse(a.value("--grid")), config);
    for (const RefusedCombination& r : p.expansion.refused)
        io.err << "note: grid: refused " << r.combination << ": " << r.reason << "\n";
    for (const CollapsedCombination& c : p.expansion.collapsed)
        io.err << "note: grid: " << c.combination << " is the setting " << c.setting << " (listed once)\n";

    const LongBenchTaskSet tasks = LongBenchTaskSet::open(a.value("--tasks"));
    p.tasks_folder = tasks.folder();
    const std::vector<std::string> datasets = a.has("--datasets") ? split_list(a.value("--datasets")) : tasks.datasets();
    for (size_t i = 0; i < datasets.size(); ++i) {
        const std::string& d = datasets[i];
        if (std::find(tasks.datasets().begin(), tasks.datasets().end(), d) == tasks.datasets().end())
            throw Error(tasks.folder(), d, "no such dataset (no " + d + ".jsonl)");
        if (std::find(datasets.begin(), datasets.begin() + i, d) != datasets.begin() + i)
            throw Error("", "--datasets", d + " given twice");
    }
    if (datasets.empty()) throw Error(tasks.folder(), "--datasets", "no dataset to evaluate");
    const int64_t limit = a.integer("--limit", -1, -1, 1LL << 40);
    const int64_t max_prompt = a.integer("--max-prompt", -1, -1, 1LL << 30);
    const Tokenizer tokenizer = Tokenizer::from_file((fs::path(p.model) / "tokenizer.json").string());
    std::vector<DatasetWork> work;
    for (const std::string& d : datasets) work.push_back(measure_dataset(tasks, d, tokenizer, config, limit, max_prompt));

    p.all = make_sweep_items(p.expansion.settings, work);
    p.shard = a.has("--shard") ? ShardSpec::parse(a.value("--shard")) : ShardSpec{};
    const std::vector<int64_t> owner = assign_shards(p.all, p.shard.count);
    p.shard_loads.assign(static_cast<size_t>(p.shard.count), 0);
    for (size_t i = 0; i < p.all.size(); ++i) p.shard_loads[owner[i]] += p.all[i].cost;
    p.mine = shard_items(p.all, p.shard);

    p.db = a.value("--db");
    std::set<std::string> done;
    if (!p.db.empty())
        done = finished_item_keys(p.db, model_content_hash(p.model),
                                  longbench_run_options_json(limit, max_prompt, bucket_edges(a), tasks.folder(),
                                                             a.has("--dtype") ? dtype_name(parse_placement("cpu", a.value("--dtype")).dtype)
                                                                              : "f32"),
                                  config);
    for (const SweepItem& item : p.mine)
        if (!done.count(item.key())) p.pending.push_back(item);
    return p;
}

int64_t total_cost(const std::vector<SweepItem>& items) {
    int64_t sum = 0;
    for (const SweepItem& i : items) sum += i.cost;
    return sum;
}

void print_plan(const SweepPlan& p, const ParsedArgs& a, Io& io) {
    if (a.flag("--json")) {
        json items = json::array();
        for (const SweepItem& i : p.pending) items.push_back({{"setting", i.setting}, {"dataset", i.dataset}, {"cost", i.cost}});
        io.out << items.dump(2) << "\n";
        return;
    }
    io.out << "grid      " << p.expansion.combinations << " combinations -> " << p.expansion.settings.size()
           << " settings (" << p.expansion.refused.size() << " refused, " << p.expansion.collapsed.size()
           << " collapsed) x " << p.all.size() / std::max<size_t>(1, p.expansion.settings.size()) << " datasets = "
           << p.all.size() << " items, cost " << total_cost(p.all) << "\n"
           << "shard     " << p.shard.to_string() << ": " << p.mine.size() << " items, cost " << total_cost(p.mine)
           << " (loads of the " << p.shard.count << " shards:";
    for (int64_t load : p.shard_loads) io.out << " " << load;
    io.out << ")\n"
           << "to run    " << p.pending.size() << " items, cost " << total_cost(p.pending) << " ("
           << p.mine.size() - p.pending.size() << " already finished in " << (p.db.empty() ? "(no --db)" : p.db) << ")\n\n";
    size_t width = 40;
    for (const SweepItem& i : p.pending) width = std::max(width, i.setting.size() + 2);
    const int w = static_cast<int>(width);
    io.out << std::left << std::setw(w) << "setting" << std::setw(22) << "dataset" << std::right << std::setw(12) << "cost"
           << "\n";
    for (const SweepItem& i : p.pending)
        io.out << std::left << std::setw(w) << i.setting << std::setw(22) << i.dataset << std::right << std::setw(12)
               << i.cost << "\n";
}

// The command line of one worker: this sweep's options without --workers/--devices, plus a shard.
std::vector<std::string> worker_args(const ParsedArgs& a, const ShardSpec& shard, const std::string& device) {
    std::vector<std::string> args = {"sweep"};
    for (const std::string& p : a.positional) args.push_back(p);
    for (const auto& [name, value] : a.values) {
        if (name == "--workers" || name == "--devices" || name == "--shard") continue;
        args.push_back(name);
        args.push_back(value);
    }
    for (const std::string& f : a.flags)
        if (f != "--json") args.push_back(f);
    args.push_back("--shard");
    args.push_back(shard.to_string());
    if (!device.empty()) {
        args.push_back("--device");
        args.push_back(device);
    }
    return args;
}

// --workers N / --devices 0,1: one `mlawb sweep --shard k/N` process per worker, all writing
// the one --db (the store takes concurrent writers), logs in <db>.worker-k.log. With
// --devices, worker k sees only GPU k (CUDA_VISIBLE_DEVICES) and runs with --device cuda.
int run_workers(const ParsedArgs& a, Io& io) {
    if (a.has("--shard")) throw Error("", "--shard", "give --shard or --workers/--devices, not both");
    if (a.has("--workers") && a.has("--devices")) throw Error("", "--devices", "give --workers or --devices, not both");
    if (a.flag("--plan")) throw Error("", "--plan", "plans are per shard: use --plan --shard i/N");
    std::vector<std::string> devices;
    int64_t count = 0;
    if (a.has("--devices")) {
        devices = split_list(a.value("--devices"));
        if (devices.empty()) throw Error("", "--devices", "expected GPU indices, e.g. 0,1");
        if (a.has("--device")) throw Error("", "--device", "--devices sets each worker's device; drop --device");
        if (a.has("--layer-split"))
            throw Error("", "--layer-split", "--devices gives each worker one GPU; a layer split needs --device a,b");
        count = static_cast<int64_t>(devices.size());
    } else {
        count = a.integer("--workers", 1, 1, 256);
    }
    const std::string db = a.value("--db");
    const char* exe_env = std::getenv("MLAWB_EXE");
    std::error_code ec;
    const std::string exe = exe_env ? exe_env : fs::read_symlink("/proc/self/exe", ec).string();
    if (exe.empty() || fs::path(exe).filename().string().rfind("mlawb", 0) != 0)
        throw Error(exe, "--workers", "workers re-run the mlawb executable; set MLAWB_EXE to its path");

    std::vector<pid_t> pids;
    std::vector<std::string> logs;
    // Workers share the host's cores: without --threads each takes its share, since N processes
    // each spinning up every core's worth of OpenMP threads run several times slower than one.
    const int64_t cores = std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()));
    for (int64_t k = 0; k < count; ++k) {
        std::vector<std::string> args = worker_args(a, ShardSpec{k, count}, devices.empty() ? "" : "cuda");
        if (!a.has("--threads")) args.insert(args.end(), {"--threads", std::to_string(std::max<int64_t>(1, cores / count))});
        const std::string log = db + ".worker-" + std::to_string(k) + ".log";
        const pid_t pid = fork();
        if (pid < 0) throw Error("", "--workers", "fork failed");
        if (pid == 0) {
            const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
                close(fd);
            }
            if (!devices.empty()) setenv("CUDA_VISIBLE_DEVICES", devices[k].c_str(), 1);
            std::vector<char*> argv;
            argv.push_back(const_cast<char*>(exe.c_str()));
            for (const std::string& s : args) argv.push_back(const_cast<char*>(s.c_str()));
            argv.push_back(nullptr);
            execv(exe.c_str(), argv.data());
            _exit(127);
        }
        pids.push_back(pid);
        logs.push_back(log);
        io.err << "worker " << k << "/" << count << (devices.empty() ? "" : " on GPU " + devices[k]) << ": pid " << pid
               << ", log " << log << "\n";
    }
    int failed = 0;
    json workers = json::array();
    for (size_t k = 0; k < pids.size(); ++k) {
        int status = 0;
        while (waitpid(pids[k], &status, 0) < 0 && errno == EINTR) {
        }
        const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        failed += code != 0;
        workers.push_back({{"shard", ShardSpec{static_cast<int64_t>(k), count}.to_string()}, {"status", code}, {"log", logs[k]}});
        io.err << "worker " << k << "/" << count << " exited with status " << code << "\n";
    }
    if (a.flag("--json")) io.out << json{{"workers", workers}, {"db", db}}.dump(2) << "\n";
    else io.out << count - failed << " of " << count << " workers finished; results in " << db << "\n";
    return failed ? 1 : 0;
}

int cmd_sweep(const ParsedArgs& a, Io& io) {
    require_positional(a, 1, kSweepUsage);
    if (!a.flag("--plan") && !a.has("--db")) throw Error("", "--db", "required: the results database the sweep records in");
    if (a.has("--workers") || a.has("--devices")) {
        make_plan(a, io);  // refuses a bad grid, task folder or shard before any process starts
        return run_workers(a, io);
    }
    const SweepPlan plan = make_plan(a, io);
    if (a.flag("--plan")) {
        print_plan(plan, a, io);
        return 0;
    }

    // One eval per setting over this shard's pending datasets of it, settings in dealing order.
    std::vector<std::string> order;
    std::map<std::string, std::vector<std::string>> datasets_of;
    for (const SweepItem& item : plan.pending) {
        if (!datasets_of.count(item.setting)) order.push_back(item.setting);
        datasets_of[item.setting].push_back(item.dataset);
    }
    std::vector<std::string> pass;
    for (const std::string& name : kPassValued)
        if (a.has(name)) {
            pass.push_back(name);
            pass.push_back(a.value(name));
        }
    for (const std::string& f : kPassFlags)
        if (a.flag(f)) pass.push_back(f);
    io.err << "sweep " << plan.shard.to_string() << ": " << plan.pending.size() << " items in " << order.size()
           << " settings (" << plan.mine.size() - plan.pending.size() << " already finished)\n";

    const auto t0 = std::chrono::steady_clock::now();
    json results = json::array();
    int failures = 0;
    for (size_t s = 0; s < order.size(); ++s) {
        const std::string& setting = order[s];
        io.err << "[" << s + 1 << "/" << order.size() << "] " << setting << ": " << join(datasets_of[setting], ",") << "\n";
        std::vector<std::string> args = {"eval", plan.model, "--tasks", plan.tasks_folder, "--datasets",
                                         join(datasets_of[setting], ","), "--db", plan.db, "--json"};
        // The original model without --mla, so its runs are those of a plain `mlawb eval`.
        if (setting != "strategy=full") args.insert(args.end(), {"--mla", setting});
        args.insert(args.end(), pass.begin(), pass.end());
        std::ostringstream out;
        const int status = run_cli(args, out, io.err);
        if (status == 130) {
            io.err << "stopped; run the same command again to resume\n";
            return 130;
        }
        json scores;
        if (status == 0) scores = json::parse(out.str())["scores"];
        for (const std::string& d : datasets_of[setting]) {
            json row = {{"setting", setting}, {"dataset", d}, {"status", status == 0 ? "finished" : "failed"}};
            if (status == 0 && scores.contains(d)) row["score"] = scores[d];
            results.push_back(row);
        }
        failures += status != 0;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (a.flag("--json")) {
        io.out << json{{"shard", plan.shard.to_string()}, {"db", plan.db}, {"items", results},
                       {"skipped", plan.mine.size() - plan.pending.size()}, {"failed_settings", failures},
                       {"seconds", seconds}}
                      .dump(2)
               << "\n";
    } else {
        size_t width = 40;
        for (const json& r : results) width = std::max(width, r["setting"].get<std::string>().size() + 2);
        for (const json& r : results)
            io.out << std::left << std::setw(static_cast<int>(width)) << r["setting"].get<std::string>() << std::setw(22)
                   << r["dataset"].get<std::string>() << std::right << std::setw(10)
                   << (r.contains("score") ? std::to_string(r["score"].get<double>()).substr(0, 6) : r["status"].get<std::string>())
                   << "\n";
        io.out << "shard " << plan.shard.to_string() << ": " << results.size() << " items run, "
               << plan.mine.size() - plan.pending.size() << " already finished, " << failures << " settings failed, "
               << std::fixed << std::setprecision(1) << seconds << " s; recorded in " << plan.db << "\n";
    }
    return failures ? 1 : 0;
}

// mlawb merge A.db B.db ... -o ALL.db
int cmd_merge(const ParsedArgs& a, Io& io) {
    const std::string usage = "mlawb merge A.db B.db ... -o ALL.db [--json]";
    std::vector<std::string> sources;
    std::string output = a.value("--out");
    for (size_t i = 0; i < a.positional.size(); ++i) {
        if (a.positional[i] == "-o") {
            if (i + 1 >= a.positional.size()) throw Error("", "-o", "needs the output file; usage: " + usage);
            if (!output.empty()) throw Error("", "-o", "output given twice");
            output = a.positional[++i];
        } else {
            sources.push_back(a.positional[i]);
        }
    }
    if (output.empty()) throw Error("", "-o", "required; usage: " + usage);
    if (sources.empty()) throw Error("", "arguments", "no source databases; usage: " + usage);
    const MergeReport report = merge_result_stores(sources, output);
    if (a.flag("--json")) {
        json sources_json = json::array(), conflicts = json::array();
        for (const MergeSourceReport& s : report.sources)
            sources_json.push_back({{"path", s.path}, {"runs", s.runs}, {"runs_added", s.runs_added},
                                    {"runs_completed", s.runs_completed}, {"runs_extended", s.runs_extended},
                                    {"runs_unchanged", s.runs_unchanged}, {"runs_conflicting", s.runs_conflicting},
                                    {"models_added", s.models_added}, {"settings_added", s.settings_added},
                                    {"samples_added", s.samples_added}});
        for (const MergeConflict& c : report.conflicts)
            conflicts.push_back({{"source", c.source}, {"run_key", c.run_key}, {"setting", c.setting}, {"task", c.task},
                                 {"dataset", c.dataset}, {"reason", c.reason}});
        io.out << json{{"output", report.output}, {"sources", sources_json}, {"conflicts", conflicts},
                       {"runs_total", report.runs_total}}
                      .dump(2)
               << "\n";
    } else {
        for (const MergeSourceReport& s : report.sources)
            io.out << s.path << ": " << s.runs << " runs: " << s.runs_added << " added, " << s.runs_completed
                   << " completed, " << s.runs_extended << " extended, " << s.runs_unchanged << " unchanged, "
                   << s.runs_conflicting << " conflicting; " << s.samples_added << " samples added\n";
        io.out << report.output << ": " << report.runs_total << " runs\n";
    }
    for (const MergeConflict& c : report.conflicts)
        io.err << "conflict: " << c.source << ": " << c.task << " " << c.dataset << " " << c.setting << " (run "
               << c.run_key.substr(0, 12) << "): " << c.reason << "; kept the output's\n";
    return report.conflicts.empty() ? 0 : 1;
}

}  // namespace

std::vector<Command> sweep_commands() {
    return {
        {"sweep", kSweepUsage,
         "evaluate a grid of MLA settings x datasets; --shard i/N takes a deterministic cost-balanced slice, --plan "
         "lists it; finished items in --db are skipped",
         with_device_options({{"--grid", "--tasks", "--datasets", "--limit", "--max-prompt", "--buckets", "--db",
                               "--shard", "--workers", "--devices", "--threads"},
                              {"--plan", "--json", "--strict", "--help"}}),
         cmd_sweep},
        {"merge", "mlawb merge A.db B.db ... -o ALL.db [--json]",
         "merge results databases (models by hash, settings by spec, runs by run key); idempotent; conflicting runs "
         "are reported (exit status 1) and the first one kept",
         {{"--out"}, {"--json", "--help"}},
         cmd_merge},
    };
}

}  // namespace mlawb::cli
