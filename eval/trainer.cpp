#include "eval/trainer.h"

#include "core/error.h"
#include "core/json_io.h"
#include "core/llama_model.h"
#include "core/mla_attention.h"
#include "core/safetensors.h"
#include "core/staging.h"
#include "eval/perplexity.h"
#include "eval/store.h"
#include "eval/train_data.h"

#include <torch/nn/functional/loss.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>

#ifdef MLAWB_CUDA
#include <ATen/autocast_mode.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

namespace mlawb {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kStateFormat = "mlawb-trainer-v1";
constexpr const char* kStateFile = "trainer_state.json";
constexpr const char* kOptimizerFile = "optimizer.pt";

void write_text(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
    out.flush();
    if (!out) throw Error(path.string(), "", "write failed");
}

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path.string(), "", "cannot open");
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

const char* mla_kind_name(MlaKind kind) {
    switch (kind) {
        case MlaKind::Joint: return "joint";
        case MlaKind::Split: return "split";
        case MlaKind::PartialRopeOnly: return "none";
    }
    return "none";
}

#ifdef MLAWB_CUDA
// bf16 autocast for the forward and the loss on CUDA (LibTorch 2.x API); parameters stay
// float32, so gradients and AdamW state are float32 (the master copy).
struct AutocastScope {
    bool on, was_enabled = false;
    at::ScalarType was_dtype = at::kHalf;
    explicit AutocastScope(bool enable) : on(enable) {
        if (!on) return;
        was_enabled = at::autocast::is_autocast_enabled(at::kCUDA);
        was_dtype = at::autocast::get_autocast_dtype(at::kCUDA);
        at::autocast::set_autocast_enabled(at::kCUDA, true);
        at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    }
    ~AutocastScope() {
        if (!on) return;
        at::autocast::set_autocast_enabled(at::kCUDA, was_enabled);
        at::autocast::set_autocast_dtype(at::kCUDA, was_dtype);
        if (!was_enabled) at::autocast::clear_cache();  // the bf16 weight copies of this forward
    }
};
#else
struct AutocastScope {
    explicit AutocastScope(bool) {}
};
#endif

json step_to_json(const StepLog& s) {
    json j = {{"step", s.step}, {"loss", s.loss}, {"lr", s.lr}, {"grad_norm", s.grad_norm},
              {"tokens_per_s", s.tokens_per_s}, {"seconds", s.seconds}, {"tokens_seen", s.tokens_seen}};
    if (s.heldout_ppl) j["heldout_ppl"] = *s.heldout_ppl;
    return j;
}

StepLog step_from_json(const json& j) {
    StepLog s;
    s.step = j.at("step").get<int64_t>();
    s.loss = j.at("loss").get<double>();
    s.lr = j.at("lr").get<double>();
    s.grad_norm = j.at("grad_norm").get<double>();
    s.tokens_per_s = j.value("tokens_per_s", 0.0);
    s.seconds = j.value("seconds", 0.0);
    s.tokens_seen = j.value("tokens_seen", int64_t{0});
    if (j.contains("heldout_ppl")) s.heldout_ppl = j["heldout_ppl"].get<double>();
    return s;
}

}  // namespace

const char* train_params_name(TrainParams params) { return params == TrainParams::All ? "all" : "attn"; }

TrainParams parse_train_params(const std::string& text) {
    if (text == "all") return TrainParams::All;
    if (text == "attn") return TrainParams::Attention;
    throw Error("", "--train", "'" + text + "' is not one of all, attn");
}

bool is_trained(TrainParams params, const std::string& name) {
    if (params == TrainParams::All) return true;
    // model.layers.N.self_attn.*, model.layers.N.{input,post_attention}_layernorm.weight, model.norm.weight
    return name.find(".self_attn.") != std::string::npos || name.find("layernorm.weight") != std::string::npos ||
           name == "model.norm.weight";
}

LrSchedule TrainOptions::schedule() const {
    LrSchedule s;
    s.peak = lr;
    s.warmup_steps = warmup;
    s.total_steps = steps;
    s.decay_fraction = decay_fraction;
    return s;
}

void TrainOptions::validate() const {
    schedule().validate();
    if (batch < 1) throw Error("", "--batch", "must be at least 1");
    if (accum < 1 || batch % accum != 0)
        throw Error("", "--accum", "must divide --batch (" + std::to_string(batch) + "), got " + std::to_string(accum));
    if (seq_len < 1) throw Error("", "--seq-len", "must be at least 1");
    if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) throw Error("", "betas", "must be in [0, 1)");
    if (!(eps > 0)) throw Error("", "eps", "must be positive");
    if (weight_decay < 0) throw Error("", "--weight-decay", "must not be negative");
    if (save_every < 0) throw Error("", "--save-every", "must not be negative");
    if (save_every > 0 && checkpoint_dir.empty()) throw Error("", "--save-every", "needs a checkpoint folder");
    if (eval_every < 0) throw Error("", "--eval-every", "must not be negative");
    if (eval_every > 0 && heldout_ids.size() < 2) throw Error("", "--heldout", "--eval-every needs held-out text");
    if (heldout_window < 2) throw Error("", "--heldout-window", "must be at least 2");
}

torch::Tensor causal_lm_loss(LlamaForCausalLMImpl& model, const torch::Tensor& windows) {
    TORCH_CHECK(windows.dim() == 2 && windows.size(1) >= 2, "windows must be [B, T + 1] with T >= 1");
    const int64_t t = windows.size(1) - 1;
    torch::Tensor inputs = windows.narrow(1, 0, t);
    torch::Tensor targets = windows.narrow(1, 1, t).reshape({-1});
    KVCache cache = model.make_cache(CacheOptions{});  // training never quantizes the cache
    // forward_hidden + logits rather than forward(), which rounds logits to float32: the
    // gradient check runs in float64. bf16/f16 logits are scored in float32.
    torch::Tensor logits = model.logits(model.forward_hidden(inputs, cache));
    if (logits.scalar_type() != torch::kFloat64) logits = logits.to(torch::kFloat32);
    return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.to(logits.device()));
}

std::string model_config_json(const LlamaForCausalLMImpl& model, const std::string& source_config_json,
                              const std::string& strategy, const std::string& spec, const std::string& calibration_json) {
    json config = parse_json_text(source_config_json, "config.json");  // depth-capped; any parser error named
    config["torch_dtype"] = "float32";  // the weights are written float32
    if (config.contains("dtype")) config["dtype"] = "float32";
    const ModelConfig& c = model.config();
    auto first = c.n_layer > 0 ? std::dynamic_pointer_cast<MlaAttention>(model.layer(0)->self_attn) : nullptr;
    if (!first || config.contains("mla")) return config.dump(2) + "\n";
    json kept = json::array();
    for (int64_t l = 0; l < c.n_layer; ++l) {
        auto mla = std::dynamic_pointer_cast<MlaAttention>(model.layer(l)->self_attn);
        if (!mla) throw Error("", "mla", "layer " + std::to_string(l) + " is not converted while layer 0 is");
        kept.push_back(mla->shape().kept_pairs);
    }
    const MlaLayerShape& shape = first->shape();
    json mla = {{"svd", mla_kind_name(shape.kind)},
                {"strategy", strategy},
                {"spec", spec},
                {"r", first->rope_dims() / 2},
                {"d_kv", shape.kind == MlaKind::PartialRopeOnly ? 0 : shape.d_kv},
                {"kept_pairs", kept}};
    if (!calibration_json.empty()) mla["calibration"] = json::parse(calibration_json);
    config["mla"] = mla;
    return config.dump(2) + "\n";
}

void save_model_folder(LlamaForCausalLMImpl& model, const ModelFolderSource& source, const std::string& out_folder,
                       const std::function<void(const std::string&)>& write_more, bool replace) {
    const fs::path out = out_folder;
    if (out.empty()) throw Error("", "--out", "an output folder is required");
    if (fs::exists(out) && !replace)
        throw Error(out.string(), "", "already exists; choose a new folder (nothing is overwritten)");
    const fs::path parent = out.parent_path().empty() ? fs::path(".") : out.parent_path();
    fs::create_directories(parent);
    remove_stale_staging(parent);  // what killed runs left beside this output
    const fs::path staging = staging_path(out, "partial");
    fs::remove_all(staging);
    fs::create_directories(staging);
    try {
        std::vector<torch::Tensor> keep_alive;
        std::vector<TensorToWrite> tensors;
        for (const auto& p : model.named_parameters()) {
            torch::Tensor t = p.value().detach().to(torch::kCPU, torch::kFloat32).contiguous();
            keep_alive.push_back(t);
            tensors.push_back({p.key(), DType::F32, t.sizes().vec(), t.data_ptr()});
        }
        write_safetensors((staging / "model.safetensors").string(), tensors, {{"format", "pt"}, {"mlawb", "finetune"}});
        write_text(staging / "config.json", source.config_json);
        for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"}) {
            const fs::path src = fs::path(source.tokenizer_folder) / name;
            if (fs::exists(src)) fs::copy_file(src, staging / name);
        }
        if (write_more) write_more(staging.string());
        if (fs::exists(out)) {
            // Replace: the old folder goes only once the new one is complete.
            const fs::path old = staging_path(out, "old");
            fs::remove_all(old);
            fs::rename(out, old);
            fs::rename(staging, out);
            fs::remove_all(old);
        } else {
            fs::rename(staging, out);
        }
    } catch (...) {
        std::error_code ignored;
        fs::remove_all(staging, ignored);
        throw;
    }
}

std::string find_checkpoint(const std::string& folder) {
    const fs::path dir = folder;
    if (fs::exists(dir / kStateFile)) return dir.string();
    if (!fs::is_directory(dir)) throw Error(folder, "", "no such checkpoint folder");
    std::string best;
    for (const auto& entry : fs::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (entry.is_directory() && name.rfind("step-", 0) == 0 && fs::exists(entry.path() / kStateFile))
            if (best.empty() || name > fs::path(best).filename().string()) best = entry.path().string();
    }
    if (best.empty())
        throw Error(folder, "", "holds no checkpoint (no trainer_state.json, no step-NNNNNN folder with one)");
    return best;
}

struct Trainer::Impl {
    LlamaForCausalLMImpl& model;
    const std::vector<int32_t>& stream;
    TrainOptions options;
    ModelFolderSource source;
    LrSchedule schedule;
    std::vector<torch::Tensor> params;
    std::vector<std::string> param_names;
    std::unique_ptr<torch::optim::AdamW> optimizer;
    WindowSampler sampler;
    torch::Device device{torch::kCPU};
    bool autocast = false;
    int64_t step = 0;
    int64_t tokens_seen = 0;
    std::vector<StepLog> log;
    std::string data_sha;  // of the stream's ids, computed when first needed

    Impl(LlamaForCausalLMImpl& m, const std::vector<int32_t>& s, TrainOptions o, ModelFolderSource src)
        : model(m),
          stream(s),
          options(std::move(o)),
          source(std::move(src)),
          schedule(options.schedule()),
          sampler(static_cast<int64_t>(s.size()), options.seq_len + 1, options.seed) {}

    const std::string& data_fingerprint() {
        if (data_sha.empty())
            data_sha = sha256_hex(std::string(reinterpret_cast<const char*>(stream.data()), stream.size() * sizeof(int32_t)));
        return data_sha;
    }

    // Everything that shapes the loss curve; a resumed run must match it exactly.
    json run_identity() {
        return json{{"steps", options.steps},
                    {"batch", options.batch},
                    {"seq_len", options.seq_len},
                    {"lr", options.lr},
                    {"warmup", options.warmup},
                    {"decay_fraction", options.decay_fraction},
                    {"beta1", options.beta1},
                    {"beta2", options.beta2},
                    {"eps", options.eps},
                    {"weight_decay", options.weight_decay},
                    {"clip", options.clip},
                    {"train", train_params_name(options.params)},
                    {"seed", options.seed},
                    {"data_tokens", static_cast<int64_t>(stream.size())},
                    {"data_sha256", data_fingerprint()}};
    }

    json state_json() {
        json steps = json::array();
        for (const StepLog& s : log) steps.push_back(step_to_json(s));
        return json{{"format", kStateFormat},
                    {"step", step},
                    {"tokens_seen", tokens_seen},
                    {"sampler_state", sampler.state()},
                    {"accum", options.accum},
                    {"run", run_identity()},
                    {"log", steps}};
    }
};

Trainer::Trainer(LlamaForCausalLMImpl& model, const std::vector<int32_t>& stream, TrainOptions options,
                 ModelFolderSource source) {
    options.validate();
    impl_ = std::make_unique<Impl>(model, stream, std::move(options), std::move(source));
    Impl& d = *impl_;
    for (auto& p : model.named_parameters()) {
        const bool train = is_trained(d.options.params, p.key());
        p.value().set_requires_grad(train);
        if (train) {
            d.params.push_back(p.value());
            d.param_names.push_back(p.key());
        }
    }
    if (d.params.empty()) throw Error("", "--train", "selects no parameters of this model");
    d.device = d.params.front().device();
#ifdef MLAWB_CUDA
    d.autocast = d.options.mixed_precision && d.device.is_cuda();
#endif
    auto adam = torch::optim::AdamWOptions(d.options.lr)
                    .betas({d.options.beta1, d.options.beta2})
                    .eps(d.options.eps)
                    .weight_decay(d.options.weight_decay);
    d.optimizer = std::make_unique<torch::optim::AdamW>(d.params, adam);
    model.train();
}

Trainer::~Trainer() = default;

void Trainer::resume(const std::string& checkpoint_folder, bool weights_loaded) {
    Impl& d = *impl_;
    const fs::path dir = checkpoint_folder;
    const std::string state_path = (dir / kStateFile).string();
    const json state = parse_json_text(read_text(state_path), state_path);
    if (state.value("format", "") != kStateFormat)
        throw Error(state_path, "format", "not a trainer state of this version (expected " + std::string(kStateFormat) + ")");
    const json expected = d.run_identity();
    const json& stored = state.at("run");
    for (const auto& [key, value] : expected.items()) {
        if (!stored.contains(key) || stored[key] != value)
            throw Error(state_path, "run." + key,
                        "the checkpoint was trained with " + (stored.contains(key) ? stored[key].dump() : "nothing") +
                            ", this run asks " + value.dump() + " (the loss curve would not continue)");
    }
    if (!weights_loaded) {
        torch::NoGradGuard no_grad;
        d.model.load_weights(Checkpoint::open_folder(dir.string()));
    }
    const std::string opt_path = (dir / kOptimizerFile).string();
    if (!fs::exists(opt_path)) throw Error(opt_path, "", "missing: the checkpoint has no optimizer state");
    try {
        torch::load(*d.optimizer, opt_path, d.device);
    } catch (const c10::Error& e) {
        std::string msg = e.what_without_backtrace();
        throw Error(opt_path, "", "cannot read optimizer state: " + msg.substr(0, msg.find('\n')));
    }
    d.sampler.set_state(state.at("sampler_state").get<std::string>());
    d.step = state.at("step").get<int64_t>();
    d.tokens_seen = state.at("tokens_seen").get<int64_t>();
    d.log.clear();
    for (const json& s : state.at("log")) d.log.push_back(step_from_json(s));
    if (d.step > d.options.steps)
        throw Error(state_path, "step", "the checkpoint is past the run's --steps (" + std::to_string(d.options.steps) + ")");
}

StepLog Trainer::train_step(const std::function<bool()>& cancelled) {
    Impl& d = *impl_;
    if (d.step >= d.options.steps) throw Error("", "--steps", "the run is complete (" + std::to_string(d.step) + " steps)");
    torch::AutoGradMode grad_mode(true);
    const auto t0 = std::chrono::steady_clock::now();
    const std::string sampler_before = d.sampler.state();
    const int64_t window = d.options.seq_len + 1, micro = d.options.batch / d.options.accum;
    std::vector<int64_t> flat = draw_windows(d.stream, d.sampler, d.options.batch);
    torch::Tensor windows =
        torch::from_blob(flat.data(), {d.options.batch, window}, torch::kInt64).to(d.device, /*non_blocking=*/false, /*copy=*/true);

    d.optimizer->zero_grad();
    double loss_sum = 0;
    for (int64_t m = 0; m < d.options.accum; ++m) {
        if (cancelled && cancelled()) {
            d.optimizer->zero_grad();
            d.sampler.set_state(sampler_before);  // the update never happened
            throw Cancelled();
        }
        torch::Tensor loss;
        {
            AutocastScope autocast(d.autocast);
            loss = causal_lm_loss(d.model, windows.narrow(0, m * micro, micro));
        }
        (loss / static_cast<double>(d.options.accum)).backward();
        loss_sum += loss.item<double>();
    }
    const double loss = loss_sum / static_cast<double>(d.options.accum);
    if (!std::isfinite(loss))
        throw Error("", "loss", "not finite at step " + std::to_string(d.step + 1) + " (try a lower --lr)");
    const double max_norm = d.options.clip > 0 ? d.options.clip : std::numeric_limits<double>::infinity();
    const double grad_norm = torch::nn::utils::clip_grad_norm_(d.params, max_norm);
    const double lr = learning_rate(d.schedule, d.step);
    for (auto& group : d.optimizer->param_groups())
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    d.optimizer->step();
    if (d.device.is_cuda()) (void)d.params.front().sum().item<double>();  // wait for the GPU before timing

    StepLog s;
    s.step = ++d.step;
    s.loss = loss;
    s.lr = lr;
    s.grad_norm = grad_norm;
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int64_t tokens = d.options.batch * d.options.seq_len;
    s.tokens_per_s = s.seconds > 0 ? static_cast<double>(tokens) / s.seconds : 0;
    d.tokens_seen += tokens;
    s.tokens_seen = d.tokens_seen;
    d.log.push_back(s);
    return s;
}

double Trainer::heldout_perplexity() {
    Impl& d = *impl_;
    if (d.options.heldout_ids.size() < 2) throw Error("", "--heldout", "no held-out text to score");
    PerplexityOptions po;
    po.window = d.options.heldout_window;
    po.max_windows = d.options.heldout_max_windows;
    d.model.eval();
    PerplexityResult r = compute_perplexity(d.model, d.options.heldout_ids, po);
    d.model.train();
    return r.perplexity;
}

void Trainer::run(const RunCallbacks& cb, int64_t stop_after) {
    Impl& d = *impl_;
    const int64_t last = stop_after >= 0 ? std::min(stop_after, d.options.steps) : d.options.steps;
    int64_t saved_at = -1;
    while (d.step < last) {
        StepLog s = train_step(cb.cancelled);
        const bool eval_now = d.options.eval_every > 0 &&
                              (d.step % d.options.eval_every == 0 || d.step == d.options.steps);
        if (eval_now) {
            PerplexityOptions po;
            po.window = d.options.heldout_window;
            po.max_windows = d.options.heldout_max_windows;
            if (cb.on_heldout_progress) po.progress = [&](int64_t done, int64_t total, int64_t) { cb.on_heldout_progress(done, total); };
            if (cb.cancelled) po.cancelled = cb.cancelled;
            d.model.eval();
            PerplexityResult r = compute_perplexity(d.model, d.options.heldout_ids, po);
            d.model.train();
            s.heldout_ppl = r.perplexity;
            d.log.back().heldout_ppl = r.perplexity;
        }
        if (cb.on_step) cb.on_step(s);
        if (d.options.save_every > 0 && d.step % d.options.save_every == 0) {
            const std::string folder = save_checkpoint();
            saved_at = d.step;
            if (cb.on_checkpoint) cb.on_checkpoint(folder, d.step);
        }
    }
    // A run stopped early leaves a checkpoint to resume from.
    if (last < d.options.steps && saved_at != d.step && !d.options.checkpoint_dir.empty()) {
        const std::string folder = save_checkpoint();
        if (cb.on_checkpoint) cb.on_checkpoint(folder, d.step);
    }
}

std::string Trainer::save_checkpoint() {
    Impl& d = *impl_;
    if (d.options.checkpoint_dir.empty()) throw Error("", "--checkpoints", "no checkpoint folder set");
    char name[32];
    std::snprintf(name, sizeof(name), "step-%06lld", static_cast<long long>(d.step));
    const fs::path folder = fs::path(d.options.checkpoint_dir) / name;
    fs::create_directories(d.options.checkpoint_dir);
    const std::string state_text = d.state_json().dump(1) + "\n";
    save_model_folder(
        d.model, d.source, folder.string(),
        [&](const std::string& staging) {
            torch::save(*d.optimizer, (fs::path(staging) / kOptimizerFile).string());
            write_text(fs::path(staging) / kStateFile, state_text);
        },
        /*replace=*/true);
    if (d.options.keep_checkpoints > 0) {
        std::vector<fs::path> steps;
        for (const auto& entry : fs::directory_iterator(d.options.checkpoint_dir)) {
            const std::string n = entry.path().filename().string();
            if (entry.is_directory() && n.rfind("step-", 0) == 0) steps.push_back(entry.path());
        }
        std::sort(steps.begin(), steps.end());
        for (size_t i = 0; i + d.options.keep_checkpoints < steps.size(); ++i) {
            // Renamed to a hidden name first: a process killed while removing leaves no
            // half-deleted step folder under a visible name.
            std::error_code ignored, renamed;
            const fs::path doomed = staging_path(steps[i], "removing");
            fs::remove_all(doomed, ignored);
            fs::rename(steps[i], doomed, renamed);
            fs::remove_all(renamed ? steps[i] : doomed, ignored);
        }
    }
    return folder.string();
}

void Trainer::save_model(const std::string& out_folder) {
    Impl& d = *impl_;
    const std::string state_text = d.state_json().dump(1) + "\n";
    save_model_folder(d.model, d.source, out_folder,
                      [&](const std::string& staging) { write_text(fs::path(staging) / kStateFile, state_text); });
}

bool Trainer::adopt_finished_output(const std::string& out_folder) {
    Impl& d = *impl_;
    try {
        const json state = parse_json_text(read_text(fs::path(out_folder) / kStateFile), out_folder);
        if (!state.is_object() || state.value("format", "") != kStateFormat || !state.contains("run") ||
            state.at("run") != d.run_identity() || state.at("step").get<int64_t>() != d.options.steps)
            return false;
        std::vector<StepLog> log;
        for (const json& s : state.at("log")) log.push_back(step_from_json(s));
        if (static_cast<int64_t>(log.size()) != d.options.steps) return false;
        WindowSampler sampler = d.sampler;
        sampler.set_state(state.at("sampler_state").get<std::string>());
        const int64_t tokens_seen = state.at("tokens_seen").get<int64_t>();
        d.sampler = sampler;
        d.step = d.options.steps;
        d.tokens_seen = tokens_seen;
        d.log = std::move(log);
        return true;
    } catch (const std::exception&) {  // unreadable, malformed or another kind of folder
        return false;
    }
}

int64_t Trainer::step() const { return impl_->step; }
int64_t Trainer::tokens_seen() const { return impl_->tokens_seen; }
const std::vector<StepLog>& Trainer::log() const { return impl_->log; }
const TrainOptions& Trainer::options() const { return impl_->options; }
torch::Device Trainer::device() const { return impl_->device; }

int64_t Trainer::trained_parameter_count() const {
    int64_t n = 0;
    for (const auto& p : impl_->params) n += p.numel();
    return n;
}

}  // namespace mlawb
