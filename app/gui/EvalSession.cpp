#include "app/gui/EvalSession.h"

#include "analysis/convert.h"
#include "analysis/memory_model.h"
#include "app/gui/GuiSetting.h"
#include "core/error.h"
#include "core/llama_model.h"
#include "eval/longbench.h"
#include "eval/longbench_run.h"
#include "eval/metrics.h"
#include "eval/runner.h"
#include "eval/store.h"

#include <ATen/Parallel.h>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>

namespace mlawb::gui {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string readSmallFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string hostName() {
    char buf[256] = {0};
    gethostname(buf, sizeof(buf) - 1);
    return buf;
}

}  // namespace


EvalOutcome run_longbench_evaluation(const EvalRequest& request,
                                     const std::function<void(const EvalProgress&)>& report,
                                     const std::function<bool()>& cancelled) {
    const auto stage = [&](const std::string& text) {
        EvalProgress p;
        p.event = EvalProgress::Event::Stage;
        p.stage = text;
        if (report) report(p);
    };
    const auto stopIfCancelled = [&] {
        if (cancelled && cancelled()) throw Cancelled();
    };

    // Everything that can be refused cheaply first: the tasks, the datasets, the setting's syntax.
    stage("reading the tasks");
    const LongBenchTaskSet tasks = LongBenchTaskSet::open(request.tasks_folder);
    const std::vector<std::string> names = request.datasets.empty() ? tasks.datasets() : request.datasets;
    if (names.empty()) throw Error(request.tasks_folder, "", "no datasets chosen");
    std::vector<LongBenchDataset> data;
    int64_t overall_total = 0;
    for (const std::string& name : names) {
        if (std::find(tasks.datasets().begin(), tasks.datasets().end(), name) == tasks.datasets().end())
            throw Error(tasks.folder(), name, "no such dataset (no " + name + ".jsonl)");
        data.push_back(tasks.load(name, false));
        const auto records = static_cast<int64_t>(data.back().records.size());
        overall_total += request.limit >= 0 ? std::min(records, request.limit) : records;
    }
    const MlaSpec parsed = MlaSpec::parse(request.spec);
    if (request.db_path.empty()) throw Error("", "db", "no results database chosen");
    const fs::path db_folder = fs::absolute(request.db_path).parent_path();
    if (!fs::is_directory(db_folder)) throw Error(request.db_path, "", "its folder does not exist");
    stopIfCancelled();

    stage("loading the model");
    LoadedModel model = load_model(request.model_folder);
    stopIfCancelled();
    // As apply_mla_option: a converted folder is evaluated as it is, under its own spec.
    MlaSpec spec = MlaSpec::parse("strategy=full");
    std::string kept_json;
    if (!parsed.is_original()) {
        if (model.config.mla.present)
            throw Error(model.folder + "/config.json", "mla",
                        "this model is already converted to MLA (" + model.config.mla.spec +
                            "); evaluate it with strategy=full or start from the original");
        stage("converting to MLA");
        const ResolvedSetting setting = resolve_gui_setting(parsed, model.config, request.scores);
        convert_to_mla(*model.model, setting.spec, setting.kept);
        model.model->set_cache_options(CacheOptions{setting.spec.kv_bits, setting.spec.kv_group, setting.spec.residual});
        spec = setting.spec;
        kept_json = setting.kept.to_json_text();
    } else if (parsed.kv_bits != 16) {
        // The original attention with a quantized cache is still the original weights.
        model.model->set_cache_options(CacheOptions{parsed.kv_bits, parsed.kv_group, parsed.residual});
        spec = parsed;
    }
    stopIfCancelled();

    stage("opening " + request.db_path);
    ResultsStore store = ResultsStore::open(request.db_path);
    const int64_t model_id = store.upsert_model(fs::absolute(model.folder).string(), model_content_hash(model.folder),
                                                readSmallFile(model.folder + "/config.json"));
    const std::string spec_text = model.config.mla.present ? model.config.mla.spec : spec.to_string();
    const int64_t setting_id = store.upsert_setting(spec_text, kept_json);
    const MemoryEstimate memory = estimate_memory(model.config, spec, model.config.max_position, 1);
    const std::string options = longbench_run_options_json(request.limit, request.max_prompt, request.buckets, tasks.folder());

    EvalOutcome outcome;
    outcome.db_path = request.db_path;
    outcome.spec = spec_text;
    std::map<std::string, double> dataset_scores;
    int64_t overall_done = 0, new_samples = 0;
    LongBenchRunOptions run_options;
    run_options.limit = request.limit;
    run_options.max_prompt = request.max_prompt;
    run_options.bucket_edges = request.buckets;
    run_options.stop_reason = "cancelled in the workbench";
    for (const LongBenchDataset& dataset : data) {
        const std::string& name = dataset.name;
        RunRequest req;
        req.model_id = model_id;
        req.setting_id = setting_id;
        req.options_json = options;
        req.git_revision = MLAWB_GIT_REVISION;
        req.host = hostName();
        req.device = model.model->placement().to_string();
        req.threads = at::get_num_threads();

        const auto records = static_cast<int64_t>(dataset.records.size());
        const int64_t total = request.limit >= 0 ? std::min(records, request.limit) : records;
        double score_sum = 0;
        int64_t recorded = 0, done_here = 0, run_id = 0;
        LongBenchRunEvents events;
        events.started = [&](const RunHandle& run, int64_t already, double already_sum) {
            run_id = run.run_id;
            outcome.run_ids[name] = run.run_id;
            recorded = already;
            score_sum = already_sum;
            EvalProgress started;
            started.event = EvalProgress::Event::DatasetStarted;
            started.dataset = name;
            started.run_id = run.run_id;
            started.resumed = run.resumed;
            started.already_finished = run.finished;
            started.dataset_done = run.finished ? total : std::min(recorded, total);
            started.dataset_total = total;
            started.overall_done = overall_done + started.dataset_done;
            started.overall_total = overall_total;
            started.new_samples = new_samples;
            started.score_percent = recorded > 0 ? 100.0 * score_sum / static_cast<double>(recorded) : 0.0;
            done_here = started.dataset_done;
            if (report) report(started);
        };
        events.recorded = [&](const SampleResult& s) {
            score_sum += s.score;
            ++recorded;
            ++done_here;
            ++new_samples;
            EvalProgress p;
            p.event = EvalProgress::Event::Sample;
            p.dataset = name;
            p.run_id = run_id;
            p.dataset_done = done_here;
            p.dataset_total = total;
            p.overall_done = overall_done + done_here;
            p.overall_total = overall_total;
            p.new_samples = new_samples;
            p.score_percent = 100.0 * score_sum / static_cast<double>(recorded);
            p.sample_id = s.id;
            if (report) report(p);
        };
        events.cancelled = cancelled;
        const LongBenchRunOutcome run =
            run_longbench_dataset(model, tasks, dataset, store, req, memory, spec, run_options, events);
        for (const auto& [key, value] : run.scores) outcome.scores[key] = value;
        const auto headline = run.scores.find(name);
        dataset_scores[name] = headline != run.scores.end() ? headline->second : 0.0;
        overall_done += total;
        EvalProgress finished;
        finished.event = EvalProgress::Event::DatasetFinished;
        finished.dataset = name;
        finished.run_id = run_id;
        finished.dataset_done = total;
        finished.dataset_total = total;
        finished.overall_done = overall_done;
        finished.overall_total = overall_total;
        finished.new_samples = new_samples;
        finished.score_percent = dataset_scores[name];
        if (report) report(finished);
    }
    outcome.overall = overall_score(dataset_scores);
    return outcome;
}

}  // namespace mlawb::gui
