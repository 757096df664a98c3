// The recovery table of MHA2MLA's fine-tuning on the fixture models: held-out perplexity
// (../shared/fixtures/heldout.txt, 2048-token windows) and LongBench-syn scores of the original
// model, of its conversions (2-norm r 4 joint, d_kv 8/16/32, scores calibrated on
// finetune/text.txt as bench_mla_perplexity does) and of both after the same recovery
// fine-tune; plus the paper's control, that fine-tune applied to the unconverted model. The
// issue's PyTorch reference numbers are printed beside ours.
//
//   bench_recovery [--device cpu|cuda] [--models wb-tiny-mha,wb-tiny-gqa] [--rows control,8,16,32]
//                  [--steps 245] [--batch 4] [--seq-len 2048] [--warmup 24] [--decay-frac 0.1]
//                  [--lr 1e-4] [--accum 1] [--train all|attn] [--seed 0]
//                  [--heldout-windows N] [--longbench-limit N] [--no-longbench] [--row-out FILE]
//       runs the rows (model x setting) one after another and prints the table; with --row-out
//       it appends each row as one JSON line to FILE instead (scripts/recovery_table.sh runs
//       rows in parallel processes that way);
//   bench_recovery --table FILE...   prints the table of JSON-line row files;
//   bench_recovery --prepare [--models ...]   tokenizes the training data into the token cache
//       (once, before parallel rows start);
//   bench_recovery --speed [--device cpu] [--batch 8] [--seq-len 512] [--steps 6] [--model M] [--mla SPEC]
//       training tokens/s (median of the steps after the first) and peak RSS.
#include "analysis/calibration.h"
#include "analysis/convert.h"
#include "analysis/setting.h"
#include "core/error.h"
#include "core/llama_model.h"
#include "core/tokenizer.h"
#include "eval/longbench.h"
#include "eval/metrics.h"
#include "eval/perplexity.h"
#include "eval/runner.h"
#include "eval/train_data.h"
#include "eval/trainer.h"

#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <unistd.h>
#include <vector>

using namespace mlawb;
using json = nlohmann::json;

namespace {

const std::string kFixtures = std::string(MLAWB_SHARED_DIR) + "/fixtures";

struct Args {
    std::map<std::string, std::string> values;
    std::vector<std::string> rest;
    bool has(const std::string& k) const { return values.count(k) > 0; }
    std::string str(const std::string& k, const std::string& d) const { return has(k) ? values.at(k) : d; }
    int64_t integer(const std::string& k, int64_t d) const { return has(k) ? std::stoll(values.at(k)) : d; }
    double number(const std::string& k, double d) const { return has(k) ? std::stod(values.at(k)) : d; }
};

std::vector<std::string> split(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty()) out.push_back(item);
    return out;
}

std::string read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path, "", "cannot open");
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

double peak_rss_mb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0;
}

// User + system CPU seconds of this process (all threads): on a shared, loaded machine the
// wall-clock rate understates what the code does; tokens per CPU-second does not.
double cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The PyTorch reference (same recipe, bf16 autocast): {conv, ft} per model and row.
struct Reference {
    double original, conv, ft;
};
std::optional<Reference> reference(const std::string& model, const std::string& row) {
    static const std::map<std::string, std::map<std::string, Reference>> table = {
        {"wb-tiny-mha",
         {{"control", {54.34, 54.34, 58.30}}, {"8", {54.34, 1082.8, 59.75}}, {"16", {54.34, 881.0, 48.91}},
          {"32", {54.34, 717.3, 44.29}}}},
        {"wb-tiny-gqa",
         {{"control", {69.84, 69.84, 75.45}}, {"8", {69.84, 3132.8, 90.43}}, {"16", {69.84, 2125.3, 70.43}},
          {"32", {69.84, 1720.5, 58.44}}}},
    };
    auto m = table.find(model);
    if (m == table.end()) return std::nullopt;
    auto r = m->second.find(row);
    if (r == m->second.end()) return std::nullopt;
    return r->second;
}

std::string spec_of(const std::string& row) {
    return row == "control" ? "strategy=full" : "strategy=2-norm,r=4,d_kv=" + row + ",svd=joint";
}

struct EvalResult {
    double ppl = 0;
    json longbench = json::object();  // dataset -> score, "overall"
};

EvalResult evaluate(LoadedModel& m, const std::vector<int64_t>& heldout, const Args& a) {
    EvalResult r;
    PerplexityOptions po;
    po.window = 2048;
    po.max_windows = a.integer("--heldout-windows", -1);
    r.ppl = compute_perplexity(*m.model, heldout, po).perplexity;
    if (a.has("--no-longbench")) return r;
    const LongBenchTaskSet tasks = LongBenchTaskSet::open(kFixtures + "/longbench-syn");
    std::map<std::string, double> scores;
    for (const std::string& name : tasks.datasets()) {
        LongBenchDataset data = tasks.load(name, true);
        DatasetEvalOptions options;
        options.limit = a.integer("--longbench-limit", -1);
        std::vector<SampleResult> samples = evaluate_dataset(m, tasks, data, options);
        scores[name] = aggregate_scores(name, samples, {0, 512, 1024, 2048})[name];
        r.longbench[name] = scores[name];
    }
    r.longbench["overall"] = overall_score(scores);
    return r;
}

json eval_json(const EvalResult& e) { return json{{"ppl", e.ppl}, {"longbench", e.longbench}}; }

// One row: the model (converted unless `control`), evaluated, fine-tuned, evaluated again.
json run_row(const std::string& model_name, const std::string& row, const Args& a) {
    const auto t_row = std::chrono::steady_clock::now();
    const Placement placement = parse_placement(a.str("--device", "cpu"), "f32");
    const torch::Device device = placement.device;
    const std::string dir = kFixtures + "/models/" + model_name;
    LoadedModel m = load_model(dir);
    std::vector<int32_t> heldout32 = m.tokenizer.encode(read_all(kFixtures + "/heldout.txt"));
    const std::vector<int64_t> heldout(heldout32.begin(), heldout32.end());
    json out = {{"model", model_name}, {"row", row}, {"spec", spec_of(row)}, {"device", device.str()}};

    // Conversion on the CPU (SVDs in float64), then the model goes to the device.
    std::string config_text = read_all(dir + "/config.json");
    if (row != "control") {
        // The original's perplexity too, so a row alone shows its conversion gap.
        if (!device.is_cpu()) m.model->place(placement);
        PerplexityOptions po;
        po.max_windows = a.integer("--heldout-windows", -1);
        out["original_ppl"] = compute_perplexity(*m.model, heldout, po).perplexity;
        if (!device.is_cpu()) m.model->place(Placement{});
        MlaSpec spec = MlaSpec::parse(spec_of(row));
        RopeScores scores = calibrate_rope_scores_from_file(m, kFixtures + "/finetune/text.txt", CalibrationOptions{});
        const std::string scores_path = "/tmp/bench-recovery-scores-" + model_name + "-" + std::to_string(getpid()) + ".json";
        scores.save(scores_path);
        spec.scores_file = scores_path;
        ResolvedSetting setting = resolve_setting(spec, m.config, {});
        convert_to_mla(*m.model, setting.spec, setting.kept);
        std::remove(scores_path.c_str());
        config_text = model_config_json(*m.model, config_text, setting.spec.strategy, setting.spec.to_string());
    }
    if (!device.is_cpu()) m.model->place(placement);
    auto t0 = std::chrono::steady_clock::now();
    out["before"] = eval_json(evaluate(m, heldout, a));
    out["eval_seconds_before"] = seconds_since(t0);
    std::fprintf(stderr, "%s %s: before fine-tuning ppl %.2f (%.0f s)\n", model_name.c_str(), row.c_str(),
                 out["before"]["ppl"].get<double>(), out["eval_seconds_before"].get<double>());

    TrainDataOptions data_options;
    data_options.tokenizer_file = dir + "/tokenizer.json";
    data_options.eos_id = 0;
    data_options.cache_dir = default_token_cache_dir();
    t0 = std::chrono::steady_clock::now();
    const TokenStream stream =
        load_token_stream({kFixtures + "/finetune/text.txt", kFixtures + "/finetune/tasks.jsonl"}, m.tokenizer, data_options);
    out["data_tokens"] = stream.ids.size();
    out["data_seconds"] = seconds_since(t0);

    TrainOptions o;
    o.steps = a.integer("--steps", 245);
    o.batch = a.integer("--batch", 4);
    o.seq_len = a.integer("--seq-len", 2048);
    o.accum = a.integer("--accum", 1);
    o.lr = a.number("--lr", 1e-4);
    o.warmup = a.integer("--warmup", 24);
    o.decay_fraction = a.number("--decay-frac", 0.1);
    o.params = parse_train_params(a.str("--train", "all"));
    o.seed = static_cast<uint64_t>(a.integer("--seed", 0));
    Trainer trainer(*m.model, stream.ids, o, ModelFolderSource{config_text, dir});
    t0 = std::chrono::steady_clock::now();
    Trainer::RunCallbacks cb;
    cb.on_step = [&](const StepLog& s) {
        if (s.step == 1 || s.step % 25 == 0 || s.step == o.steps)
            std::fprintf(stderr, "%s %s: step %lld/%lld loss %.4f lr %.2e |g| %.3f %.0f tok/s\n", model_name.c_str(),
                         row.c_str(), (long long)s.step, (long long)o.steps, s.loss, s.lr, s.grad_norm, s.tokens_per_s);
    };
    trainer.run(cb);
    const double train_seconds = seconds_since(t0);
    json losses = json::array();
    for (const StepLog& s : trainer.log()) losses.push_back(s.loss);
    out["train"] = {{"steps", o.steps},       {"batch", o.batch},     {"seq_len", o.seq_len},
                    {"lr", o.lr},             {"warmup", o.warmup},   {"decay_fraction", o.decay_fraction},
                    {"train", train_params_name(o.params)}, {"tokens", trainer.tokens_seen()},
                    {"seconds", train_seconds}, {"tokens_per_s", trainer.tokens_seen() / train_seconds},
                    {"final_loss", trainer.log().back().loss}, {"losses", losses}};
    t0 = std::chrono::steady_clock::now();
    out["after"] = eval_json(evaluate(m, heldout, a));
    out["eval_seconds_after"] = seconds_since(t0);
    out["peak_rss_mb"] = peak_rss_mb();
    out["heldout_windows"] = a.integer("--heldout-windows", -1);
    out["longbench_limit"] = a.has("--no-longbench") ? 0 : a.integer("--longbench-limit", -1);
    out["row_seconds"] = seconds_since(t_row);
    std::fprintf(stderr, "%s %s: after fine-tuning ppl %.2f (row %.0f s)\n", model_name.c_str(), row.c_str(),
                 out["after"]["ppl"].get<double>(), out["row_seconds"].get<double>());
    return out;
}

std::string lb_text(const json& eval) {
    if (!eval.contains("longbench") || !eval["longbench"].contains("overall")) return "-";
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.2f", eval["longbench"]["overall"].get<double>());
    return buf;
}

void print_table(const std::vector<json>& rows) {
    if (rows.empty()) {
        std::printf("no rows\n");
        return;
    }
    const json& t = rows.front()["train"];
    std::printf("recovery fine-tuning: %lld steps x %lld x %lld tokens (%.2fM), lr %.0e, warmup %lld, 1-sqrt decay over "
                "the last %.0f%%, clip 1.0, train %s, device %s\n",
                t["steps"].get<long long>(), t["batch"].get<long long>(), t["seq_len"].get<long long>(),
                t["tokens"].get<double>() / 1e6, t["lr"].get<double>(), t["warmup"].get<long long>(),
                100 * t["decay_fraction"].get<double>(), t["train"].get<std::string>().c_str(),
                rows.front()["device"].get<std::string>().c_str());
    const int64_t windows = rows.front().value("heldout_windows", int64_t{-1});
    const int64_t limit = rows.front().value("longbench_limit", int64_t{-1});
    const std::string windows_text = windows < 0 ? "all of heldout.txt" : "its first " + std::to_string(windows) + " windows only";
    const std::string limit_text = limit < 0 ? "all records" : limit == 0 ? "not run" : "first " + std::to_string(limit) + " records per dataset only";
    std::printf("held-out perplexity (heldout.txt in 2048-token windows: %s) and LongBench-syn overall score (%%, %s); "
                "ref = the issue's PyTorch run of the full recipe on all of heldout.txt\n\n",
                windows_text.c_str(), limit_text.c_str());
    std::printf("%-12s %-34s %9s %9s %9s | %9s %8s | %8s %8s %8s | %7s %8s\n", "model", "setting", "ppl orig", "ppl conv",
                "ppl ft", "ref conv", "ref ft", "LB orig", "LB conv", "LB ft", "recov", "tok/s");
    std::map<std::string, json> control;  // model -> control row
    for (const json& r : rows)
        if (r["row"] == "control") control[r["model"].get<std::string>()] = r;
    for (const json& r : rows) {
        const std::string model = r["model"], row = r["row"];
        const bool is_control = row == "control";
        const json* orig = control.count(model) ? &control[model]["before"] : nullptr;
        const double ppl_orig = orig ? (*orig)["ppl"].get<double>() : r.value("original_ppl", NAN);
        const double conv = r["before"]["ppl"], ft = r["after"]["ppl"];
        auto ref = reference(model, row);
        char refc[16] = "-", reff[16] = "-", recov[16] = "-", convc[16] = "-";
        if (!is_control) std::snprintf(convc, sizeof(convc), "%.2f", conv);
        if (ref) {
            std::snprintf(refc, sizeof(refc), "%.2f", ref->conv);
            std::snprintf(reff, sizeof(reff), "%.2f", ref->ft);
        }
        // Share of the conversion gap (converted - original perplexity) the fine-tune closed.
        if (!is_control && std::isfinite(ppl_orig)) std::snprintf(recov, sizeof(recov), "%.0f%%", 100 * (conv - ft) / (conv - ppl_orig));
        const std::string setting = is_control ? "original; control fine-tune" : "2-norm r4 joint d_kv " + row;
        std::printf("%-12s %-34s %9.2f %9s %9.2f | %9s %8s | %8s %8s %8s | %7s %8.0f\n", model.c_str(), setting.c_str(),
                    is_control ? conv : ppl_orig, convc,
                    ft, is_control ? "-" : refc, reff, orig ? lb_text(*orig).c_str() : "-",
                    is_control ? "-" : lb_text(r["before"]).c_str(), lb_text(r["after"]).c_str(), recov,
                    r["train"]["tokens_per_s"].get<double>());
    }
    // The goals: d_kv 32 within 5% of the control's perplexity; d_kv 16 closes >= 2/3 of its gap.
    std::printf("\n");
    for (const json& r : rows) {
        const std::string model = r["model"], row = r["row"];
        const double conv = r["before"]["ppl"], ft = r["after"]["ppl"];
        const double orig = control.count(model) ? control[model]["before"]["ppl"].get<double>() : r.value("original_ppl", NAN);
        if (row == "32" && control.count(model)) {
            const double ctrl_ft = control[model]["after"]["ppl"];
            std::printf("goal %s d_kv 32 within 5%% of the control: %.2f vs %.2f (%+.1f%%) %s\n", model.c_str(), ft, ctrl_ft,
                        100 * (ft / ctrl_ft - 1), ft <= 1.05 * ctrl_ft ? "met" : "NOT met");
        }
        if (row == "16" && std::isfinite(orig))
            std::printf("goal %s d_kv 16 recovers >= 2/3 of its gap: %.0f%% %s\n", model.c_str(),
                        100 * (conv - ft) / (conv - orig), (conv - ft) >= 2.0 / 3.0 * (conv - orig) ? "met" : "NOT met");
    }
    double peak = 0;
    for (const json& r : rows) peak = std::max(peak, r.value("peak_rss_mb", 0.0));
    std::printf("peak RSS of one row process: %.0f MB\n", peak);
}

std::vector<json> read_rows(const std::vector<std::string>& files) {
    std::vector<json> rows;
    for (const std::string& f : files) {
        std::istringstream lines(read_all(f));
        std::string line;
        while (std::getline(lines, line))
            if (!line.empty()) rows.push_back(json::parse(line));
    }
    // Model, then control first, then d_kv ascending.
    std::sort(rows.begin(), rows.end(), [](const json& x, const json& y) {
        auto key = [](const json& r) {
            const std::string row = r["row"];
            return std::make_pair(r["model"].get<std::string>(), row == "control" ? -1 : std::stoi(row));
        };
        return key(x) < key(y);
    });
    return rows;
}

int prepare(const Args& a) {
    for (const std::string& model_name : split(a.str("--models", "wb-tiny-mha,wb-tiny-gqa"))) {
        const std::string dir = kFixtures + "/models/" + model_name;
        const Tokenizer tokenizer = Tokenizer::from_file(dir + "/tokenizer.json");
        TrainDataOptions data_options;
        data_options.tokenizer_file = dir + "/tokenizer.json";
        data_options.cache_dir = default_token_cache_dir();
        const auto t0 = std::chrono::steady_clock::now();
        const TokenStream stream = load_token_stream({kFixtures + "/finetune/text.txt", kFixtures + "/finetune/tasks.jsonl"},
                                                     tokenizer, data_options);
        std::printf("%s: %zu training tokens (%s) in %.1f s, cache %s\n", model_name.c_str(), stream.ids.size(),
                    stream.files[0].from_cache ? "cached" : "tokenized", seconds_since(t0), data_options.cache_dir.c_str());
    }
    return 0;
}

int speed(const Args& a) {
    const Placement placement = parse_placement(a.str("--device", "cpu"), "f32");
    const torch::Device device = placement.device;
    const std::string model_name = a.str("--model", "wb-tiny-mha");
    const std::string dir = kFixtures + "/models/" + model_name;
    LoadedModel m = load_model(dir);
    std::string label = "original";
    if (a.has("--mla")) {
        ResolvedSetting s = resolve_setting(MlaSpec::parse(a.str("--mla", "")), m.config, {});
        convert_to_mla(*m.model, s.spec, s.kept);
        label = s.spec.to_string();
    }
    if (!device.is_cpu()) m.model->place(placement);
    TrainDataOptions data_options;
    data_options.tokenizer_file = dir + "/tokenizer.json";
    data_options.cache_dir = default_token_cache_dir();
    const TokenStream stream = load_token_stream({kFixtures + "/finetune/text.txt"}, m.tokenizer, data_options);
    TrainOptions o;
    o.steps = a.integer("--steps", 6);
    o.batch = a.integer("--batch", 8);
    o.seq_len = a.integer("--seq-len", 512);
    o.accum = a.integer("--accum", 1);
    o.params = parse_train_params(a.str("--train", "all"));
    o.decay_fraction = 0;
    Trainer trainer(*m.model, stream.ids, o, ModelFolderSource{read_all(dir + "/config.json"), dir});
    const double rss_before = peak_rss_mb();
    const double cpu0 = cpu_seconds();
    const auto wall0 = std::chrono::steady_clock::now();
    trainer.run({});
    const double cpu = cpu_seconds() - cpu0, wall = seconds_since(wall0);
    std::vector<double> rates;
    for (size_t i = 1; i < trainer.log().size(); ++i) rates.push_back(trainer.log()[i].tokens_per_s);
    if (rates.empty()) rates.push_back(trainer.log().front().tokens_per_s);
    std::sort(rates.begin(), rates.end());
    std::printf("training %s (%s, train %s) on %s: batch %lld x %lld tokens, accum %lld: %.0f tok/s (median of %zu steps, "
                "%.2f s/step); peak RSS %.0f MB (%.0f MB before training); %lld trained parameters\n",
                model_name.c_str(), label.c_str(), train_params_name(o.params), device.str().c_str(), (long long)o.batch,
                (long long)o.seq_len, (long long)o.accum, rates[rates.size() / 2], rates.size(),
                o.batch * o.seq_len / rates[rates.size() / 2], peak_rss_mb(), rss_before,
                (long long)trainer.trained_parameter_count());
    std::printf("all %lld steps: %.0f tok/s wall, %.0f tok per CPU-second (CPU %.1f s over %.1f s wall: %.0f%% of one core)\n",
                (long long)o.steps, trainer.tokens_seen() / wall, trainer.tokens_seen() / cpu, cpu, wall, 100 * cpu / wall);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Args a;
    const std::vector<std::string> flags = {"--speed", "--table", "--no-longbench", "--prepare"};
    for (int i = 1; i < argc; ++i) {
        const std::string s = argv[i];
        if (std::find(flags.begin(), flags.end(), s) != flags.end()) {
            a.values[s] = "1";
        } else if (s.rfind("--", 0) == 0 && i + 1 < argc) {
            a.values[s] = argv[++i];
        } else {
            a.rest.push_back(s);
        }
    }
    try {
        if (a.has("--speed")) return speed(a);
        if (a.has("--prepare")) return prepare(a);
        if (a.has("--table")) {
            print_table(read_rows(a.rest));
            return 0;
        }
        if (a.str("--device", "cpu") != "cpu" && !torch::cuda::is_available()) {
            std::fprintf(stderr, "bench_recovery: --device %s but no CUDA device\n", a.str("--device", "").c_str());
            return 2;
        }
        std::vector<json> rows;
        for (const std::string& model : split(a.str("--models", "wb-tiny-mha,wb-tiny-gqa")))
            for (const std::string& row : split(a.str("--rows", "control,8,16,32"))) {
                json r = run_row(model, row, a);
                if (a.has("--row-out")) {
                    std::ofstream out(a.str("--row-out", ""), std::ios::app);
                    out << r.dump() << "\n";
                }
                rows.push_back(r);
            }
        if (!a.has("--row-out")) print_table(rows);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_recovery: %s\n", e.what());
        return 2;
    }
}
