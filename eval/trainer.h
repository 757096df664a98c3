// Recovery fine-tuning of a model (original or converted to MLA) in our own engine: the
// causal-LM loss on packed random windows, AdamW, warmup-stable-decay learning rate, gradient
// clipping and accumulation, checkpoints that resume to the same loss curve (MHA2MLA sec. 4:
// a converted model recovers with continued pre-training on a small share of the tokens).
//
// Device and dtype: the trainer runs where the model's parameters are (batches are moved
// there). On CUDA builds (MLAWB_CUDA) with a CUDA model and mixed_precision on, the forward
// and the loss run under bf16 autocast while the parameters, gradients and AdamW state stay
// float32 (the master copy is the model itself). On the CPU everything is float32 (or float64
// for the gradient check).
//
// One update (step s, 0-based): `batch` windows of seq_len + 1 tokens are drawn; they are split
// into `accum` micro-batches of batch/accum windows; each micro-batch's mean token loss / accum
// is backpropagated; the gradient 2-norm over the trained parameters is clipped to `clip`;
// AdamW steps at learning_rate(schedule, s). The drawn windows do not depend on `accum`, so
// accumulation changes memory and float rounding, not the curve.
//
// Checkpoint folder (step-NNNNNN under checkpoint_dir, written as a hidden temporary folder
// and renamed into place): model.safetensors (float32) + config.json + tokenizer files (a
// folder load_model opens), optimizer.pt (torch::save of the AdamW state), trainer_state.json
// (format, step, window sampler state, tokens seen, the run's hyper-parameters and data
// fingerprint, and the per-step log so far). resume() refuses a checkpoint whose
// hyper-parameters or data differ from this run's (the curve would not continue).
#pragma once

#include "eval/lr_schedule.h"

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mlawb {

class LlamaForCausalLMImpl;

// Which parameters train. Attention: every parameter under a layer's self_attn (q/k/v/o or
// the MLA projections) and the RMSNorm weights (the reference code's parameter-efficient
// option); embeddings, MLPs and lm_head stay frozen, bit for bit.
enum class TrainParams { All, Attention };
const char* train_params_name(TrainParams params);        // "all", "attn"
TrainParams parse_train_params(const std::string& text);  // throws Error("", "--train", ...)
bool is_trained(TrainParams params, const std::string& parameter_name);

struct TrainOptions {
    int64_t steps = 0;        // optimizer updates in the whole run (the schedule's length)
    int64_t batch = 1;        // windows per update
    int64_t accum = 1;        // micro-batches per update; must divide batch
    int64_t seq_len = 2048;   // tokens per window scored (windows hold seq_len + 1 tokens)
    double lr = 1e-4;         // peak learning rate
    int64_t warmup = 0;       // linear warmup steps
    double decay_fraction = 0.1;  // 1-sqrt cooldown over this share of the steps
    double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.01;  // AdamW (MHA2MLA's)
    double clip = 1.0;        // gradient 2-norm clip; <= 0: no clipping (the norm is still logged)
    TrainParams params = TrainParams::All;
    uint64_t seed = 0;        // window sampler
    bool mixed_precision = true;  // bf16 autocast on CUDA (ignored on the CPU)

    int64_t save_every = 0;       // checkpoint every N updates (0: none)
    std::string checkpoint_dir;   // step-NNNNNN folders go here
    int64_t keep_checkpoints = 2; // older step folders are removed after a successful save (0: keep all)

    int64_t eval_every = 0;           // held-out perplexity every N updates and at the end (0: never)
    std::vector<int64_t> heldout_ids; // held-out token stream
    int64_t heldout_window = 2048;
    int64_t heldout_max_windows = -1; // -1: the whole held-out stream

    LrSchedule schedule() const;  // {lr, warmup, steps, decay_fraction}
    // Throws mlawb::Error("", "--option", reason) for inconsistent values.
    void validate() const;
};

struct StepLog {
    int64_t step = 0;              // updates done after this one (1-based)
    double loss = 0;               // mean token cross-entropy of the update's windows (nats)
    double lr = 0;                 // learning rate the update used
    double grad_norm = 0;          // before clipping
    double tokens_per_s = 0;       // scored tokens of the update / its wall time
    double seconds = 0;            // wall time of the update
    int64_t tokens_seen = 0;       // scored tokens of every update so far
    std::optional<double> heldout_ppl;
};

// What a saved model folder needs besides the weights.
struct ModelFolderSource {
    std::string config_json;       // config.json text to write (with the "mla" block for MLA models)
    std::string tokenizer_folder;  // tokenizer.json, tokenizer_config.json, ... are copied from here
                                   // at every save: a folder that stays (not a checkpoint that --keep removes)
};

// Mean next-token cross-entropy of windows [B, T + 1] int64 (on the model's device): inputs
// the first T tokens, targets the last T. Grad-enabled unless the caller disables it; float32
// result (cross-entropy runs in float32 under autocast too).
torch::Tensor causal_lm_loss(LlamaForCausalLMImpl& model, const torch::Tensor& windows);

// config.json text for a converted model: `source_config_json` plus the "mla" block that
// load_model reads (svd, strategy, spec, r, d_kv, kept pairs per layer and KV head), built
// from the model's MLA layers; `calibration_json` ("" = none) becomes mla.calibration.
// Unconverted models and text that already has an "mla" block are returned as they are.
std::string model_config_json(const LlamaForCausalLMImpl& model, const std::string& source_config_json,
                              const std::string& strategy, const std::string& spec,
                              const std::string& calibration_json = "");

// Writes a loadable model folder (weights float32, config.json, tokenizer files) atomically:
// staged in a hidden folder beside `out_folder` and renamed. `out_folder` must not exist
// unless `replace` (then the old folder is removed only once the new one is complete).
// `write_more` writes further files into the staging folder (its path) before the rename.
void save_model_folder(LlamaForCausalLMImpl& model, const ModelFolderSource& source, const std::string& out_folder,
                       const std::function<void(const std::string& staging)>& write_more = {}, bool replace = false);

class Trainer {
public:
    // `stream` (the packed token stream) must outlive the trainer. Marks the trained parameters
    // requires_grad (the others not) and builds AdamW over them.
    Trainer(LlamaForCausalLMImpl& model, const std::vector<int32_t>& stream, TrainOptions options,
            ModelFolderSource source);
    ~Trainer();
    Trainer(const Trainer&) = delete;
    Trainer& operator=(const Trainer&) = delete;

    // Continues from a checkpoint folder: optimizer state, window sampler, step and log; the
    // weights too unless `weights_loaded` (the model was opened from that folder already).
    // Throws mlawb::Error naming the file and field when the checkpoint does not fit this run.
    void resume(const std::string& checkpoint_folder, bool weights_loaded = false);

    // One update. `cancelled` is polled between micro-batches: when it says so the update is
    // abandoned (gradients dropped, nothing changed) and Cancelled is thrown.
    StepLog train_step(const std::function<bool()>& cancelled = {});
    // Held-out perplexity of the current weights (options.heldout_ids); throws when none.
    double heldout_perplexity();

    // Updates until options.steps (or `stop_after` updates in all, when >= 0), with held-out
    // perplexity and checkpoints as the options say; on_step after each update (with the
    // held-out perplexity when it was measured), on_checkpoint after each save.
    struct RunCallbacks {
        std::function<void(const StepLog&)> on_step;
        std::function<void(const std::string& folder, int64_t step)> on_checkpoint;
        std::function<void(int64_t windows_done, int64_t windows_total)> on_heldout_progress;
        std::function<bool()> cancelled;
    };
    void run(const RunCallbacks& callbacks, int64_t stop_after = -1);

    // Writes checkpoint_dir/step-NNNNNN (see the top of this file); returns its path.
    std::string save_checkpoint();
    // The current weights as a loadable model folder (plus trainer_state.json, without the
    // optimizer), atomically; `out_folder` must not exist.
    void save_model(const std::string& out_folder);
    // Takes over a finished run's output folder (what save_model wrote): true when its
    // trainer_state.json is this run's (same hyper-parameters and data) at options.steps, and
    // then step, tokens seen, window sampler and log are the folder's (the weights are not
    // read). False, with nothing changed, for any other folder. For a run killed after its
    // output folder was renamed into place but before the store recorded its end.
    bool adopt_finished_output(const std::string& out_folder);

    int64_t step() const;                      // updates done
    int64_t tokens_seen() const;
    const std::vector<StepLog>& log() const;   // every update so far (also those before a resume)
    const TrainOptions& options() const;
    int64_t trained_parameter_count() const;   // elements
    torch::Device device() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// The newest step-NNNNNN folder in `folder`, or `folder` itself when it holds a
// trainer_state.json. Throws Error(folder, "", ...) when there is none.
std::string find_checkpoint(const std::string& folder);

}  // namespace mlawb
