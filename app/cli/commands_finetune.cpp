// `mlawb finetune`: recovery fine-tuning of a model (converted to MLA in memory with --mla, as
// MHA2MLA does before its continued pre-training), logged per step to the results store as a
// run of task "finetune", checkpointed every N steps, resumable with --resume, written as a
// loadable model folder at the end. Ctrl-C stops after the current micro-batch and leaves the
// last checkpoint. With --resume, an --out folder that already holds this run's finished result
// (a run killed after writing it but before the store recorded its end) is kept as it is and
// the run recorded as finished.
#include "app/cli/commands.h"
#include "app/cli/progress.h"

#include "analysis/rope_scores.h"
#include "core/error.h"
#include "core/llama_model.h"
#include "core/tokenizer.h"
#include "eval/store.h"
#include "eval/train_data.h"
#include "eval/trainer.h"

#include <ATen/Parallel.h>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
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
extern "C" void on_finetune_sigint(int) { g_interrupted.store(true); }

constexpr const char* kUsage =
    "mlawb finetune MODEL [--mla SPEC] --data FILE[,FILE...] --steps N --batch B --seq-len L [--lr 1e-4] "
    "[--warmup N] [--decay-frac 0.1] [--accum N] [--train all|attn] [--clip 1.0] [--weight-decay 0.01] "
    "[--seed S] [--save-every N] [--checkpoints DIR] [--keep N] [--eval-every N --heldout FILE "
    "[--heldout-windows N] [--heldout-window N]] [--db FILE] [--device cpu|cuda[:N]] [--token-cache DIR|none] "
    "[--log-every N] [--stop-after N] --out DIR [--resume DIR] [--json] [--threads N]";

double number(const ParsedArgs& a, const std::string& name, double fallback, double min, double max) {
    if (!a.has(name)) return fallback;
    const std::string text = a.value(name);
    errno = 0;
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || errno == ERANGE) throw Error("", name, "expected a number, got '" + text + "'");
    if (!(v >= min && v <= max))
        throw Error("", name, "must be between " + json(min).dump() + " and " + json(max).dump() + ", got " + text);
    return v;
}

int64_t peak_rss_bytes() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

std::string duration_text(double seconds) {
    const int64_t s = static_cast<int64_t>(seconds + 0.5);
    std::ostringstream out;
    if (s >= 3600) out << s / 3600 << "h" << std::setw(2) << std::setfill('0') << (s / 60) % 60 << "m";
    else if (s >= 60) out << s / 60 << "m" << std::setw(2) << std::setfill('0') << s % 60 << "s";
    else out << s << "s";
    return out.str();
}

int32_t eos_id_of(const LoadedModel& m) {
    if (!m.config.eos_token_ids.empty()) return static_cast<int32_t>(m.config.eos_token_ids.front());
    if (auto id = m.tokenizer.token_to_id("<|endoftext|>")) return *id;
    if (auto id = m.tokenizer.token_to_id("</s>")) return *id;
    throw Error(m.folder + "/config.json", "eos_token_id",
                "missing, and the tokenizer has no <|endoftext|> or </s>: documents need an end token");
}


// The kept pairs of a converted model folder, as the store keys settings.
std::string kept_json_of(const ModelConfig& c) {
    json j = {{"kept_pairs", c.mla.kept_pairs}};
    return KeptPairs::from_json_text(j.dump(), c.source, c.n_layer, c.n_kv_head, c.head_dim / 2).to_json_text();
}

int cmd_finetune(const ParsedArgs& a, Io& io) {
    require_positional(a, 1, kUsage);
    for (const char* required : {"--data", "--steps", "--batch", "--seq-len", "--out"})
        if (!a.has(required)) throw Error("", required, std::string("required; usage: ") + kUsage);
    const std::string base_folder = a.positional[0];
    std::string out = a.value("--out");
    while (out.size() > 1 && out.back() == '/') out.pop_back();  // "dir/" -> checkpoints beside it, not inside
    // With --resume an existing --out may be this run's finished output (a run killed after
    // writing it but before the store recorded its end): checked once the run is known.
    const bool out_exists = fs::exists(out);
    if (out_exists && !a.has("--resume"))
        throw Error(out, "--out", "already exists; choose a new folder (nothing is overwritten)");
    const std::vector<std::string> data_files = split_list(a.value("--data"));
    for (const std::string& f : data_files)
        if (!fs::is_regular_file(f)) throw Error(f, "--data", "no such file");

    TrainOptions o;
    o.steps = a.integer("--steps", 0, 1, 1LL << 40);
    o.batch = a.integer("--batch", 1, 1, 1 << 20);
    o.seq_len = a.integer("--seq-len", 2048, 1, 1 << 24);
    o.accum = a.integer("--accum", 1, 1, 1 << 20);
    o.lr = number(a, "--lr", 1e-4, 1e-12, 10);
    o.warmup = a.integer("--warmup", 0, 0, 1LL << 40);
    o.decay_fraction = number(a, "--decay-frac", 0.1, 0, 1);
    o.clip = number(a, "--clip", 1.0, 0, 1e9);
    o.weight_decay = number(a, "--weight-decay", 0.01, 0, 10);
    o.params = parse_train_params(a.value("--train", "all"));
    o.seed = static_cast<uint64_t>(a.integer("--seed", 0, 0, (1LL << 62)));
    o.save_every = a.integer("--save-every", 0, 0, 1LL << 40);
    o.keep_checkpoints = a.integer("--keep", 2, 0, 1 << 20);
    o.checkpoint_dir = a.value("--checkpoints", out + ".checkpoints");
    o.eval_every = a.integer("--eval-every", 0, 0, 1LL << 40);
    if (o.eval_every > 0 && !a.has("--heldout")) throw Error("", "--eval-every", "needs --heldout FILE");
    const int64_t stop_after = a.integer("--stop-after", -1, 1, 1LL << 40);
    const int64_t log_every = a.integer("--log-every", 10, 1, 1LL << 40);
    // Weights stay float32 (AdamW's master copy); on CUDA the forward runs under bf16 autocast.
    const Placement placement = parse_placement(a.value("--device", "cpu"), "f32");
    // The trainer keeps its batches, optimizer state and gradient norm on one device.
    if (placement.pipelined())
        throw Error("", "--device",
                    "finetune trains on one device; a device list (layers split across devices) is for the "
                    "inference commands (generate, perplexity, eval, ...)");
    const torch::Device device = placement.device;

    // The model: the checkpoint folder when resuming (it is already converted), else the base
    // model, converted in memory with --mla.
    std::string resume_folder;
    if (a.has("--resume")) resume_folder = find_checkpoint(a.value("--resume"));
    LoadedModel m;
    std::string config_text, setting_spec = "strategy=full", kept_json;
    if (!resume_folder.empty()) {
        m = load_model(resume_folder);
        if (a.has("--mla")) {
            const std::string asked = MlaSpec::parse(a.value("--mla")).to_string();
            if (!m.config.mla.present || m.config.mla.spec != asked)
                throw Error(resume_folder + "/config.json", "mla",
                            "the checkpoint holds " + (m.config.mla.present ? "'" + m.config.mla.spec + "'" : "the original attention") +
                                ", not --mla '" + asked + "'");
        }
        config_text = read_small_file(resume_folder + "/config.json");
        if (m.config.mla.present) {
            setting_spec = m.config.mla.spec;
            kept_json = kept_json_of(m.config);
        }
        io.err << "resuming from " << resume_folder << "\n";
    } else {
        m = load_model(base_folder);
        std::optional<ResolvedSetting> setting = apply_mla_option(m, a, io);
        std::string strategy, spec_text, calibration;
        if (m.config.mla.present) {
            setting_spec = m.config.mla.spec;
            kept_json = kept_json_of(m.config);
        } else if (setting && !setting->spec.is_original()) {
            strategy = setting->spec.strategy;
            spec_text = setting_spec = setting->spec.to_string();
            kept_json = setting->kept.to_json_text();
            if (setting->scores) {
                const CalibrationProvenance& c = setting->scores->provenance;
                calibration = json{{"model", c.model}, {"text_file", c.text_file}, {"windows", c.windows},
                                   {"seq_len", c.seq_len}, {"tokens", c.tokens}}.dump();
            }
        }
        config_text = model_config_json(*m.model, read_small_file(base_folder + "/config.json"), strategy, spec_text, calibration);
    }
    if (!device.is_cpu()) m.model->place(placement);

    // Data: tokenized once per file and tokenizer, cached.
    TrainDataOptions data_options;
    data_options.tokenizer_file = m.folder + "/tokenizer.json";
    data_options.eos_id = eos_id_of(m);
    const std::string cache = a.value("--token-cache", default_token_cache_dir());
    data_options.cache_dir = cache == "none" ? "" : cache;
    data_options.on_file = [&](const std::string& file, bool cached, int64_t tokens) {
        io.err << "data: " << file << ": " << tokens << " tokens" << (cached ? " (cached)" : "") << "\n";
    };
    const TokenStream stream = load_token_stream(data_files, m.tokenizer, data_options);
    if (a.has("--heldout")) {
        std::vector<int32_t> ids = m.tokenizer.encode(read_text_file(a.value("--heldout")));
        o.heldout_ids.assign(ids.begin(), ids.end());
        o.heldout_window = a.integer("--heldout-window", std::min<int64_t>(2048, m.config.max_position), 2, 1 << 24);
        o.heldout_max_windows = a.integer("--heldout-windows", -1, 1, 1LL << 40);
    }

    // The tokenizer files of every checkpoint and of --out are copied from the base model folder
    // (a resumed run's own checkpoint folder is removed once --keep newer ones exist).
    Trainer trainer(*m.model, stream.ids, o, ModelFolderSource{config_text, base_folder});
    if (!resume_folder.empty()) trainer.resume(resume_folder, /*weights_loaded=*/true);
    const bool adopted = out_exists && trainer.adopt_finished_output(out);
    if (out_exists && !adopted)
        throw Error(out, "--out", "already exists; choose a new folder (nothing is overwritten)");

    // The results store: one run per (base model, setting, options); a resumed run continues it.
    const std::string db_path = a.value("--db", kDefaultResultsDb);
    ResultsStore store = ResultsStore::open(db_path);
    const int64_t model_id = store.upsert_model(fs::absolute(base_folder).string(), model_content_hash(base_folder),
                                                read_small_file(base_folder + "/config.json"));
    const int64_t setting_id = store.upsert_setting(setting_spec, kept_json);
    json data_abs = json::array();
    for (const std::string& f : data_files) data_abs.push_back(fs::absolute(f).string());
    RunRequest req;
    req.model_id = model_id;
    req.setting_id = setting_id;
    req.task = "finetune";
    std::string dataset;
    for (const std::string& f : data_files) dataset += (dataset.empty() ? "" : "+") + fs::path(f).filename().string();
    req.dataset = dataset;
    req.options_json = json{{"data", data_abs},         {"steps", o.steps},
                            {"batch", o.batch},         {"seq_len", o.seq_len},
                            {"lr", o.lr},               {"warmup", o.warmup},
                            {"decay_fraction", o.decay_fraction}, {"clip", o.clip},
                            {"weight_decay", o.weight_decay}, {"betas", {o.beta1, o.beta2}},
                            {"eps", o.eps},             {"train", train_params_name(o.params)},
                            {"seed", o.seed},           {"out", fs::absolute(out).string()},
                            {"heldout", a.has("--heldout") ? fs::absolute(a.value("--heldout")).string() : ""},
                            {"eval_every", o.eval_every}, {"heldout_windows", o.heldout_max_windows}}
                           .dump();
    req.git_revision = MLAWB_GIT_REVISION;
    req.host = host_name();
    req.device = device.str();
    req.threads = at::get_num_threads();
    RunHandle run = store.begin_or_resume_run(req);

    io.err << "finetune: " << trainer.trained_parameter_count() << " parameters (" << train_params_name(o.params) << "), "
           << stream.ids.size() << " training tokens, " << o.steps << " steps x " << o.batch << " x " << o.seq_len
           << " tokens on " << device.str() << "; run " << run.run_id << " in " << db_path << "\n";

    g_interrupted.store(false);
    auto previous = std::signal(SIGINT, on_finetune_sigint);
    std::string last_checkpoint = resume_folder;
    double seconds_sum = 0;
    int64_t steps_timed = 0;
    Trainer::RunCallbacks cb;
    cb.cancelled = [] { return g_interrupted.load(); };
    cb.on_step = [&](const StepLog& s) {
        TrainingStepRow row{s.step, s.loss, s.lr, s.grad_norm, s.tokens_per_s, s.heldout_ppl};
        store.record_training_steps(run.run_id, {row});
        seconds_sum += s.seconds;
        ++steps_timed;
        if (s.step == 1 || s.step % log_every == 0 || s.step == o.steps || s.heldout_ppl) {
            const double eta = seconds_sum / static_cast<double>(steps_timed) * static_cast<double>(o.steps - s.step);
            io.err << "step " << s.step << "/" << o.steps << "  loss " << std::fixed << std::setprecision(4) << s.loss
                   << "  lr " << std::scientific << std::setprecision(2) << s.lr << "  |g| " << std::fixed
                   << std::setprecision(3) << s.grad_norm << "  " << std::setprecision(0) << s.tokens_per_s << " tok/s";
            if (s.heldout_ppl) io.err << "  heldout ppl " << std::setprecision(2) << *s.heldout_ppl;
            io.err << "  ETA " << duration_text(eta) << "\n" << std::flush;
        }
    };
    cb.on_checkpoint = [&](const std::string& folder, int64_t step) {
        last_checkpoint = folder;
        io.err << "checkpoint: " << folder << "\n";
    };
    if (adopted) {
        // Training and the folder are complete: record what the folder holds, then the end.
        io.err << "finetune: " << out << " already holds this run's result (step " << trainer.step()
               << "); recording the run's end\n";
        std::vector<TrainingStepRow> rows;
        for (const StepLog& s : trainer.log())
            rows.push_back({s.step, s.loss, s.lr, s.grad_norm, s.tokens_per_s, s.heldout_ppl});
        store.record_training_steps(run.run_id, rows);
    }
    try {
        if (!adopted) trainer.run(cb, stop_after);
    } catch (const Cancelled&) {
        std::signal(SIGINT, previous);
        store.finish_run(run.run_id, RunStatus::Cancelled, "interrupted at step " + std::to_string(trainer.step()));
        io.err << "stopped after step " << trainer.step() << "; "
               << (last_checkpoint.empty() ? std::string("no checkpoint was written (use --save-every N)")
                                           : "resume with --resume " + last_checkpoint)
               << "\n";
        return 130;
    } catch (const std::exception& e) {
        std::signal(SIGINT, previous);
        store.finish_run(run.run_id, RunStatus::Failed, e.what());
        throw;
    }
    std::signal(SIGINT, previous);

    if (trainer.step() < o.steps) {
        io.err << "stopped after step " << trainer.step() << " (--stop-after); resume with --resume " << last_checkpoint << "\n";
        if (a.flag("--json"))
            io.out << json{{"stopped_at", trainer.step()}, {"checkpoint", last_checkpoint}, {"run", run.run_id}}.dump(2) << "\n";
        return 0;
    }
    if (!adopted) trainer.save_model(out);

    const StepLog& last = trainer.log().back();
    std::optional<double> heldout;
    for (const StepLog& s : trainer.log())
        if (s.heldout_ppl) heldout = s.heldout_ppl;
    double rate = 0;
    for (const StepLog& s : trainer.log()) rate += s.tokens_per_s;
    rate /= static_cast<double>(trainer.log().size());
    std::vector<MetricRow> metrics;
    if (heldout) metrics.push_back({"heldout_perplexity", "", *heldout});
    metrics.push_back({"final_loss", "", last.loss});
    metrics.push_back({"tokens", "", static_cast<double>(trainer.tokens_seen())});
    metrics.push_back({"tokens_per_s", "", rate});
    metrics.push_back({"peak_rss_bytes", "", static_cast<double>(peak_rss_bytes())});
    store.record_metrics(run.run_id, metrics);
    store.finish_run(run.run_id, RunStatus::Finished);

    if (a.flag("--json")) {
        json j = {{"out", out},       {"run", run.run_id},          {"db", db_path},
                  {"steps", trainer.step()}, {"final_loss", last.loss}, {"tokens", trainer.tokens_seen()},
                  {"tokens_per_s", rate}, {"peak_rss_bytes", peak_rss_bytes()}, {"mla", setting_spec}};
        if (heldout) j["heldout_perplexity"] = *heldout;
        io.out << j.dump(2) << "\n";
    } else {
        io.out << "wrote " << out << " (" << setting_spec << "): " << trainer.step() << " steps, "
               << trainer.tokens_seen() << " tokens, final loss " << std::fixed << std::setprecision(4) << last.loss;
        if (heldout) io.out << ", held-out perplexity " << std::setprecision(2) << *heldout;
        io.out << "\nrecorded as run " << run.run_id << " in " << db_path << "\n";
    }
    return 0;
}

}  // namespace

std::vector<Command> finetune_commands() {
    return {
        {"finetune", kUsage,
         "recovery fine-tuning (AdamW, warmup-stable-decay, clip, accumulation) of a model or its MLA conversion; "
         "checkpoints, --resume, per-step log in the results store; writes a loadable model folder",
         {{"--mla", "--data", "--steps", "--batch", "--seq-len", "--lr", "--warmup", "--decay-frac", "--accum", "--train",
           "--clip", "--weight-decay", "--seed", "--save-every", "--checkpoints", "--keep", "--eval-every", "--heldout",
           "--heldout-windows", "--heldout-window", "--db", "--device", "--token-cache", "--log-every", "--stop-after",
           "--out", "--resume", "--threads"},
          {"--json", "--help"}},
         cmd_finetune},
    };
}

}  // namespace mlawb::cli
